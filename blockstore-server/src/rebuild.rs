//! Refills a server's local index from its backend (the truth): every block object, then
//! every manifest. On S3 that is one LIST request per 1 000 blocks (the 256 shards listed
//! 16 at a time) plus one GET per image.
//!
//! Run at start when a shared backend's index is empty (a new server, a lost disk) or on
//! `--rebuild-index`. A manifest that is damaged, or names a block the backend no longer
//! holds, is skipped with a warning: the store never promises an image it cannot serve.

use crate::backend::BackendError;
use crate::ingest::{StorageError, Store};
use bonsai_core::store::manifest::{self, VersionHeader};
use bonsai_core::BlockId;
use std::time::Instant;

/// What a rebuild found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RebuildReport {
    /// Block objects indexed.
    pub blocks: u64,
    /// Manifests indexed.
    pub images: u64,
    /// Manifests skipped (damaged, or naming an absent block).
    pub skipped_images: u64,
    /// Time taken.
    pub seconds: f64,
}

/// Rows handed to the index per transaction.
const BATCH: usize = 4096;

/// Lists `store`'s backend into its index (rows already there are kept).
pub fn rebuild_index(store: &Store) -> Result<RebuildReport, StorageError> {
    let t = Instant::now();
    let (backend, index) = (store.backend(), store.index());
    let mut report = RebuildReport::default();
    let mut rows: Vec<(BlockId, u64)> = Vec::with_capacity(BATCH);
    let mut index_error = None;
    backend
        .list(&mut |id, size| {
            rows.push((id, size));
            report.blocks += 1;
            if rows.len() == BATCH {
                if let Err(e) = index_rows(store, &rows) {
                    index_error = Some(e);
                    return Err(BackendError::Refused {
                        what: "index".into(),
                        reason: "insert failed".into(),
                    });
                }
                rows.clear();
            }
            Ok(())
        })
        .map_err(|e| match index_error.take() {
            Some(ix) => StorageError::Index(ix),
            None => StorageError::Backend(e),
        })?;
    index_rows(store, &rows)?;
    for key in backend.list_manifests()? {
        let Some(bytes) = backend.get_manifest(&key)? else {
            continue; // forgotten while we listed
        };
        let Some((header, ids)) = version_of(&key, &bytes, index)? else {
            tracing::warn!(key = %key, "damaged manifest in the backend; skipped");
            report.skipped_images += 1;
            continue;
        };
        if !index
            .versions_of(&header.name, Some(header.version))?
            .is_empty()
        {
            report.images += 1; // already indexed (a rebuild over a live index)
            continue;
        }
        match index.register_version(&header, &ids)? {
            Ok(_) => report.images += 1,
            Err(id) => {
                tracing::warn!(image = %header.name, version = header.version, block = %id,
                    "manifest names an absent block; skipped");
                report.skipped_images += 1;
            }
        }
    }
    report.seconds = t.elapsed().as_secs_f64();
    Ok(report)
}

/// Indexes listed objects; on a shared bucket they are unverified until read (trust.rs).
fn index_rows(store: &Store, rows: &[(BlockId, u64)]) -> Result<(), crate::index::IndexError> {
    store.index().insert(rows)?;
    if store.backend().is_shared() {
        let ids: Vec<BlockId> = rows.iter().map(|r| r.0).collect();
        store.index().mark_unverified(&ids)?;
    }
    Ok(())
}

/// The version a stored manifest describes: a version-2 manifest as it is, a legacy one
/// (a bare name as key) as the next version of that name.
fn version_of(
    key: &str,
    bytes: &[u8],
    index: &crate::index::Index,
) -> Result<Option<(VersionHeader, Vec<BlockId>)>, StorageError> {
    if let Some(v) = manifest::parse(key, bytes) {
        return Ok(Some(v));
    }
    let Some((logical, ids)) = manifest::parse_legacy(bytes) else {
        return Ok(None);
    };
    if bonsai_core::name::name_problem(key).is_some() {
        return Ok(None);
    }
    let version = index.next_version(key)?;
    Ok(Some((
        crate::versions::header_now(key, version, logical, "legacy"),
        ids,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    #[test]
    fn a_lost_index_comes_back_from_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let a = Encoder::new().encode(&Convergence::public(), b"block a");
        let b = Encoder::new().encode(&Convergence::public(), b"block b");
        let before = {
            let s = Store::open(dir.path()).unwrap();
            s.put_many(&[(a.id, &a.object), (b.id, &b.object)]).unwrap();
            assert_eq!(s.register("img", 42, &[a.id, b.id]).unwrap(), None);
            s.stats().unwrap()
        };
        for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.stats().unwrap().blocks, 2, "rebuilt when opened");
        let r = rebuild_index(&s).unwrap();
        assert_eq!(
            (r.blocks, r.images, r.skipped_images),
            (2, 1, 0),
            "idempotent"
        );
        let after = s.stats().unwrap();
        assert_eq!(
            (
                after.blocks,
                after.stored_bytes,
                after.images,
                after.logical_bytes
            ),
            (
                before.blocks,
                before.stored_bytes,
                before.images,
                before.logical_bytes
            )
        );
    }
}
