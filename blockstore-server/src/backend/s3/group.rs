//! Group commit of packs: upload batches that arrive while earlier packs are still being
//! written join one open pack, so a GiB costs tens of PUTs, not one per upload batch, and
//! the slower the bucket, the bigger the packs. Every batch is still acknowledged only
//! once the pack holding it is durable.
//!
//! At most [`WRITERS`] packs are written at once. The first batch to find no pack open
//! opens one and leads it: it writes at once if a writer is free, else waits for one
//! while others join (up to [`FULL`] bytes); then it seals the pack, writes it, and wakes
//! the batches that joined with the outcome. A lone upload to an idle bucket is written at
//! once.

use crate::backend::BackendError;
use bonsai_core::BlockId;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Packs written at once by one server.
pub(crate) const WRITERS: usize = 2;
/// A pack this big is written even while [`WRITERS`] others are.
pub(crate) const FULL: usize = 12 << 20;

type Outcome = Arc<OnceLock<Result<(), String>>>;

/// What writes a sealed pack (`Packs::write_packs`).
pub(crate) type WritePack<'a> = dyn Fn(&[(BlockId, &[u8])]) -> Result<(), BackendError> + 'a;

#[derive(Default)]
struct Open {
    items: Vec<(BlockId, Vec<u8>)>,
    ids: HashSet<BlockId>,
    bytes: usize,
    /// Batches (calls) that joined.
    members: usize,
    outcome: Outcome,
}

/// The pack being gathered, if any, and the packs being written.
#[derive(Default)]
pub(crate) struct Group {
    open: Mutex<State>,
    cv: Condvar,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    writing: usize,
}

impl Group {
    /// Writes `objects` (distinct ids, verified) with whatever other batches join them, by
    /// `write`; returns once they are durable or the write failed.
    pub(crate) fn commit(
        &self,
        objects: &[(BlockId, &[u8])],
        limit: usize,
        write: &WritePack<'_>,
    ) -> Result<(), BackendError> {
        let size: usize = objects.iter().map(|o| o.1.len()).sum();
        if size >= FULL {
            return write(objects); // a pack on its own
        }
        let mut st = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // an open pack this batch would overflow is sealed first
        while st.open.as_ref().is_some_and(|o| o.bytes + size > limit) {
            self.cv.notify_all();
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let leader = st.open.is_none();
        let batch = st.open.get_or_insert_with(Open::default);
        for (id, bytes) in objects {
            if batch.ids.insert(*id) {
                batch.items.push((*id, bytes.to_vec()));
                batch.bytes += bytes.len();
            }
        }
        batch.members += 1;
        let outcome = batch.outcome.clone();
        if !leader {
            self.cv.notify_all();
            while outcome.get().is_none() {
                st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            let got = outcome.get().expect("set").clone();
            return got.map_err(|reason| BackendError::Refused {
                what: "pack upload".into(),
                reason,
            });
        }
        // wait for a free writer while others join, unless the pack is full
        while st.writing >= WRITERS && st.open.as_ref().is_some_and(|o| o.bytes < FULL.min(limit)) {
            st = self.cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        let sealed = st.open.take().expect("the leader's pack is open");
        st.writing += 1;
        tracing::debug!(
            members = sealed.members,
            bytes = sealed.bytes,
            writing = st.writing,
            "pack sealed"
        );
        self.cv.notify_all();
        drop(st);
        // set the outcome and free the writer even if the write panics
        let _writing = Writing {
            group: self,
            outcome: outcome.clone(),
        };
        let refs: Vec<(BlockId, &[u8])> = sealed.items.iter().map(|(i, b)| (*i, &b[..])).collect();
        let result = write(&refs);
        let _ = outcome.set(result.as_ref().map(drop).map_err(|e| e.to_string()));
        result
    }
}

/// A sealed pack being written: when dropped (after the write, or while a panic unwinds
/// through it) its batches learn the outcome and the writer is free again.
struct Writing<'a> {
    group: &'a Group,
    outcome: Outcome,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        let _ = self.outcome.set(Err("the pack write failed".into()));
        let mut st = self.group.open.lock().unwrap_or_else(|p| p.into_inner());
        st.writing -= 1;
        self.group.cv.notify_all();
    }
}
