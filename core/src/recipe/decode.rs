//! Reading recipes: exactly as strict as the writer. Every rule the writer follows is
//! checked here, so a recipe has one encoding and a re-encoded recipe is byte-identical.
//!
//! Refusal order (the first failing rule is the error): magic, version, the header's
//! fields in byte order (chunker kind, block-object version, source format, chunker
//! parameters), each entry as it is read (number encoding, then the entry's rules), the
//! trailer's presence, the file checksum, trailing bytes, the size sum, and for version 2
//! the image hash over the extents. Decoding never allocates on the strength of a length
//! field: tables grow only with entries actually read.

use super::hash::ExtentHasher;
use super::{
    BlockRef, Extent, Fault, Recipe, RecipeError, RecipeHeader, SourceFormat, HEADER_LEN,
    RECIPE_MAGIC, RECIPE_VERSION,
};
use crate::chunk::{ChunkerKind, ChunkerParams};
use crate::id::{BlockId, BlockKey, ImageHash};
use std::collections::HashMap;
use std::io::{self, Read};

/// A reader that counts its position and feeds the file checksum.
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

    /// Unsigned LEB128 in its shortest form: a last byte of zero (after the first) is an
    /// overlong encoding, and more than 64 bits is refused.
    fn varint(&mut self) -> Result<u64, RecipeError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for i in 0..10 {
            let mut b = [0u8; 1];
            self.exact(&mut b)?;
            let byte = b[0];
            if i == 9 && byte > 1 {
                return Err(malformed(start, Fault::NumberTooLarge));
            }
            v |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                if i > 0 && byte == 0 {
                    return Err(malformed(start, Fault::OverlongNumber));
                }
                return Ok(v);
            }
        }
        Err(malformed(start, Fault::NumberTooLarge))
    }
}

fn malformed(offset: u64, fault: Fault) -> RecipeError {
    RecipeError::Malformed { offset, fault }
}

fn read_header<R: Read>(r: &mut HashingReader<R>) -> Result<(u8, RecipeHeader), RecipeError> {
    let mut h = [0u8; HEADER_LEN];
    // Magic and version first, so a short file of the wrong kind says so.
    r.exact(&mut h[..5]).map_err(|e| match e {
        RecipeError::Truncated(_) => RecipeError::BadMagic,
        e => e,
    })?;
    if &h[..4] != RECIPE_MAGIC {
        return Err(RecipeError::BadMagic);
    }
    let version = h[4];
    if !(1..=RECIPE_VERSION).contains(&version) {
        return Err(RecipeError::UnsupportedVersion(version));
    }
    r.exact(&mut h[5..])?;
    let kind = ChunkerKind::from_code(h[5]).ok_or(malformed(5, Fault::UnknownChunker(h[5])))?;
    if h[6] != crate::codec::OBJECT_VERSION {
        return Err(malformed(6, Fault::UnknownObjectVersion(h[6])));
    }
    let source_format =
        SourceFormat::from_code(h[7]).ok_or(malformed(7, Fault::UnknownSourceFormat(h[7])))?;
    let u32_at = |i: usize| u32::from_le_bytes(h[i..i + 4].try_into().expect("4 bytes"));
    let chunker = ChunkerParams {
        kind,
        min: u32_at(8),
        avg: u32_at(12),
        max: u32_at(16),
    };
    chunker
        .validate()
        .map_err(|e| malformed(8, Fault::ChunkerParams(e)))?;
    let header = RecipeHeader {
        chunker,
        object_version: h[6],
        source_format,
        fingerprint: h[20..28].try_into().expect("8 bytes"),
    };
    Ok((version, header))
}

/// The entries as read so far.
struct Body {
    blocks: Vec<BlockRef>,
    keys: HashMap<BlockKey, u32>,
    extents: Vec<Extent>,
    total: u64,
    hasher: ExtentHasher,
}

impl Body {
    fn hole<R: Read>(&mut self, r: &mut HashingReader<R>, at: u64) -> Result<u64, RecipeError> {
        let len = r.varint()?;
        if len == 0 {
            return Err(malformed(at, Fault::EmptyHole));
        }
        if matches!(self.extents.last(), Some(Extent::Hole { .. })) {
            return Err(malformed(at, Fault::AdjacentHoles));
        }
        self.extents.push(Extent::Hole { len });
        self.hasher.hole(len);
        Ok(len)
    }

    fn new_block<R: Read>(
        &mut self,
        r: &mut HashingReader<R>,
        at: u64,
        max: u32,
    ) -> Result<u64, RecipeError> {
        let mut id = [0u8; 32];
        let mut key = [0u8; 32];
        r.exact(&mut id)?;
        r.exact(&mut key)?;
        let len = r.varint()?;
        if len == 0 || len > max as u64 {
            return Err(malformed(at, Fault::BlockLength { len, max }));
        }
        let key = BlockKey(key);
        let index = u32::try_from(self.blocks.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or(malformed(at, Fault::TooManyBlocks))?;
        if self.keys.insert(key, index).is_some() {
            return Err(malformed(at, Fault::RepeatedKey));
        }
        self.extents.push(Extent::Block { index });
        self.blocks.push(BlockRef {
            id: BlockId(id),
            key,
            len: len as u32,
        });
        self.hasher.block(len, &key);
        Ok(len)
    }

    fn repeat(&mut self, at: u64, index: u64) -> Result<u64, RecipeError> {
        let b = self
            .blocks
            .get(index as usize)
            .ok_or(malformed(at, Fault::UnknownBlock(index)))?;
        self.hasher.block(b.len as u64, &b.key);
        self.extents.push(Extent::Block {
            index: index as u32,
        });
        Ok(b.len as u64)
    }
}

fn read_entries<R: Read>(
    r: &mut HashingReader<R>,
    chunker: &ChunkerParams,
) -> Result<Body, RecipeError> {
    let mut body = Body {
        blocks: Vec::new(),
        keys: HashMap::new(),
        extents: Vec::new(),
        total: 0,
        hasher: ExtentHasher::new(chunker),
    };
    loop {
        let at = r.pos;
        let len = match r.varint()? {
            0 => return Ok(body),
            1 => body.hole(r, at)?,
            2 => body.new_block(r, at, chunker.max)?,
            t => body.repeat(at, t - 3)?,
        };
        body.total = body
            .total
            .checked_add(len)
            .ok_or(malformed(at, Fault::SizeOverflow))?;
    }
}

/// Reads and fully validates a recipe of either version; see the module's refusal order.
pub(super) fn read(reader: impl Read) -> Result<Recipe, RecipeError> {
    let mut r = HashingReader {
        inner: reader,
        hasher: blake3::Hasher::new(),
        pos: 0,
    };
    let (version, header) = read_header(&mut r)?;
    let body = read_entries(&mut r, &header.chunker)?;
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
    if r.inner.read(&mut [0u8; 1])? != 0 {
        return Err(malformed(end, Fault::TrailingBytes));
    }
    if body.total != logical_size {
        let fault = Fault::SizeMismatch {
            extents: body.total,
            logical: logical_size,
        };
        return Err(malformed(end, fault));
    }
    let image_hash = ImageHash(hash);
    if version >= 2 && body.hasher.finish() != image_hash {
        return Err(RecipeError::ExtentsHashMismatch);
    }
    Ok(Recipe {
        version,
        header,
        logical_size,
        image_hash,
        blocks: body.blocks,
        extents: body.extents,
    })
}
