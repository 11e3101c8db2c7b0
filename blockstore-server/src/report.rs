//! The dedup report from the index alone: per-image figures, the growth curve in
//! registration order and the pairwise sharing matrix (core's `report` types), computed
//! with a few aggregate queries and never by reading a block.
//!
//! What the index keeps for it: each block's plaintext length (read from the object's
//! header when the block is uploaded; the header is public, the store sees nothing new) and
//! each image's zero bytes (sent by the client at registration). Blocks indexed before
//! this existed have no plaintext length, and images registered without figures have no
//! zero count: the figures that need them are reported as `null`, never guessed.
//!
//! Caveat: the report holds the index lock while its queries run (a few hundred ms per
//! million block references), so pushes wait that long.

use crate::index::{Index, IndexError};
use bonsai_core::report::{
    savings_of, GrowthPoint, ImageFigures, ReportOptions, ReportTotals, SharingMatrix, StoreReport,
};
use bonsai_core::BlockId;
use rusqlite::{params, Connection, Transaction};
use std::collections::HashMap;

/// Adds what reports need to an index (idempotent; called when the index opens).
pub(crate) fn ensure_schema(db: &Connection) -> Result<(), IndexError> {
    let has_plain = db
        .prepare("SELECT 1 FROM pragma_table_info('blocks') WHERE name = 'plain'")?
        .exists([])?;
    if !has_plain {
        db.execute_batch("ALTER TABLE blocks ADD COLUMN plain INTEGER")?;
    }
    db.execute_batch(
        "CREATE TABLE IF NOT EXISTS image_figures(
             name TEXT PRIMARY KEY, zero_bytes INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS image_blocks_by_id ON image_blocks(id);",
    )
}

/// Plaintext length declared by a block object's header (bytes 8..12), if it has one.
pub(crate) fn plain_len(object: &[u8]) -> Option<u32> {
    object
        .get(8..12)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
}

/// Per-image sums of a query's rows, keyed by image name or registration rank.
#[derive(Default, Clone, Copy)]
struct Sums {
    blocks: u64,
    stored: u64,
    plain: u64,
    plain_known: u64,
}

impl Sums {
    fn plain(&self) -> Option<u64> {
        (self.plain_known == self.blocks).then_some(self.plain)
    }
}

const ORDER: &str = "ord AS (SELECT name, registered, logical_bytes,
     row_number() OVER (ORDER BY registered, rowid) AS k FROM images)";

impl Index {
    /// Records the plaintext lengths of blocks just indexed.
    pub fn record_plain(&self, rows: &[(BlockId, u32)]) -> Result<(), IndexError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut db = self.conn();
        let tx = db.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("UPDATE blocks SET plain = ?2 WHERE id = ?1 AND plain IS NULL")?;
            for (id, plain) in rows {
                stmt.execute(params![&id.as_bytes()[..], *plain as i64])?;
            }
        }
        tx.commit()
    }

    /// Records the zero bytes of a registered image.
    pub fn record_figures(&self, name: &str, zero_bytes: u64) -> Result<(), IndexError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO image_figures(name, zero_bytes) VALUES (?1, ?2)",
            params![name, zero_bytes as i64],
        )?;
        Ok(())
    }

    /// The whole report, in one read transaction.
    pub fn report(&self, opts: &ReportOptions) -> Result<StoreReport, IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        let mut images = image_rows(&tx)?;
        let per_image = image_sums(&tx)?;
        let firsts = first_sums(&tx)?;
        let mut totals = ReportTotals {
            images: images.len() as u64,
            ..Default::default()
        };
        let mut growth = Vec::with_capacity(images.len());
        let (mut data, mut plain) = (Some(0u64), Some(0u64));
        for (k, im) in images.iter_mut().enumerate() {
            let own = per_image.get(&im.name).map(|s| s.0).unwrap_or_default();
            let shared = per_image.get(&im.name).map(|s| s.1).unwrap_or_default();
            im.blocks = own.blocks;
            im.stored_bytes = own.stored;
            im.distinct_bytes = own.plain();
            im.shared_stored_bytes = shared.stored;
            im.shared_bytes = own.plain().map(|_| shared.plain);
            let new = firsts.get(&(k as i64 + 1)).copied().unwrap_or_default();
            im.new_stored_bytes = new.stored;
            im.derive();
            totals.logical_bytes += im.logical_bytes;
            totals.blocks += new.blocks;
            totals.stored_bytes += new.stored;
            data = data.zip(im.data_bytes).map(|(a, b)| a + b);
            plain = plain.zip(new.plain()).map(|(a, b)| a + b);
            growth.push(GrowthPoint {
                name: im.name.clone(),
                logical_bytes: totals.logical_bytes,
                data_bytes: data,
                distinct_bytes: plain,
                stored_bytes: totals.stored_bytes,
            });
        }
        totals.data_bytes = data;
        totals.distinct_bytes = plain;
        totals.savings = savings_of(totals.logical_bytes, data, plain, totals.stored_bytes);
        let (blocks, stored): (i64, i64) = tx.query_row(
            "SELECT count(*), coalesce(sum(size), 0) FROM blocks",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        totals.unreferenced_blocks = (blocks as u64).saturating_sub(totals.blocks);
        totals.unreferenced_stored_bytes = (stored as u64).saturating_sub(totals.stored_bytes);
        let matrix = sharing(&tx, &images, opts.matrix_images)?;
        Ok(StoreReport {
            totals,
            images,
            growth,
            matrix,
        })
    }
}

