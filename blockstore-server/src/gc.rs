//! Garbage collection that is safe while others push: mark, wait a grace period, sweep.
//!
//! A block no registered image uses is first *marked* with the time gc saw it so. A later
//! run deletes it only if it is still unreferenced and its mark is at least the grace
//! period old. Any sign that a client relies on the block — an existence query answering
//! "present", an upload of it — removes the mark (`confirm`), so the clock starts again.
//! Registration checks every block inside the same SQLite transaction order as the sweep,
//! so a manifest naming a deleted block is refused (409) and the client uploads it again.
//! The proof is in docs/OPERATING.md. With grace 0 one run marks and sweeps at once: for an
//! operator who knows no push runs.
//!
//! Caveats: marking scans the whole block table under the index lock (~1 s per million
//! blocks); marks use the server's wall clock, so a clock set back delays deletions and a
//! clock set forward by more than the grace period could delete a block a slow push was
//! told about — that push's registration is then refused, never accepted incomplete.

use crate::index::{now, Index, IndexError};
use crate::ingest::{StorageError, Store};
use bonsai_core::store::{GcOptions, GcReport};
use bonsai_core::BlockId;
use rusqlite::{params, OptionalExtension};
use std::time::Instant;

/// Why gc refuses a bucket shared by several servers (docs/OPERATING.md).
const SHARED_GC: &str = "gc is not offered on an S3 bucket: several servers may share it and each knows only its own pushes; collecting from one server's view could free a block another server's push relies on";

/// Blocks deleted per exclusive section: short enough that uploads barely wait.
const SWEEP_BATCH: usize = 512;

impl Index {
    /// Removes the gc marks of blocks a client was just told about (cheap when none).
    pub(crate) fn confirm(&self, ids: &[BlockId]) -> Result<u64, IndexError> {
        let mut db = self.conn();
        let any: bool = db.query_row("SELECT EXISTS(SELECT 1 FROM gc_marks)", [], |r| r.get(0))?;
        if !any || ids.is_empty() {
            return Ok(0);
        }
        let tx = db.transaction()?;
        let mut n = 0;
        {
            let mut del = tx.prepare_cached("DELETE FROM gc_marks WHERE id = ?1")?;
            for id in ids {
                n += del.execute([&id.as_bytes()[..]])? as u64;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Marks every unreferenced, unmarked block with the current time and drops the marks
    /// of blocks an image now uses. Returns (unreferenced, newly marked, mark time).
    fn mark(&self, dry_run: bool) -> Result<(u64, u64, i64), IndexError> {
        let mut db = self.conn();
        // Taken under the lock: no confirmation can fall between this time and the marks.
        let t = now();
        let tx = db.transaction()?;
        let unreferenced: i64 = tx.query_row(
            "SELECT count(*) FROM blocks b
             WHERE NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = b.id)",
            [],
            |r| r.get(0),
        )?;
        let marked = if dry_run {
            tx.query_row(
                "SELECT count(*) FROM blocks b
                 WHERE NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = b.id)
                   AND NOT EXISTS (SELECT 1 FROM gc_marks m WHERE m.id = b.id)",
                [],
                |r| r.get::<_, i64>(0),
            )? as usize
        } else {
            tx.execute(
                "DELETE FROM gc_marks
                 WHERE EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = gc_marks.id)",
                [],
            )?;
            tx.execute(
                "INSERT OR IGNORE INTO gc_marks(id, marked)
                 SELECT id, ?1 FROM blocks b
                 WHERE NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = b.id)",
                [t],
            )?
        };
        tx.commit()?;
        Ok((unreferenced as u64, marked as u64, t))
    }

    /// Marked blocks whose mark is at or before `cutoff`, with their sizes.
    fn ripe(&self, cutoff: i64) -> Result<Vec<(BlockId, u64)>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare(
            "SELECT m.id, b.size FROM gc_marks m JOIN blocks b ON b.id = m.id
             WHERE m.marked <= ?1
               AND NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = m.id)",
        )?;
        let rows = stmt.query_map([cutoff], |r| {
            let id: Vec<u8> = r.get(0)?;
            Ok((id, r.get::<_, i64>(1)? as u64))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size) = row?;
            if let Some(id) = BlockId::from_slice(&id) {
                out.push((id, size));
            }
        }
        Ok(out)
    }

    /// Drops index rows of blocks still ripe (re-checked inside the transaction: a
    /// registration or confirmation since `ripe` wins). Returns what was dropped.
    pub(crate) fn drop_ripe(
        &self,
        batch: &[(BlockId, u64)],
        cutoff: i64,
    ) -> Result<Vec<(BlockId, u64)>, IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        let mut gone = Vec::new();
        {
            let mut still = tx.prepare_cached(
                "SELECT 1 FROM gc_marks m WHERE m.id = ?1 AND m.marked <= ?2
                   AND NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = m.id)",
            )?;
            for (id, size) in batch {
                let key = &id.as_bytes()[..];
                if still
                    .query_row(params![key, cutoff], |_| Ok(()))
                    .optional()?
                    .is_some()
                {
                    gone.push((*id, *size));
                }
            }
        }
        drop_rows(&tx, &gone)?;
        tx.commit()?;
        Ok(gone)
    }
}

