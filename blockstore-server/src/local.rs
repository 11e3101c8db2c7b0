//! The embedded store: core's `BlockStore` over a store directory, in-process, no server.
//! Same layout, same index, same verification as `bonsai serve` — a directory pushed to
//! locally can later be served as is.

use crate::ingest::{StorageError, Store};
use bonsai_core::report::{Registration, ReportOptions, StoreReport};
use bonsai_core::store::{BlockStore, PutOutcome, StoreError, StoreStats};
use bonsai_core::BlockId;
use std::path::Path;

/// A store directory used directly.
pub struct LocalStore {
    store: Store,
    name: String,
}

impl LocalStore {
    /// Opens (creating) the store directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let name = dir.display().to_string();
        let store = Store::open(dir).map_err(|e| to_store_error(&name, e))?;
        Ok(LocalStore { store, name })
    }

    /// The underlying store, for tools that inspect it.
    pub fn inner(&self) -> &Store {
        &self.store
    }
}

fn to_store_error(name: &str, e: StorageError) -> StoreError {
    match e {
        StorageError::Io { source, path } => StoreError::Io {
            store: format!("{name} ({})", path.display()),
            source,
        },
        StorageError::Index(e) => StoreError::Other {
            store: name.to_string(),
            reason: format!("index: {e}"),
        },
    }
}

impl BlockStore for LocalStore {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        self.store
            .missing(ids)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        let out = self
            .store
            .put_many(blocks)
            .map_err(|e| to_store_error(&self.name, e))?;
        if let Some(r) = out.rejected.first() {
            return Err(StoreError::Rejected {
                id: r.id,
                reason: r.reason.clone(),
            });
        }
        Ok(PutOutcome {
            stored: out.stored,
            existed: out.existed,
        })
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        ids.iter()
            .map(|id| {
                self.store
                    .get(id)
                    .map_err(|e| to_store_error(&self.name, e))?
                    .ok_or(StoreError::NotFound(*id))
            })
            .collect()
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        match self
            .store
            .register(name, logical, ids)
            .map_err(|e| to_store_error(&self.name, e))?
        {
            Some(id) => Err(StoreError::NotFound(id)),
            None => Ok(()),
        }
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.store
            .stats()
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn register_image(&self, reg: &Registration<'_>) -> Result<(), StoreError> {
        self.register(reg.name, reg.logical_bytes, reg.ids)?;
        self.store
            .record_figures(reg.name, reg.zero_bytes)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn report(&self, opts: &ReportOptions) -> Result<StoreReport, StoreError> {
        self.store
            .report(opts)
            .map_err(|e| to_store_error(&self.name, e))
    }
}
