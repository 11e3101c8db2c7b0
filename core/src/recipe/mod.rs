//! The recipe: how to rebuild an image from blocks. Versioned, compact, self-checking,
//! written and read as a stream. docs/FORMAT.md is the normative description; the byte
//! layout is repeated here beside the code that implements it.
//!
//! ```text
//! header (28 bytes)
//!  0  4  magic "BNSR"
//!  4  1  format version (2; 1 is still read)
//!  5  1  chunker kind (1 = FastCDC 2020, 2 = fixed)
//!  6  1  block-object format version (1)
//!  7  1  source format (0 = raw, 1 = qcow2, 255 = other)
//!  8  4  chunker min, u32 LE
//! 12  4  chunker avg, u32 LE
//! 16  4  chunker max, u32 LE
//! 20  8  convergence fingerprint
//! entries, in image order, each opened by a LEB128 tag (shortest form only):
//!  0          end of entries
//!  1 len      hole of `len` bytes (LEB128, > 0, never two holes in a row)
//!  2 id key len  a block seen for the first time: 32-byte id, 32-byte key, LEB128 length
//!             (1..=chunker max); it takes the next index in the block table (0, 1, ...)
//!  3+i        the block with table index i again
//! trailer
//!  8  logical size, u64 LE (must equal the sum of all entry lengths)
//! 32  image hash: v2 = BLAKE3 over the extents ([`hash`]); v1 = BLAKE3 of the whole image
//! 32  BLAKE3 of every byte before this field
//! ```
//! Offsets are implicit: entries are contiguous from 0. A repeated block costs one to
//! four bytes. [`decode`] lists the refusal order.
//!
//! Files: [`encode`] writes, [`decode`] reads, [`hash`] defines the v2 image hash,
//! `json.rs` renders `recipe show --json`.

mod decode;
mod encode;
pub mod hash;
mod json;

pub use encode::RecipeWriter;
pub use hash::{extents_hash, ExtentEntry, ExtentHasher};

use crate::chunk::ChunkerParams;
use crate::id::{BlockId, BlockKey, ImageHash};
use std::io::{self, Read, Write};

/// Magic bytes opening every recipe.
pub const RECIPE_MAGIC: &[u8; 4] = b"BNSR";
/// Recipe format version written by this code (the newest it reads; 1 is read too).
pub const RECIPE_VERSION: u8 = 2;
const HEADER_LEN: usize = 28;

/// What the image was read from; informational (ids depend only on the logical disk).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// A raw (possibly sparse) disk image or block device.
    Raw,
    /// A qcow2 image.
    Qcow2,
    /// Anything else.
    Other,
}

impl SourceFormat {
    /// Byte used in the recipe header; codes 2 to 254 are reserved for formats to come.
    pub fn code(self) -> u8 {
        match self {
            SourceFormat::Raw => 0,
            SourceFormat::Qcow2 => 1,
            SourceFormat::Other => 255,
        }
    }
    /// Inverse of [`SourceFormat::code`]; `None` for a code this version does not know.
    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(SourceFormat::Raw),
            1 => Some(SourceFormat::Qcow2),
            255 => Some(SourceFormat::Other),
            _ => None,
        }
    }
}

/// Everything known before the first chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecipeHeader {
    /// How the image was cut.
    pub chunker: ChunkerParams,
    /// Block-object format version of every block.
    pub object_version: u8,
    /// What the image was read from.
    pub source_format: SourceFormat,
    /// Fingerprint of the convergence secret ([`crate::Convergence::fingerprint`]).
    #[serde(with = "hex_array")]
    pub fingerprint: [u8; 8],
}

