//! The bucket: block objects and manifests in S3-compatible object storage, reached through
//! `object_store` (signing, retries with backoff, connection pooling are its job).
//!
//! Every method is synchronous, like the rest of the store (handlers call it from
//! `spawn_blocking`): the bucket owns a small tokio runtime and drives many requests at once
//! on it — uploads, existence checks and fetches of a batch run up to [`PARALLEL`] at a time.
//!
//! Writes are create-if-absent (`If-None-Match: *`). A server that ignores the header
//! overwrites an object with the very same verified bytes (the key is their hash), so the
//! race of two servers storing one block is harmless either way.
//!
//! Caveat: object stores list and stat with read-after-write consistency (AWS S3 since
//! 2020, SeaweedFS, MinIO); on a store without it, another server may briefly not see a
//! block that was just stored and ask for it again.

use super::layout::Layout;
use super::location::S3Location;
use super::settings::S3Settings;
use super::S3Error;
use bonsai_core::BlockId;
use bytes::Bytes;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};
use std::future::Future;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Requests in flight at once for one batch.
pub(crate) const PARALLEL: usize = 32;

/// Ranges of one pack closer than this are read with one GET (the extra bytes cost less
/// than another request's latency and price).
pub(crate) const COALESCE: u64 = 1 << 20;

/// A store's objects in one bucket under one prefix.
pub struct Bucket {
    s3: Arc<AmazonS3>,
    layout: Layout,
    location: S3Location,
    endpoint: String,
    rt: Runtime,
    requests: Requests,
}

/// Requests sent, by kind: logged when the bucket is closed (the cost of a run).
#[derive(Debug, Default)]
pub struct Requests {
    /// PUT (blocks and manifests).
    pub put: AtomicU64,
    /// GET.
    pub get: AtomicU64,
    /// HEAD.
    pub head: AtomicU64,
    /// LIST pages (1 000 keys each).
    pub list: AtomicU64,
    /// DELETE.
    pub delete: AtomicU64,
    /// Bytes sent in PUT bodies.
    pub put_bytes: AtomicU64,
    /// Bytes received in GET bodies.
    pub get_bytes: AtomicU64,
}

fn count(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// Whether an upload created the object or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This request stored it.
    New,
    /// Someone had stored it before.
    Existed,
}

impl Bucket {
    /// Connects and checks, with one listing request, that the bucket exists and the keys
    /// are accepted: wrong credentials or an unreachable endpoint fail here, at start.
    pub fn open(location: &S3Location, settings: &S3Settings) -> Result<Self, S3Error> {
        let endpoint = settings
            .endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", settings.region));
        let s3 = build_client(location, settings).map_err(|e| S3Error::Setup {
            store: location.to_string(),
            reason: one_line(&e),
        })?;
        let rt = Runtime::new().map_err(|e| S3Error::Setup {
            store: location.to_string(),
            reason: e.to_string(),
        })?;
        let bucket = Bucket {
            s3: Arc::new(s3),
            layout: Layout::new(&location.prefix),
            location: location.clone(),
            endpoint,
            rt,
            requests: Requests::default(),
        };
        bucket.probe()?;
        Ok(bucket)
    }

    /// `s3://bucket/prefix`, for messages.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Requests sent so far.
    pub fn requests(&self) -> &Requests {
        &self.requests
    }

    /// The request counts as `stats` reports them.
    pub fn request_counts(&self) -> bonsai_core::store::RequestCounts {
        let r = &self.requests;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        bonsai_core::store::RequestCounts {
            put: n(&r.put),
            get: n(&r.get),
            head: n(&r.head),
            list: n(&r.list),
            delete: n(&r.delete),
        }
    }

