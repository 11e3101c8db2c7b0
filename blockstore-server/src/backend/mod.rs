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
    /// Stores a verified object unless one is already there under `id`.
    fn put_if_absent(&self, id: &BlockId, bytes: &[u8]) -> Result<Put, BackendError>;
    /// Makes every put so far durable (a group commit for a whole batch).
    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }
    /// An object's bytes, `None` if absent.
    fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, BackendError>;
    /// An object's size, `None` if absent.
    fn stat(&self, id: &BlockId) -> Result<Option<u64>, BackendError>;
    /// Removes an object; `false` if it was not there.
    fn delete(&self, id: &BlockId) -> Result<bool, BackendError>;
    /// Calls `each(id, size)` for every object, in no particular order (index rebuild,
    /// gc, check). Stops at the first error `each` returns.
    fn list(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError>;
    /// Stores (replaces) the manifest of image `name`: the register body, `u64 LE logical
    /// size ‖ ids` (docs/API.md). Durable on return.
    fn put_manifest(&self, name: &str, manifest: &[u8]) -> Result<(), BackendError>;
    /// The manifest of image `name`, `None` if absent.
    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Removes the manifest of image `name`; `false` if it was not there.
    fn delete_manifest(&self, name: &str) -> Result<bool, BackendError>;
    /// Names of every stored manifest.
    fn list_manifests(&self) -> Result<Vec<String>, BackendError>;
    /// Whether other servers may write to the same backend (then the local index may lag).
    fn is_shared(&self) -> bool {
        false
    }
}
