//! The directory backend: one file per block, fanned out over two levels of 256
//! directories (`blocks/ab/cd/abcd…`), so ten million blocks make ~150 files per directory.
//! A block is written to an unnamed file (`O_TMPFILE`) in its own directory and linked
//! into place, so writers take only that directory's lock and a crash leaves nothing;
//! otherwise (no `O_TMPFILE`, or a leftover file in the way) it goes to `tmp/` and is
//! renamed into place. [`Backend::flush`] makes them durable with one `syncfs` per batch. Manifests are files under `manifests/` (named by the hex
//! of the image name, so any name is a safe file name).
//!
//! The directory is locked (`flock` on `lock`) for as long as the backend lives: a second
//! server or embedded store on the same directory is refused instead of emptying `tmp/`
//! under the first. This module moves bytes and never parses them.

use super::{Backend, BackendError, Put};
use bonsai_core::publish::{link_file, open_unnamed};
use bonsai_core::BlockId;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A store directory's blocks and manifests.
pub struct DirBackend {
    root: PathBuf,
    blocks: PathBuf,
    tmp: PathBuf,
    manifests: PathBuf,
    recipes: PathBuf,
    profiles: PathBuf,
    counter: AtomicU64,
    /// The filesystem refused `O_TMPFILE` once: use `tmp/` and rename.
    no_unnamed: AtomicBool,
    /// Held open for the flock; released when the backend is dropped.
    _lock: File,
}

/// Takes the exclusive lock on `root/lock`, or says who holds it.
fn lock_dir(root: &Path) -> Result<File, BackendError> {
    let path = root.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| BackendError::io(path.display(), e))?;
    // SAFETY: flock on a descriptor we own and keep open for the lock's lifetime.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(BackendError::Refused {
                what: root.display().to_string(),
                reason: "store directory is in use by another process (a running server or \
                         bonsai command); stop it or use the server's http:// address"
                    .into(),
            });
        }
        return Err(BackendError::io(path.display(), err));
    }
    Ok(file)
}

impl DirBackend {
    /// Opens (creating) the layout under `root`, locks it, and clears temporaries a crash
    /// left behind (safe: the lock proves no one else is writing them).
    pub fn open(root: &Path) -> Result<Self, BackendError> {
        let io = |e| BackendError::io(root.display(), e);
        fs::create_dir_all(root).map_err(io)?;
        let lock = lock_dir(root)?;
        let (blocks, tmp, manifests, recipes, profiles) = (
            root.join("blocks"),
            root.join("tmp"),
            root.join("manifests"),
            root.join("recipes"),
            root.join("profiles"),
        );
        for d in [&blocks, &tmp, &manifests, &recipes, &profiles] {
            fs::create_dir_all(d).map_err(io)?;
        }
        for entry in fs::read_dir(&tmp).map_err(io)? {
            let _ = fs::remove_file(entry.map_err(io)?.path());
        }
        Ok(DirBackend {
            root: root.to_path_buf(),
            blocks,
            tmp,
            manifests,
            recipes,
            profiles,
            counter: AtomicU64::new(0),
            no_unnamed: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// The final path of a block.
    pub fn path_of(&self, id: &BlockId) -> PathBuf {
        let h = id.to_hex();
        self.blocks.join(&h[..2]).join(&h[2..4]).join(h)
    }

    fn manifest_path(&self, name: &str) -> PathBuf {
        self.manifests.join(hex::encode(name.as_bytes()))
    }

    fn recipe_path(&self, name: &str) -> PathBuf {
        self.recipes.join(hex::encode(name.as_bytes()))
    }

    fn profile_path(&self, name: &str) -> PathBuf {
        self.profiles.join(hex::encode(name.as_bytes()))
    }

    /// Writes a named object create-only: a fsynced temporary is hard-linked to `dest`,
    /// which fails atomically if `dest` exists.
    fn put_named(&self, dest: &Path, bytes: &[u8]) -> Result<Put, BackendError> {
        let err = |e| BackendError::io(dest.display(), e);
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{n}.named", std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            let linked = match fs::hard_link(&tmp, dest) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(dest.parent().expect("parent"))?;
                    fs::hard_link(&tmp, dest)
                }
                r => r,
            };
            match linked {
                Ok(()) => {
                    File::open(dest.parent().expect("parent"))?.sync_all()?;
                    Ok(Put::Written)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Put::Present),
                Err(e) => Err(e),
            }
        })();
        let _ = fs::remove_file(&tmp);
        result.map_err(err)
    }

    fn get_named(path: &Path) -> Result<Option<Vec<u8>>, BackendError> {
        absent_as_none(fs::read(path)).map_err(|e| BackendError::io(path.display(), e))
    }

    fn delete_named(path: &Path) -> Result<bool, BackendError> {
        absent_as_none(fs::remove_file(path))
            .map(|r| r.is_some())
            .map_err(|e| BackendError::io(path.display(), e))
    }

    /// The names (hex-decoded file names) in one of the named-object directories.
    fn list_named(dir: &Path) -> Result<Vec<String>, BackendError> {
        let err = |e| BackendError::io(dir.display(), e);
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let decoded = entry
                .file_name()
                .to_str()
                .and_then(|h| hex::decode(h).ok())
                .and_then(|b| String::from_utf8(b).ok());
            if let Some(name) = decoded {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Writes a block file at `dest` whole or not at all: unnamed in `dest`'s directory,
    /// then linked. Falls back to [`Self::write_via_tmp`], which renames over a leftover.
    fn write_block(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        match self.write_unnamed(dest, bytes)? {
            true => Ok(()),
            false => self.write_via_tmp(dest, bytes),
        }
    }

    /// `Ok(false)`: not written (no `O_TMPFILE` here, or a file already at `dest`).
    fn write_unnamed(&self, dest: &Path, bytes: &[u8]) -> io::Result<bool> {
        if self.no_unnamed.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let dir = dest.parent().expect("parent");
        let opened = match open_unnamed(dir, 0o666) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(dir)?;
                open_unnamed(dir, 0o666)
            }
            r => r,
        }?;
        let Some(mut file) = opened else {
            self.no_unnamed.store(true, Ordering::Relaxed);
            return Ok(false);
        };
        file.write_all(bytes)?;
        match link_file(&file, dest) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes `bytes` to a fresh temporary file and renames it to `dest`, creating the
    /// parent on demand.
    fn write_via_tmp(&self, dest: &Path, bytes: &[u8]) -> io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{n}", std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            match fs::rename(&tmp, dest) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(dest.parent().expect("parent"))?;
                    fs::rename(&tmp, dest)
                }
                r => r,
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

