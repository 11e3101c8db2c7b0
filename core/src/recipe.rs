//! The recipe: how to rebuild an image from blocks. Versioned, compact, self-checking,
//! written and read as a stream.
//!
//! ```text
//! header (28 bytes)
//!  0  4  magic "BNSR"
//!  4  1  format version (1)
//!  5  1  chunker kind (1 = FastCDC 2020, 2 = fixed)
//!  6  1  block-object format version (1)
//!  7  1  source format (0 = raw, 1 = qcow2, 255 = other)
//!  8  4  chunker min, u32 LE
//! 12  4  chunker avg, u32 LE
//! 16  4  chunker max, u32 LE
//! 20  8  convergence fingerprint
//! entries, in image order, each opened by a LEB128 tag:
//!  0          end of entries
//!  1 len      hole of `len` bytes (LEB128)
//!  2 id key len  a block seen for the first time: 32-byte id, 32-byte key, LEB128 length;
//!             it takes the next index in the block table (0, 1, ...)
//!  3+i        the block with table index i again
//! trailer
//!  8  logical size, u64 LE (must equal the sum of all entry lengths)
//! 32  BLAKE3 of the whole logical image
//! 32  BLAKE3 of every byte before this field
//! ```
//! Offsets are implicit: entries are contiguous from 0. A repeated block costs one to
//! four bytes. Decoding never allocates on the strength of a length field alone.

use crate::chunk::{ChunkerKind, ChunkerParams};
use crate::id::{BlockId, BlockKey, ImageHash};
use std::collections::HashMap;
use std::io::{self, Read, Write};

/// Magic bytes opening every recipe.
pub const RECIPE_MAGIC: &[u8; 4] = b"BNSR";
/// Recipe format version written by this code.
pub const RECIPE_VERSION: u8 = 1;
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
    fn code(self) -> u8 {
        match self {
            SourceFormat::Raw => 0,
            SourceFormat::Qcow2 => 1,
            SourceFormat::Other => 255,
        }
    }
    fn from_code(c: u8) -> Self {
        match c {
            0 => SourceFormat::Raw,
            1 => SourceFormat::Qcow2,
            _ => SourceFormat::Other,
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
    pub fn serialize<S: serde::Serializer>(v: &[u8; 8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 8], D::Error> {
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
    /// Fixed facts about how the image was encoded.
    pub header: RecipeHeader,
    /// Size of the logical image.
    pub logical_size: u64,
    /// BLAKE3 of the logical image.
    pub image_hash: ImageHash,
    /// Distinct blocks in order of first use.
    pub blocks: Vec<BlockRef>,
    /// The image, run by run.
    pub extents: Vec<Extent>,
}

/// Why a recipe was refused.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Not a recipe at all.
    #[error("not a bonsai recipe (bad magic)")]
    BadMagic,
    /// From a newer (or unknown) format.
    #[error("unsupported recipe format version {0} (this bonsai reads version {RECIPE_VERSION})")]
    UnsupportedVersion(u8),
    /// Ends before its trailer: an interrupted copy.
    #[error("recipe is truncated (ends at byte {0})")]
    Truncated(u64),
    /// Bytes changed since it was written.
    #[error("recipe is corrupt: checksum mismatch")]
    ChecksumMismatch,
    /// Structurally invalid: corrupt or not written by bonsai.
    #[error("recipe is corrupt at byte {offset}: {what}")]
    Malformed {
        /// Byte offset where the problem was found.
        offset: u64,
        /// What was wrong.
        what: String,
    },
    /// The underlying reader or writer failed.
    #[error("recipe i/o: {0}")]
    Io(#[from] io::Error),
}

// ---- writing ---------------------------------------------------------------------------

struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }
    fn varint(&mut self, mut v: u64) -> io::Result<()> {
        let mut buf = [0u8; 10];
        let mut n = 0;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                buf[n] = byte;
                n += 1;
                break;
            }
            buf[n] = byte | 0x80;
            n += 1;
        }
        self.put(&buf[..n])
    }
}

/// Writes a recipe as the image is chunked; remembers which blocks it has seen so repeats
/// cost one small entry. Adjacent holes are merged.
pub struct RecipeWriter<W: Write> {
    out: HashingWriter<W>,
    index: HashMap<BlockKey, u32>,
    pending_hole: u64,
    written: u64,
}

