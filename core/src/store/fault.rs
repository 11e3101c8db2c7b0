//! A store wrapper that fails, corrupts or runs a hook at the k-th call of an operation, so
//! engine tests hit "the store died after the third upload" exactly, without sleeps, timing
//! or polling. Everything else passes through to the wrapped store.
//!
//! Caveat: calls are counted per operation across all threads; with several upload workers,
//! "the 3rd put" is the 3rd to start, whichever thread makes it.

use super::{
    AdminStore, BlockStore, CheckOptions, CheckReport, ForgetReport, GcOptions, GcReport,
    ImageInfo, PutOutcome, ReadStore, StoreError, StoreStats, WriteStore,
};
use crate::id::BlockId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// The operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// [`ReadStore::missing`].
    Missing,
    /// [`ReadStore::get`].
    Get,
    /// [`WriteStore::put`].
    Put,
    /// [`WriteStore::register`].
    Register,
    /// [`ReadStore::stats`].
    Stats,
}

impl Op {
    fn index(self) -> usize {
        self as usize
    }
}

/// What happens at the chosen call.
pub enum Fault {
    /// The call fails with [`StoreError::Unreachable`] without reaching the inner store.
    Fail,
    /// `get`: the first returned object has a byte flipped; `put`: the first object is
    /// flipped before upload (the store must reject it); `missing`: the store claims to
    /// hold everything (a lying store). Other operations: as [`Fault::Fail`].
    Corrupt,
    /// Runs the hook (e.g. SIGKILL a server), then makes the call as usual.
    Run(Box<dyn Fn() + Send + Sync>),
}

/// Wraps a store; see the module doc.
pub struct FaultyStore<S> {
    inner: S,
    faults: Mutex<Vec<(Op, u64, Fault)>>,
    calls: [AtomicU64; 5],
}

impl<S: BlockStore> FaultyStore<S> {
    /// Wraps `inner` with no faults.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            faults: Mutex::new(Vec::new()),
            calls: Default::default(),
        }
    }

    /// Adds a fault at the `nth` call (1-based) of `op`.
    pub fn inject(self, op: Op, nth: u64, fault: Fault) -> Self {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((op, nth, fault));
        self
    }

    /// How many calls of `op` were made so far.
    pub fn calls(&self, op: Op) -> u64 {
        self.calls[op.index()].load(Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Counts the call and returns the fault planned for it, running hooks on the way.
    fn tick(&self, op: Op) -> Option<Planned> {
        let n = self.calls[op.index()].fetch_add(1, Ordering::SeqCst) + 1;
        let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        let (_, _, fault) = faults.iter().find(|(o, k, _)| *o == op && *k == n)?;
        match fault {
            Fault::Fail => Some(Planned::Fail(n)),
            Fault::Corrupt => Some(Planned::Corrupt(n)),
            Fault::Run(hook) => {
                hook();
                None
            }
        }
    }

    fn failure(&self, op: Op, n: u64) -> StoreError {
        StoreError::Unreachable {
            store: self.inner.describe(),
            reason: format!("injected failure at {op:?} call {n}"),
        }
    }
}

enum Planned {
    Fail(u64),
    Corrupt(u64),
}

fn flip_last(bytes: &mut [u8]) {
    if let Some(b) = bytes.last_mut() {
        *b ^= 0x01;
    }
}

impl<S: BlockStore> ReadStore for FaultyStore<S> {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        match self.tick(Op::Missing) {
            Some(Planned::Fail(n)) => Err(self.failure(Op::Missing, n)),
            Some(Planned::Corrupt(_)) => Ok(Vec::new()),
            None => self.inner.missing(ids),
        }
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        match self.tick(Op::Get) {
            Some(Planned::Fail(n)) => Err(self.failure(Op::Get, n)),
            Some(Planned::Corrupt(_)) => {
                let mut got = self.inner.get(ids)?;
                if let Some(first) = got.first_mut() {
                    flip_last(first);
                }
                Ok(got)
            }
            None => self.inner.get(ids),
        }
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        match self.tick(Op::Stats) {
            Some(Planned::Fail(n) | Planned::Corrupt(n)) => Err(self.failure(Op::Stats, n)),
            None => self.inner.stats(),
        }
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl<S: BlockStore> WriteStore for FaultyStore<S> {
    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        match self.tick(Op::Put) {
            Some(Planned::Fail(n)) => Err(self.failure(Op::Put, n)),
            Some(Planned::Corrupt(_)) if !blocks.is_empty() => {
                let mut first = blocks[0].1.to_vec();
                flip_last(&mut first);
                let mut items = blocks.to_vec();
                items[0].1 = &first;
                self.inner.put(&items)
            }
            _ => self.inner.put(blocks),
        }
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        match self.tick(Op::Register) {
            Some(Planned::Fail(n) | Planned::Corrupt(n)) => Err(self.failure(Op::Register, n)),
            None => self.inner.register(name, logical, ids),
        }
    }
}

impl<S: BlockStore> AdminStore for FaultyStore<S> {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        self.inner.images()
    }
    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        self.inner.forget(names)
    }
    fn gc(&self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        self.inner.gc(opts)
    }
    fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        self.inner.check(opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::fresh_blocks;
    use crate::store::mem::MemStore;
    use std::sync::Arc;

    #[test]
    fn faults_land_on_the_chosen_call_only() {
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        let s = FaultyStore::new(MemStore::new())
            .inject(Op::Put, 2, Fault::Fail)
            .inject(Op::Put, 3, Fault::Corrupt)
            .inject(Op::Get, 1, Fault::Corrupt)
            .inject(
                Op::Missing,
                1,
                Fault::Run(Box::new(move || {
                    h.fetch_add(1, Ordering::SeqCst);
                })),
            );
        let b = fresh_blocks(3);
        let one = |i: usize| [(b[i].id, &b[i].object[..])];
        s.put(&one(0)).expect("first put passes");
        assert!(matches!(
            s.put(&one(1)),
            Err(StoreError::Unreachable { .. })
        ));
        assert!(matches!(s.put(&one(1)), Err(StoreError::Rejected { .. })));
        s.put(&one(1)).expect("fourth put passes");
        assert_ne!(s.get(&[b[0].id]).unwrap()[0], b[0].object, "corrupted get");
        assert_eq!(
            s.get(&[b[0].id]).unwrap()[0],
            b[0].object,
            "second get clean"
        );
        assert_eq!(s.missing(&[b[2].id]).unwrap(), vec![b[2].id]);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!((s.calls(Op::Put), s.calls(Op::Get)), (4, 2));
    }

    #[test]
    fn passes_the_conformance_suite_without_faults() {
        crate::store::conformance::run_all(&FaultyStore::new(MemStore::new()));
    }
}
