//! Exit codes: one per class of failure, so scripts can tell "fix your command" from
//! "the store is down" from "the data is bad" (after restic's documented codes).
//!
//! The table lives in README.md ("Exit status"); keep the two in step. A failure is
//! classified by the first typed error found walking the error chain from the outside in,
//! so a context added by the binary never hides the cause's class.

use bonsai_core::codec::{CodecError, SecretFileError, SecretFileFault};
use bonsai_core::image::ImageError;
use bonsai_core::recipe::RecipeError;
use bonsai_core::store::StoreError;
use std::io;

/// What the process exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success (also: stdout closed by the reader, as in `bonsai recipe show --json | head`).
    Ok = 0,
    /// A failure of no class below (a bug, or a store error we cannot classify).
    Other = 1,
    /// Bad arguments or refused input; nothing was changed.
    Usage = 2,
    /// The store refused the token (missing, wrong, or lacking the role).
    Auth = 3,
    /// A file, block or image that does not exist.
    NotFound = 4,
    /// Data failed its checks: a corrupt recipe, a block not matching its id, an image not
    /// matching the recipe.
    Verify = 5,
    /// The store could not be reached, or broke the protocol.
    Network = 6,
    /// Reading or writing a local file failed (permissions, disk full, device errors).
    LocalIo = 7,
}

/// A refusal the binary makes before any work: always [`Exit::Usage`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// A failure the binary itself classifies (a check that found damage, an image name the
/// store does not hold): its one-line reason and exit code.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct Failed {
    /// The exit code.
    pub exit: Exit,
    /// One line: what failed and what to do.
    pub reason: String,
}

impl Failed {
    /// A failure of class `exit`.
    pub fn new(exit: Exit, reason: impl Into<String>) -> Self {
        Failed {
            exit,
            reason: reason.into(),
        }
    }
}

/// The class of `err`.
pub fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if let Some(code) = classify_one(cause) {
            return code;
        }
    }
    Exit::Other
}

/// Whether the failure is only "the reader of stdout went away".
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    let pipe = Some(io::ErrorKind::BrokenPipe);
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>().map(io::Error::kind) == pipe
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == pipe
    })
}

fn classify_one(e: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if e.is::<Refusal>() || e.is::<crate::store::StoreSpecError>() {
        return Some(Exit::Usage);
    }
    if let Some(f) = e.downcast_ref::<Failed>() {
        return Some(f.exit);
    }
    if let Some(e) = e.downcast_ref::<bonsai_core::seal::SealError>() {
        return Some(seal_error(e));
    }
    if let Some(e) = e.downcast_ref::<bonsai_core::Error>() {
        return core_error(e);
    }
    if let Some(e) = e.downcast_ref::<StoreError>() {
        return Some(store_error(e));
    }
    if let Some(e) = e.downcast_ref::<RecipeError>() {
        return recipe_error(e);
    }
    if let Some(e) = e.downcast_ref::<ImageError>() {
        return image_error(e);
    }
    if e.is::<CodecError>() {
        return Some(Exit::Verify);
    }
    if let Some(e) = e.downcast_ref::<SecretFileError>() {
        return Some(match &e.kind {
            SecretFileFault::Io(io) => io_error(io),
            _ => Exit::Usage,
        });
    }
    e.downcast_ref::<io::Error>().map(io_error)
}

/// `None` means "look at the cause". Core errors carry their class ([`bonsai_core::Error::kind`]);
/// the variants that wrap another module's error are mapped through it.
fn core_error(e: &bonsai_core::Error) -> Option<Exit> {
    use bonsai_core::{Error as E, ErrorKind as K};
    match e {
        E::Io { source, .. } => Some(io_error(source)),
        E::Recipe { source, .. } => recipe_error(source),
        E::Store(s) => Some(store_error(s)),
        E::Noted { error, .. } => core_error(error),
        _ => Some(match e.kind() {
            K::Usage => Exit::Usage,
            K::Auth => Exit::Auth,
            K::NotFound => Exit::NotFound,
            K::Verification => Exit::Verify,
            K::Network => Exit::Network,
            K::Io => Exit::LocalIo,
        }),
    }
}

