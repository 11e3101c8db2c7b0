//! The store's files are the truth; the index is a cache of them. This module opens a
//! directory store's index so that it is never served empty or damaged: an index that is
//! missing while the directory holds blocks or manifests (deleted, lost with a disk) is
//! rebuilt from them, and one SQLite cannot read (damaged) is moved aside as
//! `index.sqlite.damaged.TIME` and rebuilt. It also upgrades manifests written before
//! versions existed.

use crate::backend::{Backend, BackendError};
use crate::ingest::{StorageError, Store};
use crate::rebuild::rebuild_index;
use bonsai_core::store::manifest;
use std::path::Path;
use std::sync::Arc;

const INDEX_FILES: [&str; 3] = ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"];

/// Opens the index of a locked directory store, rebuilding it when it is missing or
/// damaged (with a warning in the log), or always with `force`.
pub(crate) fn open_index(
    root: &Path,
    backend: Arc<dyn Backend>,
    force: bool,
) -> Result<Store, StorageError> {
    let path = root.join("index.sqlite");
    let existed = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
    if force {
        move_aside(root, "replaced")?;
    }
    let store = match Store::with_backend(root, backend.clone()) {
        Ok(s) => s,
        Err(StorageError::Index(e)) if existed && is_damaged(&e) => {
            tracing::warn!(cause = %e, "the store's index is damaged; rebuilding it from the store's files");
            move_aside(root, "damaged")?;
            let s = Store::with_backend(root, backend)?;
            rebuilt(&s)?;
            return Ok(s);
        }
        Err(e) => return Err(e),
    };
    if force || (!existed && holds_data(backend.as_ref())?) {
        if !force {
            tracing::warn!("the store's index is missing; rebuilding it from the store's files");
        }
        rebuilt(&store)?;
    }
    Ok(store)
}

/// Rebuilds `store`'s index from its backend, with one log line of what was found.
pub(crate) fn rebuilt(store: &Store) -> Result<(), StorageError> {
    let r = rebuild_index(store)?;
    tracing::info!(
        blocks = r.blocks,
        images = r.images,
        skipped_images = r.skipped_images,
        seconds = r.seconds,
        "index rebuilt from the store's files"
    );
    Ok(())
}

/// SQLite's verdict that the file is not a readable database.
fn is_damaged(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if matches!(f.code, C::NotADatabase | C::DatabaseCorrupt))
}

/// Renames the index files to `index.sqlite.WHY.TIME…` (kept for inspection).
fn move_aside(root: &Path, why: &str) -> Result<(), StorageError> {
    let stamp = crate::index::now();
    for f in INDEX_FILES {
        let from = root.join(f);
        let to = root.join(format!("{f}.{why}.{stamp}"));
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(BackendError::io(from.display(), e).into())
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether the backend holds any manifest or block object.
fn holds_data(backend: &dyn Backend) -> Result<bool, StorageError> {
    if !backend.list_manifests()?.is_empty() {
        return Ok(true);
    }
    let mut any = false;
    let stop = || BackendError::Refused {
        what: "listing".into(),
        reason: "stopped at the first block".into(),
    };
    match backend.list(&mut |_, _| {
        any = true;
        Err(stop())
    }) {
        Err(_) if any => Ok(true),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(any),
    }
}

/// Whether a manifest key is a version's (`HASH.VERSION`) rather than a legacy name.
fn is_version_key(key: &str) -> bool {
    key.split_once('.').is_some_and(|(h, v)| {
        h.len() == 40
            && h.bytes().all(|b| b.is_ascii_hexdigit())
            && !v.is_empty()
            && v.bytes().all(|b| b.is_ascii_digit())
    })
}

impl Store {
    /// Rewrites each manifest stored under a bare image name (before versions) as version
    /// 1 of that name; only legacy keys are read, so this costs nothing once done.
    pub(crate) fn upgrade_legacy_manifests(&self) -> Result<(), StorageError> {
        for key in self.backend().list_manifests()? {
            if is_version_key(&key) {
                continue;
            }
            let Some(bytes) = self.backend().get_manifest(&key)? else {
                continue;
            };
            let Some((logical, ids)) = manifest::parse_legacy(&bytes) else {
                tracing::warn!(key = %key, "unreadable manifest left as it is");
                continue;
            };
            if let Some(problem) = bonsai_core::name::name_problem(&key) {
                tracing::warn!(name = %key, %problem, "manifest of an image whose name is no longer legal left as it is");
                continue;
            }
            let header = crate::versions::header_now(&key, 1, logical, "legacy");
            let new = manifest::key(&key, 1);
            self.backend()
                .put_manifest(&new, &manifest::encode(&header, &ids))?;
            self.backend().delete_manifest(&key)?;
            tracing::info!(image = %key, "manifest upgraded to version 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    fn store_with_an_image(dir: &Path) -> Vec<bonsai_core::store::ImageInfo> {
        let s = Store::open(dir).unwrap();
        let a = Encoder::new().encode(&Convergence::public(), b"block a");
        s.put_many(&[(a.id, &a.object)]).unwrap();
        s.register("team/vm", 42, &[a.id]).unwrap();
        s.register("team/vm", 42, &[a.id]).unwrap();
        s.image_infos().unwrap()
    }

    #[test]
    fn a_deleted_index_is_rebuilt_never_served_empty() {
        let dir = tempfile::tempdir().unwrap();
        let before = store_with_an_image(dir.path());
        for f in INDEX_FILES {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.image_infos().unwrap(), before);
        assert_eq!(s.stats().unwrap().blocks, 1);
    }

    #[test]
    fn a_damaged_index_is_moved_aside_and_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let before = store_with_an_image(dir.path());
        for f in INDEX_FILES {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        std::fs::write(dir.path().join("index.sqlite"), vec![0x5a; 8192]).unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.image_infos().unwrap(), before);
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                let n = e.as_ref().unwrap().file_name();
                n.to_string_lossy().starts_with("index.sqlite.damaged.")
            })
            .count();
        assert_eq!(aside, 1);
    }

    #[test]
    fn legacy_manifests_become_version_one() {
        let dir = tempfile::tempdir().unwrap();
        let a = Encoder::new().encode(&Convergence::public(), b"legacy block");
        {
            let s = Store::open(dir.path()).unwrap();
            s.put_many(&[(a.id, &a.object)]).unwrap();
            let mut legacy = 4096u64.to_le_bytes().to_vec();
            legacy.extend_from_slice(a.id.as_bytes());
            s.backend().put_manifest("old vm", &legacy).unwrap();
        }
        for f in INDEX_FILES {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let s = Store::open(dir.path()).unwrap();
        let infos = s.image_infos().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!((infos[0].name.as_str(), infos[0].version), ("old vm", 1));
        assert!(is_version_key(&s.backend().list_manifests().unwrap()[0]));
    }
}
