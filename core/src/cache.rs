//! The local key → id cache. A block's key is one BLAKE3 pass over its plaintext; its id
//! needs zstd and AES-GCM. Push and pull record every (key, id) they have verified, so a
//! re-push of known data skips compression and encryption entirely and only asks the store
//! whether it still holds those ids.
//!
//! Safety: the store verifies every upload against its id, so a stale or wrong entry can
//! never damage the store. An entry whose block the store lacks is re-encoded, and its id
//! checked against the entry before anything is sent; a mismatch fails the push. The cache
//! is per block-object format version (another version gives other ids). Failures to open
//! or write it are logged and ignored: the cache only ever saves work.

use crate::id::{BlockId, BlockKey};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A key → id map in SQLite.
pub struct KeyCache {
    db: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyCache({})", self.path.display())
    }
}

impl KeyCache {
    /// The default location: `$BONSAI_CACHE_DIR`, else `$XDG_CACHE_HOME/bonsai`, else
    /// `~/.cache/bonsai`; file `keys-v{object format}.sqlite`.
    pub fn default_path() -> Option<PathBuf> {
        let dir = std::env::var_os("BONSAI_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("bonsai")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/bonsai")))?;
        Some(dir.join(format!("keys-v{}.sqlite", crate::codec::OBJECT_VERSION)))
    }

    /// Opens (creating) the cache at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "OFF")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS keys(key BLOB PRIMARY KEY, id BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(KeyCache {
            db: Mutex::new(db),
            path: path.to_path_buf(),
        })
    }

    /// Opens the default cache, or returns `None` (with a warning) if that fails.
    pub fn open_default() -> Option<Self> {
        let path = Self::default_path()?;
        match Self::open(&path) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), %e, "key cache unavailable; continuing without");
                None
            }
        }
    }

    /// Where the cache lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cached id of each key, if any.
    pub fn lookup(&self, keys: &[BlockKey]) -> Vec<Option<BlockId>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(mut stmt) = db.prepare_cached("SELECT id FROM keys WHERE key = ?1") else {
            return vec![None; keys.len()];
        };
        keys.iter()
            .map(|k| {
                stmt.query_row([&k.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))
                    .ok()
                    .and_then(|b| BlockId::from_slice(&b))
            })
            .collect()
    }

    /// Records verified pairs.
    pub fn insert(&self, pairs: impl IntoIterator<Item = (BlockKey, BlockId)>) {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            {
                let mut stmt =
                    tx.prepare_cached("INSERT OR REPLACE INTO keys(key, id) VALUES (?1, ?2)")?;
                for (k, id) in pairs {
                    stmt.execute(params![&k.as_bytes()[..], &id.as_bytes()[..]])?;
                }
            }
            tx.commit()
        })();
        if let Err(e) = result {
            tracing::warn!(path = %self.path.display(), %e, "could not update the key cache");
        }
    }

    /// Forgets one key (after its entry proved wrong).
    pub fn forget(&self, key: &BlockKey) {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let _ = db.execute("DELETE FROM keys WHERE key = ?1", [&key.as_bytes()[..]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_finds() {
        let dir = tempfile::tempdir().unwrap();
        let c = KeyCache::open(&dir.path().join("k.sqlite")).unwrap();
        let (k1, k2) = (BlockKey([1; 32]), BlockKey([2; 32]));
        c.insert([(k1, BlockId([9; 32]))]);
        assert_eq!(c.lookup(&[k1, k2]), vec![Some(BlockId([9; 32])), None]);
        c.forget(&k1);
        assert_eq!(c.lookup(&[k1]), vec![None]);
    }
}
