//! The object-storage backend: a store whose blocks and manifests live in an S3-compatible
//! bucket (AWS S3, Ceph RGW, MinIO, Garage, SeaweedFS), so that several stateless servers
//! can share one store.
//!
//! # Brief overview
//! - [`location`] parses `--data s3://BUCKET/PREFIX`;
//! - [`settings`] reads endpoint, region and keys from the standard AWS variables or file;
//! - [`layout`] names the objects and encodes manifests;
//! - [`bucket`] moves objects (create-if-absent puts, parallel heads and gets, listings);
//! - [`store`] is the store itself: verify, write to the bucket, then cache in the index;
//! - [`rebuild`] refills a server's local index from a bucket listing.
//!
//! The bucket is the truth; each server's SQLite index is a cache of it. A server that does
//! not find a block in its index asks the bucket (one HEAD per id) before answering
//! "missing" or refusing a manifest, so a block stored through another server a moment ago
//! is never reported absent.

pub mod bucket;
pub mod layout;
pub mod location;
pub mod rebuild;
pub mod settings;
pub mod store;

pub use bucket::Bucket;
pub use location::{LocationError, S3Location};
pub use settings::{S3Settings, SettingsError};
pub use store::S3Store;

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
    /// A manifest object in the bucket is not one.
    #[error("{store}: manifest of image {name:?} is damaged: {reason}")]
    Manifest {
        /// `s3://bucket/prefix`.
        store: String,
        /// The image.
        name: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// The local index's directory cannot be made.
    #[error("local index directory {path}: {source}")]
    LocalIo {
        /// The directory.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The local index failed.
    #[error("local index {path}: {source}")]
    Index {
        /// The index file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: crate::index::IndexError,
    },
}
