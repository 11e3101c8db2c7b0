//! The object-storage backend: a store whose blocks and manifests live in an S3-compatible
//! bucket (AWS S3, Ceph RGW, MinIO, Garage, SeaweedFS), so that several stateless servers
//! can share one store.
//!
//! # Brief overview
//! - [`location`] parses `--data s3://BUCKET/PREFIX`;
//! - [`settings`] reads endpoint, region and keys from the standard AWS variables or file;
//! - [`layout`] names the objects;
//! - [`bucket`] moves objects (create-if-absent puts, ranged and parallel gets, listings);
//! - [`packs`] keeps blocks in packs and the map of where each lies;
//! - [`S3Backend`] is the [`Backend`] over a bucket: shared, so the store confirms every
//!   index miss with the pack map, after learning the packs other servers stored since it
//!   last looked (one listing), before calling a block absent.
//!
//! The bucket is the truth; each server's SQLite index is a cache of it, rebuilt from a
//! listing when empty (`crate::rebuild`).

// the crate root re-exports what the server's users need from here
pub(crate) mod bucket;
pub(crate) mod group;
pub(crate) mod journal;
pub(crate) mod layout;
#[allow(unreachable_pub)]
pub mod location;
pub(crate) mod packs;
#[allow(unreachable_pub)]
pub mod settings;
pub(crate) mod sweep;

pub use bucket::{Bucket, Created};
#[allow(unreachable_pub)]
pub use location::{LocationError, S3Location};
#[allow(unreachable_pub)]
pub use settings::{S3Settings, SettingsError};

use super::{Backend, BackendError, Put};
use bonsai_core::BlockId;
use std::sync::Arc;

/// Blocks (in packs) and manifests in one bucket under one prefix.
pub struct S3Backend {
    bucket: Arc<Bucket>,
    packs: packs::Packs,
    /// Whether the bucket holds block objects of a store written before packs.
    legacy: bool,
    /// What this server knows of the gc journal (`sweep.rs`).
    gc: std::sync::Mutex<sweep::GcView>,
    /// Names this server in the gc journal (kept in its index directory).
    server_id: String,
    /// When it was opened, Unix seconds (the start of the request counts).
    started: i64,
}

impl S3Backend {
    /// Connects; wrong keys, a missing bucket or an unreachable endpoint fail here. The
    /// map of packs is kept in `index_dir` beside the index.
    pub fn open(
        location: &S3Location,
        settings: &S3Settings,
        index_dir: &std::path::Path,
    ) -> Result<Self, S3Error> {
        let bucket = Arc::new(Bucket::open(location, settings)?);
        let legacy = bucket.has_block_objects()?;
        let packs = packs::Packs::open(bucket.clone(), index_dir).map_err(|e| S3Error::Setup {
            store: location.to_string(),
            reason: e.to_string(),
        })?;
        let server_id = server_id(index_dir).map_err(|e| S3Error::Setup {
            store: location.to_string(),
            reason: e.to_string(),
        })?;
        Ok(S3Backend {
            bucket,
            packs,
            legacy,
            gc: Default::default(),
            server_id,
            started: crate::index::now(),
        })
    }

    /// The bucket, for tools and tests.
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }

    /// Sizes of blocks in packs (after a listing if one is unknown: always when `fresh`,
    /// else at most every moment), then among legacy block objects.
    fn stat_in(&self, ids: &[BlockId], fresh: bool) -> Result<Vec<Option<u64>>, BackendError> {
        let mut sizes = self.packs.stat_many(ids, fresh)?;
        if self.legacy && sizes.iter().any(Option::is_none) {
            let want: Vec<usize> = (0..ids.len()).filter(|&i| sizes[i].is_none()).collect();
            let got = self
                .bucket
                .stat_blocks(&want.iter().map(|&i| ids[i]).collect::<Vec<_>>())?;
            for (i, g) in want.into_iter().zip(got) {
                sizes[i] = g;
            }
        }
        Ok(sizes)
    }

    /// Blocks held as objects of their own (stores written before packs), in order.
    fn legacy_get(&self, ids: &[BlockId], out: &mut [Option<Vec<u8>>]) -> Result<(), BackendError> {
        if !self.legacy {
            return Ok(());
        }
        let want: Vec<usize> = (0..ids.len()).filter(|&i| out[i].is_none()).collect();
        let got = self
            .bucket
            .get_blocks(&want.iter().map(|&i| ids[i]).collect::<Vec<_>>())?;
        for (i, g) in want.into_iter().zip(got) {
            out[i] = g;
        }
        Ok(())
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
    c.into()
}

