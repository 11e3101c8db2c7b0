//! Pull, verification: "verified" means the bytes in the target are exactly the image the
//! recipe describes. Every block a pull writes is key-checked in memory just before it is
//! written (fetch.rs, local.rs) or where it lies (resume.rs); this pass checks the rest:
//!
//! - every block has landed at every use ([`Written`]);
//! - every hole reads as zero: `SEEK_DATA` finds the data inside a hole's range (a fresh
//!   partial file has none), and only that is read and must be zero — a block device
//!   reports all data, so its holes are read;
//! - for recipe v1, and for an export's filled LOCAL, every block extent is read back and
//!   its key re-derived from exactly `len` bytes (keys on all cores, a batch at a time);
//!   recipe v1 also gets the whole-image BLAKE3 over the same bytes (holes as zeros).
//!   Recipe v2's hash over the extents was checked by the recipe reader.
//!
//! It runs beside the fetch, walking the extents in order and waiting for each block to
//! land, so extents read back are still in the page cache.

use crate::batch::BATCH_BYTES;
use crate::chunk::is_zero;
use crate::codec::Convergence;
use crate::error::{Error, Hint, IoContext};
use crate::id::ImageHash;
use crate::image::next_data;
use crate::recipe::{Extent, ImageCheck, Recipe};
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Which blocks are in the target, for the in-order verifier to wait on.
pub(crate) struct Written {
    done: Vec<AtomicBool>,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Written {
    pub(crate) fn new(blocks: usize) -> Self {
        Written {
            done: (0..blocks).map(|_| AtomicBool::new(false)).collect(),
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    /// Records that these blocks are written at every use.
    pub(crate) fn mark(&self, blocks: impl IntoIterator<Item = u32>) {
        for i in blocks {
            self.done[i as usize].store(true, Ordering::Release);
        }
        self.wake();
    }

    /// Wakes the verifier (after a failure, so it can stop).
    pub(crate) fn wake(&self) {
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.cond.notify_all();
    }

    /// Waits until block `i` is written; false if the pull failed meanwhile.
    fn wait(&self, i: u32, failed: &AtomicBool) -> bool {
        let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        while !self.done[i as usize].load(Ordering::Acquire) {
            if failed.load(Ordering::SeqCst) {
                return false;
            }
            g = self
                .cond
                .wait_timeout(g, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// What to verify the target against.
pub(crate) struct Check<'a> {
    pub(crate) recipe: &'a Recipe,
    pub(crate) conv: &'a Convergence,
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    /// Read every block extent back and re-derive its key. A pull that wrote each block
    /// from a buffer it had just verified (fetch, seed, resume) needs this only for recipe
    /// v1, whose whole-image hash is over the bytes; see [`reads_blocks_back`].
    pub(crate) read_blocks: bool,
}

/// Whether a pull's verifier must read blocks back: only for recipe v1's whole-image hash.
/// Every byte a pull writes comes from a buffer whose key was re-derived just before
/// (fetched: decoded and key-checked; seeded or resumed: re-read and key-checked), and a
/// resumed block left at its first use was key-checked where it lies, so a second pass
/// over the target would hash the same bytes again.
pub(crate) fn reads_blocks_back(recipe: &Recipe) -> bool {
    whole_image_hash(recipe).is_some()
}

/// One extent of the read-back buffer, in image order.
enum Seg {
    Block {
        index: u32,
        offset: u64,
        at: usize,
        len: usize,
    },
    Hole {
        len: u64,
    },
}

/// Verifies the target extent by extent as blocks land. `Ok(false)` when the pull
/// failed elsewhere first (`failed`); any mismatch is an error naming the offset.
pub(crate) fn verify_in_order(
    c: &Check<'_>,
    written: &Written,
    failed: &AtomicBool,
) -> Result<bool, Error> {
    let mut image = whole_image_hash(c.recipe).map(|h| (h, blake3::Hasher::new()));
    let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES + c.recipe.header.chunker.max as usize);
    let mut segs: Vec<Seg> = Vec::new();
    for (offset, len, e) in c.recipe.extents_with_offsets() {
        match *e {
            Extent::Hole { len } => {
                check_hole(c.file, c.path, offset, len)?;
                segs.push(Seg::Hole { len });
            }
            Extent::Block { index } => {
                if !written.wait(index, failed) {
                    return Ok(false);
                }
                if !c.read_blocks {
                    continue;
                }
                let at = buf.len();
                buf.resize(at + len as usize, 0);
                c.file.read_exact_at(&mut buf[at..], offset).at(c.path)?;
                let len = len as usize;
                segs.push(Seg::Block {
                    index,
                    offset,
                    at,
                    len,
                });
            }
        }
        if buf.len() >= BATCH_BYTES || segs.len() >= 65_536 {
            check_blocks(c, &buf, &segs, image.as_mut().map(|i| &mut i.1))?;
            buf.clear();
            segs.clear();
        }
        if failed.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
    check_blocks(c, &buf, &segs, image.as_mut().map(|i| &mut i.1))?;
    if let Some((expected, hasher)) = image {
        let got = ImageHash(*hasher.finalize().as_bytes());
        if got != expected {
            return Err(Error::ImageMismatch {
                path: c.path.to_path_buf(),
                expected,
                got,
                hint: Hint::default(),
            });
        }
    }
    Ok(true)
}

/// The whole-image hash a recipe asks to be checked: recipe v1's BLAKE3 of the image.
/// Recipe v2's hash is over the extents and was checked when the recipe was read; keys
/// and zero holes are then the whole check, and holes cost no hashing.
fn whole_image_hash(recipe: &Recipe) -> Option<ImageHash> {
    match recipe.image_check() {
        ImageCheck::WholeImageBlake3(h) => Some(h),
        ImageCheck::Extents(_) => None,
    }
}

/// Re-derives the key of every block segment (all cores), then feeds the image hash in
/// order.
fn check_blocks(
    c: &Check<'_>,
    buf: &[u8],
    segs: &[Seg],
    image: Option<&mut blake3::Hasher>,
) -> Result<(), Error> {
    let bad = segs.par_iter().find_first(|s| match **s {
        Seg::Block { index, at, len, .. } => {
            c.conv.key_for(&buf[at..at + len]) != c.recipe.blocks[index as usize].key
        }
        Seg::Hole { .. } => false,
    });
    if let Some(Seg::Block {
        index, offset, len, ..
    }) = bad
    {
        return Err(Error::ExtentMismatch {
            path: c.path.to_path_buf(),
            offset: *offset,
            len: *len as u64,
            id: c.recipe.blocks[*index as usize].id,
            hint: Hint::default(),
        });
    }
    let Some(hasher) = image else {
        return Ok(());
    };
    let zeros = vec![0u8; 4 << 20];
    for s in segs {
        match *s {
            Seg::Block { at, len, .. } => {
                hasher.update(&buf[at..at + len]);
            }
            Seg::Hole { mut len } => {
                while len > 0 {
                    let n = len.min(zeros.len() as u64) as usize;
                    if n >= 1 << 20 {
                        hasher.update_rayon(&zeros[..n]);
                    } else {
                        hasher.update(&zeros[..n]);
                    }
                    len -= n as u64;
                }
            }
        }
    }
    Ok(())
}

/// Checks that `[offset, offset + len)` of `file` reads as zeros, reading only what
/// `SEEK_DATA` reports as data there.
pub(crate) fn check_hole(file: &File, path: &Path, offset: u64, len: u64) -> Result<(), Error> {
    let end = offset + len;
    let mut pos = offset;
    let mut buf = Vec::new();
    while pos < end {
        let (start, stop) = next_data(file, pos, end).at(path)?;
        if start >= end {
            break;
        }
        let stop = stop.clamp(start + 1, end);
        let mut at = start;
        while at < stop {
            let n = (stop - at).min(1 << 20) as usize;
            buf.resize(n, 0);
            file.read_exact_at(&mut buf, at).at(path)?;
            if !is_zero(&buf) {
                let first = buf.iter().position(|&b| b != 0).unwrap_or(0) as u64;
                return Err(Error::HoleNotZero {
                    path: path.to_path_buf(),
                    offset: at + first,
                    hint: Hint::default(),
                });
            }
            at += n as u64;
        }
        pos = stop;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hole_check_reads_only_data_and_finds_planted_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)
            .unwrap();
        f.set_len(64 << 20).unwrap();
        f.write_all_at(&[0u8; 8192], 8 << 20).unwrap(); // written zeros are fine
        check_hole(&f, &p, 0, 64 << 20).unwrap();
        f.write_all_at(b"x", (40 << 20) + 5).unwrap();
        check_hole(&f, &p, 0, 40 << 20).unwrap();
        let err = check_hole(&f, &p, 0, 64 << 20).unwrap_err();
        assert!(
            matches!(err, Error::HoleNotZero { offset, .. } if offset == (40 << 20) + 5),
            "{err}"
        );
    }
}
