//! The figures push, pull and analyze report. These structs ARE the `--json` contract
//! (DESIGN.md, "Contracts"): fields may be added, never renamed or removed.

use crate::id::{BlockKey, ImageHash};
use std::collections::HashSet;

/// What `bonsai push --json` prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PushReport {
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Bytes in all-zero chunks (holes; never stored).
    pub zero_bytes: u64,
    /// Non-zero chunks.
    pub chunks: u64,
    /// Distinct non-zero chunks within the image.
    pub unique_chunks: u64,
    /// Distinct chunks the store already had.
    pub known_chunks: u64,
    /// Chunks uploaded.
    pub new_chunks: u64,
    /// Plaintext bytes of the uploaded chunks.
    pub new_plain_bytes: u64,
    /// Bytes of block objects uploaded.
    pub sent_bytes: u64,
    /// `logical_bytes / sent_bytes`; `null` when nothing was sent (infinite).
    pub dedup_ratio: Option<f64>,
    /// Wall-clock time of the push.
    pub wall_seconds: f64,
    /// Where the recipe was written.
    pub recipe: String,
    /// Non-zero bytes of the image.
    pub data_bytes: u64,
    /// Plaintext bytes of the distinct chunks.
    pub unique_bytes: u64,
    /// Size of the recipe file.
    pub recipe_bytes: u64,
    /// The recipe's image hash: for recipe v2 (written today) BLAKE3 over the extents
    /// (offset, length, key; docs/FORMAT.md), so holes cost nothing; for v1 it was the
    /// BLAKE3 of the raw image.
    pub image_hash: ImageHash,
    /// Name the manifest was registered under.
    pub name: String,
    /// Distinct chunks whose id came from the local key cache (not encoded).
    pub cache_hits: u64,
    /// Container format the image was read as (`raw`, `qcow2`, `vmdk`, ...).
    #[serde(default)]
    pub source_format: String,
    /// Every file read to produce the disk: the image, its data files and extents, then
    /// its backing chain, nearest first.
    #[serde(default)]
    pub files_read: Vec<String>,
}

/// What `bonsai pull --json` prints.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PullReport {
    /// Virtual size of the image.
    pub logical_bytes: u64,
    /// Blocks downloaded from the store.
    pub fetched_blocks: u64,
    /// Bytes of block objects downloaded.
    pub fetched_bytes: u64,
    /// Plaintext bytes taken from `--seed` files instead of the store.
    pub seeded_bytes: u64,
    /// Plaintext bytes found already written by an interrupted earlier pull.
    pub resumed_bytes: u64,
    /// True only when the bytes at OUT are exactly the image the recipe describes: every
    /// block extent read back matched its key, every hole read zero, and (recipe v1) the
    /// whole-image hash matched.
    pub verified: bool,
    /// Wall-clock time of the pull.
    pub wall_seconds: f64,
    /// Bytes left as holes.
    pub zero_bytes: u64,
    /// Distinct blocks in the recipe.
    pub unique_chunks: u64,
    /// Where the image was written.
    pub output: String,
}

/// Distinct counting over a stream of chunks, without a store: the core of `analyze`.
#[derive(Debug, Default)]
pub struct DedupCounter {
    seen: HashSet<BlockKey>,
    /// Chunks offered.
    pub chunks: u64,
    /// Bytes offered.
    pub bytes: u64,
    /// Distinct chunks.
    pub distinct_chunks: u64,
    /// Bytes of distinct chunks.
    pub distinct_bytes: u64,
}

impl DedupCounter {
    /// A counter that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one chunk; returns true if it was new.
    pub fn add(&mut self, key: BlockKey, len: u64) -> bool {
        self.chunks += 1;
        self.bytes += len;
        let new = self.seen.insert(key);
        if new {
            self.distinct_chunks += 1;
            self.distinct_bytes += len;
        }
        new
    }

    /// Whether a chunk was seen before (without counting it).
    pub fn contains(&self, key: &BlockKey) -> bool {
        self.seen.contains(key)
    }
}

/// Pure dedup figures for a stream of (key, length): (chunks, bytes, distinct, distinct bytes).
pub fn dedup_of(chunks: impl IntoIterator<Item = (BlockKey, u64)>) -> (u64, u64, u64, u64) {
    let mut c = DedupCounter::new();
    for (k, l) in chunks {
        c.add(k, l);
    }
    (c.chunks, c.bytes, c.distinct_chunks, c.distinct_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct() {
        let a = BlockKey([1; 32]);
        let b = BlockKey([2; 32]);
        assert_eq!(dedup_of([(a, 10), (b, 5), (a, 10)]), (3, 25, 2, 15));
        assert_eq!(dedup_of([]), (0, 0, 0, 0));
    }

    #[test]
    fn push_report_has_contract_keys() {
        let v = serde_json::to_value(PushReport::default()).unwrap();
        for k in [
            "logical_bytes",
            "zero_bytes",
            "chunks",
            "unique_chunks",
            "known_chunks",
            "new_chunks",
            "new_plain_bytes",
            "sent_bytes",
            "dedup_ratio",
            "wall_seconds",
            "recipe",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
        let v = serde_json::to_value(PullReport::default()).unwrap();
        for k in [
            "logical_bytes",
            "fetched_blocks",
            "fetched_bytes",
            "seeded_bytes",
            "verified",
            "wall_seconds",
        ] {
            assert!(v.get(k).is_some(), "{k}");
        }
    }
}
