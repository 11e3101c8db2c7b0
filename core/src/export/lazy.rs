//! Export, the image made local on demand: [`LazyImage`] answers reads from LOCAL where
//! the blocks are already there and fetches the rest first — from a seed file (its key
//! re-checked) or from the store, through the same verified decode as pull
//! (`codec::decode_entry`: id, tag, key, length) — writes them at every use, then serves
//! them. Holes cost no I/O. A block that fails verification is a read error on the ranges
//! that use it, never wrong bytes.

use super::blocks::{Blocks, ABSENT, BAD, FETCHING, PRESENT};
use super::nbd::{Device, ReadFault, Run};
use super::profile::Recorder;
use crate::codec::{decode_entry, Convergence};
use crate::id::BlockId;
use crate::progress::Progress;
use crate::recipe::{Extent, Recipe};
use crate::seed::SeedHit;
use crate::store::{limits, BlockStore};
use rayon::prelude::*;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The read-ahead window: it starts at the first size when a read continues where the
/// previous one ended and doubles with each such read up to the second; a read elsewhere
/// (a booting system's reads mostly are) gets none, so it costs only what it asks for.
pub(crate) const READ_AHEAD: (u64, u64) = (256 << 10, 4 << 20);
/// Longest a read waits for a block someone else is fetching.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(120);

/// Figures for the status line and the final report.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Blocks and object bytes fetched from the store.
    pub(crate) fetched_blocks: AtomicU64,
    pub(crate) fetched_bytes: AtomicU64,
    /// Plaintext bytes copied from seeds.
    pub(crate) seeded_bytes: AtomicU64,
    /// Object bytes fetched because a client read them (not read-ahead, not the fill).
    pub(crate) read_fetched_bytes: AtomicU64,
    /// Store requests made for a client's read (not the fill).
    pub(crate) read_requests: AtomicU64,
    /// Reads answered with an error.
    pub(crate) failed_reads: AtomicU64,
}

/// The recipe's image, served while it is made local.
pub(crate) struct LazyImage<'a> {
    pub(crate) recipe: &'a Recipe,
    pub(crate) conv: &'a Convergence,
    pub(crate) store: &'a dyn BlockStore,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) uses: Vec<Vec<u64>>,
    /// Offset at which each extent starts (parallel to `recipe.extents`).
    pub(crate) starts: Vec<u64>,
    pub(crate) seeds: Vec<File>,
    pub(crate) seed_hits: HashMap<u32, SeedHit>,
    pub(crate) blocks: Blocks,
    /// Where the last read ended, and the read-ahead window it earned.
    pub(crate) sequential: Mutex<(u64, u64)>,
    /// Blocks the fill should take next (read-ahead, the boot profile), in order.
    pub(crate) hints: Mutex<VecDeque<u32>>,
    pub(crate) counters: Counters,
    pub(crate) recorder: Recorder,
    pub(crate) progress: &'a dyn Progress,
    /// The store failed the last request (cleared by the next success).
    pub(crate) store_down: AtomicBool,
    /// When a client's read last had to fetch (ms since `born`; 0: never): the fill
    /// yields the link while reads are waiting for it.
    pub(crate) read_fetched_at: AtomicU64,
    pub(crate) born: Instant,
    pub(crate) last_store_error: Mutex<Option<String>>,
}

/// On whose behalf blocks are fetched (for the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A client is waiting for them.
    Read,
    /// The fill: read-ahead, the boot profile, the rest of the image.
    Fill,
}

/// Why a fetch failed as a whole (single blocks that fail verification become BAD).
#[derive(Debug)]
pub(crate) struct FetchFault(pub(crate) String);

