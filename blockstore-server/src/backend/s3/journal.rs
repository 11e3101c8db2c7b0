//! The gc journal in the bucket: how servers that share a bucket agree on what gc may
//! delete, with nothing but create-only writes and strongly consistent listings.
//!
//! ```text
//! gc/RUN.marks            the blocks unreferenced when run RUN marked (header line, then ids)
//! gc/RUN/confirm/RANDOM   blocks a server answered "present" for while RUN was marked
//! gc/RUN.plan             RUN is sweeping: the blocks it may delete (header with a lease)
//! gc/RUN.done             what RUN deleted: packs gone, and blocks left dead in packs kept
//! ```
//!
//! RUN is a 10-digit sequence number; every object is created once and never replaced, so
//! the first of two servers to create `RUN.marks` or `RUN.plan` owns that step. The proof
//! that a "present" answer and a registration are never undone by a sweep is two write-
//! then-read pairs (docs/OPERATING.md "gc on a bucket"): a server writes its confirmation,
//! then looks for the plan; a sweeper writes its plan, then reads the confirmations and the
//! manifests; a registration writes its manifest, then looks for a plan.

use super::bucket::{Bucket, Created};
use crate::backend::BackendError;
use bonsai_core::BlockId;
use std::collections::{BTreeMap, HashSet};

/// How long a sweep may run before its plan counts as abandoned.
pub(crate) const LEASE_MS: u64 = 30 * 60 * 1000;
/// The reason given for a journal object that does not parse (told apart from a failed
/// request: only unreadable marks are skipped, never marks the bucket failed to send).
pub(crate) const DAMAGED: &str = "damaged gc journal object";
/// Runs whose journal is kept (older ones are pruned by the next sweep).
pub(crate) const KEEP_RUNS: u64 = 8;

/// The header line of a marks or plan object.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Header {
    /// The server that wrote it (its index directory's id).
    pub(crate) server: String,
    /// When, in ms since the epoch.
    pub(crate) at_ms: u64,
    /// For a plan: when its lease ends.
    #[serde(default)]
    pub(crate) expires_ms: u64,
    /// For marks: when they were written (the grace period runs from here).
    #[serde(default)]
    pub(crate) visible_ms: u64,
}

/// What a finished sweep did, for every server's map.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct Done {
    /// Packs deleted (emptied, or rewritten into new packs).
    pub(crate) deleted_packs: Vec<String>,
    /// Blocks left as dead bytes in packs that were kept: pack name, block ids (hex).
    pub(crate) dead: Vec<(String, Vec<String>)>,
    /// Whether the sweep was abandoned (its lease ran out) and this was written by another.
    #[serde(default)]
    pub(crate) abandoned: bool,
}

/// One run's objects as a listing shows them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Run {
    pub(crate) marks: bool,
    pub(crate) plan: bool,
    pub(crate) done: bool,
}

/// The runs a listing of `gc/` shows, by number.
pub(crate) type Runs = BTreeMap<u64, Run>;

fn key(run: u64, what: &str) -> String {
    format!("gc/{run:010}.{what}")
}

/// The journal's objects, read and written through the bucket.
pub(crate) struct Journal<'a> {
    pub(crate) bucket: &'a Bucket,
}

