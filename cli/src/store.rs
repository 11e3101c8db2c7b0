//! `--store STORE` parsed into a type, and opened.
//!
//! A store is either a running `bonsai serve` (`http://` or `https://`, scheme in any case)
//! or a directory holding an embedded store. Anything else is refused with one line saying
//! what is accepted: a typo such as `htp://host`, a bare `host:port` or a missing directory
//! must never become a new directory that silently swallows a push. Directories are created
//! only on purpose, by `bonsai init DIR`.
//!
//! Caveat: "looks like a store" means the directory holds the store's index
//! (`index.sqlite`) or, should the index be lost, its layout (`blocks/` and `manifests/`,
//! from which the store rebuilds the index); the embedded store checks the rest when it
//! opens.

use bonsai_blockstore::LocalStore;
use bonsai_core::store::http::HttpStore;
use bonsai_core::BlockStore;
use std::fmt;
use std::path::{Path, PathBuf};

/// The file whose presence marks a directory as a store.
const STORE_MARKER: &str = "index.sqlite";

/// What `--store` names, checked for syntax (the file system is consulted only on open).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// A `bonsai serve` at this base URL (scheme lowercased, no trailing slash).
    Http(String),
    /// An embedded store in this directory.
    Dir(PathBuf),
}

/// How a command may use a directory store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The directory must already be a store (pull, stats and every read).
    Existing,
    /// An existing store, or an existing empty directory that becomes one (push).
    ExistingOrEmpty,
}

/// How the client presents itself to an http(s) store.
#[derive(Debug, Clone, Default)]
pub(crate) struct Client {
    /// Bearer token (from `--token-file` or BONSAI_TOKEN).
    pub token: Option<String>,
    /// `--token-file` was given (refused for a directory store, where it would be ignored).
    pub token_file_given: bool,
    /// `--ca-file`: a private CA to trust for `https://`.
    pub ca_file: Option<PathBuf>,
}

/// Why a `--store` (or `bonsai init DIR`) was refused. Every case is a usage error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreSpecError {
    /// A scheme other than http/https.
    #[error("--store {0}: unsupported scheme {1:?}; accepted: http://HOST:PORT, https://HOST:PORT or a store directory")]
    Scheme(String, String),
    /// `http://` without a usable host or port.
    #[error("--store {0}: {1}; accepted: http://HOST:PORT or https://HOST:PORT")]
    BadUrl(String, &'static str),
    /// A bare `host:port`, almost surely meant as a URL.
    #[error("--store {0} is not a directory; to reach a server write http://{0}")]
    HostPort(String),
    /// The directory does not exist.
    #[error("store directory {} does not exist; create it with `bonsai init {}` or give http(s)://HOST:PORT", .0.display(), .0.display())]
    Missing(PathBuf),
    /// The path exists but is not a directory.
    #[error("store {} is not a directory; give a store directory or http(s)://HOST:PORT", .0.display())]
    NotDir(PathBuf),
    /// An empty directory where a store is needed.
    #[error("store directory {} is empty, not a bonsai store; create one with `bonsai init {}`", .0.display(), .0.display())]
    Empty(PathBuf),
    /// A directory with other things in it.
    #[error("directory {} is not a bonsai store (no {STORE_MARKER}) and not empty; give the store's directory", .0.display())]
    Foreign(PathBuf),
    /// A token file given for a directory store (it would be ignored).
    #[error("--token-file applies to http(s) stores only; store {} is a directory (drop --token-file)", .0.display())]
    TokenForDir(PathBuf),
    /// A CA file given for a directory store (it would be ignored).
    #[error("--ca-file applies to https stores only; store {} is a directory (drop --ca-file)", .0.display())]
    CaForDir(PathBuf),
    /// `bonsai init` given a URL: servers make their own store (`serve --data DIR`).
    #[error("bonsai init makes a store directory, not a server's store; {0} is a URL (a server creates its store with `bonsai serve --data DIR`)")]
    InitUrl(String),
    /// The directory could not be examined.
    #[error("store directory {}: {}", .0.display(), .1)]
    Unreadable(PathBuf, std::io::Error),
}