impl<W: Write> RecipeWriter<W> {
    /// Starts a recipe: writes the header.
    pub fn new(inner: W, header: &RecipeHeader) -> io::Result<Self> {
        let mut out = HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
        };
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(RECIPE_MAGIC);
        h[4] = RECIPE_VERSION;
        h[5] = header.chunker.kind.code();
        h[6] = header.object_version;
        h[7] = header.source_format.code();
        h[8..12].copy_from_slice(&header.chunker.min.to_le_bytes());
        h[12..16].copy_from_slice(&header.chunker.avg.to_le_bytes());
        h[16..20].copy_from_slice(&header.chunker.max.to_le_bytes());
        h[20..28].copy_from_slice(&header.fingerprint);
        out.put(&h)?;
        Ok(RecipeWriter {
            out,
            index: HashMap::new(),
            pending_hole: 0,
            written: 0,
        })
    }

    /// Table index of a block already written, by key (a key determines its block).
    pub fn index_of(&self, key: &BlockKey) -> Option<u32> {
        self.index.get(key).copied()
    }

    /// Number of distinct blocks so far.
    pub fn distinct_blocks(&self) -> usize {
        self.index.len()
    }

    /// Logical bytes covered so far.
    pub fn logical_bytes(&self) -> u64 {
        self.written + self.pending_hole
    }

    /// Appends `len` zero bytes.
    pub fn hole(&mut self, len: u64) {
        self.pending_hole += len;
    }

    fn flush_hole(&mut self) -> io::Result<()> {
        if self.pending_hole > 0 {
            self.out.varint(1)?;
            self.out.varint(self.pending_hole)?;
            self.written += self.pending_hole;
            self.pending_hole = 0;
        }
        Ok(())
    }

    /// Appends a block; returns true if this is its first use in the image.
    pub fn block(&mut self, id: &BlockId, key: &BlockKey, len: u32) -> io::Result<bool> {
        self.flush_hole()?;
        self.written += len as u64;
        if let Some(i) = self.index.get(key) {
            let tag = 3 + *i as u64;
            self.out.varint(tag)?;
            return Ok(false);
        }
        let i = self.index.len() as u32;
        self.index.insert(*key, i);
        self.out.varint(2)?;
        self.out.put(id.as_bytes())?;
        self.out.put(key.as_bytes())?;
        self.out.varint(len as u64)?;
        Ok(true)
    }

    /// Writes the trailer and returns the inner writer. `logical_size` must equal the
    /// bytes appended; a mismatch is an error rather than a recipe that lies.
    pub fn finish(mut self, logical_size: u64, image_hash: &ImageHash) -> io::Result<W> {
        self.flush_hole()?;
        if logical_size != self.written {
            return Err(io::Error::other(format!(
                "recipe covers {} bytes but the image has {logical_size}",
                self.written
            )));
        }
        self.out.varint(0)?;
        self.out.put(&logical_size.to_le_bytes())?;
        self.out.put(image_hash.as_bytes())?;
        let sum = self.out.hasher.finalize();
        self.out.inner.write_all(sum.as_bytes())?;
        self.out.inner.flush()?;
        Ok(self.out.inner)
    }
}

// ---- reading ---------------------------------------------------------------------------

struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    pos: u64,
}

impl<R: Read> HashingReader<R> {
    fn exact(&mut self, out: &mut [u8]) -> Result<(), RecipeError> {
        self.raw_exact(out)?;
        self.hasher.update(out);
        Ok(())
    }
    fn raw_exact(&mut self, out: &mut [u8]) -> Result<(), RecipeError> {
        let mut got = 0;
        while got < out.len() {
            match self.inner.read(&mut out[got..]) {
                Ok(0) => return Err(RecipeError::Truncated(self.pos + got as u64)),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.pos += out.len() as u64;
        Ok(())
    }
    fn varint(&mut self) -> Result<u64, RecipeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..70).step_by(7) {
            let mut b = [0u8; 1];
            self.exact(&mut b)?;
            if shift == 63 && b[0] > 1 {
                break;
            }
            v |= ((b[0] & 0x7f) as u64) << shift;
            if b[0] & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecipeError::Malformed {
            offset: start,
            what: "number too long".into(),
        })
    }
}

