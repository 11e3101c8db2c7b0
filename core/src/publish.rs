//! Publishing a file: write beside the destination, fsync, then make it appear at its name
//! in one step — so a file that exists is complete, and an interrupted run leaves nothing.
//!
//! Every file bonsai publishes (recipes, converted images, reports) goes through
//! [`Pending`]. The content is written to an anonymous `O_TMPFILE` in the destination's
//! directory, linked in only at [`Pending::commit`]; a crash or Ctrl-C before that leaves
//! nothing on disk. Filesystems without `O_TMPFILE` get a named temporary created with
//! `O_EXCL | O_NOFOLLOW` (a symlink planted at its name is never followed), removed on
//! every error path by `Drop`. Without `force` an existing destination is never replaced:
//! the final link fails atomically with `EEXIST` rather than checking first and racing.
//!
//! Caveat: a signal that kills the process between creating a named temporary and its
//! removal leaves `.NAME.*.tmp` behind — only on filesystems without `O_TMPFILE`.

use crate::error::{Error, IoContext};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

/// How to publish.
#[derive(Debug, Clone, Copy)]
pub struct PublishOptions {
    /// Replace an existing destination (never a directory).
    pub force: bool,
    /// Permission bits of the new file (before the umask): 0o600 for secrets.
    pub mode: u32,
}

impl PublishOptions {
    /// A file only its owner reads (recipes, keys).
    pub fn secret(force: bool) -> Self {
        PublishOptions { force, mode: 0o600 }
    }
}

/// Refuses a destination that is a directory, or that exists when `force` is false.
/// Called before any work so a mistake costs nothing; [`Pending::commit`] checks again.
pub fn check_destination(path: &Path, force: bool) -> Result<(), Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::IsDirectory {
            path: path.to_path_buf(),
        }),
        Ok(_) if std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false) => {
            Err(Error::IsDirectory {
                path: path.to_path_buf(),
            })
        }
        Ok(_) if !force => Err(Error::Exists {
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).at(path),
    }
}

/// A file being written, not yet visible at its destination.
pub struct Pending {
    file: File,
    dest: PathBuf,
    /// The named temporary, when `O_TMPFILE` was not available.
    named: Option<PathBuf>,
    force: bool,
}

impl Pending {
    /// Starts a file that will appear at `dest` on [`commit`](Self::commit).
    pub fn create(dest: &Path, opts: PublishOptions) -> Result<Pending, Error> {
        check_destination(dest, opts.force)?;
        if let Some(file) = open_unnamed(&parent_dir(dest), opts.mode).at(dest)? {
            return Ok(Pending {
                file,
                dest: dest.to_path_buf(),
                named: None,
                force: opts.force,
            });
        }
        let (file, named) = create_exclusive(dest, opts.mode)?;
        Ok(Pending {
            file,
            dest: dest.to_path_buf(),
            named: Some(named),
            force: opts.force,
        })
    }

    /// The file to write.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the file durable and visible at its destination; returns its length.
    pub fn commit(mut self) -> Result<u64, Error> {
        self.file.sync_all().at(&self.dest)?;
        let len = self.file.metadata().at(&self.dest)?.len();
        match self.named.take() {
            Some(named) => {
                let moved = move_into(&named, &self.dest, self.force);
                if moved.is_err() {
                    let _ = std::fs::remove_file(&named);
                }
                moved?;
            }
            None => self.link_anonymous()?,
        }
        sync_dir(&self.dest);
        Ok(len)
    }

