//! Chunks in batches, keyed on all cores: the one batching primitive that push, seed
//! scanning and analysis share.
//!
//! A [`DiskBatcher`] cuts a [`Disk`](crate::image::Disk) with the recipe's chunker —
//! known-zero runs become one hole piece without being read, so a thin disk costs its
//! data — and hands out [`ChunkBatch`]es of about [`BATCH_BYTES`] of non-zero data (or
//! [`BATCH_PIECES`] pieces), holes included as pieces without data. [`Batcher`] does the
//! same over a plain reader (every byte read and scanned). [`ChunkBatch::keys`] computes the convergent key of every data
//! piece in parallel. Batches bound memory whatever the image size, and give rayon enough
//! work per call to use every core; the size is one constant so the three users behave the
//! same.

use crate::chunk::{self, Chunker, ChunkerParams};
use crate::codec::Convergence;
use crate::id::BlockKey;
use crate::image::DiskReader;
use rayon::prelude::*;
use std::io::{self, Read};

/// Non-zero plaintext bytes per batch.
pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
/// Pieces (chunks and holes) per batch at most, so hole-heavy stretches stay bounded too.
pub const BATCH_PIECES: usize = 65_536;

/// One run of the image: a non-zero chunk, or zeros.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// Offset in the image.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// True for an all-zero run (a hole in the recipe).
    pub zero: bool,
}

/// Consecutive pieces of an image; the bytes of the non-zero ones packed in order.
#[derive(Debug, Default)]
pub struct ChunkBatch {
    /// The pieces, in image order.
    pub pieces: Vec<Piece>,
    data: Vec<u8>,
    /// Start of each data piece's bytes in `data`.
    starts: Vec<usize>,
}

impl ChunkBatch {
    fn with_capacity(bytes: usize) -> Self {
        ChunkBatch {
            data: Vec::with_capacity(bytes),
            ..Default::default()
        }
    }

    fn push(&mut self, offset: u64, bytes: &[u8], zero: bool) {
        if zero {
            return self.push_hole(offset, bytes.len() as u64);
        }
        self.pieces.push(Piece {
            offset,
            len: bytes.len() as u64,
            zero,
        });
        self.starts.push(self.data.len());
        self.data.extend_from_slice(bytes);
    }

    /// Appends `len` zeros, merged into a hole just before.
    fn push_hole(&mut self, offset: u64, len: u64) {
        match self.pieces.last_mut() {
            Some(p) if p.zero && p.offset + p.len == offset => p.len += len,
            _ => self.pieces.push(Piece {
                offset,
                len,
                zero: true,
            }),
        }
    }

    /// Number of non-zero pieces.
    pub fn data_count(&self) -> usize {
        self.starts.len()
    }

    /// The bytes of the `i`-th non-zero piece.
    pub fn data(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).copied().unwrap_or(self.data.len());
        &self.data[self.starts[i]..end]
    }

    /// Bytes of non-zero data held.
    pub fn data_bytes(&self) -> usize {
        self.data.len()
    }

    /// Logical bytes the batch covers (data and holes).
    pub fn logical_bytes(&self) -> u64 {
        self.pieces.iter().map(|p| p.len).sum()
    }

    /// The key of every non-zero piece, in order, computed on all cores.
    pub fn keys(&self, conv: &Convergence) -> Vec<BlockKey> {
        (0..self.data_count())
            .into_par_iter()
            .map(|i| conv.key_for(self.data(i)))
            .collect()
    }

    fn is_full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.pieces.len() >= BATCH_PIECES
    }
}

/// Cuts a reader into batches of chunks.
pub struct Batcher<R> {
    chunker: Chunker<R>,
    max_chunk: usize,
}

impl<R: Read> Batcher<R> {
    /// Batches over `reader` cut with `params`.
    pub fn new(reader: R, params: ChunkerParams) -> Self {
        Batcher {
            chunker: Chunker::new(reader, params),
            max_chunk: params.max as usize,
        }
    }