impl Recipe {
    /// Reads and fully validates a recipe: checksum, structure, and that the extents sum
    /// to the logical size. Memory grows with the recipe's real content only.
    pub fn read_from(reader: impl Read) -> Result<Recipe, RecipeError> {
        let mut r = HashingReader {
            inner: reader,
            hasher: blake3::Hasher::new(),
            pos: 0,
        };
        let mut h = [0u8; HEADER_LEN];
        // Magic and version first, so a short file of the wrong kind says so.
        r.exact(&mut h[..5]).map_err(|e| match e {
            RecipeError::Truncated(_) => RecipeError::BadMagic,
            e => e,
        })?;
        if &h[..4] != RECIPE_MAGIC {
            return Err(RecipeError::BadMagic);
        }
        if h[4] != RECIPE_VERSION {
            return Err(RecipeError::UnsupportedVersion(h[4]));
        }
        r.exact(&mut h[5..])?;
        let bad = |offset: u64, what: &str| RecipeError::Malformed {
            offset,
            what: what.to_string(),
        };
        let kind = ChunkerKind::from_code(h[5]).ok_or_else(|| bad(5, "unknown chunker"))?;
        let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
        let chunker = ChunkerParams {
            kind,
            min: u32_at(8),
            avg: u32_at(12),
            max: u32_at(16),
        };
        chunker.validate().map_err(|e| bad(8, &e.to_string()))?;
        if h[6] != crate::codec::OBJECT_VERSION {
            return Err(bad(6, &format!("unknown block-object version {}", h[6])));
        }
        let header = RecipeHeader {
            chunker,
            object_version: h[6],
            source_format: SourceFormat::from_code(h[7]),
            fingerprint: h[20..28].try_into().expect("8 bytes"),
        };
        let mut blocks: Vec<BlockRef> = Vec::new();
        let mut extents: Vec<Extent> = Vec::new();
        let mut total: u64 = 0;
        loop {
            let at = r.pos;
            let tag = r.varint()?;
            let len = match tag {
                0 => break,
                1 => {
                    let len = r.varint()?;
                    if len == 0 {
                        return Err(bad(at, "empty hole"));
                    }
                    if matches!(extents.last(), Some(Extent::Hole { .. })) {
                        return Err(bad(at, "two holes in a row"));
                    }
                    extents.push(Extent::Hole { len });
                    len
                }
                2 => {
                    let mut id = [0u8; 32];
                    let mut key = [0u8; 32];
                    r.exact(&mut id)?;
                    r.exact(&mut key)?;
                    let len = r.varint()?;
                    if len == 0 || len > chunker.max as u64 {
                        return Err(bad(at, &format!("block length {len} out of range")));
                    }
                    if blocks.len() >= u32::MAX as usize {
                        return Err(bad(at, "too many blocks"));
                    }
                    extents.push(Extent::Block {
                        index: blocks.len() as u32,
                    });
                    blocks.push(BlockRef {
                        id: BlockId(id),
                        key: BlockKey(key),
                        len: len as u32,
                    });
                    len
                }
                t => {
                    let index = t - 3;
                    let b = blocks
                        .get(index as usize)
                        .ok_or_else(|| bad(at, &format!("reference to unknown block {index}")))?;
                    extents.push(Extent::Block {
                        index: index as u32,
                    });
                    b.len as u64
                }
            };
            total = total
                .checked_add(len)
                .ok_or_else(|| bad(at, "image size overflows"))?;
        }
        let mut size = [0u8; 8];
        r.exact(&mut size)?;
        let logical_size = u64::from_le_bytes(size);
        let mut hash = [0u8; 32];
        r.exact(&mut hash)?;
        let expected = r.hasher.finalize();
        let mut sum = [0u8; 32];
        r.raw_exact(&mut sum)?;
        if sum != *expected.as_bytes() {
            return Err(RecipeError::ChecksumMismatch);
        }
        let end = r.pos;
        let mut extra = [0u8; 1];
        if r.inner.read(&mut extra)? != 0 {
            return Err(bad(end, "trailing bytes after the checksum"));
        }
        if total != logical_size {
            return Err(bad(
                end,
                &format!("extents cover {total} bytes but the image has {logical_size}"),
            ));
        }
        Ok(Recipe {
            header,
            logical_size,
            image_hash: ImageHash(hash),
            blocks,
            extents,
        })
    }

