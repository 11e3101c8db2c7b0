//! `bonsai serve --data`: a store directory, or `s3://BUCKET/PREFIX` with a local index.
//!
//! For a bucket, the index lives in `--index-dir` (default: one directory per store under
//! the user's cache directory); it is only a cache, rebuilt from a listing of the bucket
//! when it is empty (first start, lost disk) or when `--rebuild-index` asks.

use crate::backend::s3::{S3Backend, S3Error, S3Location, S3Settings};
use crate::ingest::Store;
use crate::StartRefused;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Opens the store `--data` names.
pub(crate) fn open_data(
    data: &Path,
    index_dir: Option<&Path>,
    rebuild: bool,
) -> anyhow::Result<Store> {
    let arg = data.to_string_lossy();
    if !S3Location::is_s3(&arg) {
        refuse_non_store(data)?;
        let open = if rebuild {
            Store::open_rebuilding
        } else {
            Store::open
        };
        return open(data).with_context(|| format!("opening store directory {}", data.display()));
    }
    let location = S3Location::parse(&arg).map_err(S3Error::from)?;
    let settings = S3Settings::from_env().map_err(S3Error::from)?;
    let dir = match index_dir {
        Some(d) => d.to_path_buf(),
        None => default_index_dir(&location, &settings),
    };
    if rebuild {
        for f in [
            "index.sqlite",
            "index.sqlite-wal",
            "index.sqlite-shm",
            "packs.sqlite",
            "packs.sqlite-wal",
            "packs.sqlite-shm",
        ] {
            match std::fs::remove_file(dir.join(f)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", dir.join(f).display()))
                }
                _ => {}
            }
        }
    }
    let backend = S3Backend::open(&location, &settings, &dir)?;
    let store = Store::with_backend(&dir, Arc::new(backend))
        .with_context(|| format!("opening the local index in {}", dir.display()))?;
    if rebuild || store.index().is_empty()? {
        rebuild_logged(&store)?;
    }
    Ok(store)
}

/// A `--data` directory must exist and be a store, or be empty: a typo never becomes a
/// new store (as the client refuses it; `bonsai init DIR` makes one).
fn refuse_non_store(data: &Path) -> Result<(), StartRefused> {
    let shown = data.display();
    let refuse = |why: String| Err(StartRefused(why));
    match std::fs::metadata(data) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return refuse(format!(
                "store directory {shown} does not exist; create it with `bonsai init {shown}` \
                 (a mistyped --data never becomes a new, empty store)"
            ))
        }
        Err(e) => return refuse(format!("store directory {shown}: {e}")),
        Ok(m) if !m.is_dir() => return refuse(format!("--data {shown} is not a directory")),
        Ok(_) => {}
    }
    let layout = data.join("index.sqlite").is_file()
        || (data.join("blocks").is_dir() && data.join("manifests").is_dir());
    let empty = match std::fs::read_dir(data) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => return refuse(format!("reading store directory {shown}: {e}")),
    };
    if !(layout || empty) {
        return refuse(format!(
            "directory {shown} is not a bonsai store (no index.sqlite) and not empty; give \
             the store's directory, or make a new one with `bonsai init DIR`"
        ));
    }
    Ok(())
}

fn rebuild_logged(store: &Store) -> anyhow::Result<()> {
    crate::recover::rebuilt(store).context("rebuilding the index")
}

/// One index directory per store (bucket, prefix and endpoint) under the cache directory.
pub(crate) fn default_index_dir(location: &S3Location, settings: &S3Settings) -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    let what = format!("{location} {:?}", settings.endpoint);
    let tag = &blake3::hash(what.as_bytes()).to_hex()[..16];
    base.join("bonsai")
        .join(format!("s3-index-{}-{tag}", location.bucket))
}
