//! Store check: every indexed block must exist with its indexed size; with `read_data`
//! its bytes must also hash to its id. A damaged block is moved aside to `quarantine/`
//! (kept for inspection, never served) and dropped from the index, so the next push of any
//! image holding it is told "missing" and uploads it again: re-pushing heals the store.
//! Manifests are kept; images that lost blocks are reported.
//!
//! Blocks are read in pages of the index (the index lock is never held while reading
//! files) and hashed on all cores. A block uploaded during the check is simply not in the
//! page list yet, or is whole when read (files are renamed into place after writing).

use crate::backend::{Backend, BackendError};
use crate::index::{Index, IndexError};
use crate::ingest::{StorageError, Store};
use bonsai_core::codec::verify_object;
use bonsai_core::store::{CheckOptions, CheckReport, DamagedBlock, DamagedImage};
use bonsai_core::BlockId;
use std::path::PathBuf;
use std::time::Instant;

const PAGE: usize = 2048;

impl Index {
    /// Up to `PAGE` indexed blocks with ids above `after`, in id order.
    fn page_after(&self, after: Option<&BlockId>) -> Result<Vec<(BlockId, u64)>, IndexError> {
        let db = self.conn();
        let start: Vec<u8> = after.map(|a| a.as_bytes().to_vec()).unwrap_or_default();
        let mut stmt =
            db.prepare_cached("SELECT id, size FROM blocks WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = stmt.query_map(rusqlite::params![start, PAGE as i64], |r| {
            Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)? as u64))
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

    /// Registered images whose manifests name blocks the index no longer holds.
    pub(crate) fn damaged_images(&self) -> Result<Vec<DamagedImage>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare(
            "SELECT i.name, count(*) FROM image_blocks i
             WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.id = i.id)
             GROUP BY i.name ORDER BY i.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(DamagedImage {
                name: r.get(0)?,
                missing_blocks: r.get::<_, i64>(1)? as u64,
            })
        })?;
        rows.collect()
    }

    fn drop_damaged(&self, blocks: &[(BlockId, u64)]) -> Result<(), IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        crate::gc::drop_rows(&tx, blocks)?;
        tx.commit()
    }
}

/// What is wrong with one stored block, if anything. A backend that fails to answer
/// (an I/O error, an object store down) is an error of the check, never a verdict on the
/// block: a healthy block must not be quarantined because of a network blip.
fn examine(
    backend: &dyn Backend,
    id: &BlockId,
    size: u64,
    read_data: bool,
) -> Result<Option<&'static str>, BackendError> {
    match backend.stat(id)? {
        Some(len) if len == size => {}
        Some(_) => return Ok(Some("wrong_size")),
        None => return Ok(Some("missing")),
    }
    if read_data {
        match backend.get(id)? {
            Some(bytes) if verify_object(id, &bytes).is_ok() => {}
            Some(_) => return Ok(Some("wrong_hash")),
            None => return Ok(Some("missing")),
        }
    }
    Ok(None)
}

/// Examines one share of a page on a worker thread.
fn examine_part(
    backend: &dyn Backend,
    part: &[(BlockId, u64)],
    read_data: bool,
) -> Result<Vec<(BlockId, u64, &'static str)>, BackendError> {
    let mut found = Vec::new();
    if backend.is_shared() {
        // a bucket: sizes and bytes of the part in one call each (neighbours in a pack
        // share a ranged GET), not a request per block
        for chunk in part.chunks(256) {
            found.extend(examine_many(backend, chunk, read_data)?);
        }
        return Ok(found);
    }
    for (id, size) in part {
        if let Some(problem) = examine(backend, id, *size, read_data)? {
            found.push((*id, *size, problem));
        }
    }
    Ok(found)
}

