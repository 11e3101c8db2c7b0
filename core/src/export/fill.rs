//! Export, the background fill: while the export serves, fetch threads take what clients
//! asked for next (read-ahead, the boot profile) and then every other block in image
//! order, so LOCAL becomes the whole image. While clients' reads are fetching, the fill
//! yields: one thread and small batches. A store that fails is retried with a growing
//! pause (1 s to 10 s) until it answers; reads meanwhile are served from what is here.

use super::blocks::{ABSENT, FETCHING};
use super::lazy::{LazyImage, Why};
use crate::store::limits;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Where the in-order pass has got to.
pub(crate) struct Cursor(Mutex<usize>);

impl Cursor {
    pub(crate) fn new() -> Cursor {
        Cursor(Mutex::new(0))
    }
}

/// Claims the next batch: hinted blocks first, then (if `whole`) the next absent ones in
/// order.
fn next_batch(img: &LazyImage<'_>, cursor: &Cursor, whole: bool, limit: usize) -> Vec<u32> {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    let mut take = |i: u32, batch: &mut Vec<u32>| {
        if img.blocks.claim(i) {
            batch.push(i);
            bytes += img.recipe.blocks[i as usize].len as usize;
        }
        bytes < limit && batch.len() < 4096
    };
    {
        let mut hints = img.hints.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(i) = hints.pop_front() {
            if !take(i, &mut batch) {
                return batch;
            }
        }
    }
    if !whole {
        return batch;
    }
    let mut at = cursor.0.lock().unwrap_or_else(|p| p.into_inner());
    let n = img.blocks.len();
    let mut wrapped = false;
    loop {
        if *at >= n {
            if wrapped || !batch.is_empty() {
                break;
            }
            // blocks released by a failed fetch are behind the cursor: start over once
            *at = 0;
            wrapped = true;
            continue;
        }
        let i = *at as u32;
        *at += 1;
        if img.blocks.get(i) == ABSENT && !take(i, &mut batch) {
            break;
        }
    }
    batch
}

/// Whether any block is still to be fetched (absent, or being fetched by someone).
fn unsettled(img: &LazyImage<'_>) -> bool {
    (0..img.blocks.len() as u32).any(|i| matches!(img.blocks.get(i), ABSENT | FETCHING))
}

/// While a client's read fetched this recently, the fill yields the link: one thread, in
/// small batches, so the read's request is not queued behind megabytes of the fill's.
const READS_QUIET: Duration = Duration::from_millis(1000);
/// The fill's batch while it yields.
const YIELDING_BATCH: usize = 512 << 10;

/// Fetch thread `k` of the fill; returns when nothing is left or `stop` is set. Without
/// `whole` it fetches only what clients are about to read (read-ahead, the boot profile)
/// and runs until `stop`.
pub(crate) fn worker(
    img: &LazyImage<'_>,
    cursor: &Cursor,
    k: usize,
    whole: bool,
    stop: &AtomicBool,
) {
    let mut pause = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let yielding = img.reads_waiting(READS_QUIET);
        if yielding && k > 0 {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        let limit = match yielding {
            true => YIELDING_BATCH,
            false => limits::BATCH_BYTES,
        };
        let batch = next_batch(img, cursor, whole, limit);
        if batch.is_empty() {
            if whole && !unsettled(img) {
                return;
            }
            // readers hold the rest, or a failure put blocks back behind the cursor
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        match img.fetch(&batch, Why::Fill) {
            Ok(()) => pause = Duration::from_secs(1),
            Err(f) => {
                tracing::warn!(reason = %f.0, wait = ?pause, "fill: store request failed; retrying");
                sleep_unless(stop, pause);
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}
