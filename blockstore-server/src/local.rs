//! The embedded store: core's store traits over a store directory, in-process, no server.
//! Same layout, same index, same verification as `bonsai serve` — a directory pushed to
//! locally can later be served as is. It takes the directory's lock, so it refuses to open
//! a directory a running server holds.

use crate::backend::BackendError;
use crate::ingest::{StorageError, Store};
use bonsai_core::report::{Registration, ReportOptions, StoreReport};
use bonsai_core::store::{
    AdminStore, CheckOptions, CheckReport, ForgetReport, GcOptions, GcReport, ImageInfo,
    PutOutcome, ReadStore, StoreError, StoreStats, WriteStore,
};
use bonsai_core::BlockId;
use std::path::Path;

/// A store directory used directly.
pub struct LocalStore {
    store: Store,
    name: String,
}

impl LocalStore {
    /// Opens (creating and locking) the store directory.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let name = dir.display().to_string();
        let store = Store::open(dir).map_err(|e| to_store_error(&name, e))?;
        Ok(LocalStore { store, name })
    }

    /// The underlying store, for tools that inspect it.
    pub fn inner(&self) -> &Store {
        &self.store
    }

    fn err(&self, e: StorageError) -> StoreError {
        to_store_error(&self.name, e)
    }
}

fn to_store_error(name: &str, e: StorageError) -> StoreError {
    match e {
        StorageError::Backend(BackendError::Io { what, source }) => StoreError::Io {
            store: format!("{name} ({what})"),
            source,
        },
        other => StoreError::Other {
            store: name.to_string(),
            reason: match other {
                StorageError::Backend(BackendError::Refused { reason, .. }) => reason,
                e => e.to_string(),
            },
        },
    }
}

impl ReadStore for LocalStore {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        self.store.missing(ids).map_err(|e| self.err(e))
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        ids.iter()
            .map(|id| {
                self.store
                    .get(id)
                    .map_err(|e| self.err(e))?
                    .ok_or(StoreError::NotFound(*id))
            })
            .collect()
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        self.store.stats().map_err(|e| self.err(e))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }

    fn report(&self, opts: &ReportOptions) -> Result<StoreReport, StoreError> {
        self.store.report(opts).map_err(|e| self.err(e))
    }
}

impl WriteStore for LocalStore {
    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        let out = self.store.put_many(blocks).map_err(|e| self.err(e))?;
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

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        match self
            .store
            .register(name, logical, ids)
            .map_err(|e| self.err(e))?
        {
            Some(id) => Err(StoreError::NotFound(id)),
            None => Ok(()),
        }
    }

    fn register_image(&self, reg: &Registration<'_>) -> Result<(), StoreError> {
        self.register(reg.name, reg.logical_bytes, reg.ids)?;
        self.store
            .record_figures(reg.name, reg.zero_bytes)
            .map_err(|e| self.err(e))
    }
}

impl AdminStore for LocalStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        self.store.images().map_err(|e| self.err(e))
    }

    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        let mut report = ForgetReport::default();
        for name in names {
            if self.store.forget(name).map_err(|e| self.err(e))? {
                report.forgotten.push(name.clone());
            } else {
                report.unknown.push(name.clone());
            }
        }
        Ok(report)
    }

    fn gc(&self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        self.store.gc(opts).map_err(|e| self.err(e))
    }

    fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        self.store.check(opts).map_err(|e| self.err(e))
    }

    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        self.store
            .put_sealed_recipe(name, sealed)
            .map_err(|e| self.err(e))
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.sealed_recipe(name).map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        bonsai_core::store::conformance::run_all(&LocalStore::open(dir.path()).unwrap());
    }

    #[test]
    fn a_second_opener_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let _first = LocalStore::open(dir.path()).unwrap();
        let err = LocalStore::open(dir.path())
            .err()
            .expect("locked")
            .to_string();
        assert!(err.contains("in use by another process"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }
}
