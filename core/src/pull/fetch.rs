//! Pull, fetching: the plan's store batches on several network threads. Each object is
//! verified — id, tag, key, and a plaintext length equal to the recipe entry's — before a
//! byte of it is written at every offset that uses it.
//!
//! Good blocks of a batch are written even if another block of it failed, so a re-run
//! fetches only what is still missing. One writer thread writes every verified block, in
//! the order batches are decoded, so the fetch threads never spin on the file's lock; it
//! starts the write-back of what it wrote every [`WRITEBACK_BYTES`], so the final fsync
//! waits for the tail only. Decoding runs on all cores.

use super::verify::Written;
use crate::codec::{decode_entry, Convergence};
use crate::error::{Error, IoContext};
use crate::id::BlockId;
use crate::progress::Progress;
use crate::recipe::Recipe;
use crate::store::BlockStore;
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

/// Bytes written between two starts of write-back (`sync_file_range`).
pub(crate) const WRITEBACK_BYTES: u64 = 64 << 20;

/// Decoded batches waiting for the writer: enough to keep it busy while the next decode.
const QUEUED_BATCHES: usize = 4;

/// A batch's verified plaintexts, by block index, on their way to the writer.
type Decoded = Vec<(u32, Vec<u8>)>;

/// Everything the fetch workers share.
pub(crate) struct Fetch<'a> {
    pub(crate) recipe: &'a Recipe,
    pub(crate) store: &'a dyn BlockStore,
    pub(crate) conv: &'a Convergence,
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    pub(crate) uses: &'a [Vec<u64>],
    pub(crate) progress: &'a dyn Progress,
    pub(crate) written: &'a Written,
    pub(crate) failed: &'a AtomicBool,
    /// Blocks and object bytes fetched.
    pub(crate) blocks: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) first_error: Mutex<Option<Error>>,
}

impl Fetch<'_> {
    /// Runs `threads` fetch workers and the writer until the queue is empty or a failure.
    pub(crate) fn run(&self, queue: Vec<Vec<u32>>, threads: usize) {
        let queue = Mutex::new(queue.into_iter());
        let (tx, rx) = sync_channel::<Decoded>(QUEUED_BATCHES);
        std::thread::scope(|s| {
            for _ in 0..threads.max(1) {
                let tx = tx.clone();
                let queue = &queue;
                s.spawn(move || self.worker(queue, &tx));
            }
            drop(tx);
            s.spawn(move || self.writer(rx));
        });
    }

    /// One network thread: takes batches from `queue` until it is empty or a failure.
    fn worker(&self, queue: &Mutex<std::vec::IntoIter<Vec<u32>>>, tx: &SyncSender<Decoded>) {
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            let Some(batch) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                return;
            };
            match self.batch(&batch) {
                Ok((decoded, bad)) => {
                    if !decoded.is_empty() && tx.send(decoded).is_err() {
                        return;
                    }
                    if let Some(e) = bad {
                        self.fail(e);
                    }
                }
                Err(e) => self.fail(e),
            }
        }
    }

    /// The one thread that writes: every verified block at every use, then marks it. What
    /// was decoded is written even after another thread failed, so a re-run resumes it;
    /// after a write error nothing more is written.
    fn writer(&self, rx: Receiver<Decoded>) {
        let mut since_writeback = 0u64;
        let mut broken = false;
        for decoded in rx {
            if broken {
                continue;
            }
            match self.write(&decoded) {
                Ok(n) => since_writeback += n,
                Err(e) => {
                    self.fail(e);
                    broken = true;
                    continue;
                }
            }
            self.written.mark(decoded.iter().map(|d| d.0));
            self.blocks
                .fetch_add(decoded.len() as u64, Ordering::Relaxed);
            if since_writeback >= WRITEBACK_BYTES {
                start_writeback(self.file);
                since_writeback = 0;
            }
        }
    }

    /// Writes decoded blocks at every use; returns the bytes written.
    fn write(&self, decoded: &Decoded) -> Result<u64, Error> {
        let mut total = 0;
        for (i, plain) in decoded {
            let uses = &self.uses[*i as usize];
            for &o in uses {
                self.file.write_all_at(plain, o).at(self.path)?;
            }
            let n = plain.len() as u64 * uses.len() as u64;
            self.progress.advance(n);
            total += n;
        }
        Ok(total)
    }

    /// Records the first failure and stops everyone.
    pub(crate) fn fail(&self, e: Error) {
        self.failed.store(true, Ordering::SeqCst);
        self.first_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(e);
        self.written.wake();
    }

    /// Fetches and verifies one batch: its good blocks, and the first bad one's error.
    fn batch(&self, batch: &[u32]) -> Result<(Decoded, Option<Error>), Error> {
        let blocks = &self.recipe.blocks;
        let ids: Vec<BlockId> = batch.iter().map(|&i| blocks[i as usize].id).collect();
        let objects = self.store.get(&ids)?;
        let bytes: u64 = objects.iter().map(|o| o.len() as u64).sum();
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let plains: Vec<Result<Vec<u8>, Error>> = batch
            .par_iter()
            .zip(objects.par_iter())
            .map(|(&i, object)| {
                let b = &blocks[i as usize];
                // the entry's length is checked against the object's header before anything
                // is decrypted or decompressed (docs/FORMAT.md, refusal order)
                let plain = decode_entry(self.conv, b, object)?;
                if plain.len() != b.len as usize {
                    return Err(Error::BlockLength {
                        id: b.id,
                        expected: b.len,
                        got: plain.len(),
                    });
                }
                Ok(plain)
            })
            .collect();
        let mut first_bad = None;
        let mut good = Vec::with_capacity(batch.len());
        for (&i, plain) in batch.iter().zip(plains) {
            match plain {
                Ok(plain) => good.push((i, plain)),
                Err(e) => {
                    first_bad.get_or_insert(e);
                }
            }
        }
        Ok((good, first_bad))
    }
}

/// Starts write-back of the file's dirty pages without waiting (Linux `sync_file_range`),
/// so the disk works while the pull decodes. Advisory: a failure here changes nothing, the
/// final fsync still reports any write error.
fn start_writeback(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range on a descriptor we hold; offset 0, length 0 means the whole file.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
    }
}