impl LazyImage<'_> {
    /// Indices of the extents overlapping `[offset, offset + len)`.
    fn extents_in(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        let end = offset.saturating_add(len);
        let first = self
            .starts
            .partition_point(|&s| s <= offset)
            .saturating_sub(1);
        let last = self.starts.partition_point(|&s| s < end);
        first..last.max(first)
    }

    /// Extent `e` as (start, length, block index if data).
    fn extent(&self, e: usize) -> (u64, u64, Option<u32>) {
        let start = self.starts[e];
        match self.recipe.extents[e] {
            Extent::Hole { len } => (start, len, None),
            Extent::Block { index } => (
                start,
                self.recipe.blocks[index as usize].len as u64,
                Some(index),
            ),
        }
    }

    /// Distinct blocks used in the range, in image order.
    fn blocks_in(&self, offset: u64, len: u64) -> Vec<u32> {
        let mut seen = std::collections::HashSet::new();
        self.extents_in(offset, len)
            .filter_map(|e| self.extent(e).2)
            .filter(|i| seen.insert(*i))
            .collect()
    }

    /// Makes every block in `wanted` present, fetching those nobody else fetches and
    /// waiting for the rest. Errors name why a block is not there.
    pub(crate) fn ensure(&self, wanted: &[u32]) -> Result<(), ReadFault> {
        for attempt in 0..2 {
            let mine: Vec<u32> = wanted
                .iter()
                .copied()
                .filter(|&i| self.blocks.claim(i))
                .collect();
            let mut fault = None;
            if !mine.is_empty() {
                let ms = self.born.elapsed().as_millis() as u64;
                self.read_fetched_at.store(ms.max(1), Ordering::Relaxed);
                self.counters.read_requests.fetch_add(1, Ordering::Relaxed);
                fault = self.fetch(&mine, Why::Read).err();
            }
            let deadline = Instant::now() + WAIT_FOR_OTHERS;
            let mut absent = false;
            for &i in wanted {
                match self.blocks.wait(i, deadline) {
                    PRESENT => {}
                    BAD => return Err(self.bad_block(i)),
                    FETCHING => return Err(ReadFault("timed out waiting for a block".into())),
                    _ => absent = true,
                }
            }
            if !absent {
                return Ok(());
            }
            if let Some(f) = fault.filter(|_| attempt == 1) {
                return Err(ReadFault(f.0));
            }
        }
        Err(ReadFault(format!(
            "store {} did not deliver the blocks: {}",
            self.store.describe(),
            self.last_store_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| "unreachable".into())
        )))
    }

    fn bad_block(&self, i: u32) -> ReadFault {
        let b = &self.recipe.blocks[i as usize];
        ReadFault(format!(
            "block {} (used at offset {}) failed verification; the export never serves it",
            b.id, self.uses[i as usize][0]
        ))
    }

    /// Fetches claimed blocks: seeds first, the store for the rest, in batches. Every
    /// claim is settled before this returns, whatever happens.
    pub(crate) fn fetch(&self, claimed: &[u32], why: Why) -> Result<(), FetchFault> {
        let mut from_store = Vec::with_capacity(claimed.len());
        for &i in claimed {
            if !self.copy_from_seed(i) {
                from_store.push(i);
            }
        }
        let mut batches: Vec<Vec<u32>> = Vec::new();
        let mut size = 0usize;
        for i in from_store {
            let len = self.recipe.blocks[i as usize].len as usize;
            let full = batches.last().is_none_or(|b| b.len() >= 4096);
            if full || size + len > limits::BATCH_BYTES {
                batches.push(Vec::new());
                size = 0;
            }
            size += len;
            batches.last_mut().expect("pushed").push(i);
        }
        let mut result = Ok(());
        for batch in &batches {
            if result.is_err() {
                batch.iter().for_each(|&i| self.blocks.settle(i, ABSENT));
                continue;
            }
            result = self.fetch_batch(batch, why);
        }
        result
    }

    /// Copies block `i` from its seed if it has one and it still matches; settles it then.
    fn copy_from_seed(&self, i: u32) -> bool {
        let Some(hit) = self.seed_hits.get(&i) else {
            return false;
        };
        let b = &self.recipe.blocks[i as usize];
        let mut buf = vec![0u8; b.len as usize];
        let ok = self.seeds[hit.seed]
            .read_exact_at(&mut buf, hit.offset)
            .is_ok()
            && self.conv.key_for(&buf) == b.key
            && self.write_uses(i, &buf).is_ok();
        if ok {
            let n = b.len as u64 * self.uses[i as usize].len() as u64;
            self.counters
                .seeded_bytes
                .fetch_add(b.len as u64, Ordering::Relaxed);
            self.progress.advance(n);
            self.blocks.settle(i, PRESENT);
        }
        ok
    }

    fn write_uses(&self, i: u32, plain: &[u8]) -> std::io::Result<()> {
        for &o in &self.uses[i as usize] {
            self.file.write_all_at(plain, o)?;
        }
        Ok(())
    }

    /// One store request: every good block written and PRESENT, every bad one BAD; a
    /// failed request (or a failed write) leaves the blocks ABSENT.
    fn fetch_batch(&self, batch: &[u32], why: Why) -> Result<(), FetchFault> {
        let blocks = &self.recipe.blocks;
        let ids: Vec<BlockId> = batch.iter().map(|&i| blocks[i as usize].id).collect();
        let objects = match self.store.get(&ids) {
            Ok(o) => {
                self.store_down.store(false, Ordering::Relaxed);
                o
            }
            Err(e) => {
                batch.iter().for_each(|&i| self.blocks.settle(i, ABSENT));
                let msg = e.to_string();
                self.store_down.store(true, Ordering::Relaxed);
                *self
                    .last_store_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(msg.clone());
                return Err(FetchFault(msg));
            }
        };
        let bytes: u64 = objects.iter().map(|o| o.len() as u64).sum();
        let plains: Vec<Option<Vec<u8>>> = batch
            .par_iter()
            .zip(objects.par_iter())
            .map(|(&i, object)| {
                let b = &blocks[i as usize];
                decode_entry(self.conv, b, object)
                    .ok()
                    .filter(|p| p.len() == b.len as usize)
            })
            .collect();
        let mut write_error = None;
        for (&i, plain) in batch.iter().zip(plains) {
            let state = match plain {
                None => {
                    tracing::warn!(block = %blocks[i as usize].id, "block failed verification");
                    BAD
                }
                Some(_) if write_error.is_some() => ABSENT,
                Some(p) => match self.write_uses(i, &p) {
                    Ok(()) => {
                        self.progress
                            .advance(p.len() as u64 * self.uses[i as usize].len() as u64);
                        PRESENT
                    }
                    Err(e) => {
                        write_error = Some(format!("cannot write {}: {e}", self.path.display()));
                        ABSENT
                    }
                },
            };
            self.blocks.settle(i, state);
        }
        self.counters
            .fetched_blocks
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.counters
            .fetched_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if why == Why::Read {
            self.counters
                .read_fetched_bytes
                .fetch_add(bytes, Ordering::Relaxed);
        }
        match write_error {
            Some(e) => Err(FetchFault(e)),
            None => Ok(()),
        }
    }

    /// Whether a client's read fetched within the last `quiet`.
    pub(crate) fn reads_waiting(&self, quiet: Duration) -> bool {
        let at = self.read_fetched_at.load(Ordering::Relaxed);
        at != 0 && self.born.elapsed().as_millis() as u64 <= at + quiet.as_millis() as u64
    }

    /// The read-ahead window a read of `[offset, end)` earns (0 unless it is sequential).
    fn window(&self, offset: u64, end: u64) -> u64 {
        let mut g = self.sequential.lock().unwrap_or_else(|p| p.into_inner());
        let (last_end, window) = *g;
        let next = match offset == last_end {
            true => (window * 2).clamp(READ_AHEAD.0, READ_AHEAD.1),
            false => 0,
        };
        *g = (end, next);
        next
    }

    /// Asks the fill to take the blocks just past `end` next (`window` bytes of them).
    fn read_ahead(&self, end: u64, window: u64) {
        let size = self.recipe.logical_size;
        if end >= size || window == 0 {
            return;
        }
        let ahead: Vec<u32> = self
            .blocks_in(end, window.min(size - end))
            .into_iter()
            .filter(|&i| self.blocks.get(i) == ABSENT)
            .collect();
        if !ahead.is_empty() {
            let mut hints = self.hints.lock().unwrap_or_else(|p| p.into_inner());
            // newest reads first: the client is reading there now
            for &i in ahead.iter().rev() {
                hints.push_front(i);
            }
            hints.truncate(1 << 20);
        }
    }
}

