//! The embedded store: core's store traits over a store directory, in-process, no server.
//! Same layout, same index, same verification as `bonsai serve` — a directory pushed to
//! locally can later be served as is. It takes the directory's lock, so it refuses to open
//! a directory a running server holds.

use crate::backend::BackendError;
use crate::images::{Exact, NewVersion};
use crate::ingest::{StorageError, Store};
use bonsai_core::name::VersionRef;
use bonsai_core::report::{Registration, ReportOptions, StoreReport};
use bonsai_core::store::{
    AdminStore, CheckOptions, CheckReport, ErrorCode, ForgetReport, GcOptions, GcReport, ImageInfo,
    PutOutcome, ReadStore, Registered, StoreError, StoreStats, WriteStore,
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
        other => StoreError::Storage {
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
        let reg = Registration {
            name,
            logical_bytes: logical,
            zero_bytes: 0,
            ids,
            image_hash: None,
        };
        self.register_image(&reg).map(drop)
    }

    fn register_image(&self, reg: &Registration<'_>) -> Result<Registered, StoreError> {
        self.with_version(reg, |v| {
            match self.store.register_version(v).map_err(|e| self.err(e))? {
                Ok(r) => Ok(r),
                Err(id) => Err(StoreError::NotFound(id)),
            }
        })
    }

    fn register_copy(&self, reg: &Registration<'_>, version: u64) -> Result<bool, StoreError> {
        self.with_version(reg, |v| {
            match self.store.register_exact(v, version).map_err(|e| self.err(e))? {
                Exact::Created => Ok(false),
                Exact::Existed => Ok(true),
                Exact::Taken => Err(StoreError::Refused {
                    store: self.name.clone(),
                    code: ErrorCode::Conflict,
                    reason: format!(
                        "{}@{version} is another image here; a copied version is never renumbered or replaced",
                        reg.name
                    ),
                }),
                Exact::Missing(id) => Err(StoreError::NotFound(id)),
            }
        })
    }
}

impl LocalStore {
    /// Runs `f` on the version `reg` describes, once its name is checked.
    fn with_version<T>(
        &self,
        reg: &Registration<'_>,
        f: impl FnOnce(&NewVersion<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if let Some(p) = bonsai_core::name::name_problem(reg.name) {
            return Err(StoreError::BadInput {
                store: self.name.clone(),
                reason: p,
            });
        }
        let hash = reg.image_hash.map(|h| h.to_string());
        f(&NewVersion {
            name: reg.name,
            logical_bytes: reg.logical_bytes,
            ids: reg.ids,
            zero_bytes: Some(reg.zero_bytes),
            image_hash: hash.as_deref(),
            by: LOCAL,
        })
    }
}

/// Who registers through an embedded store (whoever can open the directory).
const LOCAL: &str = "local";

/// `NAME@V` of a sealed-recipe call.
fn one_version(store: &str, text: &str) -> Result<(String, u64), StoreError> {
    let bad = |reason: String| StoreError::BadInput {
        store: store.to_string(),
        reason,
    };
    let r = VersionRef::parse(text).map_err(bad)?;
    let v = r.version.ok_or_else(|| {
        bad("a sealed recipe, boot profile or manifest belongs to one version: NAME@VERSION".into())
    })?;
    Ok((r.name, v))
}

impl AdminStore for LocalStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        self.store.images().map_err(|e| self.err(e))
    }

    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        let mut report = ForgetReport::default();
        for text in names {
            let target = VersionRef::parse(text).map_err(|reason| StoreError::BadInput {
                store: self.name.clone(),
                reason,
            })?;
            let gone = self.store.forget(&target).map_err(|e| self.err(e))?;
            if gone.is_empty() {
                report.unknown.push(text.clone());
            }
            report
                .forgotten
                .extend(gone.iter().map(ToString::to_string));
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
        let (name, version) = one_version(&self.name, name)?;
        self.store
            .put_sealed_recipe(&name, version, LOCAL, sealed)
            .map_err(|e| self.err(e))
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, version) = one_version(&self.name, name)?;
        self.store
            .sealed_recipe(&name, version)
            .map_err(|e| self.err(e))
    }

    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, version) = one_version(&self.name, name)?;
        self.store.manifest(&name, version).map_err(|e| self.err(e))
    }

    fn put_profile(&self, name: &str, profile: &[u8]) -> Result<bool, StoreError> {
        let (name, version) = one_version(&self.name, name)?;
        bonsai_core::export::profile::decode(profile).map_err(|e| StoreError::BadInput {
            store: self.name.clone(),
            reason: e.to_string(),
        })?;
        self.store
            .put_profile(&name, version, profile)
            .map_err(|e| self.err(e))
    }

    fn get_profile(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let (name, version) = one_version(&self.name, name)?;
        self.store.profile(&name, version).map_err(|e| self.err(e))
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
