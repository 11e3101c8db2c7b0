//! Pull, the target: what OUT is and how it is written — a partial file beside OUT renamed
//! into place when verified (the default), OUT itself written in place (`--in-place`), or a
//! block device — plus the seam for converted outputs.
//!
//! Everything a user can get wrong about OUT is refused here, before any download: OUT a
//! directory; OUT existing without `force`; a device smaller than the image. The partial
//! file `.OUT.<hash-prefix>.bonsai-partial` is opened with `O_NOFOLLOW` (a symlink planted
//! at that predictable name is refused, never followed) and created with `O_EXCL`, so a
//! fresh one holds no data in its holes. A leftover one from an interrupted pull of the
//! same image is reused: its hole ranges are punched out before use, so bytes planted in
//! them cannot survive. The final rename refuses to replace an OUT that appeared meanwhile
//! unless `force`.

use super::{Convert, PullOptions};
use crate::error::{Error, IoContext};
use crate::publish;
use crate::recipe::{Extent, Recipe};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// A partial file beside OUT, renamed (or converted) to OUT once verified.
    Partial,
    /// OUT itself, a regular file written in place.
    InPlace,
    /// OUT is a block device, written in place.
    Device,
}

/// The file a pull writes and what happens to it at the end.
pub struct Target {
    kind: TargetKind,
    /// The file written (the partial file, or OUT).
    path: PathBuf,
    out: PathBuf,
    file: File,
    /// Created by this pull: holes hold no data, no block is there yet.
    fresh: bool,
    /// What a Ctrl-C while this is written leaves, said on stderr.
    _interrupt: crate::image::on_signal::Note,
}

/// Where the partial output of a pull of `recipe` to `out` lives.
pub fn partial_path(out: &Path, recipe: &Recipe) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let tag = &recipe.image_hash.to_hex()[..16];
    out.with_file_name(format!(".{name}.{tag}.bonsai-partial"))
}

impl Target {
    /// Checks OUT and opens what the pull will write, sized for the image.
    pub fn open(out: &Path, recipe: &Recipe, opts: &PullOptions) -> Result<Target, Error> {
        let meta = std::fs::metadata(out).ok();
        if meta.as_ref().is_some_and(|m| m.is_dir()) {
            return Err(Error::IsDirectory {
                path: out.to_path_buf(),
            });
        }
        let device = meta
            .as_ref()
            .is_some_and(|m| m.file_type().is_block_device());
        if (device || opts.in_place) && opts.convert.is_some() {
            return Err(Error::Conflict(
                "a converted output cannot be written in place; drop --in-place or the output format",
            ));
        }
        if device {
            let file = open_rw(out, false).at(out)?;
            let size = device_size(&file).at(out)?;
            if size < recipe.logical_size {
                return Err(Error::TargetTooSmall {
                    path: out.to_path_buf(),
                    size,
                    needed: recipe.logical_size,
                });
            }
            return Ok(Target::new(TargetKind::Device, out, out, file, false));
        }
        if opts.in_place {
            let fresh = meta.is_none();
            let file = open_rw(out, true).at(out)?;
            file.set_len(recipe.logical_size).at(out)?;
            return Ok(Target::new(TargetKind::InPlace, out, out, file, fresh));
        }
        publish::check_destination(out, opts.force)?;
        let partial = partial_path(out, recipe);
        let (file, fresh) = open_partial(&partial, recipe.logical_size)?;
        Ok(Target::new(TargetKind::Partial, &partial, out, file, fresh))
    }

    fn new(kind: TargetKind, path: &Path, out: &Path, file: File, fresh: bool) -> Target {
        let p = path.display();
        let left = match kind {
            TargetKind::Partial => format!(
                "the blocks written so far are kept in {p}; run the same pull again to resume"
            ),
            _ => format!("{p} was written in place and is incomplete; run the same pull again"),
        };
        Target {
            _interrupt: crate::image::on_signal::note(&left),
            kind,
            path: path.to_path_buf(),
            out: out.to_path_buf(),
            file,
            fresh,
        }
    }

    /// What is being written.
    pub fn kind(&self) -> TargetKind {
        self.kind
    }

    /// The file written.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its path (the partial file, or OUT).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file may already hold blocks (worth probing before fetching).
    pub fn may_hold_data(&self) -> bool {
        !self.fresh
    }