impl Index {
    /// Removes block rows (and their marks), lowering the totals: blocks the backend no
    /// longer holds.
    pub(crate) fn drop_blocks(&self, rows: &[(BlockId, u64)]) -> Result<(), IndexError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut db = self.conn();
        let tx = db.transaction()?;
        drop_rows(&tx, rows)?;
        tx.commit()
    }

    /// Every indexed block with its size.
    pub(crate) fn all_blocks(&self) -> Result<Vec<(BlockId, u64)>, IndexError> {
        let db = self.conn();
        let mut q = db.prepare("SELECT id, size FROM blocks")?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
            .filter_map(|r| match r {
                Ok((id, size)) => BlockId::from_slice(&id).map(|id| Ok((id, size as u64))),
                Err(e) => Some(Err(e)),
            })
            .collect();
        rows
    }
}

/// Deletes block rows (and their marks) and lowers the running totals.
pub(crate) fn drop_rows(
    tx: &rusqlite::Transaction<'_>,
    blocks: &[(BlockId, u64)],
) -> Result<(), IndexError> {
    let mut n = 0i64;
    let mut bytes = 0i64;
    {
        let mut del = tx.prepare_cached("DELETE FROM blocks WHERE id = ?1")?;
        let mut unmark = tx.prepare_cached("DELETE FROM gc_marks WHERE id = ?1")?;
        for (id, size) in blocks {
            let key = &id.as_bytes()[..];
            if del.execute([key])? == 1 {
                n += 1;
                bytes += *size as i64;
            }
            unmark.execute([key])?;
        }
    }
    tx.execute(
        "UPDATE meta SET value = max(value - ?1, 0) WHERE key = 'blocks'",
        [n],
    )?;
    tx.execute(
        "UPDATE meta SET value = max(value - ?1, 0) WHERE key = 'stored_bytes'",
        [bytes],
    )?;
    Ok(())
}

