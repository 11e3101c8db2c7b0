//! The block store as the engines see it, split by capability as desync splits its stores:
//!
//! - [`ReadStore`]: which ids are missing, fetch objects, store-wide figures;
//! - [`WriteStore`]: upload objects (verified by the store), register an image's manifest;
//! - [`AdminStore`]: list images, forget, gc, check — operations for whoever runs the store.
//!   Every method has a default that answers [`StoreError::Unsupported`], so a store gains
//!   them one at a time and callers get a typed refusal, never a panic.
//!
//! [`BlockStore`] is all three at once (implemented for every type that has them); the
//! engines take `&dyn BlockStore`. Every call is batched because round trips dominate
//! across a WAN.
//!
//! Implementations: [`http::HttpStore`] talks to a `bonsai serve` over HTTP; the embedded
//! store (a directory, no server) lives in `bonsai-blockstore` beside the server so the
//! on-disk layout is written once; [`mem::MemStore`] is for tests of the engines, and
//! [`fault::FaultyStore`] wraps any store to fail or corrupt its k-th call.
//! [`conformance`] is the one suite every store must pass.

pub mod admin;
pub mod conformance;
mod error;
pub mod fault;
pub mod http;
pub mod manifest;
pub mod mem;
pub mod pack;
pub mod retention;
pub mod tiered;
pub mod wire;

pub use admin::{
    CheckOptions, CheckReport, DamagedBlock, DamagedImage, ForgetReport, GcOptions, GcReport,
    ImageInfo, Registered, DEFAULT_GRACE,
};
pub use error::{StoreError, StoreErrorKind};
pub use wire::{parse_frame, write_frame, ErrorBody, ErrorCode};

use crate::id::BlockId;

/// Store-wide figures, as `bonsai stats` and `GET /v1/stats` report them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Distinct blocks held.
    pub blocks: u64,
    /// Bytes of block objects held.
    pub stored_bytes: u64,
    /// Images whose manifests are registered.
    pub images: u64,
    /// Sum of the logical sizes of registered images (saturating at `u64::MAX`).
    pub logical_bytes: u64,
    /// `logical_bytes / stored_bytes` (0 when empty).
    pub dedup_ratio: f64,
    /// A site cache's figures (`serve --upstream`); absent for any other store. A cache's
    /// `blocks` and `stored_bytes` are what it holds; `images` and `logical_bytes` are 0
    /// (its images are the upstream's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheStats>,
    /// An object-storage store's cost figures (`--data s3://…`), as this server knows them;
    /// absent for any other store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStoreStats>,
}

/// What an object-storage store holds and what it has cost in requests, as one server
/// sees it: objects and bytes from its map of the bucket, requests since it started.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ObjectStoreStats {
    /// `s3://bucket/prefix`.
    pub location: String,
    /// Pack objects in the bucket (as of this server's last look).
    pub packs: u64,
    /// Bytes of those packs: what the bucket bills for blocks.
    pub pack_bytes: u64,
    /// Bytes of live blocks in them.
    pub live_bytes: u64,
    /// `pack_bytes - live_bytes`: pack headers and indexes, and dead blocks gc left in
    /// packs it did not rewrite.
    pub overhead_bytes: u64,
    /// Requests this server sent since it started, by kind.
    pub requests: RequestCounts,
    /// Bytes this server wrote to the bucket since it started.
    pub written_bytes: u64,
    /// Bytes this server read from the bucket since it started.
    pub read_bytes: u64,
    /// PUT requests per GiB written (0 before the first).
    pub put_per_gib_written: f64,
    /// GET requests per GiB read (0 before the first).
    pub get_per_gib_read: f64,
    /// When this server started, Unix seconds.
    pub since: i64,
}

/// Requests to an object store, by kind.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestCounts {
    /// PUT (packs, manifests, the gc journal).
    pub put: u64,
    /// GET, ranged or whole.
    pub get: u64,
    /// HEAD.
    pub head: u64,
    /// LIST pages.
    pub list: u64,
    /// DELETE.
    pub delete: u64,
}

/// What a site cache has done since it started, as `GET /v1/stats` reports it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CacheStats {
    /// The upstream's address.
    pub upstream: String,
    /// The size limit in bytes, if any.
    pub limit_bytes: Option<u64>,
    /// Blocks served from the cache's own copy.
    pub hit_blocks: u64,
    /// Bytes of those: what the cache saved on the link to its upstream.
    pub hit_bytes: u64,
    /// Blocks fetched from the upstream.
    pub fetched_blocks: u64,
    /// Bytes fetched from the upstream.
    pub fetched_bytes: u64,
    /// Blocks evicted to stay under the size limit.
    pub evicted_blocks: u64,
    /// `hit_blocks / (hit_blocks + fetched_blocks)`, 0 before any read.
    pub hit_rate: f64,
}

impl StoreStats {
    /// Fills `dedup_ratio` from the two byte counts.
    pub fn with_ratio(mut self) -> Self {
        self.dedup_ratio = if self.stored_bytes == 0 {
            0.0
        } else {
            self.logical_bytes as f64 / self.stored_bytes as f64
        };
        self
    }
}

/// Result of a batch upload: the store verified and kept (or already had) each block.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutOutcome {
    /// Blocks newly written.
    pub stored: u64,
    /// Blocks the store already held (idempotent re-upload).
    pub existed: u64,
}

