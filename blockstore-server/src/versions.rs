//! Image versions in the index. Each registration adds a row to `images` whose `name` is
//! the version's label `NAME@VERSION` (what `image_blocks` and `image_figures` key on, so
//! gc keeps every block of every version and reports list each version), with the name in
//! `series` and the number in `version`. Rows are only ever inserted or deleted, never
//! updated: a version is immutable.

use crate::index::{now, Index, IndexError};
use bonsai_core::store::manifest::VersionHeader;
use bonsai_core::store::ImageInfo;
use bonsai_core::BlockId;
use rusqlite::{params, Connection, OptionalExtension};

/// `NAME@VERSION`: the label a version's rows are keyed by.
pub(crate) fn label(name: &str, version: u64) -> String {
    format!("{name}@{version}")
}

/// Upgrades a version-1 index (one row per name, replaced on every push) in place: each
/// image becomes version 1 of its name.
pub(crate) fn migrate_to_versions(db: &Connection) -> Result<(), IndexError> {
    db.execute_batch(
        "BEGIN;
         ALTER TABLE images ADD COLUMN series TEXT;
         ALTER TABLE images ADD COLUMN version INTEGER;
         ALTER TABLE images ADD COLUMN image_hash TEXT;
         ALTER TABLE images ADD COLUMN by_whom TEXT NOT NULL DEFAULT '';
         UPDATE images SET series = name, version = 1;
         UPDATE image_blocks SET name = name || '@1';
         UPDATE image_figures SET name = name || '@1';
         UPDATE images SET name = name || '@1';
         CREATE UNIQUE INDEX images_by_version ON images(series, version);
         UPDATE meta SET value = 2 WHERE key = 'schema';
         COMMIT;",
    )
}

impl Index {
    /// The number the next version of `name` gets (1 for a new name).
    pub fn next_version(&self, name: &str) -> Result<u64, IndexError> {
        let v: i64 = self.conn().query_row(
            "SELECT coalesce(max(version), 0) FROM images WHERE series = ?1",
            [name],
            |r| r.get(0),
        )?;
        Ok(v as u64 + 1)
    }