fn err(p: &Path) -> impl Fn(io::Error) -> BackendError + '_ {
    move |e| BackendError::io(p.display(), e)
}

fn absent_as_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Backend for DirBackend {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn local_root(&self) -> Option<&Path> {
        Some(&self.root)
    }

    /// Always writes: ingest asks only for blocks the index lacks, and a file that is
    /// there but not indexed may be the unsynced leftover of a crash, so it is not trusted.
    /// Renaming over it is safe: both hold the same verified bytes or the old one is torn.
    fn put_if_absent(&self, id: &BlockId, bytes: &[u8]) -> Result<Put, BackendError> {
        let dest = self.path_of(id);
        self.write_block(&dest, bytes)
            .map_err(|e| BackendError::io(dest.display(), e))?;
        Ok(Put::Written)
    }

    fn flush(&self) -> Result<(), BackendError> {
        let err = |e| BackendError::io(self.root.display(), e);
        let dir = File::open(&self.blocks).map_err(err)?;
        // SAFETY: syncfs on a valid descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(err(io::Error::last_os_error()));
        }
        Ok(())
    }

    fn get(&self, id: &BlockId) -> Result<Option<Vec<u8>>, BackendError> {
        let path = self.path_of(id);
        absent_as_none(fs::read(&path)).map_err(|e| BackendError::io(path.display(), e))
    }

    fn stat(&self, id: &BlockId) -> Result<Option<u64>, BackendError> {
        let path = self.path_of(id);
        absent_as_none(fs::metadata(&path))
            .map(|m| m.map(|m| m.len()))
            .map_err(|e| BackendError::io(path.display(), e))
    }

    fn delete(&self, id: &BlockId) -> Result<bool, BackendError> {
        let path = self.path_of(id);
        absent_as_none(fs::remove_file(&path))
            .map(|r| r.is_some())
            .map_err(|e| BackendError::io(path.display(), e))
    }

    fn list(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        for top in fs::read_dir(&self.blocks).map_err(err(&self.blocks))? {
            let top = top.map_err(err(&self.blocks))?.path();
            for mid in fs::read_dir(&top).map_err(err(&top))? {
                let mid = mid.map_err(err(&top))?.path();
                for file in fs::read_dir(&mid).map_err(err(&mid))? {
                    let file = file.map_err(err(&mid))?;
                    let name = file.file_name();
                    let Some(id) = name.to_str().and_then(|n| n.parse::<BlockId>().ok()) else {
                        continue;
                    };
                    let size = file.metadata().map_err(err(&mid))?.len();
                    each(id, size)?;
                }
            }
        }
        Ok(())
    }

    fn put_manifest(&self, key: &str, manifest: &[u8]) -> Result<Put, BackendError> {
        self.put_named(&self.manifest_path(key), manifest)
    }

    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Self::get_named(&self.manifest_path(name))
    }

    fn delete_manifest(&self, name: &str) -> Result<bool, BackendError> {
        Self::delete_named(&self.manifest_path(name))
    }

    fn list_manifests(&self) -> Result<Vec<String>, BackendError> {
        Self::list_named(&self.manifests)
    }

    fn put_sealed_recipe(&self, key: &str, sealed: &[u8]) -> Result<Put, BackendError> {
        self.put_named(&self.recipe_path(key), sealed)
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Self::get_named(&self.recipe_path(name))
    }

    fn delete_sealed_recipe(&self, name: &str) -> Result<bool, BackendError> {
        Self::delete_named(&self.recipe_path(name))
    }

    fn list_sealed_recipes(&self) -> Result<Vec<String>, BackendError> {
        Self::list_named(&self.recipes)
    }

    fn put_profile(&self, key: &str, profile: &[u8]) -> Result<Put, BackendError> {
        self.put_named(&self.profile_path(key), profile)
    }

    fn get_profile(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        Self::get_named(&self.profile_path(key))
    }

    fn delete_profile(&self, key: &str) -> Result<bool, BackendError> {
        Self::delete_named(&self.profile_path(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_opener_is_refused_and_tmp_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirBackend::open(dir.path()).unwrap();
        fs::write(dir.path().join("tmp/inflight"), b"x").unwrap();
        let err = DirBackend::open(dir.path()).err().expect("locked");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        assert!(
            dir.path().join("tmp/inflight").exists(),
            "tmp emptied under a holder"
        );
        drop(first);
        DirBackend::open(dir.path()).expect("free after drop");
        assert!(!dir.path().join("tmp/inflight").exists());
    }

    #[test]
    fn a_leftover_block_file_is_replaced_whole_and_nothing_stays_in_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let b = DirBackend::open(dir.path()).unwrap();
        let id = BlockId([7; 32]);
        let path = b.path_of(&id);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"torn").unwrap();
        b.put_if_absent(&id, b"the whole object").unwrap();
        assert_eq!(b.get(&id).unwrap().unwrap(), b"the whole object");
        let fresh = BlockId([8; 32]);
        b.put_if_absent(&fresh, b"new").unwrap();
        assert_eq!(fs::read(b.path_of(&fresh)).unwrap(), b"new");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn blocks_and_manifests_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let b = DirBackend::open(dir.path()).unwrap();
        let id = BlockId([7; 32]);
        assert_eq!(b.put_if_absent(&id, b"abc").unwrap(), Put::Written);
        assert_eq!(b.put_if_absent(&id, b"abc").unwrap(), Put::Written);
        b.flush().unwrap();
        assert_eq!(b.get(&id).unwrap().as_deref(), Some(&b"abc"[..]));
        assert_eq!(b.stat(&id).unwrap(), Some(3));
        let mut seen = Vec::new();
        b.list(&mut |i, s| {
            seen.push((i, s));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(id, 3)]);
        assert!(b.delete(&id).unwrap());
        assert!(!b.delete(&id).unwrap());
        assert_eq!(b.get(&id).unwrap(), None);
        assert_eq!(
            b.put_sealed_recipe("a/b c", b"sealed").unwrap(),
            Put::Written
        );
        assert_eq!(
            b.put_sealed_recipe("a/b c", b"other").unwrap(),
            Put::Present
        );
        assert_eq!(b.list_sealed_recipes().unwrap(), vec!["a/b c".to_string()]);
        assert_eq!(
            b.get_sealed_recipe("a/b c").unwrap().as_deref(),
            Some(&b"sealed"[..])
        );
        assert!(b.delete_sealed_recipe("a/b c").unwrap());
        assert!(!b.delete_sealed_recipe("a/b c").unwrap());
        assert_eq!(b.put_manifest("a/b c", b"m").unwrap(), Put::Written);
        assert_eq!(b.put_manifest("a/b c", b"n").unwrap(), Put::Present);
        assert_eq!(b.list_manifests().unwrap(), vec!["a/b c".to_string()]);
        assert_eq!(b.get_manifest("a/b c").unwrap().as_deref(), Some(&b"m"[..]));
        assert!(b.delete_manifest("a/b c").unwrap());
        assert_eq!(b.get_manifest("a/b c").unwrap(), None);
    }
}