mod hex_array {
    pub(super) fn serialize<S: serde::Serializer>(v: &[u8; 8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 8], D::Error> {
        use serde::Deserialize;
        let s = String::deserialize(d)?;
        let mut out = [0u8; 8];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

/// One distinct block of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct BlockRef {
    /// Content address in the store.
    pub id: BlockId,
    /// Convergent key: decrypts and verifies the block.
    pub key: BlockKey,
    /// Plaintext length.
    pub len: u32,
}

/// One run of the image, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// `len` zero bytes, never stored.
    Hole {
        /// Length in bytes.
        len: u64,
    },
    /// The block at `index` in [`Recipe::blocks`].
    Block {
        /// Index into the block table.
        index: u32,
    },
}

/// A decoded recipe. Offsets are implicit; [`Recipe::extents_with_offsets`] supplies them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    /// Format version the recipe was written in (1 or 2); decides [`Recipe::image_check`].
    pub version: u8,
    /// Fixed facts about how the image was encoded.
    pub header: RecipeHeader,
    /// Size of the logical image.
    pub logical_size: u64,
    /// The trailer's image hash: over the extents (v2) or over the image bytes (v1).
    pub image_hash: ImageHash,
    /// Distinct blocks in order of first use.
    pub blocks: Vec<BlockRef>,
    /// The image, run by run.
    pub extents: Vec<Extent>,
}

/// What a puller must check, beside every block's key, for the image to count as verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageCheck {
    /// Version 1: BLAKE3 of the whole logical image, holes included (`b3sum` of the raw
    /// image). Costs a pass over every byte, zeros included.
    WholeImageBlake3(ImageHash),
    /// Version 2: the reader already checked this hash over the extents; a puller checks
    /// each block's plaintext against its key and each hole reads as zeros.
    Extents(ImageHash),
}

/// A structural fault inside a recipe, named so that tests and tools can tell them apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fault {
    /// Header byte 5 holds no known chunker.
    #[error("unknown chunker kind {0}")]
    UnknownChunker(u8),
    /// Header byte 6 holds a block-object version this bonsai does not read.
    #[error("unknown block-object version {0}")]
    UnknownObjectVersion(u8),
    /// Header byte 7 holds a source format this bonsai does not know.
    #[error("unknown source format code {0}")]
    UnknownSourceFormat(u8),
    /// The chunker parameters break a rule of docs/FORMAT.md.
    #[error("{0}")]
    ChunkerParams(crate::chunk::ChunkerParamsError),
    /// A LEB128 number not in its shortest form.
    #[error("number not in its shortest encoding")]
    OverlongNumber,
    /// A LEB128 number above 2^64 - 1.
    #[error("number exceeds 64 bits")]
    NumberTooLarge,
    /// A hole of length zero.
    #[error("empty hole")]
    EmptyHole,
    /// Two holes in a row (a writer merges them).
    #[error("two holes in a row")]
    AdjacentHoles,
    /// A block length outside 1..=chunker max.
    #[error("block length {len} outside 1..={max}")]
    BlockLength {
        /// Declared length.
        len: u64,
        /// The chunker's maximum.
        max: u32,
    },
    /// A first-use entry for a key already in the block table (a writer repeats it by index).
    #[error("block key already in the table")]
    RepeatedKey,
    /// A repeat of a table index not yet defined.
    #[error("reference to unknown block {0}")]
    UnknownBlock(u64),
    /// More than 2^32 - 1 distinct blocks.
    #[error("too many blocks")]
    TooManyBlocks,
    /// The lengths add up past 2^64 - 1.
    #[error("image size overflows")]
    SizeOverflow,
    /// The entries do not cover the logical size.
    #[error("extents cover {extents} bytes but the image has {logical}")]
    SizeMismatch {
        /// Sum of entry lengths.
        extents: u64,
        /// Logical size from the trailer.
        logical: u64,
    },
    /// Bytes after the checksum.
    #[error("trailing bytes after the checksum")]
    TrailingBytes,
}

