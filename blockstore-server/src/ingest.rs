//! The store's one write path and its reads, shared by the HTTP server and the embedded
//! store: verify BLAKE3(object) == id, write, make durable, then index.
//!
//! Invariant: a block is indexed only after its bytes are durable, and only bytes that
//! hash to their id are ever written under it. So after a crash at any moment every
//! indexed block is readable and correct; an unindexed file is simply rewritten by the
//! next upload of that block.

use crate::index::{Index, IndexError};
use crate::storage::BlobDir;
use bonsai_core::codec::{verify_object, MAX_OBJECT};
use bonsai_core::store::StoreStats;
use bonsai_core::BlockId;
use std::path::{Path, PathBuf};

/// Errors of the storage layer (never the client's fault).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Disk I/O failed (full disk, permissions).
    #[error("storage i/o at {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The index failed.
    #[error("index: {0}")]
    Index(#[from] IndexError),
}

/// Outcome of one batch of uploads.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct IngestOutcome {
    /// Newly stored.
    pub stored: u64,
    /// Already present.
    pub existed: u64,
    /// Refused, with the reason.
    pub rejected: Vec<Rejected>,
}

/// A block the store refused.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejected {
    /// Its claimed id.
    pub id: BlockId,
    /// Why.
    pub reason: String,
}

/// Blocks on disk plus their index.
pub struct Store {
    root: PathBuf,
    pub(crate) blobs: BlobDir,
    pub(crate) index: Index,
    /// Uploads and existence answers hold it shared; gc's sweep and check's quarantine
    /// hold it exclusively, so a block is never deleted between "present" and its
    /// confirmation, nor between an upload's write and its index row (docs/OPERATING.md).
    pub(crate) gc_lock: std::sync::RwLock<()>,
}

impl Store {
    /// Opens (creating) a store directory: `blocks/`, `tmp/`, `index.sqlite`.
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let io = |source| StorageError::Io {
            path: root.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let blobs = BlobDir::open(root).map_err(io)?;
        let index = Index::open(&root.join("index.sqlite"))?;
        Ok(Store {
            root: root.to_path_buf(),
            blobs,
            index,
            gc_lock: std::sync::RwLock::new(()),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Verifies and stores a batch. Bad blocks are reported, good ones kept.
    pub fn put_many(&self, items: &[(BlockId, &[u8])]) -> Result<IngestOutcome, StorageError> {
        let mut out = IngestOutcome::default();
        let ids: Vec<BlockId> = items.iter().map(|i| i.0).collect();
        let _shared = self.shared();
        let missing: std::collections::HashSet<BlockId> =
            self.index.missing(&ids)?.into_iter().collect();
        let present: Vec<BlockId> = ids
            .iter()
            .filter(|i| !missing.contains(i))
            .copied()
            .collect();
        self.index.confirm(&present)?;
        let mut written: Vec<(BlockId, u64)> = Vec::new();
        for (id, bytes) in items {
            if bytes.len() > MAX_OBJECT {
                out.rejected.push(Rejected {
                    id: *id,
                    reason: format!(
                        "object of {} bytes exceeds the block size limit",
                        bytes.len()
                    ),
                });
                continue;
            }
            if let Err(e) = verify_object(id, bytes) {
                out.rejected.push(Rejected {
                    id: *id,
                    reason: e.to_string(),
                });
                continue;
            }
            if !missing.contains(id) || written.iter().any(|w| w.0 == *id) {
                out.existed += 1;
                continue;
            }
            self.blobs
                .write(id, bytes)
                .map_err(|source| StorageError::Io {
                    path: self.blobs.path_of(id),
                    source,
                })?;
            written.push((*id, bytes.len() as u64));
        }
        if !written.is_empty() {
            self.blobs.sync().map_err(|source| StorageError::Io {
                path: self.root.clone(),
                source,
            })?;
            let added = self.index.insert(&written)?;
            out.stored += added;
            out.existed += written.len() as u64 - added;
        }
        Ok(out)
    }

    /// Which ids are absent.
    pub fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StorageError> {
        let _shared = self.shared();
        let absent = self.index.missing(ids)?;
        // "Present" confirms the block: gc keeps it for a grace period from now.
        let gone: std::collections::HashSet<&BlockId> = absent.iter().collect();
        let present: Vec<BlockId> = ids.iter().filter(|i| !gone.contains(i)).copied().collect();
        self.index.confirm(&present)?;
        Ok(absent)
    }

    /// A block's bytes, if indexed.
    pub fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, StorageError> {
        if self.index.size_of(id)?.is_none() {
            return Ok(None);
        }
        self.blobs
            .read(id)
            .map(Some)
            .map_err(|source| StorageError::Io {
                path: self.blobs.path_of(id),
                source,
            })
    }

    /// Registers a manifest; returns the first id that is not stored, if any.
    pub fn register(
        &self,
        name: &str,
        logical: u64,
        ids: &[BlockId],
    ) -> Result<Option<BlockId>, StorageError> {
        Ok(self.index.register(name, logical, ids)?)
    }

    /// Store-wide figures.
    pub fn stats(&self) -> Result<StoreStats, StorageError> {
        Ok(self.index.stats()?)
    }

    /// Registered images.
    pub fn images(&self) -> Result<Vec<(String, u64, u64, i64)>, StorageError> {
        Ok(self.index.images()?)
    }

    /// Path of a block file (for tools and tests that inspect the layout).
    pub fn block_path(&self, id: &BlockId) -> PathBuf {
        self.blobs.path_of(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    #[test]
    fn verifies_stores_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let good = Encoder::new().encode(&Convergence::public(), b"block one");
        let other = Encoder::new().encode(&Convergence::public(), b"block two");
        {
            let s = Store::open(dir.path()).unwrap();
            let out = s
                .put_many(&[
                    (good.id, &good.object),
                    (good.id, &other.object),
                    (good.id, &good.object),
                ])
                .unwrap();
            assert_eq!(out.stored, 1);
            assert_eq!(out.existed, 1);
            assert_eq!(out.rejected.len(), 1);
            assert_eq!(s.missing(&[good.id, other.id]).unwrap(), vec![other.id]);
            assert_eq!(
                s.register("img", 100, &[good.id, other.id]).unwrap(),
                Some(other.id)
            );
            assert_eq!(s.register("img", 100, &[good.id]).unwrap(), None);
        }
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.get(&good.id).unwrap().unwrap(), good.object);
        assert_eq!(s.get(&other.id).unwrap(), None);
        let st = s.stats().unwrap();
        assert_eq!(
            (st.blocks, st.stored_bytes, st.images, st.logical_bytes),
            (1, good.object.len() as u64, 1, 100)
        );
    }
}
