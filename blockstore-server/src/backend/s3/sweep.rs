//! gc on a bucket several servers share, through any of them (docs/OPERATING.md "gc on a
//! bucket"): mark, wait the grace period, sweep, with the journal (`journal.rs`) as the
//! only coordination.
//!
//! - **Mark**: every entry of the packs older than now whose block no manifest in the
//!   bucket names goes into `RUN.marks`. Entries come from the packs' own indexes, so a
//!   block left dead by an earlier run is marked again and collected.
//! - **Present answers**: a server about to say "present" for marked blocks first writes a
//!   confirmation, then looks for the run's plan; blocks the plan may delete, with no
//!   newer copy, are answered "missing" instead (the client uploads them again).
//! - **Sweep**, once the marks are `grace` old: create `RUN.plan` (the marks), then read
//!   every confirmation and every manifest; what neither names is deleted from the packs
//!   older than the marks: a pack left empty is deleted, one mostly dead
//!   ([`MAX_UNUSED`]) is rewritten with its live blocks, others keep the dead bytes.
//!   `RUN.done` tells every server's map what went.
//! - **Registrations**: after its manifest is durable, a registration looks for a plan; a
//!   block a plan may delete, with no newer copy, refuses it (the manifest is removed).
//!   Every pack the version uses is then confirmed with a HEAD, so a pack gone since this
//!   server last looked never lets a version through.

