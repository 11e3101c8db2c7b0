//! The embedded store: core's `BlockStore` over a store directory, in-process, no server.
//! Same layout, same index, same verification as `bonsai serve` — a directory pushed to
//! locally can later be served as is.

use crate::ingest::{StorageError, Store};
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
}

impl bonsai_core::admin::AdminStore for LocalStore {
    fn images(&self) -> Result<Vec<bonsai_core::admin::ImageInfo>, StoreError> {
        self.store
            .image_infos()
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn forget(&self, name: &str) -> Result<bool, StoreError> {
        self.store
            .forget(name)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn gc(
        &self,
        opts: bonsai_core::admin::GcOptions,
    ) -> Result<bonsai_core::admin::GcReport, StoreError> {
        self.store
            .gc(opts)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn check(&self, read_data: bool) -> Result<bonsai_core::admin::CheckReport, StoreError> {
        self.store
            .check(read_data)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        self.store
            .put_sealed_recipe(name, sealed)
            .map_err(|e| to_store_error(&self.name, e))
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store
            .sealed_recipe(name)
            .map_err(|e| to_store_error(&self.name, e))
    }
}
