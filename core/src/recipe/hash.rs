//! The image hash of a version 2 recipe: BLAKE3 over the extents, not over the image bytes.
//!
//! Every block's key is a keyed BLAKE3 of its plaintext and pull checks each plaintext
//! against its key, so the list of (offset, length, key) for blocks and (offset, length)
//! for holes already pins every byte of the image. Hashing that list instead of the bytes
//! makes the image check cost nothing per hole, whatever the disk's virtual size.
//!
//! Canonical input (all integers little-endian), hashed with
//! BLAKE3-derive-key("bonsai 2026-11 recipe v2 image hash"):
//! ```text
//! chunker kind u8, min u32, avg u32, max u32
//! per extent, in image order, adjacent holes merged:
//!   hole:  0x01, offset u64, length u64
//!   block: 0x02, offset u64, length u64, key (32 bytes)
//! end:     0x00, logical size u64
//! ```
//! The hasher merges adjacent holes itself, so the hash depends only on the image's
//! content and its cut points, never on how a caller split its holes.

use crate::chunk::ChunkerParams;
use crate::id::{BlockKey, ImageHash};

/// BLAKE3 derive-key context of the v2 image hash; part of the format.
pub const EXTENTS_HASH_CONTEXT: &str = "bonsai 2026-11 recipe v2 image hash";

/// One entry of an image as the v2 hash sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtentEntry<'a> {
    /// `len` zero bytes.
    Hole(u64),
    /// A block of `len` bytes whose plaintext has this key.
    Block(u64, &'a BlockKey),
}

/// Streaming computation of the v2 image hash; the writer and the reader both use it, so
/// the two cannot disagree.
#[derive(Clone)]
pub struct ExtentHasher {
    hasher: blake3::Hasher,
    offset: u64,
    pending_hole: u64,
}

impl ExtentHasher {
    /// Starts the hash of an image cut with `chunker`.
    pub fn new(chunker: &ChunkerParams) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key(EXTENTS_HASH_CONTEXT);
        hasher.update(&[chunker.kind.code()]);
        for v in [chunker.min, chunker.avg, chunker.max] {
            hasher.update(&v.to_le_bytes());
        }
        ExtentHasher {
            hasher,
            offset: 0,
            pending_hole: 0,
        }
    }

    /// Adds `len` zero bytes (merged with a hole just before).
    pub fn hole(&mut self, len: u64) {
        self.pending_hole = self.pending_hole.saturating_add(len);
    }

    fn flush_hole(&mut self) {
        if self.pending_hole > 0 {
            self.hasher.update(&[1]);
            self.hasher.update(&self.offset.to_le_bytes());
            self.hasher.update(&self.pending_hole.to_le_bytes());
            self.offset = self.offset.saturating_add(self.pending_hole);
            self.pending_hole = 0;
        }
    }

    /// Adds a block of `len` bytes with this key.
    pub fn block(&mut self, len: u64, key: &BlockKey) {
        self.flush_hole();
        self.hasher.update(&[2]);
        self.hasher.update(&self.offset.to_le_bytes());
        self.hasher.update(&len.to_le_bytes());
        self.hasher.update(key.as_bytes());
        self.offset = self.offset.saturating_add(len);
    }

    /// Adds one entry.
    pub fn entry(&mut self, e: ExtentEntry<'_>) {
        match e {
            ExtentEntry::Hole(len) => self.hole(len),
            ExtentEntry::Block(len, key) => self.block(len, key),
        }
    }

    /// Bytes covered so far.
    pub fn logical_size(&self) -> u64 {
        self.offset.saturating_add(self.pending_hole)
    }

    /// The hash; the logical size is the sum of the entries' lengths.
    pub fn finish(mut self) -> ImageHash {
        self.flush_hole();
        self.hasher.update(&[0]);
        self.hasher.update(&self.offset.to_le_bytes());
        ImageHash(*self.hasher.finalize().as_bytes())
    }
}

/// The v2 image hash of an image cut with `chunker` into `entries`: a pure function of
/// the list, for engines and tools that check a recipe or build one themselves.
pub fn extents_hash<'a>(
    chunker: &ChunkerParams,
    entries: impl IntoIterator<Item = ExtentEntry<'a>>,
) -> ImageHash {
    let mut h = ExtentHasher::new(chunker);
    for e in entries {
        h.entry(e);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p() -> ChunkerParams {
        ChunkerParams::fastcdc(4096)
    }

    /// The canonical encoding written out by hand, for one hole and one block.
    #[test]
    fn matches_the_documented_encoding() {
        let key = BlockKey([7; 32]);
        let mut input = vec![1u8];
        for v in [1024u32, 4096, 16384] {
            input.extend(v.to_le_bytes());
        }
        input.push(1);
        input.extend(0u64.to_le_bytes());
        input.extend(300u64.to_le_bytes());
        input.push(2);
        input.extend(300u64.to_le_bytes());
        input.extend(5000u64.to_le_bytes());
        input.extend([7u8; 32]);
        input.push(0);
        input.extend(5300u64.to_le_bytes());
        let want = blake3::derive_key(EXTENTS_HASH_CONTEXT, &input);
        let got = extents_hash(
            &p(),
            [
                ExtentEntry::Hole(100),
                ExtentEntry::Hole(200),
                ExtentEntry::Block(5000, &key),
            ],
        );
        assert_eq!(got.0, want);
    }

    #[test]
    fn params_and_size_are_bound() {
        let key = BlockKey([1; 32]);
        let e = [ExtentEntry::Block(100, &key)];
        assert_ne!(
            extents_hash(&p(), e),
            extents_hash(&ChunkerParams::fastcdc(8192), e)
        );
        assert_ne!(
            extents_hash(&p(), e),
            extents_hash(&p(), [ExtentEntry::Block(100, &key), ExtentEntry::Hole(1)])
        );
        assert_ne!(
            extents_hash(&p(), []),
            extents_hash(&p(), [ExtentEntry::Hole(1)])
        );
    }

    proptest! {
        /// Splitting holes differently never changes the hash; moving any byte of the
        /// layout (a length, a key, a hole into a block) does.
        #[test]
        fn holes_merge_and_content_binds(items in proptest::collection::vec((any::<bool>(), 1u64..1 << 40, 0u8..4), 0..40), split in 1u64..1000) {
            let keys: Vec<BlockKey> = (0..4).map(|i| BlockKey([i; 32])).collect();
            let plain: Vec<ExtentEntry> = items.iter().map(|&(hole, len, k)| if hole {
                ExtentEntry::Hole(len)
            } else {
                ExtentEntry::Block(len, &keys[k as usize])
            }).collect();
            let mut split_holes = vec![];
            for e in &plain {
                match *e {
                    ExtentEntry::Hole(len) if len > split => {
                        split_holes.push(ExtentEntry::Hole(split));
                        split_holes.push(ExtentEntry::Hole(len - split));
                    }
                    e => split_holes.push(e),
                }
            }
            let h = extents_hash(&p(), plain.iter().copied());
            prop_assert_eq!(h, extents_hash(&p(), split_holes));
            if let Some(i) = plain.iter().position(|e| matches!(e, ExtentEntry::Block(..))) {
                let mut changed = plain.clone();
                if let ExtentEntry::Block(len, k) = changed[i] {
                    changed[i] = ExtentEntry::Block(len + 1, k);
                }
                prop_assert_ne!(h, extents_hash(&p(), changed.iter().copied()));
                if let ExtentEntry::Block(len, _) = plain[i] {
                    changed[i] = ExtentEntry::Hole(len);
                }
                prop_assert_ne!(h, extents_hash(&p(), changed));
            }
        }
    }
}