impl StoreSpec {
    /// Parses `--store` syntax: a URL whose scheme is http/https in any case, else a path.
    pub(crate) fn parse(arg: &str) -> Result<StoreSpec, StoreSpecError> {
        if let Some((scheme, rest)) = arg.split_once("://") {
            let lower = scheme.to_ascii_lowercase();
            if lower != "http" && lower != "https" {
                return Err(StoreSpecError::Scheme(arg.into(), scheme.into()));
            }
            check_authority(arg, rest)?;
            let url = format!("{lower}://{}", rest.trim_end_matches('/'));
            return Ok(StoreSpec::Http(url));
        }
        if arg.is_empty() {
            return Err(StoreSpecError::Missing(PathBuf::new()));
        }
        let path = PathBuf::from(arg);
        if looks_like_host_port(arg) && !path.exists() {
            return Err(StoreSpecError::HostPort(arg.into()));
        }
        Ok(StoreSpec::Dir(path))
    }

    /// Opens the store. Directories are checked against `access`; nothing is created
    /// except the store's own files inside an empty directory under `ExistingOrEmpty`.
    pub(crate) fn open(
        &self,
        access: Access,
        client: &Client,
    ) -> anyhow::Result<Box<dyn BlockStore>> {
        match self {
            StoreSpec::Http(url) => Ok(Box::new(HttpStore::new_with_ca(
                url,
                client.token.clone(),
                client.ca_file.as_deref(),
            )?)),
            StoreSpec::Dir(dir) => {
                if client.token_file_given {
                    return Err(StoreSpecError::TokenForDir(dir.clone()).into());
                }
                if client.ca_file.is_some() {
                    return Err(StoreSpecError::CaForDir(dir.clone()).into());
                }
                check_dir(dir, access)?;
                Ok(Box::new(LocalStore::open(dir)?))
            }
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Http(u) => f.write_str(u),
            StoreSpec::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

/// clap value parser for `--store`.
pub(crate) fn parse_store(arg: &str) -> Result<StoreSpec, String> {
    StoreSpec::parse(arg).map_err(|e| e.to_string())
}

/// `http://HOST[:PORT][/path]`: a host is required, a port must be a number.
fn check_authority(arg: &str, rest: &str) -> Result<(), StoreSpecError> {
    let authority = rest.split('/').next().unwrap_or("");
    let host_port = authority.rsplit('@').next().unwrap_or("");
    if host_port.is_empty() {
        return Err(StoreSpecError::BadUrl(arg.into(), "no host"));
    }
    // [v6]:port or host:port
    let port = match host_port.rfind(']') {
        Some(end) => host_port[end + 1..].strip_prefix(':'),
        None => host_port.split_once(':').map(|(_, p)| p),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return Err(StoreSpecError::BadUrl(
                arg.into(),
                "the port is not a number",
            ));
        }
    }
    if host_port.starts_with(':') {
        return Err(StoreSpecError::BadUrl(arg.into(), "no host"));
    }
    Ok(())
}

/// `name:1234` with no slash: what a user types for a server and forgets the scheme.
fn looks_like_host_port(arg: &str) -> bool {
    match arg.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok()
        }
        None => false,
    }
}

/// What is at `dir`.
enum DirState {
    Store,
    Empty,
    Foreign,
}

fn dir_state(dir: &Path) -> Result<DirState, StoreSpecError> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreSpecError::Missing(dir.into()))
        }
        Err(e) => return Err(StoreSpecError::Unreadable(dir.into(), e)),
    };
    if !meta.is_dir() {
        return Err(StoreSpecError::NotDir(dir.into()));
    }
    if dir.join(STORE_MARKER).is_file()
        || (dir.join("blocks").is_dir() && dir.join("manifests").is_dir())
    {
        return Ok(DirState::Store);
    }
    let mut entries =
        std::fs::read_dir(dir).map_err(|e| StoreSpecError::Unreadable(dir.into(), e))?;
    Ok(if entries.next().is_none() {
        DirState::Empty
    } else {
        DirState::Foreign
    })
}

/// Refuses a directory that `access` does not allow.
fn check_dir(dir: &Path, access: Access) -> Result<(), StoreSpecError> {
    match (dir_state(dir)?, access) {
        (DirState::Store, _) | (DirState::Empty, Access::ExistingOrEmpty) => Ok(()),
        (DirState::Empty, Access::Existing) => Err(StoreSpecError::Empty(dir.into())),
        (DirState::Foreign, _) => Err(StoreSpecError::Foreign(dir.into())),
    }
}

