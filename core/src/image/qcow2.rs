//! qcow2 read natively through `imago`: the fast path for the qcow2 features imago reads
//! (v2/v3, zlib-compressed clusters, backing chains, external data files). Zero and
//! unallocated clusters are mapped as zeros without touching the file, and the map comes
//! from the L1/L2 tables, so an exabyte of holes maps in a few lookups.
//!
//! [`super::header`] has already checked the tables lie inside the file and the chain has
//! no loop; images using features imago lacks (zstd, extended L2, dirty bit, encryption)
//! go to qemu's reader instead ([`super::qemu`]).
//!
//! Compressed clusters are read by qemu, not imago: imago's inflate (miniz with a
//! wrapping window) turns some damaged deflate streams into wrong bytes where zlib — and
//! so qemu — reports an error. qemu is started the first time a compressed cluster is
//! read, so an uncompressed image never starts it. Caveat: imago reads zeros for a data
//! cluster past the end of the file, so every data mapping is checked against the file
//! size here. Where imago is more lenient than qemu, qemu's rule is applied: a v2 image
//! with a zero-flagged cluster is refused (qemu reads it as an I/O error), and a size that
//! is not a multiple of 512 is rounded down, as qemu's disk is.

use super::disk::{Disk, DiskExtent};
use super::qemu::QemuDisk;
use super::ImageError;
use imago::file::File;
use imago::qcow2::Qcow2;
use imago::{FormatDriverBuilder, Mapping, PermissiveImplicitOpenGate, Storage, SyncFormatAccess};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Starts qemu's reader on the same image, for compressed clusters.
pub type Fallback = Box<dyn Fn() -> Result<QemuDisk, ImageError> + Send + Sync>;

/// A qcow2 image (and its chain) opened with imago.
pub struct Qcow2Disk {
    access: Mutex<SyncFormatAccess<File>>,
    size: u64,
    /// The top image is version 2, where a zero-flagged cluster is damage (qemu: EIO).
    version_2: bool,
    path: std::path::PathBuf,
    fallback: Fallback,
    qemu: Mutex<Option<Arc<QemuDisk>>>,
}

/// How a run of the disk is read.
enum Source {
    Native,
    Zero,
    Qemu,
}

impl Qcow2Disk {
    /// Opens `path` and the files it names (already resolved and checked by the caller).
    pub fn open(path: &Path, fallback: Fallback) -> Result<Qcow2Disk, ImageError> {
        let reader_err = |e: io::Error| ImageError::Reader {
            path: path.into(),
            message: format!("not a readable qcow2 image: {e}"),
        };
        let q = Qcow2::<File>::builder_path(path)
            .open_sync(PermissiveImplicitOpenGate::default())
            .map_err(reader_err)?;
        let access = SyncFormatAccess::new(q).map_err(reader_err)?;
        let mut version = [0u8; 8];
        std::fs::File::open(path)
            .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut version, 0))
            .map_err(|e| ImageError::io(path, e))?;
        Ok(Qcow2Disk {
            // qemu counts whole sectors: a size that is not a multiple of 512 is rounded down
            size: access.size() & !511,
            version_2: version[4..] == [0, 0, 0, 2],
            path: path.to_path_buf(),
            access: Mutex::new(access),
            fallback,
            qemu: Mutex::new(None),
        })
    }

    /// qemu's reader, started on first use.
    fn qemu(&self) -> io::Result<Arc<QemuDisk>> {
        let mut q = self
            .qemu
            .lock()
            .map_err(|_| io::Error::other("qcow2 reader lock poisoned"))?;
        if let Some(d) = q.as_ref() {
            return Ok(d.clone());
        }
        let d = Arc::new((self.fallback)()?);
        *q = Some(d.clone());
        Ok(d)
    }

    /// The source of the run at `pos` (at most `max` bytes) and its length.
    fn source(&self, pos: u64, max: u64) -> io::Result<(Source, u64)> {
        let access = self.lock()?;
        let (mapping, len) = access.get_mapping_sync(pos, max)?;
        self.refuse_v2_zero(&mapping, pos)?;
        let source = match mapping {
            Mapping::Raw { .. } => Source::Native,
            Mapping::Zero { .. } | Mapping::Eof { .. } => Source::Zero,
            _ => Source::Qemu,
        };
        Ok((source, if len == 0 { max } else { len.min(max) }))
    }

    /// A zero-flagged cluster in a version-2 image is damage, as qemu reads it.
    fn refuse_v2_zero(&self, mapping: &Mapping<'_, File>, pos: u64) -> io::Result<()> {
        if self.version_2 && matches!(mapping, Mapping::Zero { explicit: true, .. }) {
            let problem = format!(
                "guest offset {pos} is a zero cluster, which version 2 of qcow2 does not have"
            );
            return Err(ImageError::damaged(&self.path, problem).into());
        }
        Ok(())
    }

    fn lock(&self) -> io::Result<std::sync::MutexGuard<'_, SyncFormatAccess<File>>> {
        self.access
            .lock()
            .map_err(|_| io::Error::other("qcow2 reader lock poisoned"))
    }
}

impl Disk for Qcow2Disk {
    fn size(&self) -> u64 {
        self.size
    }

    fn extent_at(&self, pos: u64) -> io::Result<DiskExtent> {
        let access = self.lock()?;
        let (mapping, len) = access.get_mapping_sync(pos, self.size - pos)?;
        // A mapping past the end of its file means a truncated image; imago would read
        // zeros there, which would silently become part of the disk.
        if let Mapping::Raw {
            storage, offset, ..
        } = &mapping
        {
            let file_len = storage.size()?;
            if offset + len > file_len {
                let name = storage
                    .get_filename()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_else(|| "image".into());
                let detail = format!(
                    "guest offset {pos} maps to byte {} of a {file_len}-byte file",
                    offset + len
                );
                return Err(super::ImageError::truncated(&name, detail).into());
            }
        }
        self.refuse_v2_zero(&mapping, pos)?;
        let zero = matches!(mapping, Mapping::Zero { .. } | Mapping::Eof { .. });
        Ok(DiskExtent {
            len: if len == 0 { self.size - pos } else { len },
            zero,
        })
    }

    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = pos + done as u64;
            let (source, len) = self.source(at, (buf.len() - done) as u64)?;
            let part = &mut buf[done..done + len as usize];
            match source {
                Source::Native => self.lock()?.read(&mut *part, at)?,
                Source::Zero => part.fill(0),
                Source::Qemu => self.qemu()?.read_at(part, at)?,
            }
            done += len as usize;
        }
        Ok(())
    }
}
