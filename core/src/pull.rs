//! Pull: recipe → plan (resume, seeds, store) → fetch → verify → write → whole-image check.
//!
//! ```text
//! plan:    for each distinct block: already in the partial file from an interrupted pull?
//!          in a --seed file (matched by key)?  otherwise: fetch from the store
//! local:   read the plaintext, re-derive its key, write it at every offset that uses it
//! fetch:   batches of ids, several requests in flight; each object is verified
//!          (id, tag, length, key) before a byte of it is written
//! verify:  alongside, a verifier walks the extents in order, reads each block back from
//!          the file as soon as it is written (still in the page cache) and feeds BLAKE3;
//!          holes are hashed as zeros
//! finish:  the hash must equal the recipe's image hash; fsync; only then rename the
//!          partial file to OUT
//! ```
//!
//! In place (`--in-place`, or OUT a block device) the target itself is written: what it
//! already holds at the right offsets is kept (found like a resume), holes are read back
//! for verification (or zeroed first with `--discard-holes`), and a failure leaves the
//! target partly written — the error says so.
//!
//! Otherwise writes go to `.OUT.<image-hash-prefix>.bonsai-partial` beside OUT, created sparse at
//! the logical size; holes are never written, so they stay holes. An interrupted pull
//! leaves that partial file; a re-run of the same recipe finds what it already wrote by
//! re-hashing each block's first occurrence, and fetches only the rest. A failed check
//! removes the partial file; OUT is never a half-written image.

use crate::codec::{decode, Convergence};
use crate::error::{Error, IoContext};
use crate::id::{BlockId, BlockKey, ImageHash};
use crate::progress::Progress;
use crate::recipe::{Extent, Recipe};
use crate::stats::PullReport;
use crate::store::{limits, BlockStore};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Convergence secret the image was pushed with.
    pub convergence: Convergence,
    /// Local files to take matching blocks from.
    pub seeds: Vec<PathBuf>,
    /// Concurrent download requests.
    pub network_threads: usize,
    /// Key → id cache to fill with the verified blocks (so a re-push here is cheap).
    pub cache: Option<std::sync::Arc<crate::cache::KeyCache>>,
    /// Write straight into OUT (always so for block devices): blocks already there are
    /// kept, no temporary file, no rename.
    pub in_place: bool,
    /// In place, make the image's holes read as zeros (discard / punch / write zeros).
    pub discard_holes: bool,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            convergence: Convergence::public(),
            seeds: Vec::new(),
            network_threads: 4,
            cache: None,
            in_place: false,
            discard_holes: false,
        }
    }
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

