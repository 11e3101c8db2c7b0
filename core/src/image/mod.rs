//! Reading disk images as the hypervisor sees them, and sparse-aware I/O.
//!
//! What is chunked is always the guest-visible disk, never the container file, so a raw
//! image and a qcow2 of the same disk give the same chunks and deduplicate.
//!
//! - [`format`] detects the container from its magic bytes (ours, never qemu's probe);
//! - [`header`] reads what a header names and checks its tables; [`chain`] resolves the
//!   files an image is made of and enforces the rules (a guessed format opens no file the
//!   image names; no loops);
//! - [`open`] picks the engine: raw files and block devices directly ([`RawDisk`], holes
//!   via `SEEK_DATA`), qcow2 through imago ([`qcow2`]), everything else through qemu's
//!   block layer over NBD ([`qemu`], [`nbd`]), after [`truncated`] checked that no data
//!   it maps lies past the end of its file;
//! - [`inspect`] describes an image; [`convert`] writes pulled images in other formats.

pub mod chain;
pub mod convert;
pub mod disk;
pub mod error;
pub mod format;
pub mod header;
pub mod inspect;
pub mod nbd;
pub mod on_signal;
pub mod open;
pub mod qcow2;
pub mod qemu;
pub mod truncated;
pub mod vhdx;

pub use chain::OpenOptions;
pub use convert::{convert_raw, OutputFormat};
pub use disk::{Disk, DiskExtent, DiskReader, RawDisk};
pub use error::ImageError;
pub use format::ImageFormat;
pub use inspect::{inspect, inspect_with, ImageInfo};
pub use open::{open_disk, DiskStream, Engine, OpenedDisk};

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

/// Parses a `--format` value.
pub fn parse_format(name: &str) -> Result<ImageFormat, String> {
    ImageFormat::parse(name)
}

/// An image opened for pushing: its logical bytes and what it was.
pub struct OpenImage {
    /// The guest-visible disk, front to back.
    pub reader: Box<dyn Read + Send>,
    /// Virtual size.
    pub logical_size: u64,
    /// What the recipe header records.
    pub format: SourceFormat,
    /// The container format.
    pub image_format: ImageFormat,
    /// Every file read, top first ([`OpenedDisk::files_read`]).
    pub files_read: Vec<std::path::PathBuf>,
}

/// Opens an image file or block device for reading its logical disk; the format is
/// detected from the content unless `format` says (a detected format opens no file the
/// image names).
pub fn open_image(path: &Path, format: Option<ImageFormat>) -> io::Result<OpenImage> {
    open_image_with(
        path,
        &OpenOptions {
            format,
            ..OpenOptions::default()
        },
    )
}

/// [`open_image`] with every option.
pub fn open_image_with(path: &Path, opts: &OpenOptions) -> io::Result<OpenImage> {
    let opened = open_disk(path, opts)?;
    Ok(OpenImage {
        logical_size: opened.disk.size(),
        format: opened.format.source_format(),
        image_format: opened.format,
        files_read: opened.files_read,
        reader: Box::new(DiskStream::new(opened.disk)),
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
    fn damaged_qcow2_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.qcow2");
        File::create(&p)
            .unwrap()
            .write_all(b"QFI\xfb\0\0\0\x03rest")
            .unwrap();
        let err = open_image(&p, None).err().unwrap();
        assert!(
            err.to_string()
                .contains("img.qcow2 is damaged: qcow2 header is cut short"),
            "{err}"
        );
    }
}
