//! Push, step 1: read the disk and cut it into batches of chunks, on its own thread.
//!
//! The disk is read through [`DiskReader`] and cut by [`DiskBatcher`]: known-zero runs of
//! its map become holes without being read or scanned, so the cost of a push follows the
//! data, not the virtual size. (Recipe v2's image hash is computed by the recipe writer
//! over the extents, so nothing here hashes image bytes.) [`StreamDisk`] presents a plain
//! reader (a pipe, or a format without a [`Disk`] engine) as a disk read front to back.

use crate::batch::{ChunkBatch, DiskBatcher};
use crate::chunk::ChunkerParams;
use crate::image::{Disk, DiskExtent, DiskReader};
use crossbeam_channel::Sender;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Reads `disk` front to back and sends batches to `tx` until the end, a failure
/// elsewhere (`failed`), or the receiver hanging up. Returns the bytes covered.
pub(crate) fn read_batches(
    disk: &dyn Disk,
    params: ChunkerParams,
    tx: Sender<ChunkBatch>,
    failed: &AtomicBool,
) -> io::Result<u64> {
    let mut batches = DiskBatcher::new(DiskReader::new(disk), params);
    let mut covered = 0u64;
    while let Some(batch) = batches.next_batch()? {
        covered += batch.logical_bytes();
        if failed.load(Ordering::Relaxed) || tx.send(batch).is_err() {
            return Ok(covered);
        }
    }
    if covered != disk.size() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "image ended at byte {covered} but its size is {} (did it shrink?)",
                disk.size()
            ),
        ));
    }
    Ok(covered)
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