/// The store's own classification ([`StoreError::kind`]), never its message.
fn store_error(e: &StoreError) -> Exit {
    use bonsai_core::store::StoreErrorKind as K;
    match e.kind() {
        K::Network | K::Protocol => Exit::Network,
        K::Auth => Exit::Auth,
        K::NotFound => Exit::NotFound,
        K::Rejected => Exit::Verify,
        // this store does not offer the operation: the command must change
        K::Unsupported => Exit::Usage,
        K::LocalIo => Exit::LocalIo,
        K::Misaddressed => Exit::Usage,
        // the store answered with a refusal of its own (limits, full disk, busy)
        K::Refused => Exit::Other,
    }
}

/// Key files are arguments (usage); a recipe that does not open with the key given
/// is a verification failure, as a wrong key is indistinguishable from damage.
fn seal_error(e: &bonsai_core::seal::SealError) -> Exit {
    use bonsai_core::seal::SealError as S;
    match e {
        S::KeyFile { source, .. } => io_error(source),
        S::BadKey { .. } => Exit::Usage,
        S::Encrypt(_) => Exit::Other,
        S::Decrypt { .. } | S::Invalid { .. } => Exit::Verify,
    }
}

fn recipe_error(e: &RecipeError) -> Option<Exit> {
    match e {
        RecipeError::BadMagic | RecipeError::UnsupportedVersion(_) => Some(Exit::Usage),
        RecipeError::Io(io) => Some(io_error(io)),
        _ => Some(Exit::Verify),
    }
}

/// An image refused for what it is (damaged, truncated, unsupported, naming files it may
/// not open, encrypted without a key) is refused input; I/O and reader failures are
/// classified by their cause.
fn image_error(e: &ImageError) -> Option<Exit> {
    match e {
        ImageError::Io { .. } | ImageError::Reader { .. } => None,
        _ => Some(Exit::Usage),
    }
}

fn io_error(e: &io::Error) -> Exit {
    match e.kind() {
        io::ErrorKind::NotFound => Exit::NotFound,
        _ => Exit::LocalIo,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    fn class(e: impl std::error::Error + Send + Sync + 'static) -> Exit {
        classify(&Err::<(), _>(e).context("outer context").unwrap_err())
    }

    #[test]
    fn each_class_has_its_code() {
        let store = || "http://s".to_string();
        let r = || "r".to_string();
        assert_eq!(class(Refusal("x".into())), Exit::Usage);
        let unauth = StoreError::Unauthorized {
            store: store(),
            reason: r(),
        };
        assert_eq!(class(unauth), Exit::Auth);
        let gone = StoreError::Unreachable {
            store: store(),
            reason: r(),
        };
        assert_eq!(class(gone), Exit::Network);
        assert_eq!(class(RecipeError::ChecksumMismatch), Exit::Verify);
        assert_eq!(class(RecipeError::BadMagic), Exit::Usage);
        let nf = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(class(RecipeError::Io(nf)), Exit::NotFound);
        let full = io::Error::from(io::ErrorKind::StorageFull);
        let core = bonsai_core::Error::Io {
            path: "/o".into(),
            source: full,
        };
        assert_eq!(class(core), Exit::LocalIo);
        assert_eq!(class(std::fmt::Error), Exit::Other);
        let cut = ImageError::Truncated {
            path: "/d.vmdk".into(),
            detail: "data at file offset 9 lies past its end (8 bytes)".into(),
        };
        assert_eq!(class(cut), Exit::Usage);
        let unreadable = ImageError::io(std::path::Path::new("/d"), io::ErrorKind::NotFound.into());
        assert_eq!(class(unreadable), Exit::NotFound);
        let secret = |kind| SecretFileError {
            path: "/s".into(),
            kind,
        };
        assert_eq!(class(secret(SecretFileFault::Empty)), Exit::Usage);
        let gone = io::Error::from(io::ErrorKind::NotFound);
        assert_eq!(class(secret(SecretFileFault::Io(gone))), Exit::NotFound);
    }

    #[test]
    fn broken_pipe_is_recognised_under_context() {
        let e = Err::<(), _>(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("writing")
            .unwrap_err();
        assert!(is_broken_pipe(&e));
        let json = serde_json::Error::io(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&anyhow::Error::from(json)));
    }
}