use super::journal::{Done, Header, Journal, Runs, DAMAGED, LEASE_MS};
use super::packs::now_ms;
use super::S3Backend;
use crate::backend::{BackendError, SharedGc};
use bonsai_core::store::{manifest, GcOptions, GcReport};
use bonsai_core::BlockId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A pack with more than this share of dead bytes is rewritten (restic prune's
/// `--max-unused` idea): below it the dead bytes cost less than the rewrite.
pub(crate) const MAX_UNUSED: f64 = 0.5;
/// Least time between two looks at the journal for existence answers.
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// What this server knows of the journal.
#[derive(Default)]
pub(crate) struct GcView {
    /// The last finished run applied to the map.
    applied: u64,
    /// The run marked and not finished, its marks and their time, and its plan if sweeping.
    pending: Option<Pending>,
    looked: Option<Instant>,
    /// Held while this server sweeps.
    pub(crate) sweeping: Arc<Mutex<()>>,
}

#[derive(Clone)]
struct Pending {
    run: u64,
    /// The cut-off: packs named before it are swept.
    marked_ms: u64,
    /// When the marks were written: the grace period runs from here.
    visible_ms: u64,
    marks: Arc<HashSet<BlockId>>,
    plan: Option<Arc<HashSet<BlockId>>>,
}

/// gc cannot run now: another run or server holds what it needs (a conflict, not a fault).
fn busy(reason: impl std::fmt::Display) -> BackendError {
    BackendError::Busy(reason.to_string())
}

fn refused(what: &str, reason: impl std::fmt::Display) -> BackendError {
    BackendError::Refused {
        what: what.to_string(),
        reason: reason.to_string(),
    }
}

/// The number of the next run.
fn next_run(runs: &Runs) -> Result<u64, BackendError> {
    match runs.keys().next_back() {
        None => Ok(1),
        Some(n) => n
            .checked_add(1)
            .filter(|n| *n < 10_000_000_000)
            .ok_or_else(|| refused("gc journal", "run numbers are exhausted")),
    }
}

/// The first pack name written at or after `ms`.
fn name_at(ms: u64) -> String {
    format!("{ms:013}-")
}

impl S3Backend {
    fn journal(&self) -> Journal<'_> {
        Journal {
            bucket: &self.bucket,
        }
    }

    fn view(&self) -> std::sync::MutexGuard<'_, GcView> {
        self.gc.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks at the journal (unless looked at less than [`LOOK_EVERY`] ago and not
    /// `fresh`): applies finished runs to the map and loads the pending run's marks.
    fn look(&self, fresh: bool) -> Result<Option<Pending>, BackendError> {
        let mut view = self.view();
        if !fresh && view.looked.is_some_and(|t| t.elapsed() < LOOK_EVERY) {
            return Ok(view.pending.clone());
        }
        let runs = self.journal().runs()?;
        let applied = view.applied;
        for (&n, _) in runs.iter().filter(|(n, r)| **n > applied && r.done) {
            if let Some(done) = self.journal().done(n)? {
                self.apply(&done)?;
            }
            view.applied = n;
        }
        view.pending = self.pending_of(&runs, view.pending.take())?;
        view.looked = Some(Instant::now());
        Ok(view.pending.clone())
    }

    fn pending_of(
        &self,
        runs: &Runs,
        had: Option<Pending>,
    ) -> Result<Option<Pending>, BackendError> {
        let Some((&run, r)) = runs.iter().next_back() else {
            return Ok(None);
        };
        if r.done || !r.marks {
            return Ok(None);
        }
        let mut p = match had.filter(|p| p.run == run) {
            Some(p) => p,
            None => {
                let (h, marks) = match self.journal().read_ids(run, "marks") {
                    Ok(Some(m)) => m,
                    Ok(None) => return Ok(None),
                    // unreadable marks can never be swept (a sweep needs them): no run is
                    // pending, and the next gc marks a new one
                    Err(e @ BackendError::Refused { .. }) if e.to_string().contains(DAMAGED) => {
                        tracing::warn!(run, error = %e, "gc journal: unreadable marks; that run is skipped");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
                Pending {
                    run,
                    marked_ms: h.at_ms,
                    visible_ms: h.visible_ms.max(h.at_ms),
                    marks: Arc::new(marks),
                    plan: None,
                }
            }
        };
        if r.plan && p.plan.is_none() {
            p.plan = self
                .journal()
                .read_ids(run, "plan")?
                .map(|(_, ids)| Arc::new(ids));
        }
        Ok(Some(p))
    }

    /// Applies a finished run to this server's map.
    fn apply(&self, done: &Done) -> Result<(), BackendError> {
        for name in &done.deleted_packs {
            self.packs.drop_pack_named(name)?;
        }
        for (pack, ids) in &done.dead {
            let ids: Vec<BlockId> = ids.iter().filter_map(|h| h.parse().ok()).collect();
            self.packs.unmap_in(pack, &ids)?;
        }
        Ok(())
    }

    /// Whether a block has a live copy in a pack written at or after `ms` (which no sweep
    /// of marks taken at `ms` touches).
    fn has_copy_since(&self, id: &BlockId, ms: u64) -> Result<bool, BackendError> {
        let since = name_at(ms);
        Ok(self.packs.locate_all(id)?.iter().any(|l| l.name >= since))
    }

    /// Of `ids`, those a sweep of `p` may delete: in its plan, with no newer copy.
    fn condemned(&self, p: &Pending, ids: &[BlockId]) -> Result<Vec<BlockId>, BackendError> {
        let Some(plan) = &p.plan else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for id in ids.iter().filter(|i| plan.contains(i)) {
            if !self.has_copy_since(id, p.marked_ms)? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// Blocks an upload must write again although the map holds a copy: ones a sweep in
    /// progress may delete.
    pub(crate) fn must_rewrite(&self, ids: &[BlockId]) -> Result<HashSet<BlockId>, BackendError> {
        match self.look(false)? {
            Some(p) => Ok(self.condemned(&p, ids)?.into_iter().collect()),
            None => Ok(HashSet::new()),
        }
    }

    /// Every block id any manifest in the bucket names.
    fn referenced(&self) -> Result<HashSet<BlockId>, BackendError> {
        use crate::backend::Backend;
        let mut refs = HashSet::new();
        for key in self.list_manifests()? {
            let Some(bytes) = self.get_manifest(&key)? else {
                continue;
            };
            if let Some((_, ids)) = manifest::parse(&key, &bytes) {
                refs.extend(ids);
            } else if let Some((_, ids)) = manifest::parse_legacy(&bytes) {
                refs.extend(ids);
            } else {
                // a manifest we cannot read may still name blocks: collect nothing
                return Err(refused(
                    &key,
                    "damaged manifest in the bucket; gc stops rather than guess what it names",
                ));
            }
        }
        Ok(refs)
    }

    /// Marks run `run`: every entry of the packs older than now that no manifest names.
    fn mark(&self, run: u64, opts: &GcOptions) -> Result<Option<Pending>, BackendError> {
        self.packs.refresh(true)?;
        let at_ms = now_ms();
        let refs = self.referenced()?;
        let marks: HashSet<BlockId> = self
            .packs
            .entries_before(&name_at(at_ms))?
            .into_iter()
            .map(|e| e.0)
            .filter(|id| !refs.contains(id))
            .collect();
        if opts.dry_run || marks.is_empty() {
            return Ok(Some(Pending {
                run,
                marked_ms: at_ms,
                visible_ms: at_ms,
                marks: Arc::new(marks),
                plan: None,
            }));
        }
        // the grace period runs from when the marks are written, not from the cut-off
        let header = Header {
            server: self.server_id.clone(),
            at_ms,
            expires_ms: 0,
            visible_ms: now_ms(),
        };
        let ids: Vec<BlockId> = marks.iter().copied().collect();
        if !self.journal().create_ids(run, "marks", &header, &ids)? {
            return Ok(None); // another server marked this run first
        }
        Ok(Some(Pending {
            run,
            marked_ms: at_ms,
            visible_ms: header.visible_ms,
            marks: Arc::new(marks),
            plan: None,
        }))
    }

    /// Sweeps the pending run `p`, whose marks are old enough.
    fn sweep(&self, p: &Pending, report: &mut GcReport) -> Result<(), BackendError> {
        let expires_ms = now_ms() + LEASE_MS;
        let header = Header {
            server: self.server_id.clone(),
            at_ms: now_ms(),
            expires_ms,
            visible_ms: 0,
        };
        let ids: Vec<BlockId> = p.marks.iter().copied().collect();
        if !self.journal().create_ids(p.run, "plan", &header, &ids)? {
            match self.journal().read_ids(p.run, "plan")? {
                Some((h, _)) if h.server == self.server_id || h.expires_ms < now_ms() => {
                    // our own sweep cut short (its process or the bucket died), or one
                    // abandoned: the plan is fixed, so finishing it is the same sweep
                    tracing::info!(run = p.run, "resuming an unfinished gc sweep");
                }
                _ => {
                    return Err(busy(format!(
                        "run {} is being swept through another server; try again later",
                        p.run
                    )))
                }
            }
        }
        // after the plan is durable: every confirmation and manifest it must honour
        let keep: HashSet<BlockId> = self
            .referenced()?
            .union(&self.journal().confirmed(p.run)?)
            .copied()
            .collect();
        let doomed: HashSet<BlockId> = p
            .marks
            .iter()
            .filter(|i| !keep.contains(i))
            .copied()
            .collect();
        if now_ms() + 60_000 > expires_ms {
            return Err(busy(
                "the sweep outlived its lease; run gc again to finish it",
            ));
        }
        let done = self.delete_from_packs(&doomed, &keep, p.marked_ms, expires_ms, report)?;
        self.apply(&done)?;
        self.journal().finish(p.run, &done)?;
        report.blocks_freed = doomed.len() as u64;
        let runs = self.journal().runs()?;
        self.journal()
            .prune(&runs, p.run.saturating_sub(super::journal::KEEP_RUNS))?;
        Ok(())
    }

    /// Deletes `doomed` blocks from the packs written before `before_ms`.
    fn delete_from_packs(
        &self,
        doomed: &HashSet<BlockId>,
        keep: &HashSet<BlockId>,
        before_ms: u64,
        expires_ms: u64,
        report: &mut GcReport,
    ) -> Result<Done, BackendError> {
        self.packs.refresh(true)?;
        let mut by_pack: HashMap<i64, Vec<BlockId>> = HashMap::new();
        for (id, pack, _) in self.packs.entries_before(&name_at(before_ms))? {
            if doomed.contains(&id) {
                by_pack.entry(pack).or_default().push(id);
            }
        }
        let sizes: HashMap<i64, u64> = self
            .packs
            .known()?
            .into_iter()
            .map(|k| (k.0, k.2))
            .collect();
        let mut done = Done::default();
        for (num, ids) in by_pack {
            if now_ms() + 60_000 > expires_ms {
                return Err(busy(
                    "the sweep outlived its lease; run gc again to finish it",
                ));
            }
            let entries = self.packs.entries_of(num)?;
            let Some(name) = entries.first().map(|e| e.0.name.clone()) else {
                continue;
            };
            let size = sizes.get(&num).copied().unwrap_or(0);
            let dying: HashSet<&BlockId> = ids.iter().collect();
            let live: Vec<&(super::packs::Loc, BlockId, bool)> = entries
                .iter()
                // dead in this server's map but named now (a version registered through a
                // server that never learnt it was collected): live again
                .filter(|e| !dying.contains(&e.1) && (!e.2 || keep.contains(&e.1)))
                .collect();
            let live_bytes: u64 = live.iter().map(|e| u64::from(e.0.len)).sum();
            if live.is_empty() || (size > 0 && 1.0 - live_bytes as f64 / size as f64 > MAX_UNUSED) {
                if !live.is_empty() {
                    self.rewrite(&live)?;
                    report.packs_rewritten += 1;
                } else {
                    report.packs_deleted += 1;
                }
                self.bucket.delete_packs(std::slice::from_ref(&name))?;
                report.bytes_freed += size.saturating_sub(live_bytes);
                done.deleted_packs.push(name);
            } else {
                done.dead
                    .push((name, ids.iter().map(BlockId::to_hex).collect()));
            }
        }
        Ok(done)
    }

    /// Writes the live blocks of a mostly dead pack into a new pack.
    fn rewrite(&self, live: &[&(super::packs::Loc, BlockId, bool)]) -> Result<(), BackendError> {
        let ids: Vec<BlockId> = live.iter().map(|e| e.1).collect();
        // each from the very pack being rewritten (another copy may be the damaged one)
        let locs: Vec<super::packs::Loc> = live.iter().map(|e| e.0.clone()).collect();
        let got = self.packs.read_at(&locs)?;
        let mut objects = Vec::with_capacity(ids.len());
        for (id, g) in ids.iter().zip(&got) {
            match g {
                Some(bytes) if bonsai_core::codec::verify_object(id, bytes).is_ok() => {
                    objects.push((*id, &bytes[..]))
                }
                // a damaged block is not copied on: `check` reports it, a push heals it
                _ => tracing::warn!(%id, "block unreadable or damaged while repacking; not copied"),
            }
        }
        if !objects.is_empty() {
            self.packs.write_packs(&objects)?;
        }
        Ok(())
    }
}

impl SharedGc for S3Backend {
    fn honour_present(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, BackendError> {
        let pending = self.look(false)?;
        // blocks a finished run collected (applied to the map just now) are gone
        let mut out: Vec<BlockId> = Vec::new();
        if !self.legacy {
            let locs = self.packs.locate(ids)?;
            out.extend(
                ids.iter()
                    .zip(&locs)
                    .filter(|(_, l)| l.is_none())
                    .map(|(i, _)| *i),
            );
        }
        let Some(p) = pending else { return Ok(out) };
        let hits: Vec<BlockId> = ids
            .iter()
            .filter(|i| p.marks.contains(i))
            .copied()
            .collect();
        if hits.is_empty() {
            return Ok(out);
        }
        self.journal().confirm(p.run, &hits)?;
        // after the confirmation is durable: is a sweep already past reading them? The
        // fresh look also applies a run that finished meanwhile to the map
        let fresh = self.look(true)?.filter(|q| q.run == p.run);
        let p = match fresh {
            Some(q) => q,
            None => {
                let plan = self.journal().read_ids(p.run, "plan")?;
                Pending {
                    plan: plan.map(|(_, ids)| Arc::new(ids)),
                    ..p
                }
            }
        };
        out.extend(self.condemned(&p, &hits)?);
        if !self.legacy {
            let locs = self.packs.locate(&hits)?;
            out.extend(
                hits.iter()
                    .zip(&locs)
                    .filter(|(_, l)| l.is_none())
                    .map(|(i, _)| *i),
            );
        }
        Ok(out)
    }

    fn settle_registration(&self, ids: &[BlockId]) -> Result<Option<BlockId>, BackendError> {
        if let Some(p) = self.look(true)? {
            if let Some(id) = self.condemned(&p, ids)?.first() {
                return Ok(Some(*id));
            }
        }
        let mut packs: HashMap<String, BlockId> = HashMap::new();
        let locs = self.packs.locate(ids)?;
        for (id, loc) in ids.iter().zip(&locs) {
            match loc {
                Some(l) => {
                    packs.entry(l.name.clone()).or_insert(*id);
                }
                None if self.legacy => {}
                None => return Ok(Some(*id)),
            }
        }
        let names: Vec<String> = packs.keys().cloned().collect();
        for (name, there) in names.iter().zip(self.bucket.packs_exist(&names)?) {
            if !there {
                self.packs.drop_pack_named(name)?;
                return Ok(Some(packs[name]));
            }
        }
        Ok(None)
    }

    fn collect(&self, opts: &GcOptions) -> Result<GcReport, BackendError> {
        let sweeping = self.view().sweeping.clone();
        let _one = sweeping
            .try_lock()
            .map_err(|_| busy("a gc is already running on this server"))?;
        let started = Instant::now();
        let mut report = GcReport {
            dry_run: opts.dry_run,
            grace_seconds: opts.grace.as_secs(),
            ..Default::default()
        };
        let runs = self.journal().runs()?;
        let pending = self.look(true)?;
        let p = match pending {
            Some(p) => p,
            None => {
                let next = next_run(&runs)?;
                match self.mark(next, opts)? {
                    Some(p) => p,
                    None => {
                        return Err(busy(
                            "another server started a gc run at the same moment; try again",
                        ))
                    }
                }
            }
        };
        report.unreferenced_blocks = p.marks.len() as u64;
        report.marked_blocks = p.marks.len() as u64;
        let ripe = now_ms().saturating_sub(p.visible_ms) >= opts.grace.as_millis() as u64;
        if opts.dry_run || !ripe || p.marks.is_empty() {
            report.blocks_in_grace = if ripe { 0 } else { p.marks.len() as u64 };
            if opts.dry_run && ripe {
                report.blocks_freed = p.marks.len() as u64;
            }
            if p.marks.is_empty() && !opts.dry_run && runs.get(&p.run).is_some_and(|r| r.marks) {
                self.journal().finish(p.run, &Done::default())?;
            }
            report.wall_seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }
        self.sweep(&p, &mut report)?;
        self.view().pending = None;
        if !opts.grace.is_zero() && runs.get(&p.run).is_some_and(|r| r.marks) {
            // a run marked earlier was swept: mark the next, to be swept after its grace
            let next = next_run(&self.journal().runs()?)?;
            if let Some(q) = self.mark(next, opts)? {
                report.marked_blocks = q.marks.len() as u64;
                report.blocks_in_grace = q.marks.len() as u64;
            }
        }
        report.wall_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