    /// Makes the image's holes read as zeros where they might not: a reused partial file
    /// (always: bytes found there are not ours to trust), or in place with `discard`.
    /// In place without `discard`, holes keep what the target held; verification then
    /// reads them and fails unless they are zero.
    pub fn clear_holes(&self, recipe: &Recipe, discard: bool) -> Result<(), Error> {
        let wanted = match self.kind {
            TargetKind::Partial => !self.fresh,
            TargetKind::InPlace | TargetKind::Device => discard && !self.fresh,
        };
        if !wanted {
            return Ok(());
        }
        let device = self.kind == TargetKind::Device;
        for (offset, len, e) in recipe.extents_with_offsets() {
            if matches!(e, Extent::Hole { .. }) {
                zero_range(&self.file, offset, len, device).at(&self.path)?;
            }
        }
        Ok(())
    }

    /// The verified image becomes OUT: fsync, then rename (never over an OUT that
    /// appeared meanwhile unless `force`) or hand to the converter.
    pub fn finish(self, force: bool, convert: Option<&dyn Convert>) -> Result<(), Error> {
        self.file.sync_all().at(&self.path)?;
        drop(self.file);
        if self.kind != TargetKind::Partial {
            return Ok(());
        }
        match convert {
            Some(c) => {
                c.convert(&self.path, &self.out, force)?;
                std::fs::remove_file(&self.path).at(&self.path)
            }
            None => publish::move_into(&self.path, &self.out, force),
        }
    }

    /// Turns a failure into the error the user sees: when the target's own bytes failed
    /// verification a partial file is removed (it cannot help a re-run); any other
    /// failure (network, a bad block from the store, I/O) keeps it, and the error says
    /// where it is and that a re-run resumes. In place, says that OUT is incomplete.
    pub fn fail(self, e: Error) -> Error {
        let verification = matches!(
            e,
            Error::ExtentMismatch { .. } | Error::HoleNotZero { .. } | Error::ImageMismatch { .. }
        );
        let p = self.path.display();
        let hint = match (self.kind, verification) {
            (TargetKind::Partial, true) => {
                drop(self.file);
                let _ = std::fs::remove_file(&self.path);
                "the partial file was removed".to_string()
            }
            (TargetKind::Partial, false) => {
                format!("verified blocks are kept in {p}; run the same pull again to resume")
            }
            (_, true) if !self.fresh => format!(
                "{p} was written in place and does not hold the image; if its holes hold old data, run again with --discard-holes"
            ),
            _ => format!("{p} was written in place and is incomplete; run the same pull again"),
        };
        e.with_hint(hint)
    }
}

fn open_rw(path: &Path, create: bool) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
}

/// Opens a leftover partial file of the right size, or creates a fresh one; returns
/// whether it is fresh. Never follows a symlink at `path`.
fn open_partial(path: &Path, size: u64) -> Result<(File, bool), Error> {
    let existing = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match existing {
        Ok(f) => {
            let m = f.metadata().at(path)?;
            if m.is_file() && m.len() == size {
                return Ok((f, false));
            }
            drop(f);
            std::fs::remove_file(path).at(path)?;
        }
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let msg = "is a symbolic link, not a partial file of bonsai's; remove it";
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, msg)).at(path);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).at(path),
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o644)
        .open(path)
        .at(path)?;
    f.set_len(size).at(path)?;
    Ok((f, true))
}

fn device_size(file: &File) -> io::Result<u64> {
    use std::io::Seek;
    let mut f = file;
    f.seek(io::SeekFrom::End(0))
}

/// Makes a range read as zeros: BLKZEROOUT on a device, a punched hole in a file (falling
/// back to writing zeros where the filesystem cannot).
fn zero_range(file: &File, offset: u64, len: u64, device: bool) -> io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let fd = file.as_raw_fd();
    let ok = if device {
        const BLKZEROOUT: libc::c_ulong = 0x127f;
        let range = [offset, len];
        // SAFETY: BLKZEROOUT reads two u64 (start, length) from the pointer we pass.
        unsafe { libc::ioctl(fd, BLKZEROOUT as _, range.as_ptr()) == 0 }
    } else {
        // SAFETY: fallocate on a descriptor we hold; the range is within the file.
        unsafe {
            libc::fallocate(
                fd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            ) == 0
        }
    };
    if ok {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut pos = offset;
    while pos < offset + len {
        let n = (offset + len - pos).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}