impl Journal<'_> {
    /// The runs in the journal (one listing of its top level).
    pub(crate) fn runs(&self) -> Result<Runs, BackendError> {
        let mut runs = Runs::new();
        for k in self.bucket.top_keys("gc/")? {
            let Some(rest) = k.strip_prefix("gc/") else {
                continue;
            };
            let Some((n, what)) = rest.split_once('.') else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            if n >= 10_000_000_000 {
                continue; // not a name this journal writes
            }
            let r = runs.entry(n).or_default();
            match what {
                "marks" => r.marks = true,
                "plan" => r.plan = true,
                "done" => r.done = true,
                _ => {}
            }
        }
        Ok(runs)
    }

    /// Creates `RUN.marks` or `RUN.plan`: false if another server did first.
    pub(crate) fn create_ids(
        &self,
        run: u64,
        what: &str,
        header: &Header,
        ids: &[BlockId],
    ) -> Result<bool, BackendError> {
        let mut body = serde_json::to_vec(header).expect("serializable");
        body.push(b'\n');
        for id in ids {
            body.extend_from_slice(id.as_bytes());
        }
        Ok(self.bucket.create(&key(run, what), body)? == Created::New)
    }

    /// The header and ids of `RUN.marks` or `RUN.plan`, if there.
    pub(crate) fn read_ids(
        &self,
        run: u64,
        what: &str,
    ) -> Result<Option<(Header, HashSet<BlockId>)>, BackendError> {
        let Some(body) = self.bucket.read(&key(run, what))? else {
            return Ok(None);
        };
        parse_ids(&body)
            .map(Some)
            .ok_or_else(|| BackendError::Refused {
                what: key(run, what),
                reason: DAMAGED.into(),
            })
    }

    /// Records that a server answered "present" for `ids` while `run` was marked.
    pub(crate) fn confirm(&self, run: u64, ids: &[BlockId]) -> Result<(), BackendError> {
        let mut body = Vec::with_capacity(ids.len() * 32);
        for id in ids {
            body.extend_from_slice(id.as_bytes());
        }
        let name = format!("gc/{run:010}/confirm/{}", hex::encode(rand_bytes()));
        self.bucket.create(&name, body)?;
        Ok(())
    }

    /// Every block confirmed during `run`.
    pub(crate) fn confirmed(&self, run: u64) -> Result<HashSet<BlockId>, BackendError> {
        let mut out = HashSet::new();
        for k in self.bucket.keys(&format!("gc/{run:010}/confirm/"))? {
            if let Some(body) = self.bucket.read(&k)? {
                out.extend(body.chunks_exact(32).filter_map(BlockId::from_slice));
            }
        }
        Ok(out)
    }

    /// Writes `RUN.done` (create-only: a second writer's copy is dropped).
    pub(crate) fn finish(&self, run: u64, done: &Done) -> Result<(), BackendError> {
        let body = serde_json::to_vec(done).expect("serializable");
        self.bucket.create(&key(run, "done"), body)?;
        Ok(())
    }

    /// `RUN.done`, if written.
    pub(crate) fn done(&self, run: u64) -> Result<Option<Done>, BackendError> {
        let Some(body) = self.bucket.read(&key(run, "done"))? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| BackendError::Refused {
                what: key(run, "done"),
                reason: format!("damaged gc journal object: {e}"),
            })
    }

    /// Deletes the journal of runs before `before`.
    pub(crate) fn prune(&self, runs: &Runs, before: u64) -> Result<(), BackendError> {
        for (&n, r) in runs.range(..before) {
            for k in self.bucket.keys(&format!("gc/{n:010}/"))? {
                self.bucket.remove(&k)?;
            }
            for (what, there) in [("marks", r.marks), ("plan", r.plan), ("done", r.done)] {
                if there {
                    self.bucket.remove(&key(n, what))?;
                }
            }
        }
        Ok(())
    }
}

fn parse_ids(body: &[u8]) -> Option<(Header, HashSet<BlockId>)> {
    let nl = body.iter().position(|&b| b == b'\n')?;
    let header: Header = serde_json::from_slice(&body[..nl]).ok()?;
    let ids = &body[nl + 1..];
    if !ids.len().is_multiple_of(32) {
        return None;
    }
    Some((
        header,
        ids.chunks_exact(32)
            .filter_map(BlockId::from_slice)
            .collect(),
    ))
}

/// 16 bytes that differ between calls and servers (confirmation names).
fn rand_bytes() -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&super::packs::now_ms().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    let local = 0u8;
    h.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    h.update(
        &N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_le_bytes(),
    );
    let mut seed = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut seed);
    }
    h.update(&seed);
    h.finalize().as_bytes()[..16].try_into().expect("16 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_objects_round_trip_and_damage_is_refused() {
        let h = Header {
            server: "s".into(),
            at_ms: 5,
            expires_ms: 9,
            visible_ms: 6,
        };
        let id = BlockId::from_slice(&[7; 32]).unwrap();
        let mut body = serde_json::to_vec(&h).unwrap();
        body.push(b'\n');
        body.extend_from_slice(id.as_bytes());
        let (back, ids) = parse_ids(&body).unwrap();
        assert_eq!((back.at_ms, back.expires_ms), (5, 9));
        assert!(ids.contains(&id));
        body.push(0);
        assert!(parse_ids(&body).is_none());
        assert_ne!(rand_bytes(), rand_bytes());
    }
}
