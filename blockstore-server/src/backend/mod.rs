//! Where block objects (and image manifests) live: the storage-backend trait, and the
//! directory backend behind it. Ingest and the API only ever see [`Backend`], so an
//! object-storage backend plugs in without touching either.
//!
//! Contract for every backend:
//! - bytes reach a backend only after ingest verified BLAKE3(object) == id, so writing the
//!   same id twice always writes the same bytes: a racing duplicate write is harmless;
//! - a block is durable once [`Backend::flush`] returned (a backend whose puts are durable
//!   on return, like S3, keeps the no-op default); only then is it indexed;
//! - the backend is the truth, the SQLite index a cache: everything the index holds can be
//!   rebuilt from [`Backend::list`] and [`Backend::list_manifests`]. A shared backend
//!   (several servers over one bucket) says so with [`Backend::is_shared`], and an index
//!   miss is then confirmed with [`Backend::stat`] before a block is called absent.

mod dir;
pub(crate) mod s3;

pub use dir::DirBackend;

use bonsai_core::BlockId;

/// Why a backend call failed (never the client's fault).
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Local or remote I/O failed; `what` names the file or object.
    #[error("{what}: {source}")]
    Io {
        /// The file, object key or bucket.
        what: String,
        /// Cause; `ErrorKind::StorageFull` is reported to clients as a full store.
        #[source]
        source: std::io::Error,
    },
    /// An operation that needs what another holds (a gc run through another server):
    /// nothing changed; try again later. Reported as a conflict.
    #[error("{0}")]
    Busy(String),
    /// The backend answered with a refusal (object store error codes, bad credentials).
    #[error("{what}: {reason}")]
    Refused {
        /// The object key or bucket.
        what: String,
        /// The backend's reason.
        reason: String,
    },
}

impl BackendError {
    /// An I/O error about `what`.
    pub fn io(what: impl std::fmt::Display, source: std::io::Error) -> Self {
        BackendError::Io {
            what: what.to_string(),
            source,
        }
    }

    /// Whether the failure is a full disk or quota (reported as `storage_full`).
    pub fn is_full(&self) -> bool {
        matches!(self, BackendError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::StorageFull
                || source.raw_os_error() == Some(libc::EDQUOT))
    }
}

/// What [`Backend::put_if_absent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// The object was written (durable after the next [`Backend::flush`]).
    Written,
    /// An object under this id was already there; nothing was written.
    Present,
}