/// Rebuilds the image described by `recipe` at `out`, verified.
pub fn pull(
    recipe: &Recipe,
    store: &dyn BlockStore,
    out: &Path,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullReport, Error> {
    let started = Instant::now();
    let conv = &opts.convergence;
    if recipe.header.fingerprint != conv.fingerprint() {
        return Err(Error::WrongSecret {
            recipe: hex::encode(recipe.header.fingerprint),
            ours: hex::encode(conv.fingerprint()),
        });
    }
    // In place (a block device, or --in-place): write straight into OUT, whose current
    // content serves like a partial file; otherwise a partial file renamed when verified.
    let device = is_block_device(out);
    let in_place = opts.in_place || device;
    let partial = if in_place {
        out.to_path_buf()
    } else {
        partial_path(out, recipe)
    };
    let resuming = match partial.metadata() {
        Ok(m) if in_place => device || m.len() > 0,
        Ok(m) => m.len() == recipe.logical_size,
        Err(_) => false,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(!device)
        .truncate(false)
        .open(&partial)
        .at(&partial)?;
    if device {
        let size = device_size(&file).at(out)?;
        if size < recipe.logical_size {
            return Err(Error::Invalid(format!(
                "{} holds {size} bytes, the image needs {}",
                out.display(),
                recipe.logical_size
            )));
        }
    } else {
        if !resuming {
            file.set_len(0).at(&partial)?;
        }
        file.set_len(recipe.logical_size).at(&partial)?;
    }
    if in_place && opts.discard_holes {
        for (offset, len, e) in recipe.extents_with_offsets() {
            if matches!(e, Extent::Hole { .. }) {
                zero_range(&file, offset, len, device).at(out)?;
            }
        }
    }

    // Offsets at which each distinct block is used.
    let mut offsets: Vec<Vec<u64>> = vec![Vec::new(); recipe.blocks.len()];
    for (off, _, e) in recipe.extents_with_offsets() {
        if let Extent::Block { index } = e {
            offsets[*index as usize].push(off);
        }
    }
    let mut report = PullReport {
        logical_bytes: recipe.logical_size,
        zero_bytes: recipe.hole_bytes(),
        unique_chunks: recipe.blocks.len() as u64,
        output: out.display().to_string(),
        ..Default::default()
    };
    let total: u64 = recipe
        .blocks
        .iter()
        .zip(&offsets)
        .map(|(b, o)| b.len as u64 * o.len() as u64)
        .sum();
    progress.start("pull", Some(total));

    let mut done = vec![false; recipe.blocks.len()];

    // 1. Resume: blocks an interrupted pull already wrote at their first offset.
    if resuming {
        let found: Vec<u32> = (0..recipe.blocks.len() as u32)
            .into_par_iter()
            .filter(|&i| {
                let b = &recipe.blocks[i as usize];
                let mut buf = vec![0u8; b.len as usize];
                file.read_exact_at(&mut buf, offsets[i as usize][0]).is_ok()
                    && conv.key_for(&buf) == b.key
            })
            .collect();
        for i in found {
            let b = &recipe.blocks[i as usize];
            let mut buf = vec![0u8; b.len as usize];
            file.read_exact_at(&mut buf, offsets[i as usize][0])
                .at(&partial)?;
            write_all_offsets(&file, &partial, &buf, &offsets[i as usize][1..])?;
            report.resumed_bytes += b.len as u64;
            progress.advance(b.len as u64 * offsets[i as usize].len() as u64);
            done[i as usize] = true;
        }
    }

    // 2. Seeds, matched by key.
    if !opts.seeds.is_empty() {
        let wanted: HashMap<BlockKey, u32> = recipe
            .blocks
            .iter()
            .enumerate()
            .filter(|(i, _)| !done[*i])
            .map(|(i, b)| (b.key, i as u32))
            .collect();
        let hits = crate::seed::find_in_seeds(recipe, conv, &opts.seeds, &wanted)?;
        let mut open: HashMap<PathBuf, File> = HashMap::new();
        for (index, hit) in hits {
            let b = &recipe.blocks[index as usize];
            if !open.contains_key(&hit.path) {
                open.insert(hit.path.clone(), File::open(&hit.path).at(&hit.path)?);
            }
            let mut buf = vec![0u8; b.len as usize];
            open[&hit.path]
                .read_exact_at(&mut buf, hit.offset)
                .at(&hit.path)?;
            if conv.key_for(&buf) != b.key {
                continue; // the seed changed under us: fetch this one instead
            }
            write_all_offsets(&file, &partial, &buf, &offsets[index as usize])?;
            report.seeded_bytes += b.len as u64;
            progress.advance(b.len as u64 * offsets[index as usize].len() as u64);
            done[index as usize] = true;
        }
    }

    // 3. Fetch the rest in batches, several in flight.
    let todo: Vec<u32> = (0..recipe.blocks.len() as u32)
        .filter(|&i| !done[i as usize])
        .collect();
    let mut batches: Vec<Vec<u32>> = Vec::new();
    let mut cur: Vec<u32> = Vec::new();
    let mut cur_bytes = 0usize;
    for i in todo {
        cur_bytes += recipe.blocks[i as usize].len as usize;
        cur.push(i);
        if cur_bytes >= limits::BATCH_BYTES || cur.len() >= 4096 {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let fetched_blocks = AtomicU64::new(0);
    let fetched_bytes = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let queue = Mutex::new(batches.into_iter());
    // Blocks already in the file; the verifier reads each extent right after it lands,
    // while its pages are still in memory, instead of re-reading the image at the end.
    let written = Written::new(&done);
    let got = std::thread::scope(|s| {
        let verifier = s.spawn(|| verify_in_order(recipe, &file, &written, &failed, in_place));
        for _ in 0..opts.network_threads.max(1) {
            s.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let Some(batch) = queue.lock().expect("lock").next() else {
                    return;
                };
                let r = fetch_batch(
                    recipe, store, conv, &file, &partial, &offsets, &batch, progress,
                );
                match r {
                    Ok(bytes) => {
                        written.mark(&batch);
                        fetched_blocks.fetch_add(batch.len() as u64, Ordering::Relaxed);
                        fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        written.wake();
                        first_error.lock().expect("lock").get_or_insert(e);
                    }
                }
            });
        }
        verifier.join().expect("verifier panicked")
    });
    if let Some(e) = first_error.into_inner().expect("lock") {
        // Verified blocks stay in the partial file for a re-run; OUT is untouched.
        progress.finish();
        return Err(e);
    }
    report.fetched_blocks = fetched_blocks.into_inner();
    report.fetched_bytes = fetched_bytes.into_inner();

    // 4. The whole image, as written and read back, must hash to the recipe's image hash.
    progress.finish();
    let got = got.at(&partial)?;
    file.sync_all().at(&partial)?;
    if got != recipe.image_hash {
        drop(file);
        if in_place {
            return Err(Error::Invalid(format!(
                "{} does not match the recipe after the pull (expected {}, got {got}); \
                 if its holes hold old data, run again with --discard-holes",
                out.display(),
                recipe.image_hash
            )));
        }
        let _ = std::fs::remove_file(&partial);
        return Err(Error::ImageMismatch {
            expected: recipe.image_hash,
            got,
        });
    }
    drop(file);
    if !in_place {
        std::fs::rename(&partial, out).at(out)?;
    }
    report.verified = true;
    if let Some(cache) = &opts.cache {
        cache.insert(recipe.blocks.iter().map(|b| (b.key, b.id)));
    }
    report.wall_seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path)
        .map(|m| m.file_type().is_block_device())
        .unwrap_or(false)
}

fn device_size(file: &File) -> std::io::Result<u64> {
    use std::io::Seek;
    let mut f = file;
    f.seek(std::io::SeekFrom::End(0))
}

/// Makes a range read as zeros: BLKZEROOUT on a device, a punched hole in a file (falling
/// back to writing zeros where the filesystem cannot).
fn zero_range(file: &File, offset: u64, len: u64, device: bool) -> std::io::Result<()> {
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

/// Which blocks are in the output file, for the in-order verifier to wait on.
struct Written {
    done: Vec<AtomicBool>,
    lock: Mutex<()>,
    cond: std::sync::Condvar,
}

impl Written {
    fn new(initial: &[bool]) -> Self {
        Written {
            done: initial.iter().map(|&d| AtomicBool::new(d)).collect(),
            lock: Mutex::new(()),
            cond: std::sync::Condvar::new(),
        }
    }

    fn mark(&self, batch: &[u32]) {
        for &i in batch {
            self.done[i as usize].store(true, Ordering::Release);
        }
        self.wake();
    }

    fn wake(&self) {
        let _g = self.lock.lock().expect("lock");
        self.cond.notify_all();
    }

    /// Waits until block `i` is written; false if the pull failed meanwhile.
    fn wait(&self, i: u32, failed: &AtomicBool) -> bool {
        let mut g = self.lock.lock().expect("lock");
        while !self.done[i as usize].load(Ordering::Acquire) {
            if failed.load(Ordering::SeqCst) {
                return false;
            }
            g = self
                .cond
                .wait_timeout(g, std::time::Duration::from_millis(100))
                .expect("lock")
                .0;
        }
        true
    }
}

/// BLAKE3 of the image as it lands in the file, extent by extent in order: holes are
/// hashed as zeros, every block extent is read back from the file once it is written.
fn verify_in_order(
    recipe: &Recipe,
    file: &File,
    written: &Written,
    failed: &AtomicBool,
    read_holes: bool,
) -> std::io::Result<ImageHash> {
    let mut hasher = blake3::Hasher::new();
    let zeros = vec![0u8; 4 << 20];
    let mut buf = vec![0u8; recipe.header.chunker.max as usize];
    let mut hole_buf = if read_holes {
        vec![0u8; zeros.len()]
    } else {
        Vec::new()
    };
    let aborted = || std::io::Error::other("pull aborted");
    for (offset, len, e) in recipe.extents_with_offsets() {
        match e {
            Extent::Hole { .. } if read_holes => {
                // In place, a hole is whatever the target holds there: read it.
                let mut pos = offset;
                while pos < offset + len {
                    let n = (offset + len - pos).min(zeros.len() as u64) as usize;
                    let chunk = &mut hole_buf[..n];
                    file.read_exact_at(chunk, pos)?;
                    hasher.update(chunk);
                    pos += n as u64;
                }
            }
            Extent::Hole { .. } => {
                let mut left = len;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    if n >= 1 << 20 {
                        hasher.update_rayon(&zeros[..n]);
                    } else {
                        hasher.update(&zeros[..n]);
                    }
                    left -= n as u64;
                }
            }
            Extent::Block { index } => {
                if !written.done[*index as usize].load(Ordering::Acquire)
                    && !written.wait(*index, failed)
                {
                    return Err(aborted());
                }
                let chunk = &mut buf[..len as usize];
                file.read_exact_at(chunk, offset)?;
                hasher.update(chunk);
            }
        }
        if failed.load(Ordering::Relaxed) {
            return Err(aborted());
        }
    }
    Ok(ImageHash(*hasher.finalize().as_bytes()))
}

#[allow(clippy::too_many_arguments)]
fn fetch_batch(
    recipe: &Recipe,
    store: &dyn BlockStore,
    conv: &Convergence,
    file: &File,
    partial: &Path,
    offsets: &[Vec<u64>],
    batch: &[u32],
    progress: &dyn Progress,
) -> Result<u64, Error> {
    let ids: Vec<BlockId> = batch
        .iter()
        .map(|&i| recipe.blocks[i as usize].id)
        .collect();
    let objects = store.get(&ids)?;
    let bytes: u64 = objects.iter().map(|o| o.len() as u64).sum();
    // Decode on all cores; write from this thread, in offset order, so writers do not
    // fight over the file's lock.
    let plains: Vec<Result<Vec<u8>, crate::codec::CodecError>> = batch
        .par_iter()
        .zip(objects.par_iter())
        .map(|(&i, object)| {
            let b = &recipe.blocks[i as usize];
            decode(conv, &b.id, &b.key, object)
        })
        .collect();
    // Good blocks are written even if one failed, so a re-run fetches only the bad one.
    let mut first_bad = None;
    for (&i, plain) in batch.iter().zip(plains) {
        match plain {
            Ok(plain) => {
                write_all_offsets(file, partial, &plain, &offsets[i as usize])?;
                progress.advance(plain.len() as u64 * offsets[i as usize].len() as u64);
            }
            Err(e) => {
                first_bad.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_bad {
        return Err(e.into());
    }
    Ok(bytes)
}

fn write_all_offsets(file: &File, path: &Path, data: &[u8], offsets: &[u64]) -> Result<(), Error> {
    for &o in offsets {
        file.write_all_at(data, o).at(path)?;
    }
    Ok(())
}
