//! Reading disk images as the hypervisor sees them, and sparse-aware I/O.
//!
//! Raw images (and block devices) are read directly; holes of sparse files are found with
//! `SEEK_DATA`/`SEEK_HOLE` and produced as zeros without reading the disk. Other container
//! formats are detected by their magic and refused with a clear message until a reader
//! for them exists (qcow2: convert with `qemu-img convert -O raw` first).

use crate::recipe::SourceFormat;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// The next data region at or after `pos`, clipped to `len`: `(start, end)`. Where the
/// filesystem cannot tell, everything is data. Past the last data, `(len, len)`.
pub fn next_data(file: &File, pos: u64, len: u64) -> io::Result<(u64, u64)> {
    let fd = file.as_raw_fd();
    // SAFETY: lseek on a valid descriptor we borrow; it only moves the file offset,
    // which positional reads/writes in this crate do not use.
    let start = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
    if start < 0 {
        let err = io::Error::last_os_error();
        return match err.raw_os_error() {
            Some(libc::ENXIO) => Ok((len, len)),
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => Ok((pos, len)),
            _ => Err(err),
        };
    }
    let start = (start as u64).min(len);
    // SAFETY: as above.
    let end = unsafe { libc::lseek(fd, start as libc::off_t, libc::SEEK_HOLE) };
    let end = if end < 0 { len } else { (end as u64).min(len) };
    Ok((start, end.max(start)))
}

/// Reads a file front to back, yielding zeros for holes without touching the disk.
pub struct SparseReader {
    file: File,
    len: u64,
    pos: u64,
    data_start: u64,
    data_end: u64,
}

impl SparseReader {
    /// A reader over the first `len` bytes of `file`.
    pub fn new(file: File, len: u64) -> Self {
        SparseReader {
            file,
            len,
            pos: 0,
            data_start: 0,
            data_end: 0,
        }
    }
}

impl Read for SparseReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.data_end {
            let (s, e) = next_data(&self.file, self.pos, self.len)?;
            self.data_start = s;
            self.data_end = if e > s { e } else { self.len };
            if s >= self.len {
                self.data_start = self.len;
                self.data_end = self.len;
            }
        }
        let max = buf.len() as u64;
        if self.pos < self.data_start {
            let n = (self.data_start - self.pos).min(max) as usize;
            buf[..n].fill(0);
            self.pos += n as u64;
            return Ok(n);
        }
        let want = (self.data_end - self.pos).min(max) as usize;
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            // File shrank under us: treat as end.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("image ended at byte {} while reading", self.pos),
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Container format by magic bytes.
pub fn detect_format(head: &[u8]) -> SourceFormat {
    if head.starts_with(b"QFI\xfb") {
        SourceFormat::Qcow2
    } else {
        SourceFormat::Raw
    }
}

/// An image opened for pushing: its logical bytes and what it was.
pub struct OpenImage {
    /// The guest-visible disk, front to back.
    pub reader: Box<dyn Read + Send>,
    /// Virtual size.
    pub logical_size: u64,
    /// Container format.
    pub format: SourceFormat,
}

/// Opens an image file or block device for reading its logical disk.
pub fn open_image(path: &Path) -> io::Result<OpenImage> {
    let file = File::open(path)?;
    let meta = file.metadata()?;
    let len = if meta.file_type().is_file() {
        meta.len()
    } else {
        // block device: its size is where a seek to the end lands
        use std::io::Seek;
        let mut f = &file;
        f.seek(io::SeekFrom::End(0))?
    };
    let mut head = [0u8; 4];
    let n = file.read_at(&mut head, 0)?;
    let format = detect_format(&head[..n]);
    if format == SourceFormat::Qcow2 {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "qcow2 images cannot be read yet; convert first: qemu-img convert -O raw IMAGE IMAGE.raw",
        ));
    }
    Ok(OpenImage {
        reader: Box::new(SparseReader::new(file, len)),
        logical_size: len,
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sparse_reader_yields_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img");
        let f = File::create(&p).unwrap();
        f.set_len(10 << 20).unwrap();
        f.write_all_at(b"hello", 3 << 20).unwrap();
        f.write_all_at(b"end", (10 << 20) - 3).unwrap();
        drop(f);
        let mut all = Vec::new();
        SparseReader::new(File::open(&p).unwrap(), 10 << 20)
            .read_to_end(&mut all)
            .unwrap();
        assert_eq!(all, std::fs::read(&p).unwrap());
    }

    #[test]
    fn qcow2_is_detected_and_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.qcow2");
        File::create(&p)
            .unwrap()
            .write_all(b"QFI\xfb\0\0\0\x03rest")
            .unwrap();
        let err = open_image(&p).err().unwrap();
        assert!(err.to_string().contains("qemu-img convert"));
    }
}