impl Device for LazyImage<'_> {
    fn size(&self) -> u64 {
        self.recipe.logical_size
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), ReadFault> {
        let len = buf.len() as u64;
        let wanted = self.blocks_in(offset, len);
        self.recorder.touch(&wanted);
        let missing: Vec<u32> = wanted
            .iter()
            .copied()
            .filter(|&i| self.blocks.get(i) != PRESENT)
            .collect();
        if let Err(f) = self.ensure(&missing) {
            self.counters.failed_reads.fetch_add(1, Ordering::Relaxed);
            return Err(f);
        }
        for e in self.extents_in(offset, len) {
            let (start, elen, index) = self.extent(e);
            let from = start.max(offset);
            let to = (start + elen).min(offset + len);
            let out = &mut buf[(from - offset) as usize..(to - offset) as usize];
            match index {
                None => out.fill(0),
                Some(_) => self
                    .file
                    .read_exact_at(out, from)
                    .map_err(|e| ReadFault(format!("cannot read {}: {e}", self.path.display())))?,
            }
        }
        let window = self.window(offset, offset + len);
        if !missing.is_empty() {
            self.read_ahead(offset + len, window);
        }
        Ok(())
    }

    fn runs(&self, offset: u64, len: u64, max: usize) -> Vec<Run> {
        let end = offset + len;
        let mut runs: Vec<Run> = Vec::new();
        for e in self.extents_in(offset, len) {
            let (start, elen, index) = self.extent(e);
            let piece = (start + elen).min(end) - start.max(offset);
            let hole = index.is_none();
            let n = runs.len();
            match runs.last_mut() {
                Some(r) if r.hole == hole => r.len += piece,
                _ if n == max => break,
                _ => runs.push(Run { len: piece, hole }),
            }
        }
        runs
    }

    fn prefetch(&self, offset: u64, len: u64) -> Result<(), ReadFault> {
        let wanted = self.blocks_in(offset, len);
        self.ensure(&wanted)
    }

    fn flush(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }

    fn session(&self, started: bool) {
        self.recorder.session(started);
    }
}