/// Reading: what pull needs, and the existence query push asks before uploading.
pub trait ReadStore: Send + Sync {
    /// Which of `ids` the store lacks, in the order given (duplicates kept).
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError>;
    /// Fetches objects, in the order asked. A missing id is [`StoreError::NotFound`].
    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Store-wide figures.
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// How the user named the store, for messages.
    fn describe(&self) -> String;
    /// Whether the store holds `id` (one-id form of [`ReadStore::missing`]).
    fn has(&self, id: &BlockId) -> Result<bool, StoreError> {
        Ok(self.missing(std::slice::from_ref(id))?.is_empty())
    }
    /// The dedup report (docs/RATIOS.md), computed from the store's index.
    fn report(
        &self,
        opts: &crate::report::ReportOptions,
    ) -> Result<crate::report::StoreReport, StoreError> {
        let _ = opts;
        Err(StoreError::Unsupported {
            store: self.describe(),
            operation: "report".into(),
        })
    }
}

/// Writing: what push needs. The store verifies every object against its id.
pub trait WriteStore: ReadStore {
    /// Uploads objects; the store verifies each against its id before keeping it. A bad
    /// object is [`StoreError::Rejected`] naming it. Uploading a held block again is fine.
    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError>;
    /// Records that image `name` of `logical_bytes` uses `ids` (never keys). Refused with
    /// [`StoreError::NotFound`] naming the first id the store does not hold.
    fn register(&self, name: &str, logical_bytes: u64, ids: &[BlockId]) -> Result<(), StoreError>;
    /// Registers a new version of an image with the figures reports need (its zero
    /// bytes, its image hash). A store that keeps no versions or figures registers the
    /// manifest alone and answers version 0.
    fn register_image(
        &self,
        reg: &crate::report::Registration<'_>,
    ) -> Result<Registered, StoreError> {
        self.register(reg.name, reg.logical_bytes, reg.ids)?;
        Ok(Registered::default())
    }
    /// Registers exactly `version` of `reg.name`: a copy of another store's version (its
    /// sealed recipe is bound to the number), what `bonsai sync` does. `Ok(true)` when that
    /// version with the same blocks was registered already; another image under that
    /// number is refused with [`ErrorCode::Conflict`] and nothing changes.
    fn register_copy(
        &self,
        reg: &crate::report::Registration<'_>,
        version: u64,
    ) -> Result<bool, StoreError> {
        let _ = (reg, version);
        Err(StoreError::Unsupported {
            store: self.describe(),
            operation: "copying image versions".into(),
        })
    }
}

/// Operating the store over time. Defaults refuse with [`StoreError::Unsupported`].
pub trait AdminStore: ReadStore {
    /// Registered versions, by name then version.
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        Err(self.unsupported("images"))
    }
    /// Unregisters versions: each entry is `NAME@V` (one version) or `NAME` (all of its
    /// versions); their blocks stay until a gc frees them.
    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        let _ = names;
        Err(self.unsupported("forget"))
    }
    /// Frees blocks no registered image uses (safe while others push).
    fn gc(&self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        let _ = opts;
        Err(self.unsupported("gc"))
    }
    /// Verifies the store; with `read_data`, re-hashes every block and drops damaged ones.
    fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        let _ = opts;
        Err(self.unsupported("check"))
    }
    /// Keeps `sealed` (a recipe encrypted and signed by its owner, opaque to the store) for
    /// version `name` (`NAME@V`). Kept once: a second, different one is refused. Needs the
    /// write token that registered the version on a server.
    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let _ = (name, sealed);
        Err(self.unsupported("sealed recipes"))
    }
    /// The sealed recipe kept for version `name` (`NAME@V`), if any. Needs a read token on
    /// a server.
    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = name;
        Err(self.unsupported("sealed recipes"))
    }
    /// The manifest object (docs/FORMAT.md "Manifest") of registered version `name`
    /// (`NAME@V`), if there is one: what `bonsai sync` copies. Needs a read token on a
    /// server. Callers parse it with [`manifest::parse`], which is strict.
    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = name;
        Err(self.unsupported("reading manifests"))
    }
    /// Keeps a boot profile (`export::profile`) for version `name` (`NAME@V`) unless one
    /// is kept already; `true` when this one was kept. Needs a write token on a server.
    fn put_profile(&self, name: &str, profile: &[u8]) -> Result<bool, StoreError> {
        let _ = (name, profile);
        Err(self.unsupported("boot profiles"))
    }
    /// The boot profile kept for version `name` (`NAME@V`), if any.
    fn get_profile(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = name;
        Err(self.unsupported("boot profiles"))
    }
    /// The typed refusal for an operation this store does not offer.
    fn unsupported(&self, operation: &'static str) -> StoreError {
        StoreError::Unsupported {
            store: self.describe(),
            operation: operation.into(),
        }
    }
}

/// Every capability at once: what the engines and the command line hold.
pub trait BlockStore: WriteStore + AdminStore {}

impl<T: WriteStore + AdminStore + ?Sized> BlockStore for T {}

/// Limits both sides agree on; the server enforces them, the client batches below them.
pub mod limits {
    /// Most ids in one existence query or batch download.
    pub const MAX_IDS_PER_QUERY: usize = 65_536;
    /// Largest request body the server accepts (batch upload).
    pub const MAX_REQUEST_BYTES: usize = 128 * 1024 * 1024;
    /// Target size of one batch upload or download.
    pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
}
