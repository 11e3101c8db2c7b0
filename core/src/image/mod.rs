//! Reading disk images as the hypervisor sees them, and sparse-aware I/O.
//!
//! What is chunked is always the guest-visible disk, never the container file, so a raw
//! image and a qcow2 of the same disk give the same chunks and deduplicate. Raw images
//! (and block devices) are read directly; holes of sparse files are found with
//! `SEEK_DATA`/`SEEK_HOLE` and produced as zeros without reading the disk. qcow2 (v2, v3,
//! compressed clusters, backing chains) is read through `imago` ([`qcow2`]).

pub mod disk;
pub mod qcow2;

pub use disk::{Disk, DiskExtent, DiskReader, RawDisk};

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

/// Parses a `--format` value.
pub fn parse_format(name: &str) -> Result<SourceFormat, String> {
    match name {
        "raw" => Ok(SourceFormat::Raw),
        "qcow2" => Ok(SourceFormat::Qcow2),
        other => Err(format!(
            "unknown image format {other:?} (known: raw, qcow2)"
        )),
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

/// Opens an image file or block device for reading its logical disk; the format is
/// detected from the content unless `format` says.
pub fn open_image(path: &Path, format: Option<SourceFormat>) -> io::Result<OpenImage> {
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
    let format = format.unwrap_or_else(|| detect_format(&head[..n]));
    match format {
        SourceFormat::Qcow2 => {
            drop(file);
            let reader = qcow2::Qcow2Reader::new(qcow2::open(path)?);
            return Ok(OpenImage {
                logical_size: reader.size(),
                reader: Box::new(reader),
                format,
            });
        }
        SourceFormat::Other => {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unknown image format",
            ))
        }
        SourceFormat::Raw => {}
    }
    Ok(OpenImage {
        reader: Box::new(SparseReader::new(file, len)),
        logical_size: len,
        format,
    })
}

/// What `bonsai inspect` reports: a user's first questions about an image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageInfo {
    /// The file.
    pub path: String,
    /// Container format.
    pub format: SourceFormat,
    /// Size of the guest-visible disk.
    pub virtual_size: u64,
    /// Bytes of the disk stored in this file (not in holes, zero clusters or backing files).
    pub allocated_bytes: u64,
    /// Size of the file itself.
    pub file_bytes: u64,
    /// Backing files, nearest first.
    pub backing_chain: Vec<String>,
}

/// Describes an image without reading its data.
pub fn inspect(path: &Path, format: Option<SourceFormat>) -> io::Result<ImageInfo> {
    let opened = open_image(path, format)?;
    let meta = std::fs::metadata(path)?;
    let (allocated_bytes, backing_chain) = match opened.format {
        SourceFormat::Qcow2 => (
            qcow2::allocated_bytes(path)?,
            qcow2::backing_chain(path)?
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        ),
        _ => {
            let file = File::open(path)?;
            let mut pos = 0;
            let mut allocated = 0;
            while pos < opened.logical_size {
                let (s, e) = next_data(&file, pos, opened.logical_size)?;
                allocated += e - s;
                if e <= pos {
                    break;
                }
                pos = e;
            }
            (allocated, Vec::new())
        }
    };
    Ok(ImageInfo {
        path: path.display().to_string(),
        format: opened.format,
        virtual_size: opened.logical_size,
        allocated_bytes,
        file_bytes: meta.len(),
        backing_chain,
    })
}

/// Turns a verified raw image into a qcow2 at `out` with `qemu-img convert`, through a
/// temporary name so `out` appears only when complete; `raw` is removed on success.
/// (imago can write qcow2, but qemu-img's converter is the reference for compact output.)
pub fn convert_raw_to_qcow2(raw: &Path, out: &Path) -> io::Result<()> {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let tmp = out.with_file_name(format!(".{name}.qcow2.tmp"));
    let status = std::process::Command::new("qemu-img")
        .args(["convert", "-q", "-f", "raw", "-O", "qcow2"])
        .arg(raw)
        .arg(&tmp)
        .status()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("qcow2 output needs qemu-img (package qemu-utils): {e}"),
            )
        })?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(io::Error::other(format!(
            "qemu-img convert failed ({status})"
        )));
    }
    File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, out)?;
    std::fs::remove_file(raw)?;
    Ok(())
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
            err.to_string().contains("not a readable qcow2 image"),
            "{err}"
        );
    }
}
