//! Pull, fetching: the plan's store batches on several network threads. Each object is
//! verified — id, tag, key, and a plaintext length equal to the recipe entry's — before a
//! byte of it is written at every offset that uses it.
//!
//! Good blocks of a batch are written even if another block of it failed, so a re-run
//! fetches only what is still missing. Writes happen from the fetching thread, in order,
//! so writers do not fight over the file's lock; decoding runs on all cores.

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
use std::sync::Mutex;

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
    /// One network thread: takes batches from `queue` until it is empty or a failure.
    pub(crate) fn worker(&self, queue: &Mutex<std::vec::IntoIter<Vec<u32>>>) {
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return;
            }
            let Some(batch) = queue.lock().unwrap_or_else(|p| p.into_inner()).next() else {
                return;
            };
            match self.batch(&batch) {
                Ok(bytes) => {
                    self.written.mark(batch.iter().copied());
                    self.blocks.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.bytes.fetch_add(bytes, Ordering::Relaxed);
                }
                Err(e) => self.fail(e),
            }
        }
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

    /// Fetches, verifies and writes one batch; returns the object bytes received.
    fn batch(&self, batch: &[u32]) -> Result<u64, Error> {
        let blocks = &self.recipe.blocks;
        let ids: Vec<BlockId> = batch.iter().map(|&i| blocks[i as usize].id).collect();
        let objects = self.store.get(&ids)?;
        let bytes: u64 = objects.iter().map(|o| o.len() as u64).sum();
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
        for (&i, plain) in batch.iter().zip(plains) {
            match plain {
                Ok(plain) => {
                    for &o in &self.uses[i as usize] {
                        self.file.write_all_at(&plain, o).at(self.path)?;
                    }
                    let n = plain.len() as u64 * self.uses[i as usize].len() as u64;
                    self.progress.advance(n);
                }
                Err(e) => {
                    first_bad.get_or_insert(e);
                }
            }
        }
        match first_bad {
            Some(e) => Err(e),
            None => Ok(bytes),
        }
    }
}
