//! The object-storage backend: a store whose blocks and manifests live in an S3-compatible
//! bucket (AWS S3, Ceph RGW, MinIO, Garage, SeaweedFS), so that several stateless servers
//! can share one store.
//!
//! # Brief overview
//! - [`location`] parses `--data s3://BUCKET/PREFIX`;
//! - [`settings`] reads endpoint, region and keys from the standard AWS variables or file;
//! - [`layout`] names the objects;
//! - [`bucket`] moves objects (create-if-absent puts, parallel heads and gets, listings);
//! - [`S3Backend`] is the [`Backend`] over a bucket: shared, so the store confirms every
//!   index miss with the bucket (one HEAD per id, in parallel) before calling a block
//!   absent, and a block stored through another server a moment ago is never missed.
//!
//! The bucket is the truth; each server's SQLite index is a cache of it, rebuilt from a
//! listing when empty (`crate::rebuild`).

// the crate root re-exports what the server's users need from here
pub(crate) mod bucket;
pub(crate) mod layout;
#[allow(unreachable_pub)]
pub mod location;
#[allow(unreachable_pub)]
pub mod settings;

pub use bucket::{Bucket, Created};
#[allow(unreachable_pub)]
pub use location::{LocationError, S3Location};
#[allow(unreachable_pub)]
pub use settings::{S3Settings, SettingsError};

use super::{Backend, BackendError, Put};
use bonsai_core::BlockId;

/// Blocks and manifests in one bucket under one prefix.
pub struct S3Backend {
    bucket: Bucket,
}

impl S3Backend {
    /// Connects; wrong keys, a missing bucket or an unreachable endpoint fail here.
    pub fn open(location: &S3Location, settings: &S3Settings) -> Result<Self, S3Error> {
        Ok(S3Backend {
            bucket: Bucket::open(location, settings)?,
        })
    }

    /// The bucket, for tools and tests.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}

impl From<S3Error> for BackendError {
    fn from(e: S3Error) -> Self {
        match e {
            S3Error::Request {
                store,
                op,
                key,
                reason,
            } => BackendError::Refused {
                what: format!("{store}: {op} {key}"),
                reason,
            },
            other => BackendError::Refused {
                what: "object store".into(),
                reason: other.to_string(),
            },
        }
    }
}

fn put_of(c: Created) -> Put {
    match c {
        Created::New => Put::Written,
        Created::Existed => Put::Present,
    }
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        self.bucket.location().to_string()
    }

    fn put_if_absent(&self, id: &BlockId, bytes: &[u8]) -> Result<Put, BackendError> {
        Ok(put_of(self.bucket.put_blocks(&[(*id, bytes)])?[0]))
    }

    fn put_many_if_absent(&self, items: &[(BlockId, &[u8])]) -> Result<Vec<Put>, BackendError> {
        Ok(self
            .bucket
            .put_blocks(items)?
            .into_iter()
            .map(put_of)
            .collect())
    }

    fn overwrite(&self, id: &BlockId, bytes: &[u8]) -> Result<(), BackendError> {
        Ok(self.bucket.replace_block(id, bytes)?)
    }

    fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self
            .bucket
            .get_blocks(std::slice::from_ref(id))?
            .pop()
            .flatten())
    }

    fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        Ok(self.bucket.get_blocks(ids)?)
    }

    fn stat(&self, id: &BlockId) -> Result<Option<u64>, BackendError> {
        Ok(self
            .bucket
            .stat_blocks(std::slice::from_ref(id))?
            .pop()
            .flatten())
    }

    fn stat_many(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, BackendError> {
        Ok(self.bucket.stat_blocks(ids)?)
    }

    fn delete(&self, id: &BlockId) -> Result<bool, BackendError> {
        // S3 answers a DELETE alike whether or not the key existed: ask first
        let existed = self.stat(id)?.is_some();
        self.bucket.delete_blocks(std::slice::from_ref(id))?;
        Ok(existed)
    }

    fn list(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.bucket
            .list_blocks(|blocks| blocks.into_iter().try_for_each(|(id, size)| each(id, size)))?;
        Ok(())
    }

    fn put_manifest(&self, key: &str, manifest: &[u8]) -> Result<Put, BackendError> {
        Ok(put_of(self.bucket.put_manifest(key, manifest.to_vec())?))
    }

    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.bucket.get_manifest(name)?)
    }

    fn delete_manifest(&self, name: &str) -> Result<bool, BackendError> {
        let existed = self.bucket.get_manifest(name)?.is_some();
        self.bucket.delete_manifest(name)?;
        Ok(existed)
    }

    fn list_manifests(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.bucket.list_manifests()?)
    }

    fn put_sealed_recipe(&self, key: &str, sealed: &[u8]) -> Result<Put, BackendError> {
        Ok(put_of(self.bucket.put_recipe(key, sealed.to_vec())?))
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.bucket.get_recipe(name)?)
    }

    fn delete_sealed_recipe(&self, name: &str) -> Result<bool, BackendError> {
        let existed = self.bucket.get_recipe(name)?.is_some();
        self.bucket.delete_recipe(name)?;
        Ok(existed)
    }

    fn list_sealed_recipes(&self) -> Result<Vec<String>, BackendError> {
        Ok(self.bucket.list_recipes()?)
    }

    fn put_profile(&self, key: &str, profile: &[u8]) -> Result<Put, BackendError> {
        Ok(put_of(self.bucket.put_profile(key, profile.to_vec())?))
    }

    fn get_profile(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.bucket.get_profile(key)?)
    }

    fn delete_profile(&self, key: &str) -> Result<bool, BackendError> {
        let existed = self.bucket.get_profile(key)?.is_some();
        self.bucket.delete_profile(key)?;
        Ok(existed)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// Failures of the object-storage backend, each one line naming the store and what to do.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// `--data s3://…` is malformed.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Endpoint or credentials cannot be read.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The client could not be built.
    #[error("{store}: cannot set up the s3 client: {reason}")]
    Setup {
        /// `s3://bucket/prefix`.
        store: String,
        /// Cause.
        reason: String,
    },
    /// The service refused the credentials.
    #[error("{store}: access denied by {endpoint}; check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the credentials file)")]
    Denied {
        /// `s3://bucket/prefix`.
        store: String,
        /// The service.
        endpoint: String,
    },
    /// The bucket does not exist.
    #[error("{store}: bucket {bucket} does not exist at {endpoint}; create it first")]
    NoBucket {
        /// `s3://bucket/prefix`.
        store: String,
        /// The bucket.
        bucket: String,
        /// The service.
        endpoint: String,
    },
    /// The service cannot be reached at start.
    #[error("{store}: cannot reach {endpoint} (check AWS_ENDPOINT_URL and that the service runs): {reason}")]
    Unreachable {
        /// `s3://bucket/prefix`.
        store: String,
        /// The service.
        endpoint: String,
        /// Cause.
        reason: String,
    },
    /// One request failed after retries.
    #[error("{store}: {op} {key} failed: {reason}")]
    Request {
        /// `s3://bucket/prefix`.
        store: String,
        /// `put`, `get`, `head`, `list`, `delete`.
        op: &'static str,
        /// The object key or listed prefix.
        key: String,
        /// Cause.
        reason: String,
    },
}
