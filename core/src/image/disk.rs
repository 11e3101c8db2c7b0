//! The guest-visible disk as every reader presents it: a size, a map of where data and
//! known zeros lie, and positional reads.
//!
//! Every image engine (sparse raw files, block devices, qcow2, images served over NBD)
//! implements [`Disk`]; push, seed scanning and analysis read through [`DiskReader`],
//! which produces zeros for known-zero extents without touching storage and tells the
//! chunker how many known zeros lie ahead, so a hole costs nothing — neither I/O nor
//! hashing — whatever its length.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// One run of the disk's map, as [`Disk::extent_at`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskExtent {
    /// Bytes in the run; at least 1, never past the end of the disk.
    pub len: u64,
    /// True when every byte of the run is known to read as zero (a hole, an unallocated
    /// or zero cluster). False means "data": it may still hold zeros.
    pub zero: bool,
}

/// A guest-visible disk. Implementations are shared between threads.
pub trait Disk: Send + Sync {
    /// Size of the guest-visible disk in bytes.
    fn size(&self) -> u64;
    /// The run of the map that starts at `pos` (`pos < size()`). Implementations may
    /// report shorter runs than the truth (two adjacent data runs are fine); a run marked
    /// `zero` must read as zeros.
    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent>;
    /// Fills `buf` with the disk's bytes at `pos`; `pos + buf.len() <= size()`.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()>;
}

/// A sparse raw file or a block device: holes found with `SEEK_DATA`/`SEEK_HOLE`.
pub struct RawDisk {
    file: File,
    len: u64,
}

impl RawDisk {
    /// The first `len` bytes of `file` as a disk.
    pub fn new(file: File, len: u64) -> Self {
        RawDisk { file, len }
    }
}

impl Disk for RawDisk {
    fn size(&self) -> u64 {
        self.len
    }

    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
        let (start, end) = super::next_data(&self.file, pos, self.len)?;
        Ok(if start > pos {
            DiskExtent {
                len: start - pos,
                zero: true,
            }
        } else {
            DiskExtent {
                len: (end.max(pos + 1)).min(self.len) - pos,
                zero: false,
            }
        })
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, pos).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("image ended at byte {pos} while reading (did it shrink?)"),
                )
            } else {
                e
            }
        })
    }
}

/// Reads a [`Disk`] front to back: zeros for known-zero runs without touching storage.
pub struct DiskReader<'a> {
    disk: &'a dyn Disk,
    pos: u64,
    /// The current run of the map: `[pos, run_end)` is data, or zeros when `run_zero`.
    run_end: u64,
    run_zero: bool,
}

impl<'a> DiskReader<'a> {
    /// A reader at the start of `disk`.
    pub fn new(disk: &'a dyn Disk) -> Self {
        DiskReader {
            disk,
            pos: 0,
            run_end: 0,
            run_zero: false,
        }
    }

    /// Position of the next byte `read` returns.
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn refresh(&mut self) -> io::Result<()> {
        if self.pos >= self.run_end && self.pos < self.disk.size() {
            let e = self.disk.extent_at(self.pos)?;
            if e.len == 0 {
                return Err(io::Error::other(format!(
                    "image map reports an empty run at byte {}",
                    self.pos
                )));
            }
            self.run_end = (self.pos + e.len).min(self.disk.size());
            self.run_zero = e.zero;
        }
        Ok(())
    }

    /// How many bytes from the current position are known to be zeros (consecutive
    /// zero runs of the map), without reading them.
    pub fn zeros_ahead(&mut self) -> io::Result<u64> {
        let mut end = self.pos;
        let size = self.disk.size();
        self.refresh()?;
        if !self.run_zero || self.pos >= size {
            return Ok(0);
        }
        end = end.max(self.run_end);
        while end < size {
            let e = self.disk.extent_at(end)?;
            if !e.zero || e.len == 0 {
                break;
            }
            end = (end + e.len).min(size);
        }
        Ok(end - self.pos)
    }

    /// Moves past `n` bytes that [`zeros_ahead`](Self::zeros_ahead) reported as zeros.
    pub fn skip_zeros(&mut self, n: u64) {
        self.pos += n;
        if self.pos >= self.run_end {
            self.run_end = self.pos; // re-read the map at the next call
        }
    }
}

impl Read for DiskReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.disk.size();
        if self.pos >= size || buf.is_empty() {
            return Ok(0);
        }
        self.refresh()?;
        let n = (self.run_end - self.pos).min(buf.len() as u64) as usize;
        if self.run_zero {
            buf[..n].fill(0);
        } else {
            self.disk.read_at(&mut buf[..n], self.pos)?;
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_yields_the_file_and_counts_holes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        f.set_len(10 << 20).unwrap();
        f.write_all_at(b"hello", 3 << 20).unwrap();
        drop(f);
        let disk = RawDisk::new(File::open(&p).unwrap(), 10 << 20);
        let mut r = DiskReader::new(&disk);
        let ahead = r.zeros_ahead().unwrap();
        // tmpfs/ext4 report the hole before the data; filesystems without SEEK_DATA
        // report none, which is also correct.
        assert!(ahead == 0 || ahead >= 2 << 20, "{ahead}");
        r.skip_zeros(ahead);
        let mut all = vec![0u8; ahead as usize];
        r.read_to_end(&mut all).unwrap();
        assert_eq!(all, std::fs::read(&p).unwrap());
    }
}