/// Registered images in registration order, with their logical size and zeros.
fn image_rows(tx: &Transaction) -> Result<Vec<ImageFigures>, IndexError> {
    let sql = format!(
        "WITH {ORDER} SELECT o.name, o.registered, o.logical_bytes, f.zero_bytes
         FROM ord o LEFT JOIN image_figures f ON f.name = o.name ORDER BY o.k"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok(ImageFigures {
            name: r.get(0)?,
            registered: r.get(1)?,
            logical_bytes: r.get::<_, i64>(2)? as u64,
            zero_bytes: r.get::<_, Option<i64>>(3)?.map(|z| z as u64),
            ..Default::default()
        })
    })?;
    rows.collect()
}

fn sums(r: &rusqlite::Row, at: usize) -> rusqlite::Result<Sums> {
    Ok(Sums {
        blocks: r.get::<_, i64>(at)? as u64,
        stored: r.get::<_, i64>(at + 1)? as u64,
        plain: r.get::<_, i64>(at + 2)? as u64,
        plain_known: r.get::<_, i64>(at + 3)? as u64,
    })
}

/// Per image: (its distinct blocks, the part of them another image uses too).
fn image_sums(tx: &Transaction) -> Result<HashMap<String, (Sums, Sums)>, IndexError> {
    let mut stmt = tx.prepare(
        "WITH refs AS (SELECT id, count(*) AS n FROM image_blocks GROUP BY id)
         SELECT ib.name,
           count(*), coalesce(sum(b.size), 0), coalesce(sum(b.plain), 0), count(b.plain),
           count(CASE WHEN r.n > 1 THEN 1 END),
           coalesce(sum(CASE WHEN r.n > 1 THEN b.size END), 0),
           coalesce(sum(CASE WHEN r.n > 1 THEN b.plain END), 0),
           count(CASE WHEN r.n > 1 THEN b.plain END)
         FROM image_blocks ib JOIN blocks b ON b.id = ib.id JOIN refs r ON r.id = ib.id
         GROUP BY ib.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get::<_, String>(0)?, (sums(r, 1)?, sums(r, 5)?)))
    })?;
    rows.collect()
}

/// Per registration rank: the blocks first used by the image at that rank.
fn first_sums(tx: &Transaction) -> Result<HashMap<i64, Sums>, IndexError> {
    let sql = format!(
        "WITH {ORDER}, firsts AS (
             SELECT ib.id AS id, min(o.k) AS k FROM image_blocks ib
             JOIN ord o ON o.name = ib.name GROUP BY ib.id)
         SELECT f.k, count(*), coalesce(sum(b.size), 0), coalesce(sum(b.plain), 0),
           count(b.plain)
         FROM firsts f JOIN blocks b ON b.id = f.id GROUP BY f.k"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, sums(r, 1)?)))?;
    rows.collect()
}

