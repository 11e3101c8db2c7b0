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
//!   it maps lies past the end of its file; for vhdx, sparse vmdk and parallels, whose
//!   qemu drivers map badly, [`allocation`] reads and checks the format's own tables
//!   ([`vhdx`], [`vmdk`], [`parallels`]) instead;
//! - [`inspect`] describes an image. Writing pulled images in other formats is the
//!   pull's ([`crate::pull::convert`]).

pub mod allocation;
pub mod chain;
pub mod disk;
pub mod error;
pub mod format;
pub mod header;
pub mod inspect;
pub mod nbd;
pub mod on_signal;
pub mod open;
pub mod parallels;
pub mod qcow2;
pub mod qemu;
pub mod truncated;
pub mod vhdx;
pub mod vmdk;

pub use chain::OpenOptions;
pub use disk::{Disk, DiskExtent, DiskReader, RawDisk};
pub use error::ImageError;
pub use format::ImageFormat;
pub use inspect::{inspect, inspect_with, ImageInfo};
pub use open::{open_disk, DiskStream, Engine, OpenedDisk};

use std::fs::File;
use std::io;
use std::os::unix::io::AsRawFd;

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

/// Parses a `--format` value.
pub fn parse_format(name: &str) -> Result<ImageFormat, String> {
    ImageFormat::parse(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn damaged_qcow2_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.qcow2");
        File::create(&p)
            .unwrap()
            .write_all(b"QFI\xfb\0\0\0\x03rest")
            .unwrap();
        let err = open_disk(&p, &OpenOptions::default()).err().unwrap();
        assert!(
            err.to_string()
                .contains("img.qcow2 is damaged: qcow2 header is cut short"),
            "{err}"
        );
    }
}