/// `bonsai init DIR`: makes DIR (and its parents) a store. An existing store is left as
/// it is; a non-empty directory that is not a store is refused. Returns whether it was new.
pub(crate) fn init(dir: &Path) -> anyhow::Result<bool> {
    // the same syntax rules as --store: `bonsai init htp://x` must not make `htp:/x`
    match StoreSpec::parse(&dir.to_string_lossy())? {
        StoreSpec::Http(url) => return Err(StoreSpecError::InitUrl(url).into()),
        StoreSpec::Dir(_) => {}
    }
    let fresh = match dir_state(dir) {
        Ok(DirState::Store) => false,
        Ok(DirState::Empty) => true,
        Ok(DirState::Foreign) => return Err(StoreSpecError::Foreign(dir.into()).into()),
        Err(StoreSpecError::Missing(_)) => {
            std::fs::create_dir_all(dir).map_err(|e| StoreSpecError::Unreadable(dir.into(), e))?;
            true
        }
        Err(e) => return Err(e.into()),
    };
    LocalStore::open(dir)?;
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(arg: &str) -> String {
        StoreSpec::parse(arg).unwrap_err().to_string()
    }

    #[test]
    fn urls_in_any_case_are_servers() {
        assert_eq!(
            StoreSpec::parse("HTTP://Host:7412/").unwrap(),
            StoreSpec::Http("http://Host:7412".into())
        );
        assert_eq!(
            StoreSpec::parse("https://[::1]:9").unwrap(),
            StoreSpec::Http("https://[::1]:9".into())
        );
    }

    #[test]
    fn typos_are_refused_with_what_is_accepted() {
        assert!(err("htp://h:1").contains("unsupported scheme \"htp\""));
        assert!(err("ftp://h").contains("accepted: http://"));
        assert!(err("http://").contains("no host"));
        assert!(err("http://:80").contains("no host"));
        assert!(err("http://h:port").contains("port is not a number"));
        assert!(err("127.0.0.1:7412").contains("write http://127.0.0.1:7412"));
        assert!(err("localhost:80").contains("http://localhost:80"));
    }

    #[test]
    fn paths_are_directories() {
        assert_eq!(
            StoreSpec::parse("./a:b/c").unwrap(),
            StoreSpec::Dir("./a:b/c".into())
        );
        assert_eq!(
            StoreSpec::parse("store").unwrap(),
            StoreSpec::Dir("store".into())
        );
    }

    #[test]
    fn directories_are_checked_and_never_created() {
        let t = tempfile::tempdir().unwrap();
        let missing = t.path().join("nope");
        let open = |p: &Path, a| {
            StoreSpec::Dir(p.into())
                .open(a, &Client::default())
                .map(|_| ())
        };
        let e = open(&missing, Access::ExistingOrEmpty).unwrap_err();
        assert!(e.to_string().contains("bonsai init"), "{e}");
        assert!(!missing.exists());
        let empty = t.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        assert!(open(&empty, Access::Existing).is_err());
        assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
        open(&empty, Access::ExistingOrEmpty).unwrap();
        open(&empty, Access::Existing).unwrap();
        let foreign = t.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("x"), "x").unwrap();
        assert!(open(&foreign, Access::ExistingOrEmpty).is_err());
        assert!(init(&foreign).is_err());
        assert!(init(&t.path().join("new/store")).unwrap());
        assert!(!init(&t.path().join("new/store")).unwrap());
        let e = init(Path::new("http://h:1")).unwrap_err().to_string();
        assert!(e.contains("is a URL"), "{e}");
        assert!(init(Path::new("htp://h:1")).is_err());
        assert!(!Path::new("htp:").exists());
    }

    #[test]
    fn token_file_with_a_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = StoreSpec::Dir(t.path().into())
            .open(
                Access::ExistingOrEmpty,
                &Client {
                    token_file_given: true,
                    ..Default::default()
                },
            )
            .map(|_| ())
            .unwrap_err();
        assert!(e.to_string().contains("--token-file applies to http(s)"));
    }

    #[test]
    fn ca_file_with_a_directory_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let e = StoreSpec::Dir(t.path().into())
            .open(
                Access::ExistingOrEmpty,
                &Client {
                    ca_file: Some("ca.pem".into()),
                    ..Default::default()
                },
            )
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("--ca-file applies to https stores only"),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 0);
    }
}
