//! The SQLite index: which blocks the store holds, their sizes and first-seen times; which
//! images are registered and the blocks they use; running totals for statistics.
//!
//! WAL mode with `synchronous=NORMAL`: after a power cut the newest commits may be lost,
//! never corrupted. That is safe here because a row is written only after its block is
//! durable; a lost row only means the block is uploaded again.

use bonsai_core::store::StoreStats;
use bonsai_core::BlockId;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;
use std::sync::Mutex;

/// Schema version stored in `meta`; bump with a migration when the schema changes.
/// 2: images are versions (`images.name` is `NAME@VERSION`, with `series`, `version`,
/// `image_hash`, `by_whom`); a version-1 index is upgraded in place when opened.
pub const SCHEMA_VERSION: i64 = 2;

/// Read connections kept beside the writer (WAL lets readers run while one writes).
const READERS: usize = 4;

/// The index: one writer connection behind a mutex (SQLite serialises writers anyway) and
/// a small pool of read connections, so many large existence queries run side by side
/// instead of queueing behind one connection.
pub struct Index {
    db: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: std::sync::atomic::AtomicUsize,
}

/// Index failures: the database is damaged, locked or the disk is full.
pub type IndexError = rusqlite::Error;

/// Seconds since the Unix epoch (the clock of marks and registrations).
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Index {
    /// Opens or creates the index at `path`.
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(30))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS blocks(
                 id BLOB PRIMARY KEY, size INTEGER NOT NULL, first_seen INTEGER NOT NULL
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS images(
                 name TEXT PRIMARY KEY, logical_bytes INTEGER NOT NULL,
                 blocks INTEGER NOT NULL, registered INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS image_blocks(
                 name TEXT NOT NULL, id BLOB NOT NULL, PRIMARY KEY(name, id)
             ) WITHOUT ROWID;
             INSERT OR IGNORE INTO meta VALUES ('schema', 1), ('blocks', 0), ('stored_bytes', 0);
             -- operations (gc.rs, images.rs): additive, older servers ignore them
             CREATE INDEX IF NOT EXISTS image_blocks_by_id ON image_blocks(id);
             CREATE TABLE IF NOT EXISTS gc_marks(
                 id BLOB PRIMARY KEY, marked INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )?;
        crate::report::ensure_schema(&db)?;
        Index::ensure_unverified(&db)?;
        let v: i64 = db.query_row("SELECT value FROM meta WHERE key='schema'", [], |r| {
            r.get(0)
        })?;
        if v == 1 {
            crate::versions::migrate_to_versions(&db)?;
        } else if v != SCHEMA_VERSION {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "index schema version {v} is not supported (expected {SCHEMA_VERSION})"
            )));
        }
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            r.busy_timeout(std::time::Duration::from_secs(30))?;
            readers.push(Mutex::new(r));
        }
        Ok(Index {
            db: Mutex::new(db),
            readers,
            next: Default::default(),
        })
    }

    /// The writer connection (also for reads inside a write transaction).
    pub(crate) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent (transactions).
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A read connection: the first free one, else wait for one in turn.
    fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        use std::sync::atomic::Ordering;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.readers.len() {
            if let Ok(guard) = self.readers[(start + i) % self.readers.len()].try_lock() {
                return guard;
            }
        }
        self.readers[start % self.readers.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The ids among `ids` that are not indexed, in order.
    pub fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, IndexError> {
        let db = self.reader();
        let mut stmt = db.prepare_cached("SELECT 1 FROM blocks WHERE id = ?1")?;
        let mut out = Vec::new();
        for id in ids {
            if !stmt.exists([&id.as_bytes()[..]])? {
                out.push(*id);
            }
        }
        Ok(out)
    }

    /// Size of an indexed block.
    pub fn size_of(&self, id: &BlockId) -> Result<Option<u64>, IndexError> {
        let db = self.reader();
        let mut stmt = db.prepare_cached("SELECT size FROM blocks WHERE id = ?1")?;
        stmt.query_row([&id.as_bytes()[..]], |r| r.get::<_, i64>(0))
            .optional()
            .map(|o| o.map(|s| s as u64))
    }

    /// Sizes of indexed blocks, in order (0 for one not indexed).
    pub fn sizes_of(&self, ids: &[BlockId]) -> Result<Vec<u64>, IndexError> {
        ids.iter()
            .map(|id| self.size_of(id).map(|s| s.unwrap_or(0)))
            .collect()
    }

    /// Indexes durable blocks; returns how many were new (others were indexed meanwhile).
    pub fn insert(&self, blocks: &[(BlockId, u64)]) -> Result<u64, IndexError> {
        let mut db = self.conn();
        let tx = db.transaction()?;
        let mut added = 0u64;
        let mut bytes = 0u64;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT OR IGNORE INTO blocks(id, size, first_seen) VALUES (?1, ?2, ?3)",
            )?;
            let t = now();
            for (id, size) in blocks {
                if stmt.execute(params![&id.as_bytes()[..], *size as i64, t])? == 1 {
                    added += 1;
                    bytes += size;
                }
            }
            tx.execute(
                "UPDATE meta SET value = value + ?1 WHERE key = 'blocks'",
                [added as i64],
            )?;
            tx.execute(
                "UPDATE meta SET value = value + ?1 WHERE key = 'stored_bytes'",
                [bytes as i64],
            )?;
        }
        tx.commit()?;
        Ok(added)
    }

    /// Store-wide figures from the running totals (constant time).
    pub fn stats(&self) -> Result<StoreStats, IndexError> {
        let db = self.reader();
        let get = |k: &str| -> Result<u64, IndexError> {
            db.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| {
                r.get::<_, i64>(0)
            })
            .map(|v| v as u64)
        };
        // summed here, saturating: SQLite's sum() fails on overflow, and sizes are u64
        // stored as i64 bit patterns, so two huge images must not make stats fail
        let (mut images, mut logical) = (0u64, 0u64);
        let mut sizes = db.prepare_cached("SELECT logical_bytes FROM images")?;
        let mut rows = sizes.query([])?;
        while let Some(r) = rows.next()? {
            images += 1;
            logical = logical.saturating_add(r.get::<_, i64>(0)? as u64);
        }
        Ok(StoreStats {
            blocks: get("blocks")?,
            stored_bytes: get("stored_bytes")?,
            images,
            logical_bytes: logical,
            dedup_ratio: 0.0,
            cache: None,
            object_store: None,
        }
        .with_ratio())
    }
}