impl Backend for S3Backend {
    fn describe(&self) -> String {
        self.bucket.location().to_string()
    }

    fn put_if_absent(&self, id: &BlockId, bytes: &[u8]) -> Result<Put, BackendError> {
        self.put_many_if_absent(&[(*id, bytes)]).map(|p| p[0])
    }

    fn put_many_if_absent(&self, items: &[(BlockId, &[u8])]) -> Result<Vec<Put>, BackendError> {
        let ids: Vec<BlockId> = items.iter().map(|i| i.0).collect();
        let again = self.must_rewrite(&ids)?;
        self.packs.put_many(items, &again)
    }

    fn overwrite(&self, id: &BlockId, bytes: &[u8]) -> Result<(), BackendError> {
        // the wrong copy's pack keeps its bytes, now dead; the map points at the new pack
        self.delete(id)?;
        self.packs.write_packs(&[(*id, bytes)])
    }

    fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, BackendError> {
        Ok(self.get_many(std::slice::from_ref(id))?.pop().flatten())
    }

    fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut out = self.packs.get_many(ids)?;
        self.legacy_get(ids, &mut out)?;
        Ok(out)
    }

    fn stat(&self, id: &BlockId) -> Result<Option<u64>, BackendError> {
        Ok(self.stat_many(std::slice::from_ref(id))?.pop().flatten())
    }

    fn stat_many(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, BackendError> {
        self.stat_in(ids, false)
    }

    fn stat_many_fresh(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, BackendError> {
        self.stat_in(ids, true)
    }

    fn delete(&self, id: &BlockId) -> Result<bool, BackendError> {
        let mapped = self.packs.locate(std::slice::from_ref(id))?[0].is_some();
        let empty = self.packs.unmap(std::slice::from_ref(id))?;
        if !empty.is_empty() {
            let names: Vec<String> = empty.iter().map(|e| e.1.clone()).collect();
            self.bucket.delete_packs(&names)?;
            for (num, _) in &empty {
                self.packs.drop_pack(*num)?;
            }
        }
        let mut existed = mapped;
        if self.legacy && self.bucket.stat_blocks(std::slice::from_ref(id))?[0].is_some() {
            self.bucket.delete_blocks(std::slice::from_ref(id))?;
            existed = true;
        }
        Ok(existed)
    }

    fn list(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        self.packs.each(each)?;
        if self.legacy {
            self.bucket.list_blocks(|blocks| {
                blocks.into_iter().try_for_each(|(id, size)| each(id, size))
            })?;
        }
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

    fn refresh(&self) -> Result<(), BackendError> {
        self.packs.refresh(true).map(drop)
    }

    fn object_store_stats(
        &self,
    ) -> Result<Option<bonsai_core::store::ObjectStoreStats>, BackendError> {
        use std::sync::atomic::Ordering::Relaxed;
        let known = self.packs.known()?;
        let pack_bytes: u64 = known.iter().map(|k| k.2).sum();
        let live_bytes: u64 = known.iter().map(|k| k.3).sum();
        let r = self.bucket.requests();
        let (written, read) = (r.put_bytes.load(Relaxed), r.get_bytes.load(Relaxed));
        let requests = self.bucket.request_counts();
        let per = |n: u64, bytes: u64| match bytes {
            0 => 0.0,
            b => n as f64 / (b as f64 / (1u64 << 30) as f64),
        };
        Ok(Some(bonsai_core::store::ObjectStoreStats {
            location: self.bucket.location().to_string(),
            packs: known.len() as u64,
            pack_bytes,
            live_bytes,
            overhead_bytes: pack_bytes.saturating_sub(live_bytes),
            put_per_gib_written: per(requests.put, written),
            get_per_gib_read: per(requests.get, read),
            requests,
            written_bytes: written,
            read_bytes: read,
            since: self.started,
        }))
    }

    fn shared_gc(&self) -> Option<&dyn super::SharedGc> {
        Some(self)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// This server's name in the gc journal: random, kept in `index_dir/server-id`.
fn server_id(index_dir: &std::path::Path) -> std::io::Result<String> {
    let path = index_dir.join("server-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::create_dir_all(index_dir)?;
    let mut seed = [0u8; 16];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    let id = hex::encode(seed);
    std::fs::write(&path, &id)?;
    Ok(id)
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
