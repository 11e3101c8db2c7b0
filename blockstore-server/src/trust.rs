//! On a bucket several servers share, an object under a block id is *present* only once
//! this store verified its bytes: by its own upload (ingest verifies every upload), by a
//! verifying read the first time a client is told "present", or by `check --read-data`.
//! Anyone with access to the bucket could otherwise plant wrong bytes under a real id and
//! make pushes "succeed" for images that cannot be pulled.
//!
//! A rebuild from a bucket listing indexes every object as *unverified*
//! (`unverified(id)`); the first existence query that would answer "present" for one reads
//! and verifies it, drops it from the index if it is wrong (the client then uploads it, and
//! the upload overwrites the bad object), and clears the mark if it is right.

use crate::index::{Index, IndexError};
use crate::ingest::{StorageError, Store};
use bonsai_core::codec::verify_object;
use bonsai_core::BlockId;
use rusqlite::params;

impl Index {
    /// Creates the table of unverified blocks (idempotent; on open).
    pub(crate) fn ensure_unverified(db: &rusqlite::Connection) -> Result<(), IndexError> {
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS unverified(id BLOB PRIMARY KEY) WITHOUT ROWID;",
        )
    }

    /// Marks indexed blocks as not yet verified by this store.
    pub(crate) fn mark_unverified(&self, ids: &[BlockId]) -> Result<(), IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        {
            let mut ins = tx.prepare_cached("INSERT OR IGNORE INTO unverified(id) VALUES (?1)")?;
            for id in ids {
                ins.execute([&id.as_bytes()[..]])?;
            }
        }
        tx.commit()
    }

    /// The ids among `ids` still marked unverified.
    pub(crate) fn unverified_among(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, IndexError> {
        let db = self.conn();
        let any: bool =
            db.query_row("SELECT EXISTS(SELECT 1 FROM unverified)", [], |r| r.get(0))?;
        if !any {
            return Ok(Vec::new());
        }
        let mut stmt = db.prepare_cached("SELECT 1 FROM unverified WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            if stmt.exists([&id.as_bytes()[..]])? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// Clears the marks of verified blocks, and drops the rows of `bad` ones.
    pub(crate) fn settle(
        &self,
        good: &[BlockId],
        bad: &[(BlockId, u64)],
    ) -> Result<(), IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        {
            let mut clear = tx.prepare_cached("DELETE FROM unverified WHERE id = ?1")?;
            for id in good.iter().chain(bad.iter().map(|b| &b.0)) {
                clear.execute(params![&id.as_bytes()[..]])?;
            }
        }
        crate::gc::drop_rows(&tx, bad)?;
        tx.commit()
    }
}

impl Store {
    /// Of indexed blocks about to be called present, those whose bytes fail verification
    /// (they are dropped from the index here). Costs nothing once every block is verified.
    pub(crate) fn distrusted(&self, hits: &[BlockId]) -> Result<Vec<BlockId>, StorageError> {
        let unverified = self.index().unverified_among(hits)?;
        if unverified.is_empty() {
            return Ok(Vec::new());
        }
        let objects = self.verifying_read(&unverified)?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for (id, object) in unverified.into_iter().zip(objects) {
            match object {
                Some(o) if verify_object(&id, &o).is_ok() => good.push(id),
                other => {
                    tracing::warn!(%id, "object in the bucket does not hold its block; treated as missing");
                    bad.push((id, other.map_or(0, |o| o.len() as u64)));
                }
            }
        }
        let sizes = self
            .index()
            .sizes_of(&bad.iter().map(|b| b.0).collect::<Vec<_>>())?;
        let bad: Vec<(BlockId, u64)> = bad.iter().zip(sizes).map(|(b, s)| (b.0, s)).collect();
        self.index().settle(&good, &bad)?;
        Ok(bad.into_iter().map(|b| b.0).collect())
    }

    /// Of objects another server stored (not in this index), those whose bytes verify,
    /// with their sizes: only these may be indexed and called present.
    pub(crate) fn verified_in_backend(
        &self,
        candidates: &[BlockId],
    ) -> Result<Vec<(BlockId, u64)>, StorageError> {
        let sizes = self.backend().stat_many(candidates)?;
        let there: Vec<BlockId> = candidates
            .iter()
            .zip(sizes)
            .filter_map(|(id, s)| s.map(|_| *id))
            .collect();
        if there.is_empty() {
            return Ok(Vec::new());
        }
        let objects = self.verifying_read(&there)?;
        Ok(there
            .into_iter()
            .zip(objects)
            .filter_map(|(id, o)| match o {
                Some(o) if verify_object(&id, &o).is_ok() => Some((id, o.len() as u64)),
                _ => {
                    tracing::warn!(%id, "object in the bucket does not hold its block; treated as missing");
                    None
                }
            })
            .collect())
    }

    /// The objects of `ids`; those that fail verification are read once more after the
    /// backend looked again at what other servers stored (a newer, good copy may have
    /// replaced a bad one since this server last looked).
    fn verifying_read(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let mut objects = self.backend().get_many(ids)?;
        let bad: Vec<usize> = (0..ids.len())
            .filter(|&i| {
                objects[i]
                    .as_deref()
                    .is_none_or(|o| verify_object(&ids[i], o).is_err())
            })
            .collect();
        if bad.is_empty() {
            return Ok(objects);
        }
        self.backend().refresh()?;
        let again = self
            .backend()
            .get_many(&bad.iter().map(|&i| ids[i]).collect::<Vec<_>>())?;
        for (i, o) in bad.into_iter().zip(again) {
            objects[i] = o;
        }
        Ok(objects)
    }

    /// After create-if-absent uploads on a shared backend: an object that was already
    /// there is compared with the verified upload, and overwritten if it differs.
    pub(crate) fn replace_wrong(&self, present: &[(BlockId, &[u8])]) -> Result<u64, StorageError> {
        if present.is_empty() {
            return Ok(0);
        }
        let ids: Vec<BlockId> = present.iter().map(|p| p.0).collect();
        let stored = self.backend().get_many(&ids)?;
        let mut replaced = 0;
        for ((id, bytes), old) in present.iter().zip(stored) {
            if old.as_deref() != Some(*bytes) {
                tracing::warn!(%id, "bucket held wrong bytes for a block; overwritten with the verified upload");
                self.backend().overwrite(id, bytes)?;
                replaced += 1;
            }
        }
        Ok(replaced)
    }
}