/// Stored bytes shared by each pair of the first `max` images.
fn sharing(
    tx: &Transaction,
    images: &[ImageFigures],
    max: usize,
) -> Result<SharingMatrix, IndexError> {
    let shown = &images[..images.len().min(max)];
    let names: Vec<String> = shown.iter().map(|i| i.name.clone()).collect();
    let pos: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut stored = vec![vec![0u64; names.len()]; names.len()];
    for (i, im) in shown.iter().enumerate() {
        stored[i][i] = im.stored_bytes;
    }
    let sql = format!(
        "WITH {ORDER}, shown AS (SELECT name FROM ord WHERE k <= ?1)
         SELECT a.name, b.name, coalesce(sum(bl.size), 0)
         FROM image_blocks a JOIN image_blocks b ON b.id = a.id AND a.name < b.name
         JOIN blocks bl ON bl.id = a.id
         WHERE a.name IN (SELECT name FROM shown) AND b.name IN (SELECT name FROM shown)
         GROUP BY a.name, b.name"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map([max as i64], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    for row in rows {
        let (a, b, bytes) = row?;
        if let (Some(&i), Some(&j)) = (pos.get(a.as_str()), pos.get(b.as_str())) {
            stored[i][j] = bytes as u64;
            stored[j][i] = bytes as u64;
        }
    }
    Ok(SharingMatrix {
        truncated: images.len() > names.len(),
        names,
        stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_len_reads_the_header() {
        let mut obj = vec![0u8; 40];
        obj[8..12].copy_from_slice(&70_000u32.to_le_bytes());
        assert_eq!(plain_len(&obj), Some(70_000));
        assert_eq!(plain_len(&obj[..10]), None);
    }

    #[test]
    fn report_of_two_images_sharing_one_block() {
        let dir = tempfile::tempdir().unwrap();
        let idx = Index::open(&dir.path().join("i.sqlite")).unwrap();
        let (a, b, c) = (BlockId([1; 32]), BlockId([2; 32]), BlockId([3; 32]));
        idx.insert(&[(a, 110), (b, 220), (c, 330)]).unwrap();
        idx.record_plain(&[(a, 100), (b, 200), (c, 300)]).unwrap();
        let version = |name: &str, logical| {
            let mut h = crate::versions::header_now(name, 1, logical, "t");
            h.registered = 1;
            h
        };
        let mut first = version("first", 1000);
        first.zero_bytes = Some(700);
        idx.register_version(&first, &[a, b]).unwrap().unwrap();
        idx.register_version(&version("second", 2000), &[b, c])
            .unwrap()
            .unwrap();
        let r = idx.report(&ReportOptions::default()).unwrap();
        let (f, s) = (&r.images[0], &r.images[1]);
        assert_eq!((f.name.as_str(), s.name.as_str()), ("first@1", "second@1"));
        assert_eq!(
            (f.distinct_bytes, f.shared_bytes, f.unique_bytes),
            (Some(300), Some(200), Some(100))
        );
        assert_eq!(
            (f.stored_bytes, f.shared_stored_bytes, f.unique_stored_bytes),
            (330, 220, 110)
        );
        assert_eq!((f.new_stored_bytes, s.new_stored_bytes), (330, 330));
        assert_eq!((f.data_bytes, s.data_bytes), (Some(300), None));
        assert_eq!(r.totals.stored_bytes, 660);
        assert_eq!(r.totals.distinct_bytes, Some(600));
        assert_eq!(r.totals.data_bytes, None);
        assert_eq!(r.growth[1].stored_bytes, 660);
        assert_eq!(r.growth[0].data_bytes, Some(300));
        assert_eq!(r.matrix.stored, vec![vec![330, 220], vec![220, 550]]);
        assert_eq!(r.totals.savings.overall, Some(3000.0 / 660.0));
    }
}
