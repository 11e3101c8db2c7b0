//! The local key → id cache. A block's key is one BLAKE3 pass over its plaintext; its id
//! needs zstd and AES-GCM. Push and pull record every (key, id) they have verified, so a
//! re-push of known data skips compression and encryption entirely and only asks the store
//! whether it still holds those ids.
//!
//! Safety: the store verifies every upload against its id, so a stale or wrong entry can
//! never damage the store. An id from the cache goes into a recipe without being encoded,
//! so a wrong entry (key → an id the store holds, but another block's) would make a recipe
//! that cannot be pulled. Every entry therefore carries a tag, BLAKE3 keyed with the
//! block's own key over the id: only someone who held the plaintext (and so the key) can
//! make a valid entry, and a damaged, swapped or hand-edited entry reads as a miss (the
//! block is then encoded as if never seen). An entry whose block the store lacks is
//! re-encoded and its id checked before anything is sent; a mismatch fails the push and
//! removes the entry. The cache is per block-object format version (another version gives
//! other ids) and is created 0600. Failures to open or write it are logged and ignored:
//! the cache only ever saves work.

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
        private_file(path);
        let db = Connection::open(path)?;
        db.busy_timeout(std::time::Duration::from_secs(10))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "OFF")?;
        // `keys` (untagged entries) was the first layout: its entries cannot be trusted.
        db.execute_batch(
            "DROP TABLE IF EXISTS keys;
             CREATE TABLE IF NOT EXISTS entries(key BLOB PRIMARY KEY, id BLOB NOT NULL,
                                                tag BLOB NOT NULL) WITHOUT ROWID;",
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

    /// The cached id of each key, if any (entries whose tag does not check are misses).
    pub fn lookup(&self, keys: &[BlockKey]) -> Vec<Option<BlockId>> {
        let db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let Ok(mut stmt) = db.prepare_cached("SELECT id, tag FROM entries WHERE key = ?1") else {
            return vec![None; keys.len()];
        };
        keys.iter()
            .map(|k| {
                let (id, t) = stmt
                    .query_row([&k.as_bytes()[..]], |r| {
                        Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                    })
                    .ok()?;
                let id = BlockId::from_slice(&id)?;
                (t[..] == tag(k, &id)[..]).then_some(id)
            })
            .collect()
    }

    /// Records verified pairs.
    pub fn insert(&self, pairs: impl IntoIterator<Item = (BlockKey, BlockId)>) {
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let result = (|| -> rusqlite::Result<()> {
            let tx = db.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO entries(key, id, tag) VALUES (?1, ?2, ?3)",
                )?;
                for (k, id) in pairs {
                    let t = tag(&k, &id);
                    stmt.execute(params![&k.as_bytes()[..], &id.as_bytes()[..], &t[..]])?;
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
        let _ = db.execute("DELETE FROM entries WHERE key = ?1", [&key.as_bytes()[..]]);
    }
}

/// The entry's tag: binds `id` to `key` under the key itself (see the module doc).
fn tag(key: &BlockKey, id: &BlockId) -> [u8; 16] {
    let mut h = blake3::Hasher::new_keyed(key.as_bytes());
    h.update(b"bonsai key-cache entry v1");
    h.update(id.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

/// Creates the cache file 0600 (its keys decrypt the blocks they name) before SQLite
/// opens it; an existing file is narrowed to 0600.
fn private_file(path: &Path) {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
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

    /// An entry edited behind the cache's back (here: its id swapped for another
    /// block's) is a miss, not a wrong id.
    #[test]
    fn tampered_entry_is_a_miss() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.sqlite");
        let c = KeyCache::open(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        let (k1, k2) = (BlockKey([1; 32]), BlockKey([2; 32]));
        c.insert([(k1, BlockId([9; 32])), (k2, BlockId([8; 32]))]);
        let db = Connection::open(&path).unwrap();
        db.execute(
            "UPDATE entries SET id = ?1 WHERE key = ?2",
            params![&[8u8; 32][..], &[1u8; 32][..]],
        )
        .unwrap();
        assert_eq!(c.lookup(&[k1, k2]), vec![None, Some(BlockId([8; 32]))]);
    }
}