impl Store {
    /// Held by uploads and existence answers (see the field's doc).
    pub(crate) fn shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gc_lock.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Held while blocks are deleted or quarantined.
    pub(crate) fn exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gc_lock.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Collects unreferenced blocks: mark, then sweep those marked at least
    /// `grace_seconds` ago and not confirmed since.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport, StorageError> {
        if self.upstream.is_some() {
            return Err(StorageError::Unsupported(crate::cache::NO_ADMIN));
        }
        if let Some(shared) = self.backend().shared_gc() {
            return self.gc_shared(shared, opts);
        }
        if self.backend().is_shared() {
            // Another server's index holds registrations and "present" answers this one
            // never saw: marking from this index alone could free a live block.
            return Err(StorageError::Unsupported(SHARED_GC));
        }
        let started = Instant::now();
        let grace_seconds = opts.grace.as_secs();
        let (unreferenced, marked, t) = self.index().mark(opts.dry_run)?;
        let cutoff = t.saturating_sub(grace_seconds.min(i64::MAX as u64) as i64);
        let mut report = GcReport {
            dry_run: opts.dry_run,
            grace_seconds,
            unreferenced_blocks: unreferenced,
            marked_blocks: marked,
            ..Default::default()
        };
        if opts.dry_run && grace_seconds == 0 {
            // This run would mark every unreferenced block and sweep it at once.
            report.blocks_freed = unreferenced;
            report.bytes_freed = self.unreferenced_bytes()?;
        } else if opts.dry_run {
            let ripe = self.index().ripe(cutoff)?;
            report.blocks_freed = ripe.len() as u64;
            report.bytes_freed = ripe.iter().map(|r| r.1).sum();
        } else {
            for batch in self.index().ripe(cutoff)?.chunks(SWEEP_BATCH) {
                let (n, bytes) = self.sweep(batch, cutoff)?;
                report.blocks_freed += n;
                report.bytes_freed += bytes;
            }
        }
        if !opts.dry_run {
            (report.orphans_freed, report.orphan_bytes_freed) = self.sweep_orphans()?;
        }
        report.blocks_in_grace = unreferenced.saturating_sub(report.blocks_freed);
        report.wall_seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            freed_blocks = report.blocks_freed,
            freed_bytes = report.bytes_freed,
            kept = report.blocks_in_grace,
            dry_run = opts.dry_run,
            "gc"
        );
        Ok(report)
    }

    /// Deletes one batch: index rows first, then files, all while no upload or existence
    /// answer can run, so none can see a row whose file is about to go.
    fn sweep(&self, batch: &[(BlockId, u64)], cutoff: i64) -> Result<(u64, u64), StorageError> {
        let _excl = self.exclusive();
        let gone = self.index().drop_ripe(batch, cutoff)?;
        for (id, _) in &gone {
            self.backend().delete(id)?;
        }
        Ok((gone.len() as u64, gone.iter().map(|g| g.1).sum()))
    }

    /// Deletes block objects the index does not know (orphans of a crash). Listed without
    /// the lock, then re-checked against the index and deleted under the exclusive lock:
    /// an upload holds the shared lock from its write to its index row, so an object that
    /// is still unindexed there is no upload's.
    fn sweep_orphans(&self) -> Result<(u64, u64), StorageError> {
        let mut listed: Vec<(BlockId, u64)> = Vec::new();
        self.backend().list(&mut |id, size| {
            listed.push((id, size));
            Ok(())
        })?;
        let (mut n, mut bytes) = (0, 0);
        for batch in listed.chunks(SWEEP_BATCH * 8) {
            let ids: Vec<BlockId> = batch.iter().map(|b| b.0).collect();
            if self.index().missing(&ids)?.is_empty() {
                continue;
            }
            let _excl = self.exclusive();
            let orphans: std::collections::HashSet<BlockId> =
                self.index().missing(&ids)?.into_iter().collect();
            for (id, size) in batch.iter().filter(|b| orphans.contains(&b.0)) {
                if self.backend().delete(id)? {
                    n += 1;
                    bytes += size;
                    tracing::info!(%id, "orphaned block object deleted");
                }
            }
        }
        Ok((n, bytes))
    }

    /// gc on a bucket several servers share: the journal in the bucket coordinates it
    /// (`backend/s3/sweep.rs`); this index then drops the blocks the bucket lost.
    fn gc_shared(
        &self,
        shared: &dyn crate::backend::SharedGc,
        opts: &GcOptions,
    ) -> Result<GcReport, StorageError> {
        let report = shared.collect(opts).map_err(|e| match e {
            crate::backend::BackendError::Busy(why) => StorageError::Conflict(why),
            e => StorageError::Backend(e),
        })?;
        if report.blocks_freed > 0 && !opts.dry_run {
            let mut gone = Vec::new();
            let rows: Vec<(BlockId, u64)> = self.index().all_blocks()?;
            for chunk in rows.chunks(4096) {
                let ids: Vec<BlockId> = chunk.iter().map(|r| r.0).collect();
                let sizes = self.backend().stat_many(&ids)?;
                gone.extend(
                    chunk
                        .iter()
                        .zip(sizes)
                        .filter(|(_, s)| s.is_none())
                        .map(|(r, _)| *r),
                );
            }
            self.index().drop_blocks(&gone)?;
        }
        tracing::info!(
            freed_blocks = report.blocks_freed,
            freed_bytes = report.bytes_freed,
            packs_deleted = report.packs_deleted,
            packs_rewritten = report.packs_rewritten,
            dry_run = opts.dry_run,
            "gc on a shared bucket"
        );
        Ok(report)
    }

    fn unreferenced_bytes(&self) -> Result<u64, StorageError> {
        let db = self.index().conn();
        let v: i64 = db.query_row(
            "SELECT coalesce(sum(size), 0) FROM blocks b
                 WHERE NOT EXISTS (SELECT 1 FROM image_blocks i WHERE i.id = b.id)",
            [],
            |r| r.get(0),
        )?;
        Ok(v as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    fn block(s: &Store, text: &str) -> (BlockId, u64) {
        let b = Encoder::new().encode(&Convergence::public(), text.as_bytes());
        s.put_many(&[(b.id, &b.object)]).unwrap();
        (b.id, b.object.len() as u64)
    }

    #[test]
    fn grace_keeps_then_frees_and_confirmation_restarts_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (used, _) = block(&s, "used");
        let (a, asz) = block(&s, "garbage a");
        let (b, _) = block(&s, "garbage b");
        s.register("img", 10, &[used]).unwrap();
        let long = GcOptions {
            grace: std::time::Duration::from_secs(3600),
            dry_run: false,
        };
        let r = s.gc(&long).unwrap();
        assert_eq!(
            (r.unreferenced_blocks, r.marked_blocks, r.blocks_freed),
            (2, 2, 0)
        );
        // Marks older than the grace period: pretend an hour passed.
        s.index()
            .conn()
            .execute("UPDATE gc_marks SET marked = marked - 7200", [])
            .unwrap();
        // A client is told b is present: its mark goes.
        assert!(s.missing(&[b]).unwrap().is_empty());
        let r = s.gc(&long).unwrap();
        assert_eq!((r.blocks_freed, r.bytes_freed), (1, asz));
        assert_eq!(s.missing(&[a, b, used]).unwrap(), vec![a]);
        assert_eq!(s.backend().stat(&a).unwrap(), None);
        let dry = s
            .gc(&GcOptions {
                grace: std::time::Duration::ZERO,
                dry_run: true,
            })
            .unwrap();
        assert_eq!(dry.blocks_freed, 1);
        assert!(s.backend().stat(&b).unwrap().is_some());
        let r = s
            .gc(&GcOptions {
                grace: std::time::Duration::ZERO,
                dry_run: false,
            })
            .unwrap();
        assert_eq!(r.blocks_freed, 1);
        assert_eq!(s.stats().unwrap().blocks, 1);
        // A manifest naming a collected block is refused.
        assert_eq!(s.register("late", 1, &[used, b]).unwrap(), Some(b));
    }

    #[test]
    fn objects_without_an_index_row_are_reclaimed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let (used, _) = block(&s, "used");
        s.register("img", 10, &[used]).unwrap();
        // a sweep killed between dropping the row and deleting the file leaves this behind
        let orphan = Encoder::new().encode(&Convergence::public(), b"orphan");
        s.backend()
            .put_if_absent(&orphan.id, &orphan.object)
            .unwrap();
        let r = s
            .gc(&GcOptions {
                grace: std::time::Duration::from_secs(3600),
                dry_run: false,
            })
            .unwrap();
        assert_eq!(
            (r.orphans_freed, r.orphan_bytes_freed),
            (1, orphan.object.len() as u64)
        );
        assert_eq!(s.backend().stat(&orphan.id).unwrap(), None);
        assert!(s.backend().stat(&used).unwrap().is_some());
    }
}
