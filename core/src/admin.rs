//! Operating a store: list and forget images, collect garbage, check blocks, and keep
//! sealed recipes. These are the calls `bonsai images|forget|gc|check` and
//! `push --keep-recipe` make; the server implements them behind the `admin` role
//! (sealed recipes: `write` to store, `read` to fetch), the embedded store in-process.
//!
//! The report structs are the `--json` contract of those commands.

use crate::id::BlockId;
use crate::store::{BlockStore, StoreError};

/// One registered image, as `bonsai images` lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImageInfo {
    /// Name it was registered under.
    pub name: String,
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Distinct blocks it uses.
    pub blocks: u64,
    /// Bytes of block objects no other registered image uses: what forgetting it (and a
    /// gc) would free.
    #[serde(default)]
    pub unique_bytes: u64,
    /// Registration time, seconds since the Unix epoch.
    pub registered: i64,
    /// Whether the store keeps a sealed recipe under this name.
    #[serde(default)]
    pub sealed_recipe: bool,
}

/// What a garbage collection did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    /// True when nothing was changed.
    pub dry_run: bool,
    /// Grace period applied, seconds.
    pub grace_seconds: u64,
    /// Blocks no registered image uses.
    pub unreferenced_blocks: u64,
    /// Blocks marked in this run (first seen unreferenced now).
    pub marked_blocks: u64,
    /// Blocks deleted (would be, with `dry_run`).
    pub freed_blocks: u64,
    /// Bytes of block objects deleted (would be, with `dry_run`).
    pub freed_bytes: u64,
    /// Unreferenced blocks kept because their mark is younger than the grace period or a
    /// client confirmed them since.
    pub kept_blocks: u64,
    /// Wall time of the collection.
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

/// What a store check found and did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckReport {
    /// Whether every block was re-hashed to its id.
    pub read_data: bool,
    /// Indexed blocks examined.
    pub checked_blocks: u64,
    /// Bytes read and hashed (0 without `read_data`).
    pub read_bytes: u64,
    /// Blocks found damaged, quarantined and dropped from the index.
    pub damaged: Vec<DamagedBlock>,
    /// Registered images that now lack blocks.
    pub damaged_images: Vec<DamagedImage>,
    /// Wall time of the check.
    pub wall_seconds: f64,
}

/// Options of a garbage collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// An unreferenced block is deleted only after it stayed unreferenced and unconfirmed
    /// for this long since gc first marked it (see docs/OPERATING.md). 0 frees at once:
    /// only when no push runs.
    pub grace_seconds: u64,
    /// Report, change nothing.
    pub dry_run: bool,
}

/// How the server's 404 for an absent sealed recipe begins (API.md).
pub const NO_SEALED_RECIPE: &str = "no sealed recipe";

/// Default grace period: a day, as restic/rustic users expect of a shared repository.
pub const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;

/// A store that can also be operated. Unsupported calls return [`StoreError::Other`].
pub trait AdminStore: BlockStore {
    /// Registered images with their figures, by name.
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError>;
    /// Unregisters an image (and drops its sealed recipe). Unknown name → `Ok(false)`.
    fn forget(&self, name: &str) -> Result<bool, StoreError>;
    /// Collects unreferenced blocks.
    fn gc(&self, opts: GcOptions) -> Result<GcReport, StoreError>;
    /// Verifies every indexed block (size; with `read_data` its hash), quarantining the
    /// damaged ones so the next push re-uploads them.
    fn check(&self, read_data: bool) -> Result<CheckReport, StoreError>;
    /// Keeps a sealed recipe under `name` (opaque bytes: the store never sees a key).
    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError>;
    /// The sealed recipe kept under `name`, if any.
    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// `images/NAME`-style URL with the name as one escaped path segment.
fn named_url(
    store: &crate::store::http::HttpStore,
    prefix: &str,
    name: &str,
) -> Result<reqwest::Url, StoreError> {
    let mut url =
        reqwest::Url::parse(&store.url(prefix)).map_err(|e| store.protocol(e.to_string()))?;
    url.path_segments_mut()
        .map_err(|_| store.protocol("store address cannot take a path"))?
        .pop_if_empty()
        .push(name);
    Ok(url)
}

fn json_reply<T: serde::de::DeserializeOwned>(
    store: &crate::store::http::HttpStore,
    resp: reqwest::blocking::Response,
) -> Result<T, StoreError> {
    let body = store.body(resp)?;
    serde_json::from_slice(&body).map_err(|e| store.protocol(e.to_string()))
}

impl AdminStore for crate::store::http::HttpStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            images: Vec<ImageInfo>,
        }
        let resp = self.send(|c| c.get(self.url("images")))?;
        Ok(json_reply::<Reply>(self, resp)?.images)
    }

    fn forget(&self, name: &str) -> Result<bool, StoreError> {
        let url = named_url(self, "images/", name)?;
        #[derive(serde::Deserialize)]
        struct Reply {
            forgotten: bool,
        }
        let resp = self.send(|c| c.delete(url.clone()))?;
        Ok(json_reply::<Reply>(self, resp)?.forgotten)
    }

    fn gc(&self, opts: GcOptions) -> Result<GcReport, StoreError> {
        let url = format!(
            "{}?grace_seconds={}&dry_run={}",
            self.url("gc"),
            opts.grace_seconds,
            opts.dry_run
        );
        let resp = self.send(|c| c.post(&url))?;
        json_reply(self, resp)
    }

    fn check(&self, read_data: bool) -> Result<CheckReport, StoreError> {
        let url = format!("{}?read_data={read_data}", self.url("check"));
        let resp = self.send(|c| c.post(&url))?;
        json_reply(self, resp)
    }

    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let url = named_url(self, "recipes/", name)?;
        let body = bytes::Bytes::copy_from_slice(sealed);
        self.send(|c| c.put(url.clone()).body(body.clone()))?;
        Ok(())
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = named_url(self, "recipes/", name)?;
        match self.send(|c| c.get(url.clone())) {
            Ok(resp) => Ok(Some(self.body(resp)?.to_vec())),
            Err(StoreError::Other { reason, .. }) if reason.starts_with(NO_SEALED_RECIPE) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
