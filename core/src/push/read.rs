//! Push, step 1: read the disk and cut it into batches of chunks, on its own thread.
//!
//! The disk is read through [`DiskReader`], so known-zero runs of its map are produced
//! without I/O. For recipe v1 the whole-image BLAKE3 is computed here as the bytes pass
//! (no second read). [`StreamDisk`] presents a plain reader (a pipe, or a format without a
//! [`Disk`] engine) as a disk that can only be read front to back.

use crate::batch::{Batcher, ChunkBatch};
use crate::chunk::ChunkerParams;
use crate::id::ImageHash;
use crate::image::{Disk, DiskExtent, DiskReader};
use crossbeam_channel::Sender;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// What the read step found: the logical size and (v1) the image hash.
pub(crate) struct ReadSummary {
    pub(crate) logical: u64,
    pub(crate) image_hash: ImageHash,
}

/// Reads `disk` front to back and sends batches to `tx` until the end, a failure
/// elsewhere (`failed`), or the receiver hanging up.
pub(crate) fn read_batches(
    disk: &dyn Disk,
    params: ChunkerParams,
    tx: Sender<ChunkBatch>,
    failed: &AtomicBool,
) -> io::Result<ReadSummary> {
    let mut src = HashingRead {
        inner: DiskReader::new(disk),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    let mut batches = Batcher::new(&mut src, params);
    while let Some(batch) = batches.next_batch()? {
        if failed.load(Ordering::Relaxed) || tx.send(batch).is_err() {
            break;
        }
    }
    drop(batches);
    if src.bytes != disk.size() && !failed.load(Ordering::Relaxed) {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "image ended at byte {} but its size is {} (did it shrink?)",
                src.bytes,
                disk.size()
            ),
        ));
    }
    Ok(ReadSummary {
        logical: src.bytes,
        image_hash: ImageHash(*src.hasher.finalize().as_bytes()),
    })
}

/// Hashes everything read through it: the whole-image hash costs no extra pass.
struct HashingRead<R> {
    inner: R,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<R: Read> Read for HashingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        // Large reads are hashed on all cores: zero-heavy disks make hashing the bottleneck.
        if n >= 1 << 20 {
            self.hasher.update_rayon(&buf[..n]);
        } else {
            self.hasher.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A reader presented as a [`Disk`] of a known size that is read once, front to back
/// (as push reads): every byte counts as data, and a read anywhere but the current
/// position is an error. For streams and for formats without a positional engine.
pub struct StreamDisk {
    inner: Mutex<(Box<dyn Read + Send>, u64)>,
    size: u64,
}

impl StreamDisk {
    /// The first `size` bytes of `reader`.
    pub fn new(reader: Box<dyn Read + Send>, size: u64) -> Self {
        StreamDisk {
            inner: Mutex::new((reader, 0)),
            size,
        }
    }
}

impl Disk for StreamDisk {
    fn size(&self) -> u64 {
        self.size
    }

    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
        Ok(DiskExtent {
            len: self.size - pos,
            zero: false,
        })
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.1 != pos {
            return Err(io::Error::other(format!(
                "stream read at byte {pos} but it is at byte {}",
                g.1
            )));
        }
        g.0.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(e.kind(), format!("image ended near byte {pos}"))
            } else {
                e
            }
        })?;
        g.1 += buf.len() as u64;
        Ok(())
    }
}

/// An image held in memory, as a [`Disk`] (every byte data): for tests and small tools.
pub struct BytesDisk<'a>(pub &'a [u8]);

impl Disk for BytesDisk<'_> {
    fn size(&self) -> u64 {
        self.0.len() as u64
    }

    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
        Ok(DiskExtent {
            len: self.0.len() as u64 - pos,
            zero: false,
        })
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let start = usize::try_from(pos).map_err(io::Error::other)?;
        let src = self
            .0
            .get(start..start + buf.len())
            .ok_or_else(|| io::Error::other(format!("read past the end at byte {pos}")))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}
