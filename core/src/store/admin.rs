//! The types of the admin capability ([`super::AdminStore`]): what listing, forgetting,
//! collecting and checking return. They are the `--json` contract of `bonsai images`,
//! `forget`, `gc` and `check` and the bodies of the matching API routes, so fields are only
//! ever added (with `#[serde(default)]`), never renamed.

use crate::id::BlockId;
use std::time::Duration;

/// One registered version of an image (versions are immutable; a push adds one).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    /// Its name (`NAMESPACE/…/BASE`).
    pub name: String,
    /// Its version: 1 for the first push of the name, then 2, 3, … (0 from a store that
    /// keeps no versions).
    #[serde(default)]
    pub version: u64,
    /// Hash of the whole image as its recipe states it (hex), when the client sent it.
    #[serde(default)]
    pub image_hash: Option<String>,
    /// Who registered it: the token's label, or a fingerprint of the token
    /// (`token:1a2b3c4d`); `anonymous` on a store without tokens.
    #[serde(default)]
    pub by: String,
    /// Its virtual (logical) size in bytes.
    pub logical_bytes: u64,
    /// Distinct blocks it uses.
    pub blocks: u64,
    /// When it was registered, Unix seconds.
    pub registered: i64,
    /// Bytes of block objects no other registered image uses: what forgetting it (and a
    /// gc) would free.
    #[serde(default)]
    pub unique_bytes: u64,
    /// Whether the store keeps a sealed recipe for this version.
    #[serde(default)]
    pub sealed_recipe: bool,
}

impl ImageInfo {
    /// `NAME@VERSION`, as commands take it.
    pub fn version_ref(&self) -> crate::name::VersionRef {
        crate::name::VersionRef::exact(&self.name, self.version)
    }
}

/// What registering a manifest created.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Registered {
    /// The new version's number (0 from a store that keeps no versions).
    #[serde(default)]
    pub version: u64,
    /// How many versions of the name there were before this one.
    #[serde(default)]
    pub earlier_versions: u64,
}

/// What `forget` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForgetReport {
    /// Versions (`NAME@V`) that were registered and are now gone.
    pub forgotten: Vec<String>,
    /// Versions or names that were not registered.
    #[serde(default)]
    pub unknown: Vec<String>,
}

/// How to run a gc.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcOptions {
    /// Report what would be freed; change nothing.
    pub dry_run: bool,
    /// How long an unreferenced block must stay unreferenced before it is freed (protects
    /// pushes in flight). Zero frees at once: only when no push can be running.
    pub grace: Duration,
}

/// What a gc freed (or would free, on a dry run).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    /// Blocks freed.
    pub blocks_freed: u64,
    /// Bytes of block objects freed.
    pub bytes_freed: u64,
    /// Unreferenced blocks kept because their grace period has not passed.
    #[serde(default)]
    pub blocks_in_grace: u64,
    /// Whether this was a dry run.
    #[serde(default)]
    pub dry_run: bool,
    /// Grace period applied, seconds.
    #[serde(default)]
    pub grace_seconds: u64,
    /// Blocks no registered image uses (before this run).
    #[serde(default)]
    pub unreferenced_blocks: u64,
    /// Blocks marked by this run (first seen unreferenced now; on a dry run: would be).
    #[serde(default)]
    pub marked_blocks: u64,
    /// Block objects the backend held without an index row (left by a crash between an
    /// upload's write and its row, or a sweep's row and its file), deleted by this run.
    #[serde(default)]
    pub orphans_freed: u64,
    /// Bytes of those objects.
    #[serde(default)]
    pub orphan_bytes_freed: u64,
    /// Packs deleted because no block in them was live (object storage).
    #[serde(default)]
    pub packs_deleted: u64,
    /// Packs rewritten with their live blocks because most of their bytes were dead.
    #[serde(default)]
    pub packs_rewritten: u64,
    /// Wall time of the run.
    #[serde(default)]
    pub wall_seconds: f64,
}

/// How to run a check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Re-hash every block against its id (reads all data), not only its presence and size.
    pub read_data: bool,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// Blocks examined.
    pub blocks_checked: u64,
    /// Blocks found missing, truncated or (with `read_data`) not hashing to their id; they
    /// were dropped from the index so the next push uploads them again.
    pub damaged: Vec<BlockId>,
    /// Registered images that use a damaged block.
    #[serde(default)]
    pub damaged_images: Vec<String>,
    /// Whether every block was re-hashed.
    #[serde(default)]
    pub read_data: bool,
    /// Bytes read and hashed (0 without `read_data`).
    #[serde(default)]
    pub read_bytes: u64,
    /// What was wrong with each damaged block.
    #[serde(default)]
    pub problems: Vec<DamagedBlock>,
    /// Images lacking blocks (this run's damage and any earlier), with how many.
    #[serde(default)]
    pub images_missing_blocks: Vec<DamagedImage>,
    /// Wall time of the check.
    #[serde(default)]
    pub wall_seconds: f64,
}

/// One damaged block found by a check.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DamagedBlock {
    /// The block.
    pub id: BlockId,
    /// `missing`, `wrong_size` or `wrong_hash`.
    pub problem: String,
}

/// An image that lost blocks: it pulls again only after a push of it (or of any image
/// holding those blocks) re-uploads them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DamagedImage {
    /// Image name.
    pub name: String,
    /// How many of its blocks are gone.
    pub missing_blocks: u64,
}

/// Default gc grace period: a day, longer than any push (rustic uses 23 h).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