    /// The next batch, or `None` at the end of the image.
    pub fn next_batch(&mut self) -> io::Result<Option<ChunkBatch>> {
        let mut batch = ChunkBatch::with_capacity(BATCH_BYTES + self.max_chunk);
        while let Some(c) = self.chunker.next_chunk()? {
            batch.push(c.offset, c.data, c.is_zero());
            if batch.is_full() {
                break;
            }
        }
        Ok((!batch.pieces.is_empty()).then_some(batch))
    }
}

/// Cuts a disk into batches, its known holes without reading them.
pub struct DiskBatcher<'a> {
    chunker: Chunker<DiskReader<'a>>,
    max_chunk: usize,
}

impl<'a> DiskBatcher<'a> {
    /// Batches over the disk behind `reader`, cut with `params`.
    pub fn new(reader: DiskReader<'a>, params: ChunkerParams) -> Self {
        DiskBatcher {
            chunker: Chunker::over_disk(reader, params),
            max_chunk: params.max as usize,
        }
    }

    /// The next batch, or `None` at the end of the disk.
    pub fn next_batch(&mut self) -> io::Result<Option<ChunkBatch>> {
        let mut batch = ChunkBatch::with_capacity(BATCH_BYTES + self.max_chunk);
        while let Some(p) = self.chunker.next_piece()? {
            match p {
                chunk::Piece::Hole { offset, len } => batch.push_hole(offset, len),
                chunk::Piece::Data { offset, data } => batch.push(offset, data, false),
            }
            if batch.is_full() {
                break;
            }
        }
        Ok((!batch.pieces.is_empty()).then_some(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_the_image_and_key_every_chunk() {
        let mut x = 7u64;
        let mut image: Vec<u8> = (0..3_000_000)
            .map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                (x >> 57) as u8
            })
            .collect();
        image[1_000_000..2_000_000].fill(0);
        let params = ChunkerParams::fastcdc(16 * 1024);
        let conv = Convergence::public();
        let mut b = Batcher::new(&image[..], params);
        let mut pos = 0u64;
        let mut holes = 0u64;
        while let Some(batch) = b.next_batch().unwrap() {
            let keys = batch.keys(&conv);
            assert_eq!(keys.len(), batch.data_count());
            let mut k = 0;
            for p in &batch.pieces {
                assert_eq!(p.offset, pos);
                let bytes = &image[p.offset as usize..(p.offset + p.len) as usize];
                if p.zero {
                    assert!(bytes.iter().all(|&b| b == 0));
                    holes += p.len;
                } else {
                    assert_eq!(batch.data(k), bytes);
                    assert_eq!(keys[k], conv.key_for(bytes));
                    k += 1;
                }
                pos += p.len;
            }
        }
        assert_eq!(pos, image.len() as u64);
        assert!(holes > 900_000, "{holes}");
    }

    /// Over a disk, the batches describe the same image as over its bytes (holes merged),
    /// and a huge hole is one piece.
    #[test]
    fn disk_batches_match_reader_batches() {
        use crate::image::RawDisk;
        use std::os::unix::fs::FileExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(1 << 30).unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8 | 1).collect();
        f.write_all_at(&data, 5 << 20).unwrap();
        f.write_all_at(&data, (1 << 30) - 300_000).unwrap();
        let params = ChunkerParams::fastcdc(16 * 1024);
        let disk = RawDisk::new(std::fs::File::open(&p).unwrap(), 1 << 30);
        let mut by_disk = Vec::new();
        let mut b = DiskBatcher::new(DiskReader::new(&disk), params);
        while let Some(batch) = b.next_batch().unwrap() {
            for (i, piece) in batch.pieces.iter().enumerate() {
                let _ = i;
                by_disk.push(*piece);
            }
        }
        let holes = by_disk
            .iter()
            .filter(|p| p.zero && p.len > 100 << 20)
            .count();
        assert_eq!(holes, 1, "the big hole is one piece");
        let mut by_read: Vec<Piece> = Vec::new();
        let mut b = Batcher::new(std::fs::File::open(&p).unwrap(), params);
        while let Some(batch) = b.next_batch().unwrap() {
            by_read.extend(batch.pieces.iter().copied());
        }
        assert_eq!(by_disk, by_read);
    }
}
