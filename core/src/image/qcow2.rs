//! qcow2 images read through `imago`: the guest-visible disk, with backing chains read
//! through, compressed clusters decompressed by the library, and zero or unallocated
//! clusters produced as zeros without touching the file.

use imago::file::File;
use imago::qcow2::Qcow2;
use imago::{FormatDriverBuilder, Mapping, PermissiveImplicitOpenGate, Storage, SyncFormatAccess};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

fn context(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("not a readable qcow2 image ({}): {e}", path.display()),
    )
}

/// Opens a qcow2 image and everything it references (backing files).
pub fn open(path: &Path) -> io::Result<SyncFormatAccess<File>> {
    let q = Qcow2::<File>::builder_path(path)
        .open_sync(PermissiveImplicitOpenGate::default())
        .map_err(|e| context(path, e))?;
    SyncFormatAccess::new(q).map_err(|e| context(path, e))
}

/// The backing chain below `path`, nearest first (file names as resolved on disk).
pub fn backing_chain(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut chain = Vec::new();
    let mut current = path.to_path_buf();
    for _ in 0..64 {
        let q = Qcow2::<File>::builder_path(&current)
            .backing(None)
            .open_sync(PermissiveImplicitOpenGate::default())
            .map_err(|e| context(&current, e))?;
        let Some(name) = q.implicit_backing_file() else {
            return Ok(chain);
        };
        let next = current
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .join(name);
        chain.push(next.clone());
        let mut head = [0u8; 4];
        let is_qcow2 = std::fs::File::open(&next)
            .and_then(|mut f| f.read_exact(&mut head))
            .map(|_| &head == b"QFI\xfb")
            .unwrap_or(false);
        if !is_qcow2 {
            return Ok(chain);
        }
        current = next;
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "backing chain deeper than 64 images (a loop?)",
    ))
}

/// Bytes of the guest disk that are stored in the image file itself (the top layer).
pub fn allocated_bytes(path: &Path) -> io::Result<u64> {
    let q = Qcow2::<File>::builder_path(path)
        .backing(None)
        .open_sync(PermissiveImplicitOpenGate::default())
        .map_err(|e| context(path, e))?;
    let access = SyncFormatAccess::new(q)?;
    let size = access.size();
    let mut pos = 0;
    let mut allocated = 0;
    while pos < size {
        let (mapping, len) = access.get_mapping_sync(pos, size - pos)?;
        if len == 0 {
            break;
        }
        if !matches!(mapping, Mapping::Zero { .. } | Mapping::Eof { .. }) {
            allocated += len;
        }
        pos += len;
    }
    Ok(allocated)
}

/// Reads the guest disk front to back; zero and unallocated ranges cost no I/O.
pub struct Qcow2Reader {
    access: SyncFormatAccess<File>,
    size: u64,
    pos: u64,
    /// Current mapping run: end offset and whether it reads as zeros.
    run_end: u64,
    run_zero: bool,
}

impl Qcow2Reader {
    /// A reader over an opened image.
    pub fn new(access: SyncFormatAccess<File>) -> Self {
        let size = access.size();
        Qcow2Reader {
            access,
            size,
            pos: 0,
            run_end: 0,
            run_zero: false,
        }
    }

    /// Virtual size of the disk.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Read for Qcow2Reader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.run_end {
            let (mapping, len) = self
                .access
                .get_mapping_sync(self.pos, self.size - self.pos)?;
            // A mapping past the end of its file means a truncated image; imago would
            // read zeros there, which would silently become part of the disk.
            if let Mapping::Raw {
                storage, offset, ..
            } = &mapping
            {
                let file_len = storage.size()?;
                if offset + len > file_len {
                    let name = storage
                        .get_filename()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "image".into());
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "{name} is truncated: guest offset {} maps to byte {} of a {file_len}-byte file",
                            self.pos,
                            offset + len
                        ),
                    ));
                }
            }
            self.run_zero = matches!(mapping, Mapping::Zero { .. } | Mapping::Eof { .. });
            self.run_end = if len == 0 { self.size } else { self.pos + len };
        }
        let n = (self.run_end - self.pos).min(buf.len() as u64) as usize;
        if self.run_zero {
            buf[..n].fill(0);
        } else {
            self.access.read(&mut buf[..n], self.pos)?;
        }
        self.pos += n as u64;
        Ok(n)
    }
}
