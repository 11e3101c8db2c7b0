//! Export, the block table: for each distinct block of the recipe, whether LOCAL holds it
//! (verified, at every use), someone is fetching it, or it failed verification. Readers
//! and the background fill claim blocks here, so one block is fetched once however many
//! want it, and wait here for blocks others are fetching.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Not in LOCAL; anyone may claim it.
pub(crate) const ABSENT: u8 = 0;
/// Claimed: its fetch (or seed copy) is under way.
pub(crate) const FETCHING: u8 = 1;
/// In LOCAL at every use, its key checked before it was written.
pub(crate) const PRESENT: u8 = 2;
/// The store's object failed verification: never served, never retried in this run.
pub(crate) const BAD: u8 = 3;

/// The state of every block, with a condition to wait on.
pub(crate) struct Blocks {
    state: Vec<AtomicU8>,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Blocks {
    /// `n` blocks, the ones in `present` already held.
    pub(crate) fn new(n: usize, present: impl IntoIterator<Item = u32>) -> Blocks {
        let state: Vec<AtomicU8> = (0..n).map(|_| AtomicU8::new(ABSENT)).collect();
        for i in present {
            state[i as usize].store(PRESENT, Ordering::Relaxed);
        }
        Blocks {
            state,
            lock: Mutex::new(()),
            cond: Condvar::new(),
        }
    }

    /// How many blocks there are.
    pub(crate) fn len(&self) -> usize {
        self.state.len()
    }

    /// The state of block `i`.
    pub(crate) fn get(&self, i: u32) -> u8 {
        self.state[i as usize].load(Ordering::Acquire)
    }

    /// Takes block `i` for fetching if nobody holds or fetches it.
    pub(crate) fn claim(&self, i: u32) -> bool {
        self.state[i as usize]
            .compare_exchange(ABSENT, FETCHING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Ends a claim: the block is now `state` (PRESENT, BAD, or ABSENT again).
    pub(crate) fn settle(&self, i: u32, state: u8) {
        self.state[i as usize].store(state, Ordering::Release);
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.cond.notify_all();
    }

    /// Waits until nobody is fetching block `i` or `deadline` passes; its state then.
    pub(crate) fn wait(&self, i: u32, deadline: Instant) -> u8 {
        let mut g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let s = self.get(i);
            let now = Instant::now();
            if s != FETCHING || now >= deadline {
                return s;
            }
            let step = (deadline - now).min(Duration::from_millis(100));
            g = self
                .cond
                .wait_timeout(g, step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Counts of (present, bad, absent or fetching).
    pub(crate) fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for s in &self.state {
            match s.load(Ordering::Acquire) {
                PRESENT => c.0 += 1,
                BAD => c.1 += 1,
                _ => c.2 += 1,
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_claimed_once_and_waiters_see_it_settle() {
        let b = Blocks::new(3, [2]);
        assert!(b.claim(0));
        assert!(!b.claim(0), "claimed twice");
        assert!(!b.claim(2), "present blocks are not claimed");
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(50));
                b.settle(0, PRESENT);
            });
            let end = Instant::now() + Duration::from_secs(10);
            assert_eq!(b.wait(0, end), PRESENT);
        });
        assert!(b.claim(1));
        let soon = Instant::now() + Duration::from_millis(20);
        assert_eq!(b.wait(1, soon), FETCHING, "the deadline bounds a wait");
        b.settle(1, BAD);
        assert_eq!(b.counts(), (2, 1, 0));
    }
}