    /// Reads a recipe file.
    pub fn open(path: &std::path::Path) -> Result<Recipe, RecipeError> {
        let f = std::fs::File::open(path)?;
        Recipe::read_from(io::BufReader::with_capacity(1 << 20, f))
    }

    /// Encodes this recipe (the same bytes [`RecipeWriter`] produced for it).
    pub fn write_to<W: Write>(&self, w: W) -> io::Result<W> {
        let mut out = RecipeWriter::new(w, &self.header)?;
        for e in &self.extents {
            match *e {
                Extent::Hole { len } => out.hole(len),
                Extent::Block { index } => {
                    let b = &self.blocks[index as usize];
                    out.block(&b.id, &b.key, b.len)?;
                }
            }
        }
        out.finish(self.logical_size, &self.image_hash)
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

    /// The human/tool rendering used by `bonsai recipe show --json`.
    pub fn to_json(&self) -> serde_json::Value {
        let extents: Vec<serde_json::Value> = self
            .extents_with_offsets()
            .map(|(offset, length, e)| match e {
                Extent::Hole { .. } => {
                    serde_json::json!({"offset": offset, "length": length, "hole": true})
                }
                Extent::Block { index } => {
                    let b = &self.blocks[*index as usize];
                    serde_json::json!({"offset": offset, "length": length, "id": b.id, "key": b.key})
                }
            })
            .collect();
        serde_json::json!({
            "format_version": RECIPE_VERSION,
            "header": self.header,
            "logical_size": self.logical_size,
            "image_hash": self.image_hash,
            "distinct_blocks": self.blocks.len(),
            "extents": extents,
        })
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

    fn sample() -> Vec<u8> {
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        let a = (BlockId([1; 32]), BlockKey([2; 32]));
        let b = (BlockId([3; 32]), BlockKey([4; 32]));
        assert!(w.block(&a.0, &a.1, 5000).unwrap());
        w.hole(100);
        w.hole(28);
        assert!(w.block(&b.0, &b.1, 3000).unwrap());
        assert!(!w.block(&a.0, &a.1, 5000).unwrap());
        w.finish(13128, &ImageHash([5; 32])).unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let r = Recipe::read_from(&bytes[..]).unwrap();
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

    #[test]
    fn every_flipped_bit_is_refused() {
        let bytes = sample();
        for i in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                Recipe::read_from(&bad[..]).is_err(),
                "flip at byte {i} accepted"
            );
        }
        let mut bad = bytes.clone();
        bad[40] ^= 1; // inside the first id: structure intact, checksum catches it
        assert!(matches!(
            Recipe::read_from(&bad[..]),
            Err(RecipeError::ChecksumMismatch)
        ));
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
        let mut bytes = sample();
        bytes[4] = 2;
        assert!(matches!(
            Recipe::read_from(&bytes[..]),
            Err(RecipeError::UnsupportedVersion(2))
        ));
        let mut bytes = sample();
        bytes.push(0);
        assert!(matches!(
            Recipe::read_from(&bytes[..]),
            Err(RecipeError::Malformed { .. })
        ));
    }

    #[test]
    fn writer_refuses_size_mismatch() {
        let mut w = RecipeWriter::new(Vec::new(), &header()).unwrap();
        w.hole(10);
        assert!(w.finish(11, &ImageHash([0; 32])).is_err());
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
        fn mutations_never_panic_or_pass(pos in 0usize..200, val: u8) {
            let mut bytes = sample();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != val);
            bytes[pos] = val;
            prop_assert!(Recipe::read_from(&bytes[..]).is_err());
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
            let bytes = w.finish(total, &ImageHash([1; 32])).unwrap();
            let r = Recipe::read_from(&bytes[..]).unwrap();
            prop_assert_eq!(r.logical_size, total);
            prop_assert_eq!(r.write_to(Vec::new()).unwrap(), bytes);
        }
    }
}
