//! Writing recipes as the image is chunked: header first, entries in image order, then
//! the trailer. The writer enforces the same entry rules the reader checks, so every
//! recipe it finishes is one the reader accepts and re-encodes to the same bytes.

use super::hash::ExtentHasher;
use super::{RecipeHeader, HEADER_LEN, RECIPE_MAGIC, RECIPE_VERSION};
use crate::id::{BlockId, BlockKey, ImageHash};
use std::collections::HashMap;
use std::io::{self, Write};

/// A writer that feeds the file checksum with every byte it writes.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> HashingWriter<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.inner.write_all(bytes)
    }

    /// Unsigned LEB128, shortest form (the only form readers accept).
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

/// The 28-byte header as written for `version`.
pub(super) fn header_bytes(header: &RecipeHeader, version: u8) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..4].copy_from_slice(RECIPE_MAGIC);
    h[4] = version;
    h[5] = header.chunker.kind.code();
    h[6] = header.object_version;
    h[7] = header.source_format.code();
    h[8..12].copy_from_slice(&header.chunker.min.to_le_bytes());
    h[12..16].copy_from_slice(&header.chunker.avg.to_le_bytes());
    h[16..20].copy_from_slice(&header.chunker.max.to_le_bytes());
    h[20..28].copy_from_slice(&header.fingerprint);
    h
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Writes a recipe as the image is chunked; remembers which blocks it has seen so repeats
/// cost one small entry. Adjacent holes are merged. Version 2 (the default) computes the
/// image hash from the entries itself; version 1 needs the whole-image BLAKE3 from the
/// caller ([`RecipeWriter::new_v1`]).
pub struct RecipeWriter<W: Write> {
    out: HashingWriter<W>,
    version: u8,
    max_block: u32,
    index: HashMap<BlockKey, u32>,
    extents: ExtentHasher,
    pending_hole: u64,
    written: u64,
}

impl<W: Write> RecipeWriter<W> {
    /// Starts a version 2 recipe (image hash over the extents): writes the header.
    pub fn new(inner: W, header: &RecipeHeader) -> io::Result<Self> {
        Self::with_version(inner, header, RECIPE_VERSION)
    }

    /// Starts a version 1 recipe (whole-image BLAKE3, finished by
    /// [`finish_v1`](Self::finish_v1)); kept to re-encode v1 recipes and for tests.
    pub fn new_v1(inner: W, header: &RecipeHeader) -> io::Result<Self> {
        Self::with_version(inner, header, 1)
    }

    fn with_version(inner: W, header: &RecipeHeader, version: u8) -> io::Result<Self> {
        header
            .chunker
            .validate()
            .map_err(|e| invalid(e.to_string()))?;
        if header.object_version != crate::codec::OBJECT_VERSION {
            return Err(invalid(format!(
                "unknown block-object version {}",
                header.object_version
            )));
        }
        let mut out = HashingWriter {
            inner,
            hasher: blake3::Hasher::new(),
        };
        out.put(&header_bytes(header, version))?;
        Ok(RecipeWriter {
            out,
            version,
            max_block: header.chunker.max,
            index: HashMap::new(),
            extents: ExtentHasher::new(&header.chunker),
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
            self.extents.hole(self.pending_hole);
            self.written += self.pending_hole;
            self.pending_hole = 0;
        }
        Ok(())
    }

    /// Appends a block; returns true if this is its first use in the image. A block must
    /// hold 1 to `chunker.max` bytes, and a key met again must carry the same length.
    pub fn block(&mut self, id: &BlockId, key: &BlockKey, len: u32) -> io::Result<bool> {
        if len == 0 || len > self.max_block {
            return Err(invalid(format!(
                "block {id} of {len} bytes: blocks hold 1 to {} bytes",
                self.max_block
            )));
        }
        self.flush_hole()?;
        self.extents.block(len as u64, key);
        self.written += len as u64;
        if let Some(&i) = self.index.get(key) {
            self.out.varint(3 + i as u64)?;
            return Ok(false);
        }
        let i = u32::try_from(self.index.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or_else(|| invalid("more than 2^32 - 1 distinct blocks".into()))?;
        self.index.insert(*key, i);
        self.out.varint(2)?;
        self.out.put(id.as_bytes())?;
        self.out.put(key.as_bytes())?;
        self.out.varint(len as u64)?;
        Ok(true)
    }

    fn finish_with(
        mut self,
        logical_size: u64,
        hash: Option<&ImageHash>,
    ) -> io::Result<(W, ImageHash)> {
        self.flush_hole()?;
        if logical_size != self.written {
            return Err(io::Error::other(format!(
                "recipe covers {} bytes but the image has {logical_size}",
                self.written
            )));
        }
        let hash = match hash {
            Some(h) => *h,
            None => self.extents.finish(),
        };
        self.out.varint(0)?;
        self.out.put(&logical_size.to_le_bytes())?;
        self.out.put(hash.as_bytes())?;
        let sum = self.out.hasher.finalize();
        self.out.inner.write_all(sum.as_bytes())?;
        self.out.inner.flush()?;
        Ok((self.out.inner, hash))
    }

    /// Writes the trailer of a version 2 recipe and returns the inner writer and the image
    /// hash it computed over the extents. `logical_size` must equal the bytes appended; a
    /// mismatch is an error rather than a recipe that lies.
    pub fn finish(self, logical_size: u64) -> io::Result<(W, ImageHash)> {
        if self.version != RECIPE_VERSION {
            return Err(invalid(
                "a version 1 recipe ends with the whole-image hash: use finish_v1".into(),
            ));
        }
        self.finish_with(logical_size, None)
    }

    /// Writes the trailer of a version 1 recipe with the caller's whole-image BLAKE3.
    pub fn finish_v1(self, logical_size: u64, image_hash: &ImageHash) -> io::Result<W> {
        if self.version != 1 {
            return Err(invalid(
                "a version 2 recipe computes its own image hash: use finish".into(),
            ));
        }
        Ok(self.finish_with(logical_size, Some(image_hash))?.0)
    }
}