/// [`examine`] for a batch of blocks.
fn examine_many(
    backend: &dyn Backend,
    part: &[(BlockId, u64)],
    read_data: bool,
) -> Result<Vec<(BlockId, u64, &'static str)>, BackendError> {
    let ids: Vec<BlockId> = part.iter().map(|p| p.0).collect();
    let sizes = backend.stat_many_fresh(&ids)?;
    let bytes = match read_data {
        true => backend.get_many(&ids)?,
        false => vec![None; ids.len()],
    };
    let mut found = Vec::new();
    for (((id, size), len), obj) in part.iter().zip(sizes).zip(bytes) {
        let problem = match len {
            None => Some("missing"),
            Some(l) if l != *size => Some("wrong_size"),
            Some(_) if !read_data => None,
            Some(_) => match obj {
                Some(b) if verify_object(id, &b).is_ok() => None,
                Some(_) => Some("wrong_hash"),
                None => Some("missing"),
            },
        };
        if let Some(p) = problem {
            found.push((*id, *size, p));
        }
    }
    Ok(found)
}

impl Store {
    /// Checks every indexed block; quarantines and unindexes the damaged ones.
    pub fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StorageError> {
        if self.upstream.is_some() {
            return Err(StorageError::Unsupported(crate::cache::NO_ADMIN));
        }
        let started = Instant::now();
        let read_data = opts.read_data;
        let backend = self.backend().as_ref();
        let mut report = CheckReport {
            read_data,
            ..Default::default()
        };
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut after: Option<BlockId> = None;
        loop {
            let page = self.index().page_after(after.as_ref())?;
            let Some(last) = page.last() else { break };
            after = Some(last.0);
            let per = page.len().div_ceil(workers);
            let found = std::thread::scope(|s| {
                let handles: Vec<_> = page
                    .chunks(per)
                    .map(|part| s.spawn(move || examine_part(backend, part, read_data)))
                    .collect();
                let mut found = Vec::new();
                for h in handles {
                    let part = h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                    found.extend(part?);
                }
                Ok::<_, BackendError>(found)
            })?;
            if read_data && backend.is_shared() {
                let bad: std::collections::HashSet<BlockId> = found.iter().map(|f| f.0).collect();
                let good: Vec<BlockId> = page
                    .iter()
                    .map(|p| p.0)
                    .filter(|id| !bad.contains(id))
                    .collect();
                self.index().settle(&good, &[])?;
            }
            report.blocks_checked += page.len() as u64;
            if read_data {
                report.read_bytes += page.iter().map(|p| p.1).sum::<u64>();
            }
            let found = if found.is_empty() {
                found
            } else {
                self.quarantine(&found)?
            };
            if !found.is_empty() {
                report.damaged.extend(found.iter().map(|f| f.0));
                report
                    .problems
                    .extend(found.iter().map(|(id, _, p)| DamagedBlock {
                        id: *id,
                        problem: p.to_string(),
                    }));
            }
            tracing::debug!(checked = report.blocks_checked, "check progress");
        }
        report.images_missing_blocks = self.index().damaged_images()?;
        report.damaged_images = report
            .images_missing_blocks
            .iter()
            .map(|i| i.name.clone())
            .collect();
        report.wall_seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            checked = report.blocks_checked,
            damaged = report.damaged.len(),
            read_data,
            "check"
        );
        Ok(report)
    }

    /// Re-examines what a page found, under the exclusive lock (no upload, existence
    /// answer or sweep can run), and quarantines only what is still damaged: its bytes (if
    /// any) go to `quarantine/`, the object leaves the backend and its row the index.
    /// Returns what was quarantined. A block gc collected since (no row any more) or that
    /// a push stored again since (healthy now) is left alone: reading a page is not atomic
    /// with these, re-confirming is.
    fn quarantine(
        &self,
        found: &[(BlockId, u64, &'static str)],
    ) -> Result<Vec<(BlockId, u64, &'static str)>, StorageError> {
        let dir: PathBuf = self.root().join("quarantine");
        let io = |path: &std::path::Path, e| BackendError::io(path.display(), e);
        let _excl = self.exclusive();
        let mut confirmed = Vec::new();
        for (id, _, _) in found {
            let Some(size) = self.index().size_of(id)? else {
                continue; // collected meanwhile
            };
            if let Some(problem) = examine(self.backend().as_ref(), id, size, true)? {
                confirmed.push((*id, size, problem));
            }
        }
        if confirmed.is_empty() {
            return Ok(confirmed);
        }
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let stamp = crate::index::now();
        for (id, _, problem) in &confirmed {
            if let Some(bytes) = self.backend().get(id)? {
                let to = dir.join(format!("{id}.{stamp}.{problem}"));
                std::fs::write(&to, bytes).map_err(|e| io(&to, e))?;
            }
            self.backend().delete(id)?;
            tracing::warn!(%id, problem, "block quarantined");
        }
        let rows: Vec<(BlockId, u64)> = confirmed.iter().map(|f| (f.0, f.1)).collect();
        self.index().drop_damaged(&rows)?;
        Ok(confirmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bonsai_core::{Convergence, Encoder};

    /// The directory backend's layout (blocks/ab/cd/HEX).
    fn block_path(root: &std::path::Path, id: &BlockId) -> std::path::PathBuf {
        let h = id.to_hex();
        root.join("blocks").join(&h[..2]).join(&h[2..4]).join(h)
    }

    #[test]
    fn finds_flipped_truncated_and_missing_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let blocks: Vec<_> = (0..5)
            .map(|i| Encoder::new().encode(&Convergence::public(), format!("block {i}").as_bytes()))
            .collect();
        let items: Vec<_> = blocks.iter().map(|b| (b.id, &b.object[..])).collect();
        s.put_many(&items).unwrap();
        let ids: Vec<_> = blocks.iter().map(|b| b.id).collect();
        s.register("img", 100, &ids).unwrap();
        let clean = s.check(&CheckOptions { read_data: true }).unwrap();
        assert_eq!((clean.blocks_checked, clean.damaged.len()), (5, 0));
        let flip = block_path(dir.path(), &ids[0]);
        let mut bytes = std::fs::read(&flip).unwrap();
        bytes[30] ^= 1;
        std::fs::write(&flip, bytes).unwrap();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(block_path(dir.path(), &ids[1]))
            .unwrap();
        f.set_len(3).unwrap();
        std::fs::remove_file(block_path(dir.path(), &ids[2])).unwrap();
        // Without read_data the flipped byte goes unnoticed (same size).
        let quick = s.check(&CheckOptions { read_data: false }).unwrap();
        let problems: Vec<_> = quick.problems.iter().map(|d| d.problem.as_str()).collect();
        assert_eq!(problems.len(), 2);
        let full = s.check(&CheckOptions { read_data: true }).unwrap();
        assert_eq!(full.damaged.len(), 1);
        assert_eq!(full.problems[0].problem, "wrong_hash");
        assert_eq!(full.images_missing_blocks[0].missing_blocks, 3);
        assert_eq!(full.damaged_images, vec!["img@1".to_string()]);
        assert_eq!(s.missing(&ids).unwrap(), ids[..3].to_vec());
        assert_eq!(s.stats().unwrap().blocks, 2);
        assert_eq!(
            std::fs::read_dir(dir.path().join("quarantine"))
                .unwrap()
                .count(),
            2
        );
    }

    #[test]
    fn a_backend_that_fails_stops_the_check_and_quarantines_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let b = Encoder::new().encode(&Convergence::public(), b"healthy block");
        s.put_many(&[(b.id, &b.object[..])]).unwrap();
        s.register("img", 100, &[b.id]).unwrap();
        // The block's directory becomes a file: reading it fails with ENOTDIR, which says
        // nothing about the block itself.
        let shard = block_path(dir.path(), &b.id)
            .parent()
            .unwrap()
            .to_path_buf();
        std::fs::remove_dir_all(&shard).unwrap();
        std::fs::write(&shard, b"not a directory").unwrap();
        for read_data in [false, true] {
            assert!(s.check(&CheckOptions { read_data }).is_err());
        }
        assert_eq!(s.stats().unwrap().blocks, 1);
        assert!(!dir.path().join("quarantine").exists());
        std::fs::remove_file(&shard).unwrap();
        let gone = s.check(&CheckOptions { read_data: false }).unwrap();
        assert_eq!(gone.problems[0].problem, "missing");
    }
}