/// A place for verified block objects and image manifests.
pub trait Backend: Send + Sync {
    /// Where the backend keeps its data, for logs (a path or `s3://bucket/prefix`).
    fn describe(&self) -> String;
    /// The local directory holding the data, for disk figures; `None` for a bucket.
    fn local_root(&self) -> Option<&std::path::Path> {
        None
    }
    /// Stores a verified object unless one is already there under `id`.
    fn put_if_absent(&self, id: &BlockId, bytes: &[u8]) -> Result<Put, BackendError>;
    /// Makes every put so far durable (a group commit for a whole batch).
    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// [`Backend::put_if_absent`] for a batch. A backend whose every call is a network
    /// round trip (S3) runs them concurrently; the default does them one by one.
    fn put_many_if_absent(&self, items: &[(BlockId, &[u8])]) -> Result<Vec<Put>, BackendError> {
        items
            .iter()
            .map(|(id, bytes)| self.put_if_absent(id, bytes))
            .collect()
    }
    /// Writes a verified object over whatever is stored under `id`: for an object that
    /// is there but holds wrong bytes (planted in a shared bucket, or damaged). The
    /// default is [`Backend::put_if_absent`], right for backends that always write.
    fn overwrite(&self, id: &BlockId, bytes: &[u8]) -> Result<(), BackendError> {
        self.put_if_absent(id, bytes).map(drop)
    }
    /// An object's bytes, `None` if absent.
    fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, BackendError>;
    /// [`Backend::get`] for a batch, in order (concurrent on S3).
    fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        ids.iter().map(|id| self.get(id)).collect()
    }
    /// An object's size, `None` if absent.
    fn stat(&self, id: &BlockId) -> Result<Option<u64>, BackendError>;
    /// [`Backend::stat`] for a batch, in order (concurrent on S3).
    fn stat_many(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, BackendError> {
        ids.iter().map(|id| self.stat(id)).collect()
    }
    /// Removes an object; `false` if it was not there.
    fn delete(&self, id: &BlockId) -> Result<bool, BackendError>;
    /// Calls `each(id, size)` for every object, in no particular order (index rebuild,
    /// gc, check). Stops at the first error `each` returns.
    fn list(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError>;
    /// Stores a manifest under `key` (`manifest.rs`) unless one is there: versions are
    /// never replaced, so this is create-only and says [`Put::Present`] when the key is
    /// taken. Durable on return.
    fn put_manifest(&self, key: &str, manifest: &[u8]) -> Result<Put, BackendError>;
    /// The manifest under `key`, `None` if absent.
    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Removes the manifest under `key`; `false` if it was not there.
    fn delete_manifest(&self, name: &str) -> Result<bool, BackendError>;
    /// Keys of every stored manifest.
    fn list_manifests(&self) -> Result<Vec<String>, BackendError>;
    /// Stores the sealed recipe of the version `key` names, unless one is there
    /// (create-only, like manifests): opaque bytes the client encrypted and signed
    /// (docs/OPERATING.md). Kept beside the manifests, so it lives as long as the data
    /// does, not only as long as one server's index. Durable on return.
    fn put_sealed_recipe(&self, key: &str, sealed: &[u8]) -> Result<Put, BackendError>;
    /// The sealed recipe under `key`, `None` if none is kept.
    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Removes the sealed recipe under `key`; `false` if none was kept.
    fn delete_sealed_recipe(&self, name: &str) -> Result<bool, BackendError>;
    /// Keys of every sealed recipe.
    fn list_sealed_recipes(&self) -> Result<Vec<String>, BackendError>;
    /// Stores the boot profile of the version `key` names unless one is there
    /// (create-only: the first boot recorded is kept). Durable on return.
    fn put_profile(&self, key: &str, profile: &[u8]) -> Result<Put, BackendError>;
    /// The boot profile under `key`, `None` if none is kept.
    fn get_profile(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Removes the boot profile under `key`; `false` if none was kept.
    fn delete_profile(&self, key: &str) -> Result<bool, BackendError>;
    /// Learns, now, what other servers stored since the last look. [`Backend::stat_many`]
    /// on a shared backend may answer from a view up to a moment old (an existence answer
    /// "missing" only costs an upload).
    fn refresh(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// [`Backend::stat_many`] from a view that is fresh now wherever it lacks an id: for
    /// downloads and registrations, where "missing" is a refusal.
    fn stat_many_fresh(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, BackendError> {
        self.stat_many(ids)
    }
    /// An object store's cost figures (objects, bytes, requests); `None` elsewhere.
    fn object_store_stats(
        &self,
    ) -> Result<Option<bonsai_core::store::ObjectStoreStats>, BackendError> {
        Ok(None)
    }
    /// On a backend several servers share, how they agree on gc; `None` elsewhere.
    fn shared_gc(&self) -> Option<&dyn SharedGc> {
        None
    }
    /// Whether other servers may write to the same backend (then the local index may lag).
    fn is_shared(&self) -> bool {
        false
    }
}

/// gc on a backend several servers share (`backend/s3/sweep.rs`, docs/OPERATING.md "gc on
/// a bucket"): what every server does so that a sweep through any one of them never
/// deletes a block another's client was told about or a version registered meanwhile.
pub trait SharedGc: Send + Sync {
    /// Before "present" is answered for `ids`: records, while a gc run is marked, that a
    /// client relies on them; returns those that must be answered "missing" instead (a
    /// sweep in progress may delete them).
    fn honour_present(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, BackendError>;
    /// After the manifest of a version naming `ids` is durable: the first block a sweep
    /// may delete or that is gone, which refuses the registration.
    fn settle_registration(&self, ids: &[BlockId]) -> Result<Option<BlockId>, BackendError>;
    /// Runs gc: marks, or sweeps marks at least `opts.grace` old.
    fn collect(
        &self,
        opts: &bonsai_core::store::GcOptions,
    ) -> Result<bonsai_core::store::GcReport, BackendError>;
}