    fn link_anonymous(&self) -> Result<(), Error> {
        if !self.force {
            return link_file(&self.file, &self.dest).map_err(|e| exists_or(e, &self.dest));
        }
        let proc_path = format!("/proc/self/fd/{}", self.file.as_raw_fd());
        // Forced: link under a fresh temporary name, then rename over the destination.
        for attempt in 0..16 {
            let tmp = temp_name(&self.dest, attempt);
            match link(Path::new(&proc_path), &tmp) {
                Ok(()) => {
                    let r = std::fs::rename(&tmp, &self.dest).at(&self.dest);
                    if r.is_err() {
                        let _ = std::fs::remove_file(&tmp);
                    }
                    return r;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).at(&self.dest),
            }
        }
        Err(io::Error::other("no free temporary name")).at(&self.dest)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.named.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Moves a complete file `from` to `dest` in the same directory: atomically refusing an
/// existing `dest` unless `force`. `from` is gone afterwards on success.
pub fn move_into(from: &Path, dest: &Path, force: bool) -> Result<(), Error> {
    if force {
        if std::fs::metadata(dest).map(|m| m.is_dir()).unwrap_or(false) {
            return Err(Error::IsDirectory {
                path: dest.to_path_buf(),
            });
        }
        return std::fs::rename(from, dest).at(dest);
    }
    link(from, dest).map_err(|e| exists_or(e, dest))?;
    std::fs::remove_file(from).at(from)
}

/// Creates a hidden temporary beside `dest` with `O_EXCL | O_NOFOLLOW`.
pub(crate) fn create_exclusive(dest: &Path, mode: u32) -> Result<(File, PathBuf), Error> {
    for attempt in 0..16 {
        let tmp = temp_name(dest, attempt);
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(mode)
            .open(&tmp)
        {
            Ok(f) => return Ok((f, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).at(&tmp),
        }
    }
    Err(io::Error::other("no free temporary name")).at(dest)
}

fn temp_name(dest: &Path, attempt: u32) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    dest.with_file_name(format!(
        ".{name}.{}-{nanos:x}-{attempt}.tmp",
        std::process::id()
    ))
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// An unnamed file in `dir` (`O_TMPFILE`, `mode`), or `None` where the filesystem has
/// none. Nothing of it is on disk until [`link_file`] names it: a crash leaves nothing.
pub fn open_unnamed(dir: &Path, mode: u32) -> io::Result<Option<File>> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(mode)
        .open(dir)
    {
        Ok(file) => Ok(Some(file)),
        Err(e) if tmpfile_unsupported(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Names an unnamed file at `dest`, atomically; `AlreadyExists` if `dest` exists.
pub fn link_file(file: &File, dest: &Path) -> io::Result<()> {
    link(
        Path::new(&format!("/proc/self/fd/{}", file.as_raw_fd())),
        dest,
    )
}

fn tmpfile_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
    )
}

/// `link(2)` following a symlink source (needed for `/proc/self/fd/N`), never the target.
fn link(from: &Path, to: &Path) -> io::Result<()> {
    let from_c = CString::new(from.as_os_str().as_bytes())?;
    let to_c = CString::new(to.as_os_str().as_bytes())?;
    // SAFETY: two valid NUL-terminated paths; linkat does not retain them.
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn exists_or(e: io::Error, dest: &Path) -> Error {
    if e.kind() == io::ErrorKind::AlreadyExists {
        if std::fs::metadata(dest).map(|m| m.is_dir()).unwrap_or(false) {
            return Error::IsDirectory {
                path: dest.to_path_buf(),
            };
        }
        Error::Exists {
            path: dest.to_path_buf(),
        }
    } else {
        Error::Io {
            path: dest.to_path_buf(),
            source: e,
        }
    }
}

/// Makes the new directory entry durable; failures only cost durability, not correctness.
fn sync_dir(dest: &Path) {
    if let Ok(d) = File::open(parent_dir(dest)) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn write(dest: &Path, opts: PublishOptions, text: &[u8]) -> Result<u64, Error> {
        let mut p = Pending::create(dest, opts)?;
        p.file().write_all(text).unwrap();
        p.commit()
    }

    #[test]
    fn publishes_0600_and_refuses_to_clobber() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("r");
        assert_eq!(
            write(&dest, PublishOptions::secret(false), b"one").unwrap(),
            3
        );
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let err = write(&dest, PublishOptions::secret(false), b"two").unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"one");
        write(&dest, PublishOptions::secret(true), b"two").unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn abandoned_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("r");
        let mut p = Pending::create(&dest, PublishOptions::secret(false)).unwrap();
        p.file().write_all(b"half").unwrap();
        drop(p);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn directory_refused_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(dir.path(), PublishOptions::secret(true), b"x").unwrap_err();
        assert!(matches!(err, Error::IsDirectory { .. }), "{err}");
    }

    #[test]
    fn exclusive_temp_never_follows_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let dest = dir.path().join("out");
        let (mut f, tmp) = create_exclusive(&dest, 0o600).unwrap();
        f.write_all(b"new").unwrap();
        move_into(&tmp, &dest, false).unwrap();
        // A symlink at the destination is replaced only with force, never written through.
        let link_at = dir.path().join("l");
        std::os::unix::fs::symlink(&victim, &link_at).unwrap();
        let err = write(&link_at, PublishOptions::secret(false), b"x").unwrap_err();
        assert!(matches!(err, Error::Exists { .. }), "{err}");
        write(&link_at, PublishOptions::secret(true), b"x").unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&link_at)
            .unwrap()
            .file_type()
            .is_symlink());
    }
}
