//! Opening an image for reading: resolve the files it is made of ([`super::chain`]),
//! refuse what cannot be read exactly, and pick the engine.
//!
//! Engines, chosen by measurement and by who maintains them (README, "Formats"):
//! - raw files and block devices: read directly, holes found with `SEEK_DATA`;
//! - qcow2 whose features imago reads: imago in-process (no helper process, no socket
//!   copy, and the map of an exabyte of holes costs a few table lookups on any qemu);
//! - everything else (vmdk, vhdx, vhd, vdi, qed, parallels, LUKS, qcow2 with zstd,
//!   extended L2, the dirty bit or encryption): qemu's block layer over NBD.

use super::chain::{self, Layer, OpenOptions};
use super::disk::{Disk, RawDisk};
use super::qcow2::Qcow2Disk;
use super::qemu::QemuDisk;
use super::{ImageError, ImageFormat};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Which engine reads an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// Direct reads of a raw file or block device.
    File,
    /// imago, in-process (qcow2).
    Imago,
    /// qemu-storage-daemon over NBD.
    Qemu,
}

/// An image opened for reading.
pub struct OpenedDisk {
    /// The guest-visible disk.
    pub disk: Box<dyn Disk>,
    /// The top image's container format.
    pub format: ImageFormat,
    /// True when the format was detected from content rather than named by the user.
    pub guessed: bool,
    /// Every file read to produce the disk: the image, then its data files and extents,
    /// then its backing chain, nearest first.
    pub files_read: Vec<PathBuf>,
    /// The engine reading it.
    pub engine: Engine,
}

/// Every file of a resolved chain, top first.
fn chain_files(layers: &[Layer]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for l in layers {
        files.push(l.path.clone());
        files.extend(l.side_files());
    }
    files
}

/// True when imago reads every layer exactly.
fn native_ok(layers: &[Layer]) -> bool {
    layers[0].format == ImageFormat::Qcow2
        && layers.iter().all(|l| match l.format {
            ImageFormat::Qcow2 => l.header.native_ok,
            ImageFormat::Raw => !l.block_device,
            _ => false,
        })
}

/// Opens `path` as `opts` says. Nothing the image names is opened before the checks of
/// [`chain::resolve_chain`] pass.
pub fn open_disk(path: &Path, opts: &OpenOptions) -> Result<OpenedDisk, ImageError> {
    let layers = chain::resolve_chain(path, opts)?;
    let top = &layers[0];
    if let Some(l) = layers.iter().find(|l| l.header.encryption.is_some()) {
        if opts.secret_file.is_none() {
            return Err(ImageError::NeedsSecret {
                path: l.path.clone(),
                scheme: l.header.encryption.unwrap_or("encrypted").into(),
            });
        }
    }
    let files = chain_files(&layers);
    let (disk, engine): (Box<dyn Disk>, Engine) = if top.format == ImageFormat::Raw {
        let (file, len, _) = chain::open_file(&top.path)?;
        (Box::new(RawDisk::new(file, len)), Engine::File)
    } else if native_ok(&layers)
        && std::env::var_os("BONSAI_IMAGE_ENGINE").is_none_or(|v| v != "qemu")
    {
        let (layers, files, secret) = (layers.clone(), files.clone(), opts.secret_file.clone());
        let fallback = Box::new(move || QemuDisk::open(&layers, &files, secret.as_deref()));
        (
            Box::new(Qcow2Disk::open(&top.path, fallback)?),
            Engine::Imago,
        )
    } else {
        let q = QemuDisk::open(&layers, &files, opts.secret_file.as_deref())?;
        (Box::new(q), Engine::Qemu)
    };
    Ok(OpenedDisk {
        disk,
        format: top.format,
        guessed: opts.format.is_none(),
        files_read: files,
        engine,
    })
}

/// A [`Disk`] read front to back as a stream, owning the disk (for engines that take
/// `impl Read`). Known-zero runs are produced without touching storage.
pub struct DiskStream {
    disk: Box<dyn Disk>,
    pos: u64,
    run_end: u64,
    run_zero: bool,
}

impl DiskStream {
    /// A stream at the start of `disk`.
    pub fn new(disk: Box<dyn Disk>) -> Self {
        DiskStream {
            disk,
            pos: 0,
            run_end: 0,
            run_zero: false,
        }
    }
}

impl Read for DiskStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let size = self.disk.size();
        if self.pos >= size || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.run_end {
            let e = self.disk.extent_at(self.pos)?;
            if e.len == 0 {
                return Err(io::Error::other(format!(
                    "image map reports an empty run at byte {}",
                    self.pos
                )));
            }
            self.run_end = (self.pos + e.len).min(size);
            self.run_zero = e.zero;
        }
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
    fn an_exabyte_thin_qcow2_maps_in_a_bounded_number_of_runs() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eib.qcow2");
        let out = crate::test_tools::output(
            std::process::Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-o", "cluster_size=2M"])
                .arg(&p)
                .arg("1E"),
        );
        assert!(out.status.success());
        let opened = open_disk(&p, &OpenOptions::default()).unwrap();
        assert_eq!(opened.engine, Engine::Imago);
        let disk = opened.disk;
        let (mut pos, mut runs) = (0u64, 0u64);
        while pos < disk.size() {
            let e = disk.extent_at(pos).unwrap();
            assert!(e.zero);
            pos += e.len;
            runs += 1;
        }
        // one run per L1 entry at most (2^21 for 1 EiB in 2 MiB clusters): the map costs
        // the metadata, never the 2^60 bytes
        assert!(runs <= 1 << 21, "{runs} runs");
    }
}