    /// Records a version whose manifest is durable. Every id must be indexed (checked in
    /// the same transaction as gc's sweep checks registrations): returns the first absent
    /// id instead, recording nothing. Returns how many versions the name had before.
    pub fn register_version(
        &self,
        h: &VersionHeader,
        ids: &[BlockId],
    ) -> Result<Result<u64, BlockId>, IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        let vlabel = label(&h.name, h.version);
        {
            let mut exists = tx.prepare_cached("SELECT 1 FROM blocks WHERE id = ?1")?;
            for id in ids {
                if !exists.exists([&id.as_bytes()[..]])? {
                    return Ok(Err(*id));
                }
            }
            let mut ins =
                tx.prepare_cached("INSERT OR IGNORE INTO image_blocks(name, id) VALUES (?1, ?2)")?;
            for id in ids {
                ins.execute(params![vlabel, &id.as_bytes()[..]])?;
            }
        }
        let earlier: i64 = tx.query_row(
            "SELECT count(*) FROM images WHERE series = ?1",
            [&h.name],
            |r| r.get(0),
        )?;
        let distinct: i64 = tx.query_row(
            "SELECT count(*) FROM image_blocks WHERE name = ?1",
            [&vlabel],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO images(name, logical_bytes, blocks, registered, series, version,
                                image_hash, by_whom)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                vlabel,
                h.logical_bytes as i64,
                distinct,
                h.registered,
                h.name,
                h.version as i64,
                h.image_hash,
                h.by
            ],
        )?;
        if let Some(z) = h.zero_bytes {
            tx.execute(
                "INSERT OR REPLACE INTO image_figures(name, zero_bytes) VALUES (?1, ?2)",
                params![vlabel, z as i64],
            )?;
        }
        tx.commit()?;
        Ok(Ok(earlier as u64))
    }

    /// Every registered version with its figures, by name then version.
    pub fn image_infos(&self) -> Result<Vec<ImageInfo>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare(
            "SELECT im.series, im.version, im.logical_bytes, im.blocks, im.registered,
                    im.image_hash, im.by_whom,
               (SELECT coalesce(sum(b.size), 0) FROM image_blocks ib
                  JOIN blocks b ON b.id = ib.id
                 WHERE ib.name = im.name
                   AND NOT EXISTS (SELECT 1 FROM image_blocks o
                                    WHERE o.id = ib.id AND o.name <> ib.name))
             FROM images im ORDER BY im.series, im.version",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ImageInfo {
                name: r.get(0)?,
                version: r.get::<_, i64>(1)? as u64,
                logical_bytes: r.get::<_, i64>(2)? as u64,
                blocks: r.get::<_, i64>(3)? as u64,
                registered: r.get(4)?,
                image_hash: r.get(5)?,
                by: r.get(6)?,
                unique_bytes: r.get::<_, i64>(7)? as u64,
                sealed_recipe: false,
            })
        })?;
        rows.collect()
    }

    /// The versions of `name` (all, or the one given) that are registered.
    pub fn versions_of(&self, name: &str, version: Option<u64>) -> Result<Vec<u64>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare_cached(
            "SELECT version FROM images WHERE series = ?1 AND (?2 IS NULL OR version = ?2)
             ORDER BY version",
        )?;
        let rows = stmt.query_map(params![name, version.map(|v| v as i64)], |r| {
            r.get::<_, i64>(0).map(|v| v as u64)
        })?;
        rows.collect()
    }

    /// Every registered version: name and number.
    pub fn all_versions(&self) -> Result<Vec<(String, u64)>, IndexError> {
        let db = self.conn();
        let mut stmt = db.prepare_cached("SELECT series, version FROM images")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?;
        rows.collect()
    }

    /// Who registered a version, if it is registered.
    pub fn registrant(&self, name: &str, version: u64) -> Result<Option<String>, IndexError> {
        self.conn()
            .query_row(
                "SELECT by_whom FROM images WHERE series = ?1 AND version = ?2",
                params![name, version as i64],
                |r| r.get(0),
            )
            .optional()
    }

    /// Unregisters one version; false if it was not registered.
    pub fn forget_version(&self, name: &str, version: u64) -> Result<bool, IndexError> {
        let vlabel = label(name, version);
        let mut db = self.conn();
        let tx = db.transaction()?;
        let existed = tx.execute("DELETE FROM images WHERE name = ?1", [&vlabel])? == 1;
        tx.execute("DELETE FROM image_blocks WHERE name = ?1", [&vlabel])?;
        tx.execute("DELETE FROM image_figures WHERE name = ?1", [&vlabel])?;
        tx.commit()?;
        Ok(existed)
    }

    /// Whether the index lists no version and no block (a new or a lost index).
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        self.conn().query_row(
            "SELECT NOT EXISTS(SELECT 1 FROM blocks) AND NOT EXISTS(SELECT 1 FROM images)",
            [],
            |r| r.get(0),
        )
    }
}

/// A header for a version registered now.
pub(crate) fn header_now(name: &str, version: u64, logical: u64, by: &str) -> VersionHeader {
    VersionHeader {
        name: name.to_string(),
        version,
        registered: now(),
        logical_bytes: logical,
        zero_bytes: None,
        image_hash: None,
        by: by.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_one_index_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.sqlite");
        {
            let db = Connection::open(&path).unwrap();
            db.execute_batch(
                "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 CREATE TABLE blocks(id BLOB PRIMARY KEY, size INTEGER NOT NULL,
                                     first_seen INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE images(name TEXT PRIMARY KEY, logical_bytes INTEGER NOT NULL,
                                     blocks INTEGER NOT NULL, registered INTEGER NOT NULL);
                 CREATE TABLE image_blocks(name TEXT NOT NULL, id BLOB NOT NULL,
                                           PRIMARY KEY(name, id)) WITHOUT ROWID;
                 INSERT INTO meta VALUES ('schema', 1), ('blocks', 1), ('stored_bytes', 10);
                 INSERT INTO blocks VALUES (x'01', 10, 0);
                 INSERT INTO images VALUES ('old vm', 4096, 1, 5);
                 INSERT INTO image_blocks VALUES ('old vm', x'01');",
            )
            .unwrap();
        }
        let ix = Index::open(&path).unwrap();
        let infos = ix.image_infos().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!((infos[0].name.as_str(), infos[0].version), ("old vm", 1));
        assert_eq!(infos[0].unique_bytes, 10, "its block came along");
        assert_eq!(ix.next_version("old vm").unwrap(), 2);
        drop(ix);
        let again = Index::open(&path).unwrap();
        assert_eq!(again.image_infos().unwrap().len(), 1, "upgrade is once");
    }
}
