//! Group commit of packs: upload batches that arrive together (a push runs several upload
//! threads) are written as one pack, so a GiB costs tens of PUTs, not one per 4 MiB batch.
//! Every batch is still acknowledged only once the pack holding it is durable.
//!
//! The first batch to arrive leads: it waits up to [`GATHER`] for others to join (or until
//! the pack holds [`FULL`] bytes), seals the pack, writes it, and wakes the batches that
//! joined with the outcome.

use crate::backend::BackendError;
use bonsai_core::BlockId;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a leading batch waits for others.
pub(crate) const GATHER: Duration = Duration::from_millis(150);
/// A pack this big is sealed at once.
pub(crate) const FULL: usize = 12 << 20;

type Outcome = Arc<OnceLock<Result<(), String>>>;

#[derive(Default)]
struct Open {
    items: Vec<(BlockId, Vec<u8>)>,
    ids: HashSet<BlockId>,
    bytes: usize,
    outcome: Outcome,
}

/// The pack being gathered, if any.
#[derive(Default)]
pub(crate) struct Group {
    open: Mutex<Option<Open>>,
    cv: Condvar,
}

impl Group {
    /// Writes `objects` (distinct ids, verified) with whatever other batches join them, by
    /// `write`; returns once they are durable or the write failed.
    pub(crate) fn commit(
        &self,
        objects: &[(BlockId, &[u8])],
        limit: usize,
        write: &dyn Fn(&[(BlockId, &[u8])]) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let size: usize = objects.iter().map(|o| o.1.len()).sum();
        if size >= FULL {
            return write(objects); // a pack on its own
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // a gathering pack this batch would overflow is sealed first
        while open.as_ref().is_some_and(|o| o.bytes + size > limit) {
            self.cv.notify_all();
            open = self.cv.wait(open).unwrap_or_else(|p| p.into_inner());
        }
        let leader = open.is_none();
        let batch = open.get_or_insert_with(Open::default);
        for (id, bytes) in objects {
            if batch.ids.insert(*id) {
                batch.items.push((*id, bytes.to_vec()));
                batch.bytes += bytes.len();
            }
        }
        let outcome = batch.outcome.clone();
        if !leader {
            self.cv.notify_all();
            while outcome.get().is_none() {
                open = self.cv.wait(open).unwrap_or_else(|p| p.into_inner());
            }
            return outcome
                .get()
                .expect("set")
                .clone()
                .map_err(|reason| BackendError::Refused {
                    what: "pack upload".into(),
                    reason,
                });
        }
        let deadline = Instant::now() + GATHER;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if open.as_ref().is_some_and(|o| o.bytes >= FULL.min(limit)) {
                break;
            }
            open = self
                .cv
                .wait_timeout(open, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let sealed = open.take().expect("the leader's pack is open");
        self.cv.notify_all();
        drop(open);
        let refs: Vec<(BlockId, &[u8])> = sealed.items.iter().map(|(i, b)| (*i, &b[..])).collect();
        let result = write(&refs);
        let _ = outcome.set(result.as_ref().map(drop).map_err(|e| e.to_string()));
        let _guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        self.cv.notify_all();
        result
    }
}