    /// Key names.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn probe(&self) -> Result<(), S3Error> {
        let prefix = Path::from(self.layout.images());
        let result = self.rt.block_on(self.s3.list_with_delimiter(Some(&prefix)));
        let Err(e) = result else { return Ok(()) };
        let reason = one_line(&e);
        let store = self.location.to_string();
        let endpoint = self.endpoint.clone();
        // listings report HTTP failures as generic errors: classify by the S3 error code
        let denied = [
            "AccessDenied",
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "403 Forbidden",
            "401 Unauthorized",
        ];
        if matches!(
            e,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        ) || denied.iter().any(|d| reason.contains(d))
        {
            Err(S3Error::Denied { store, endpoint })
        } else if matches!(e, object_store::Error::NotFound { .. })
            || reason.contains("NoSuchBucket")
        {
            Err(S3Error::NoBucket {
                store,
                bucket: self.location.bucket.clone(),
                endpoint,
            })
        } else {
            Err(S3Error::Unreachable {
                store,
                endpoint,
                reason,
            })
        }
    }

    fn failed(&self, op: &'static str, key: &str, e: &object_store::Error) -> S3Error {
        S3Error::Request {
            store: self.location.to_string(),
            op,
            key: key.to_string(),
            reason: one_line(e),
        }
    }

    /// Uploads verified block objects, create-if-absent, [`PARALLEL`] at a time. On
    /// success every block is durable in the bucket.
    pub fn put_blocks(&self, items: &[(BlockId, &[u8])]) -> Result<Vec<Created>, S3Error> {
        let jobs = items.iter().map(|(id, bytes)| {
            let key = self.layout.block(id);
            let payload = PutPayload::from(bytes.to_vec());
            async move { self.put_if_absent(&key, payload).await }
        });
        self.rt.block_on(
            stream::iter(jobs)
                .buffered(PARALLEL)
                .try_collect::<Vec<_>>(),
        )
    }

    /// Writes a verified block object over whatever the key holds (unconditional PUT).
    pub fn replace_block(&self, id: &BlockId, bytes: &[u8]) -> Result<(), S3Error> {
        let key = self.layout.block(id);
        count(&self.requests.put, 1);
        self.rt
            .block_on(
                self.s3
                    .put(&Path::from(key.as_str()), bytes.to_vec().into()),
            )
            .map(drop)
            .map_err(|e| self.failed("put", &key, &e))
    }

    async fn put_if_absent(&self, key: &str, payload: PutPayload) -> Result<Created, S3Error> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        count(&self.requests.put, 1);
        count(&self.requests.put_bytes, payload.content_length() as u64);
        match self.s3.put_opts(&Path::from(key), payload, opts).await {
            Ok(_) => Ok(Created::New),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(Created::Existed),
            Err(e) => Err(self.failed("put", key, &e)),
        }
    }

    /// Sizes of the blocks present in the bucket (one HEAD each, in parallel), in order.
    pub fn stat_blocks(&self, ids: &[BlockId]) -> Result<Vec<Option<u64>>, S3Error> {
        let jobs = ids.iter().map(|id| {
            let key = self.layout.block(id);
            async move {
                count(&self.requests.head, 1);
                match self.s3.head(&Path::from(key.as_str())).await {
                    Ok(meta) => Ok(Some(meta.size)),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.failed("head", &key, &e)),
                }
            }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    /// Block objects, `None` for those not in the bucket, in order.
    pub fn get_blocks(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, S3Error> {
        let jobs = ids.iter().map(|id| {
            let key = self.layout.block(id);
            async move { self.get_object(&key).await }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    async fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        count(&self.requests.get, 1);
        let got = match self.s3.get(&Path::from(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.failed("get", key, &e)),
        };
        match got.bytes().await {
            Ok(b) => {
                count(&self.requests.get_bytes, b.len() as u64);
                Ok(Some(b.to_vec()))
            }
            Err(e) => Err(self.failed("get", key, &e)),
        }
    }

    /// Deletes block objects (absent ones are fine).
    pub fn delete_blocks(&self, ids: &[BlockId]) -> Result<(), S3Error> {
        self.delete_keys(ids.iter().map(|id| self.layout.block(id)).collect())
    }

    /// Deletes objects by key, [`PARALLEL`] at a time (absent ones are fine).
    fn delete_keys(&self, keys: Vec<String>) -> Result<(), S3Error> {
        let jobs = keys
            .into_iter()
            .map(|key| async move { self.delete_object(&key).await });
        self.rt.block_on(
            stream::iter(jobs)
                .buffered(PARALLEL)
                .try_collect::<Vec<()>>(),
        )?;
        Ok(())
    }

    async fn delete_object(&self, key: &str) -> Result<(), S3Error> {
        count(&self.requests.delete, 1);
        match self.s3.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.failed("delete", key, &e)),
        }
    }

    /// Lists every block object with its size, shard by shard (16 shards at a time), and
    /// hands each shard's blocks to `sink` as it completes. Foreign keys are skipped.
    pub fn list_blocks<E: From<S3Error>>(
        &self,
        mut sink: impl FnMut(Vec<(BlockId, u64)>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let shards = (0..=255u8).map(|shard| {
            let prefix = self.layout.shard(shard);
            async move {
                let listed: Vec<_> = self
                    .s3
                    .list(Some(&Path::from(prefix.as_str())))
                    .try_collect()
                    .await
                    .map_err(|e| self.failed("list", &prefix, &e))?;
                count(&self.requests.list, 1 + listed.len() as u64 / 1000);
                Ok::<_, S3Error>(
                    listed
                        .into_iter()
                        .filter_map(|m| {
                            let id = self.layout.block_id(m.location.as_ref())?;
                            Some((id, m.size))
                        })
                        .collect::<Vec<_>>(),
                )
            }
        });
        self.rt.block_on(async {
            let mut shards = stream::iter(shards).buffer_unordered(16);
            let mut total = 0u64;
            while let Some(blocks) = shards.next().await {
                let blocks = blocks?;
                total += blocks.len() as u64;
                sink(blocks)?;
            }
            Ok(total)
        })
    }

    /// Stores packs, create-only, [`PARALLEL`] at a time. A pack's name holds the hash of
    /// its index, so a taken name already holds these very blocks. Durable on return.
    pub fn put_packs(&self, packs: Vec<(String, Vec<u8>)>) -> Result<Vec<Created>, S3Error> {
        let jobs = packs.into_iter().map(|(name, bytes)| {
            let key = self.layout.pack(&name);
            async move { self.put_if_absent(&key, PutPayload::from(bytes)).await }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    /// The last `len` bytes of each pack (their indexes), `None` for a pack that is gone,
    /// [`PARALLEL`] at a time, in order.
    pub fn pack_tails(&self, packs: &[(String, u64)]) -> Result<Vec<Option<Vec<u8>>>, S3Error> {
        let jobs = packs.iter().map(|(name, len)| {
            let key = self.layout.pack(name);
            async move {
                count(&self.requests.get, 1);
                let opts = object_store::GetOptions {
                    range: Some(object_store::GetRange::Suffix(*len)),
                    ..Default::default()
                };
                let got = match self.s3.get_opts(&Path::from(key.as_str()), opts).await {
                    Ok(g) => g,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => return Err(self.failed("get", &key, &e)),
                };
                match got.bytes().await {
                    Ok(b) => {
                        count(&self.requests.get_bytes, b.len() as u64);
                        Ok(Some(b.to_vec()))
                    }
                    Err(e) => Err(self.failed("get", &key, &e)),
                }
            }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    /// Byte ranges of packs, `None` for a pack that is gone, in order. Ranges of one pack
    /// less than [`COALESCE`] apart are read with one ranged GET; packs are read
    /// [`PARALLEL`] at a time.
    pub fn read_packs(
        &self,
        reads: &[(String, Vec<Range<u64>>)],
    ) -> Result<Vec<Option<Vec<Bytes>>>, S3Error> {
        let jobs = reads.iter().map(|(name, ranges)| {
            let key = self.layout.pack(name);
            async move {
                let path = Path::from(key.as_str());
                let fetched = object_store::coalesce_ranges(
                    ranges,
                    |r| {
                        count(&self.requests.get, 1);
                        self.s3.get_range(&path, r)
                    },
                    COALESCE,
                )
                .await;
                match fetched {
                    Ok(parts) => {
                        count(
                            &self.requests.get_bytes,
                            parts.iter().map(|p| p.len() as u64).sum(),
                        );
                        Ok(Some(parts))
                    }
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.failed("get", &key, &e)),
                }
            }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    /// Packs with their sizes, in name (so time) order: every pack, or only those whose
    /// names sort after `after`.
    pub fn list_packs(&self, after: Option<&str>) -> Result<Vec<(String, u64)>, S3Error> {
        let prefix = self.layout.packs();
        let p = Path::from(prefix.as_str());
        let listed: Vec<_> = match after {
            None => self.rt.block_on(self.s3.list(Some(&p)).try_collect()),
            Some(a) => {
                let offset = Path::from(self.layout.pack(a).as_str());
                self.rt
                    .block_on(self.s3.list_with_offset(Some(&p), &offset).try_collect())
            }
        }
        .map_err(|e| self.failed("list", &prefix, &e))?;
        count(&self.requests.list, 1 + listed.len() as u64 / 1000);
        let mut packs: Vec<(String, u64)> = listed
            .iter()
            .filter_map(|m| {
                let name = self.layout.pack_name(m.location.as_ref())?;
                Some((name.to_string(), m.size))
            })
            .collect();
        packs.sort();
        Ok(packs)
    }

    /// Whether each pack is in the bucket (one HEAD each, [`PARALLEL`] at a time).
    pub fn packs_exist(&self, names: &[String]) -> Result<Vec<bool>, S3Error> {
        let jobs = names.iter().map(|n| {
            let key = self.layout.pack(n);
            async move {
                count(&self.requests.head, 1);
                match self.s3.head(&Path::from(key.as_str())).await {
                    Ok(_) => Ok(true),
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    Err(e) => Err(self.failed("head", &key, &e)),
                }
            }
        });
        self.rt
            .block_on(stream::iter(jobs).buffered(PARALLEL).try_collect())
    }

    /// Deletes packs (absent ones are fine).
    pub fn delete_packs(&self, names: &[String]) -> Result<(), S3Error> {
        self.delete_keys(names.iter().map(|n| self.layout.pack(n)).collect())
    }

    /// Keys (below the store's prefix) of the objects directly under `prefix`, not those
    /// in its sub-folders: one listing request per 1 000.
    pub fn top_keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let base = self.layout.base();
        let full = format!("{base}{prefix}");
        count(&self.requests.list, 1);
        let listed = self
            .rt
            .block_on(
                self.s3
                    .list_with_delimiter(Some(&Path::from(full.as_str()))),
            )
            .map_err(|e| self.failed("list", &full, &e))?;
        let mut keys: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(base).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Stores a small object under `key` (below the store's prefix) unless it is taken.
    pub fn create(&self, key: &str, bytes: Vec<u8>) -> Result<Created, S3Error> {
        self.put_named(&format!("{}{key}", self.layout.base()), bytes)
    }

    /// The small object under `key`, if there.
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let key = format!("{}{key}", self.layout.base());
        self.rt.block_on(self.get_object(&key))
    }

    /// Removes the object under `key`.
    pub fn remove(&self, key: &str) -> Result<(), S3Error> {
        let key = format!("{}{key}", self.layout.base());
        self.rt.block_on(self.delete_object(&key))
    }

    /// Keys (below the store's prefix) of every object under `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let base = self.layout.base();
        let mut keys: Vec<String> = self
            .list_keys(&format!("{base}{prefix}"))?
            .into_iter()
            .filter_map(|k| k.strip_prefix(base).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Whether any block object of a store written before packs is in the bucket (one
    /// listing request).
    pub fn has_block_objects(&self) -> Result<bool, S3Error> {
        let prefix = format!("{}blocks/", self.layout.base());
        count(&self.requests.list, 1);
        let listed = self
            .rt
            .block_on(
                self.s3
                    .list_with_delimiter(Some(&Path::from(prefix.as_str()))),
            )
            .map_err(|e| self.failed("list", &prefix, &e))?;
        Ok(!listed.common_prefixes.is_empty() || !listed.objects.is_empty())
    }

    /// Stores a version's manifest object unless the key is taken (create-only).
    pub fn put_manifest(&self, name: &str, bytes: Vec<u8>) -> Result<Created, S3Error> {
        self.put_named(&self.layout.image(&manifest_file(name)), bytes)
    }

    /// An image's manifest object, if registered.
    pub fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let key = self.layout.image(&manifest_file(name));
        self.rt.block_on(self.get_object(&key))
    }

    /// Removes an image's manifest object.
    pub fn delete_manifest(&self, name: &str) -> Result<(), S3Error> {
        let key = self.layout.image(&manifest_file(name));
        self.rt.block_on(self.delete_object(&key))
    }

    /// Names of every registered image.
    pub fn list_manifests(&self) -> Result<Vec<String>, S3Error> {
        let keys = self.list_keys(&self.layout.images())?;
        Ok(keys
            .iter()
            .filter_map(|k| self.layout.image_name(k))
            .filter_map(manifest_name)
            .collect())
    }

    /// Stores a version's sealed recipe object unless the key is taken (create-only).
    pub fn put_recipe(&self, name: &str, bytes: Vec<u8>) -> Result<Created, S3Error> {
        self.put_named(&self.layout.recipe(&manifest_file(name)), bytes)
    }

    /// An image's sealed recipe object, if kept.
    pub fn get_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let key = self.layout.recipe(&manifest_file(name));
        self.rt.block_on(self.get_object(&key))
    }

    /// Removes an image's sealed recipe object.
    pub fn delete_recipe(&self, name: &str) -> Result<(), S3Error> {
        let key = self.layout.recipe(&manifest_file(name));
        self.rt.block_on(self.delete_object(&key))
    }

    /// Names of every image with a sealed recipe.
    pub fn list_recipes(&self) -> Result<Vec<String>, S3Error> {
        let keys = self.list_keys(&self.layout.recipes())?;
        Ok(keys
            .iter()
            .filter_map(|k| self.layout.recipe_name(k))
            .filter_map(manifest_name)
            .collect())
    }

    /// Stores a version's boot profile unless one is kept (create-only).
    pub fn put_profile(&self, name: &str, bytes: Vec<u8>) -> Result<Created, S3Error> {
        self.put_named(&self.layout.profile(&manifest_file(name)), bytes)
    }

    /// A version's boot profile, if kept.
    pub fn get_profile(&self, name: &str) -> Result<Option<Vec<u8>>, S3Error> {
        let key = self.layout.profile(&manifest_file(name));
        self.rt.block_on(self.get_object(&key))
    }

    /// Removes a version's boot profile.
    pub fn delete_profile(&self, name: &str) -> Result<(), S3Error> {
        let key = self.layout.profile(&manifest_file(name));
        self.rt.block_on(self.delete_object(&key))
    }

    fn put_named(&self, key: &str, bytes: Vec<u8>) -> Result<Created, S3Error> {
        self.rt
            .block_on(self.put_if_absent(key, PutPayload::from(bytes)))
    }

    /// Every key under `prefix`.
    fn list_keys(&self, prefix: &str) -> Result<Vec<String>, S3Error> {
        let listed: Vec<_> = self
            .rt
            .block_on(self.s3.list(Some(&Path::from(prefix))).try_collect())
            .map_err(|e| self.failed("list", prefix, &e))?;
        count(&self.requests.list, 1 + listed.len() as u64 / 1000);
        Ok(listed.iter().map(|m| m.location.to_string()).collect())
    }
}

impl Drop for Bucket {
    fn drop(&mut self) {
        let r = &self.requests;
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            store = %self.location,
            put = n(&r.put),
            get = n(&r.get),
            head = n(&r.head),
            list = n(&r.list),
            delete = n(&r.delete),
            put_bytes = n(&r.put_bytes),
            get_bytes = n(&r.get_bytes),
            "s3 requests sent"
        );
    }
}

/// Image names may hold any character but `/` and controls; the object name is their
/// UTF-8 bytes in hex, so no S3 implementation mangles them.
fn manifest_file(name: &str) -> String {
    hex::encode(name.as_bytes())
}

fn manifest_name(file: &str) -> Option<String> {
    String::from_utf8(hex::decode(file).ok()?).ok()
}

fn build_client(
    location: &S3Location,
    settings: &S3Settings,
) -> Result<AmazonS3, object_store::Error> {
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&location.bucket)
        .with_region(&settings.region)
        .with_retry(RetryConfig {
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 4,
            retry_timeout: Duration::from_secs(20),
        })
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60))
                .with_pool_max_idle_per_host(PARALLEL * 2),
        );
    if let Some(e) = &settings.endpoint {
        b = b
            .with_endpoint(e)
            .with_allow_http(e.to_ascii_lowercase().starts_with("http://"));
    }
    if let Some(k) = &settings.keys {
        b = b
            .with_access_key_id(&k.access_key_id)
            .with_secret_access_key(&k.secret_access_key);
        if let Some(t) = &k.session_token {
            b = b.with_token(t);
        }
    }
    b.build()
}

/// An error and its causes on one line (object_store's messages span several).
fn one_line(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    let mut line = parts
        .join(": ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if line.len() > 400 {
        let mut cut = 400;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

/// The bucket's own runtime. Dropped without blocking, so a `Bucket` may be dropped from
/// async code (the server's shutdown).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Runtime {
    fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bonsai-s3")
            .enable_all()
            .build()?;
        Ok(Runtime(Some(rt)))
    }

    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0
            .as_ref()
            .expect("runtime lives until drop")
            .block_on(f)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_names_round_trip() {
        for name in ["vm-1", "a b/../ü", "..", "."] {
            assert_eq!(manifest_name(&manifest_file(name)).as_deref(), Some(name));
        }
        assert_eq!(manifest_name("zz"), None);
    }

    #[test]
    fn errors_fit_on_one_line() {
        let e = std::io::Error::other("first\nsecond   third");
        assert_eq!(one_line(&e), "first second third");
    }
}