/// Why a recipe was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Not a recipe at all.
    #[error("not a bonsai recipe (bad magic)")]
    BadMagic,
    /// From a newer (or unknown) format.
    #[error("unsupported recipe format version {0} (this bonsai reads versions 1 to {RECIPE_VERSION}; a newer bonsai may read it)")]
    UnsupportedVersion(u8),
    /// Ends before its trailer: an interrupted copy.
    #[error("recipe is truncated (ends at byte {0})")]
    Truncated(u64),
    /// Bytes changed since it was written.
    #[error("recipe is corrupt: checksum mismatch")]
    ChecksumMismatch,
    /// Structurally invalid: corrupt or not written by bonsai.
    #[error("recipe is corrupt at byte {offset}: {fault}")]
    Malformed {
        /// Byte offset where the problem was found.
        offset: u64,
        /// What was wrong.
        fault: Fault,
    },
    /// A version 2 recipe whose image hash is not the hash of its own extents: written by
    /// a faulty or hostile tool (the checksum matched).
    #[error("recipe is inconsistent: its image hash is not the hash of its extents")]
    ExtentsHashMismatch,
    /// The underlying reader or writer failed.
    #[error("recipe i/o: {0}")]
    Io(#[from] io::Error),
}

impl Recipe {
    /// Reads and fully validates a recipe (either version): structure, checksum, sizes, and
    /// for version 2 the image hash over the extents. Memory grows with the recipe's real
    /// content only.
    pub fn read_from(reader: impl Read) -> Result<Recipe, RecipeError> {
        decode::read(reader)
    }

    /// Reads a recipe file.
    pub fn open(path: &std::path::Path) -> Result<Recipe, RecipeError> {
        let f = std::fs::File::open(path)?;
        Recipe::read_from(io::BufReader::with_capacity(1 << 20, f))
    }

