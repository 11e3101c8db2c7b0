//! Where block objects live on disk: one file per block, fanned out over two levels of
//! 256 directories (`blocks/ab/cd/abcd…`), so ten million blocks make ~150 files per
//! directory. Writes go to `tmp/` and are renamed into place; the index is updated only
//! after [`BlobDir::sync`] has made them durable, so an indexed block is always whole.
//!
//! This module moves bytes and never parses them; verification happens in `ingest`.

use bonsai_core::BlockId;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A directory of block files.
pub struct BlobDir {
    root: PathBuf,
    tmp: PathBuf,
    counter: AtomicU64,
}

impl BlobDir {
    /// Opens (creating) the layout under `root` and clears temporaries a crash left behind.
    pub fn open(root: &Path) -> io::Result<Self> {
        let blocks = root.join("blocks");
        let tmp = root.join("tmp");
        fs::create_dir_all(&blocks)?;
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(BlobDir {
            root: blocks,
            tmp,
            counter: AtomicU64::new(0),
        })
    }

    /// The final path of a block.
    pub fn path_of(&self, id: &BlockId) -> PathBuf {
        let h = id.to_hex();
        self.root.join(&h[..2]).join(&h[2..4]).join(h)
    }

    /// Writes a block under a temporary name and renames it into place. Not yet durable:
    /// call [`BlobDir::sync`] before indexing it. Renaming over an existing copy is safe:
    /// both hold the same verified bytes.
    pub fn write(&self, id: &BlockId, bytes: &[u8]) -> io::Result<()> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .tmp
            .join(format!("{}.{}.{n}", id.to_hex(), std::process::id()));
        let result = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(bytes)?;
            let dest = self.path_of(id);
            match fs::rename(&tmp, &dest) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir_all(dest.parent().expect("fan-out parent"))?;
                    fs::rename(&tmp, &dest)
                }
                r => r,
            }
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Makes every write so far durable (one `syncfs`: a group commit for a whole batch).
    pub fn sync(&self) -> io::Result<()> {
        let dir = File::open(&self.root)?;
        // SAFETY: syncfs on a valid descriptor we own for the duration of the call.
        if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Reads a block's bytes.
    pub fn read(&self, id: &BlockId) -> io::Result<Vec<u8>> {
        fs::read(self.path_of(id))
    }
}