    /// Encodes this recipe in its own version: the bytes [`RecipeWriter`] produced for it.
    /// A version 2 recipe whose `image_hash` is not its extents' hash is refused.
    pub fn write_to<W: Write>(&self, w: W) -> io::Result<W> {
        let mut out = match self.version {
            1 => RecipeWriter::new_v1(w, &self.header)?,
            _ => RecipeWriter::new(w, &self.header)?,
        };
        for e in &self.extents {
            match *e {
                Extent::Hole { len } => out.hole(len),
                Extent::Block { index } => {
                    let b = &self.blocks[index as usize];
                    out.block(&b.id, &b.key, b.len)?;
                }
            }
        }
        if self.version == 1 {
            return out.finish_v1(self.logical_size, &self.image_hash);
        }
        let (w, hash) = out.finish(self.logical_size)?;
        if hash != self.image_hash {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "recipe image hash is not the hash of its extents",
            ));
        }
        Ok(w)
    }

    /// Which image check this recipe asks a puller for.
    pub fn image_check(&self) -> ImageCheck {
        match self.version {
            1 => ImageCheck::WholeImageBlake3(self.image_hash),
            _ => ImageCheck::Extents(self.image_hash),
        }
    }

    /// The v2 image hash of this recipe's extents, whatever its version (for a version 2
    /// recipe it equals `image_hash`; the reader checked that).
    pub fn extents_hash(&self) -> ImageHash {
        let entries = self.extents.iter().map(|e| match *e {
            Extent::Hole { len } => ExtentEntry::Hole(len),
            Extent::Block { index } => {
                let b = &self.blocks[index as usize];
                ExtentEntry::Block(b.len as u64, &b.key)
            }
        });
        extents_hash(&self.header.chunker, entries)
    }

    /// Extents with their offsets and lengths.
    pub fn extents_with_offsets(&self) -> impl Iterator<Item = (u64, u64, &Extent)> + '_ {
        let mut offset = 0u64;
        self.extents.iter().map(move |e| {
            let len = match e {
                Extent::Hole { len } => *len,
                Extent::Block { index } => self.blocks[*index as usize].len as u64,
            };
            let at = offset;
            offset += len;
            (at, len, e)
        })
    }

    /// Bytes of the image held in holes.
    pub fn hole_bytes(&self) -> u64 {
        self.extents
            .iter()
            .map(|e| match e {
                Extent::Hole { len } => *len,
                _ => 0,
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> RecipeHeader {
        RecipeHeader {
            chunker: ChunkerParams::fastcdc(4096),
            object_version: 1,
            source_format: SourceFormat::Raw,
            fingerprint: [9; 8],
        }
    }

    fn entries<W: Write>(w: &mut RecipeWriter<W>) {
        let a = (BlockId([1; 32]), BlockKey([2; 32]));
        let b = (BlockId([3; 32]), BlockKey([4; 32]));
        assert!(w.block(&a.0, &a.1, 5000).unwrap());
        w.hole(100);
        w.hole(28);
        assert!(w.block(&b.0, &b.1, 3000).unwrap());
        assert!(!w.block(&a.0, &a.1, 5000).unwrap());
    }

    fn sample() -> Vec<u8> {
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        entries(&mut w);
        w.finish(13128).unwrap().0
    }

    fn sample_v1() -> Vec<u8> {
        let mut w = RecipeWriter::new_v1(Vec::new(), &header()).unwrap();
        entries(&mut w);
        w.finish_v1(13128, &ImageHash([5; 32])).unwrap()
    }

    /// Rewrites the checksum so a crafted change reaches the rule behind it.
    fn reseal(bytes: &mut [u8]) {
        let n = bytes.len() - 32;
        let sum = blake3::hash(&bytes[..n]);
        bytes[n..].copy_from_slice(sum.as_bytes());
    }

    fn fault(bytes: &[u8]) -> Fault {
        match Recipe::read_from(bytes) {
            Err(RecipeError::Malformed { fault, .. }) => fault,
            other => panic!("expected a malformed recipe, got {other:?}"),
        }
    }

    #[test]
    fn round_trip_both_versions() {
        for (bytes, version) in [(sample(), 2), (sample_v1(), 1)] {
            let r = Recipe::read_from(&bytes[..]).unwrap();
            assert_eq!(r.version, version);
            assert_eq!(r.logical_size, 13128);
            assert_eq!(r.blocks.len(), 2);
            assert_eq!(
                r.extents,
                vec![
                    Extent::Block { index: 0 },
                    Extent::Hole { len: 128 },
                    Extent::Block { index: 1 },
                    Extent::Block { index: 0 }
                ]
            );
            let offs: Vec<u64> = r.extents_with_offsets().map(|(o, _, _)| o).collect();
            assert_eq!(offs, vec![0, 5000, 5128, 8128]);
            assert_eq!(r.write_to(Vec::new()).unwrap(), bytes);
            assert_eq!(r.hole_bytes(), 128);
        }
    }

    #[test]
    fn image_check_follows_the_version() {
        let v2 = Recipe::read_from(&sample()[..]).unwrap();
        assert_eq!(v2.image_check(), ImageCheck::Extents(v2.extents_hash()));
        let v1 = Recipe::read_from(&sample_v1()[..]).unwrap();
        assert_eq!(
            v1.image_check(),
            ImageCheck::WholeImageBlake3(ImageHash([5; 32]))
        );
        assert_eq!(v1.extents_hash(), v2.image_hash);
    }

    #[test]
    fn writer_computes_the_extents_hash() {
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        entries(&mut w);
        let (_, hash) = w.finish(13128).unwrap();
        let (k1, k2) = (BlockKey([2; 32]), BlockKey([4; 32]));
        let want = extents_hash(
            &header().chunker,
            [
                ExtentEntry::Block(5000, &k1),
                ExtentEntry::Hole(128),
                ExtentEntry::Block(3000, &k2),
                ExtentEntry::Block(5000, &k1),
            ],
        );
        assert_eq!(hash, want);
    }

    #[test]
    fn wrong_extents_hash_is_refused() {
        let mut bytes = sample();
        let at = bytes.len() - 64;
        bytes[at] ^= 1;
        reseal(&mut bytes);
        assert!(matches!(
            Recipe::read_from(&bytes[..]),
            Err(RecipeError::ExtentsHashMismatch)
        ));
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        for bytes in [sample(), sample_v1()] {
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut bad = bytes.clone();
                    bad[i] ^= 1 << bit;
                    assert!(
                        Recipe::read_from(&bad[..]).is_err(),
                        "flip of bit {bit} at byte {i} accepted"
                    );
                }
            }
            let mut bad = bytes.clone();
            bad[40] ^= 1; // inside the first id: structure intact, checksum catches it
            assert!(matches!(
                Recipe::read_from(&bad[..]),
                Err(RecipeError::ChecksumMismatch)
            ));
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample();
        for len in 5..bytes.len() {
            assert!(
                matches!(
                    Recipe::read_from(&bytes[..len]),
                    Err(RecipeError::Truncated(_))
                ),
                "truncation at {len}"
            );
        }
        assert!(matches!(
            Recipe::read_from(&bytes[..3]),
            Err(RecipeError::BadMagic)
        ));
    }

    #[test]
    fn unknown_version_and_trailing_bytes() {
        for v in [0u8, 3, 255] {
            let mut bytes = sample();
            bytes[4] = v;
            assert!(matches!(
                Recipe::read_from(&bytes[..]),
                Err(RecipeError::UnsupportedVersion(x)) if x == v
            ));
        }
        let mut bytes = sample();
        bytes.push(0);
        assert_eq!(fault(&bytes), Fault::TrailingBytes);
    }

    /// Builds a v2 recipe from raw entry bytes (after the header), with a correct trailer.
    fn crafted(header: [u8; HEADER_LEN], entries: &[u8], size: u64) -> Vec<u8> {
        let mut v = header.to_vec();
        v.extend_from_slice(entries);
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(&[0; 32]);
        v.extend_from_slice(&[0; 32]);
        reseal(&mut v);
        v
    }

    fn hdr() -> [u8; HEADER_LEN] {
        encode::header_bytes(&header(), RECIPE_VERSION)
    }

    #[test]
    fn overlong_and_oversized_numbers_are_refused() {
        // hole of 5 written as 0x85 0x00 instead of 0x05
        assert_eq!(
            fault(&crafted(hdr(), &[1, 0x85, 0x00, 0], 5)),
            Fault::OverlongNumber
        );
        // tag 0 written as 0x80 0x00
        assert_eq!(
            fault(&crafted(hdr(), &[0x80, 0x00], 0)),
            Fault::OverlongNumber
        );
        let mut big = vec![1u8];
        big.extend([0xff; 9]);
        big.push(0x02);
        assert_eq!(fault(&crafted(hdr(), &big, 0)), Fault::NumberTooLarge);
        let mut max = vec![1u8];
        max.extend([0xff; 9]);
        max.push(0x01);
        max.push(0);
        let r = Recipe::read_from(&crafted(hdr(), &max, u64::MAX)[..]);
        assert!(matches!(r, Err(RecipeError::ExtentsHashMismatch)), "{r:?}");
    }

    #[test]
    fn entry_rules() {
        assert_eq!(fault(&crafted(hdr(), &[1, 0, 0], 0)), Fault::EmptyHole);
        assert_eq!(
            fault(&crafted(hdr(), &[1, 5, 1, 5, 0], 10)),
            Fault::AdjacentHoles
        );
        assert_eq!(fault(&crafted(hdr(), &[3, 0], 0)), Fault::UnknownBlock(0));
        let block = |len: &[u8]| {
            let mut e = vec![2u8];
            e.extend([1; 32]);
            e.extend([2; 32]);
            e.extend(len);
            e
        };
        let mut e = block(&[0]);
        e.push(0);
        assert_eq!(
            fault(&crafted(hdr(), &e, 0)),
            Fault::BlockLength { len: 0, max: 16384 }
        );
        let mut e = block(&[0x81, 0x80, 0x01]); // 16385
        e.push(0);
        assert!(matches!(
            fault(&crafted(hdr(), &e, 16385)),
            Fault::BlockLength { len: 16385, .. }
        ));
        let mut e = block(&[10]);
        e.extend(block(&[10]));
        e.push(0);
        assert_eq!(fault(&crafted(hdr(), &e, 20)), Fault::RepeatedKey);
        let mut e = block(&[10]);
        e.push(0);
        assert_eq!(
            fault(&crafted(hdr(), &e, 11)),
            Fault::SizeMismatch {
                extents: 10,
                logical: 11
            }
        );
    }

    #[test]
    fn header_rules() {
        let mut h = hdr();
        h[5] = 9;
        assert_eq!(fault(&crafted(h, &[0], 0)), Fault::UnknownChunker(9));
        let mut h = hdr();
        h[6] = 2;
        assert_eq!(fault(&crafted(h, &[0], 0)), Fault::UnknownObjectVersion(2));
        let mut h = hdr();
        h[7] = 7;
        assert_eq!(fault(&crafted(h, &[0], 0)), Fault::UnknownSourceFormat(7));
        let mut h = hdr();
        h[8..12].copy_from_slice(&8192u32.to_le_bytes()); // min > avg
        assert!(matches!(
            fault(&crafted(h, &[0], 0)),
            Fault::ChunkerParams(_)
        ));
        // an empty image is a valid recipe
        let r = Recipe::read_from(
            &RecipeWriter::new(Vec::new(), &header())
                .unwrap()
                .finish(0)
                .unwrap()
                .0[..],
        )
        .unwrap();
        assert_eq!(r.logical_size, 0);
    }

    #[test]
    fn writer_refuses_what_readers_refuse() {
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        w.hole(10);
        assert!(w.finish(11).is_err());
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        assert!(w.block(&BlockId([1; 32]), &BlockKey([1; 32]), 0).is_err());
        assert!(w
            .block(&BlockId([1; 32]), &BlockKey([1; 32]), 16385)
            .is_err());
        let mut bad = header();
        bad.chunker.min = 1;
        assert!(RecipeWriter::new(Vec::new(), &bad).is_err());
        let v1 = RecipeWriter::new_v1(Vec::new(), &header()).unwrap();
        assert!(v1.finish(0).is_err());
        let v2 = RecipeWriter::new(Vec::new(), &header()).unwrap();
        assert!(v2.finish_v1(0, &ImageHash([0; 32])).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(mut data in proptest::collection::vec(any::<u8>(), 0..400), keep_header: bool) {
            if keep_header && data.len() >= 28 {
                let s = sample();
                data[..28].copy_from_slice(&s[..28]);
            }
            let _ = Recipe::read_from(&data[..]);
        }

        #[test]
        fn mutations_never_panic_or_pass(pos in 0usize..200, val: u8, v1: bool) {
            let mut bytes = if v1 { sample_v1() } else { sample() };
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != val);
            bytes[pos] = val;
            prop_assert!(Recipe::read_from(&bytes[..]).is_err());
        }

        /// Mutations with the checksum rewritten reach the structural rules: whatever is
        /// accepted re-encodes to the very same bytes (one encoding per recipe).
        #[test]
        fn resealed_mutations_are_refused_or_canonical(pos in 0usize..200, val: u8, v1: bool) {
            let mut bytes = if v1 { sample_v1() } else { sample() };
            let pos = pos % (bytes.len() - 32);
            bytes[pos] = val;
            reseal(&mut bytes);
            if let Ok(r) = Recipe::read_from(&bytes[..]) {
                prop_assert_eq!(r.write_to(Vec::new()).unwrap(), bytes);
            }
        }

        #[test]
        fn any_extent_list_round_trips(items in proptest::collection::vec((0u8..4, 1u32..4096), 0..60)) {
            let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
            let mut total = 0u64;
            for (kind, len) in &items {
                if *kind == 0 {
                    w.hole(*len as u64);
                    total += *len as u64;
                } else {
                    let b = *kind;
                    // the same key always carries the same length
                    let blen = 100 * b as u32;
                    w.block(&BlockId([b; 32]), &BlockKey([b; 32]), blen).unwrap();
                    total += blen as u64;
                }
            }
            let (bytes, hash) = w.finish(total).unwrap();
            let r = Recipe::read_from(&bytes[..]).unwrap();
            prop_assert_eq!(r.logical_size, total);
            prop_assert_eq!(r.image_hash, hash);
            prop_assert_eq!(r.write_to(Vec::new()).unwrap(), bytes);
        }
    }
}
