//! A site cache (`serve --upstream URL`): a store that answers reads from its own directory
//! and fetches what it lacks from an upstream store, keeping what it fetched.
//!
//! - Reads: a block held here is served from here; the others are fetched from the
//!   upstream in one batch, verified by id (the same check as an upload: a tampered block
//!   is refused and never kept or served), kept, then served. Concurrent misses for one
//!   block are fetched once: the first request claims it, the others wait for its result.
//! - Writes go through: an upload is acknowledged only once the upstream took it, and is
//!   kept here too. Registrations, the image list, manifests, sealed recipes and boot
//!   profiles are the upstream's; a cache registers nothing of its own.
//! - Size: with `--cache-size`, the least recently used blocks are evicted (each use is
//!   recorded) until the cache holds at most 90% of the limit.
//! - Upstream down: what is held is still served; a request needing anything else fails
//!   with one line saying the upstream is unreachable.

use crate::ingest::{StorageError, Store};
use bonsai_core::store::http::HttpStore;
use bonsai_core::store::{CacheStats, StoreError, StoreErrorKind};
use bonsai_core::BlockId;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

/// Blocks asked of the upstream in one request.
const FETCH_BATCH: usize = 256;
/// Blocks evicted per exclusive section.
const EVICT_BATCH: usize = 512;

/// The upstream store and what the cache counts about it.
pub struct Upstream {
    /// The upstream client (dropped on a plain thread: see `Drop`).
    store: Option<HttpStore>,
    /// Most bytes of block objects held here (`None`: no limit).
    limit: Option<u64>,
    /// Blocks being fetched right now, and who waits for them.
    inflight: Mutex<HashMap<BlockId, Arc<Slot>>>,
    /// Use counter for least-recently-used eviction.
    clock: AtomicU64,
    /// The figures `stats` shows.
    pub counters: Counters,
}

/// What a cache has done since it started.
#[derive(Debug, Default)]
pub struct Counters {
    /// Blocks served from the cache's own directory.
    pub hit_blocks: AtomicU64,
    /// Bytes of those.
    pub hit_bytes: AtomicU64,
    /// Blocks fetched from the upstream.
    pub fetched_blocks: AtomicU64,
    /// Bytes of those.
    pub fetched_bytes: AtomicU64,
    /// Blocks evicted to stay under the size limit.
    pub evicted_blocks: AtomicU64,
}

/// One block being fetched: its result once known.
#[derive(Default)]
struct Slot {
    done: Mutex<Option<Result<Option<Vec<u8>>, String>>>,
    ready: Condvar,
}

impl Slot {
    fn publish(&self, result: Result<Option<Vec<u8>>, String>) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = Some(result);
        self.ready.notify_all();
    }

    fn wait(&self) -> Result<Option<Vec<u8>>, String> {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(r) = done.as_ref() {
                return r.clone();
            }
            done = self.ready.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        // a blocking HTTP client must not be dropped on an async runtime's thread
        if let Some(s) = self.store.take() {
            let _ = std::thread::Builder::new().spawn(move || drop(s));
        }
    }
}

impl Upstream {
    /// A cache of `url` (a `bonsai serve`), with the token it presents there.
    pub fn new(
        url: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
        limit: Option<u64>,
    ) -> Result<Self, StoreError> {
        let store = HttpStore::new_with_ca(url, token, ca_file)?.with_retries(1);
        Ok(Upstream {
            store: Some(store),
            limit,
            inflight: Mutex::default(),
            clock: AtomicU64::new(0),
            counters: Counters::default(),
        })
    }

    /// The upstream client.
    pub fn client(&self) -> &HttpStore {
        self.store.as_ref().expect("dropped only at the end")
    }

    /// The figures of this cache.
    pub fn stats(&self) -> CacheStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (hits, fetched) = (get(&c.hit_blocks), get(&c.fetched_blocks));
        CacheStats {
            upstream: bonsai_core::store::ReadStore::describe(self.client()),
            limit_bytes: self.limit,
            hit_blocks: hits,
            hit_bytes: get(&c.hit_bytes),
            fetched_blocks: fetched,
            fetched_bytes: get(&c.fetched_bytes),
            evicted_blocks: get(&c.evicted_blocks),
            hit_rate: if hits + fetched == 0 {
                0.0
            } else {
                hits as f64 / (hits + fetched) as f64
            },
        }
    }

    /// A use number, later than every earlier one (`first` seeds it after a restart).
    pub(crate) fn tick(&self, first: u64) -> u64 {
        let _ = self.clock.fetch_max(first, Ordering::Relaxed);
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The size limit, if any.
    pub(crate) fn limit(&self) -> Option<u64> {
        self.limit
    }
}

/// Why a site cache refuses forget, gc, check and reports.
pub(crate) const NO_ADMIN: &str = "this store is a site cache: forget, gc, check and reports run on its upstream (it evicts by itself, see --cache-size)";

impl Upstream {
    /// A registration through the cache: the upstream's, under the cache's token there.
    pub(crate) fn register(
        &self,
        v: &crate::images::NewVersion<'_>,
    ) -> Result<Result<bonsai_core::store::Registered, BlockId>, StorageError> {
        use bonsai_core::store::WriteStore;
        let reg = registration(v)?;
        match self.client().register_image(&reg) {
            Ok(r) => Ok(Ok(r)),
            Err(StoreError::NotFound(id)) => Ok(Err(id)),
            Err(e) => Err(StorageError::Forwarded(e)),
        }
    }

    /// An exact registration (a sync) through the cache.
    pub(crate) fn register_exact(
        &self,
        v: &crate::images::NewVersion<'_>,
        version: u64,
    ) -> Result<crate::images::Exact, StorageError> {
        use crate::images::Exact;
        use bonsai_core::store::{ErrorCode, WriteStore};
        let reg = registration(v)?;
        match self.client().register_copy(&reg, version) {
            Ok(true) => Ok(Exact::Existed),
            Ok(false) => Ok(Exact::Created),
            Err(StoreError::NotFound(id)) => Ok(Exact::Missing(id)),
            Err(StoreError::Refused {
                code: ErrorCode::Conflict,
                ..
            }) => Ok(Exact::Taken),
            Err(e) => Err(StorageError::Forwarded(e)),
        }
    }
}

/// A registration as core's store traits take it.
fn registration<'a>(
    v: &crate::images::NewVersion<'a>,
) -> Result<bonsai_core::report::Registration<'a>, StorageError> {
    let image_hash = match v.image_hash {
        Some(h) => Some(
            h.parse()
                .map_err(|_| StorageError::Conflict("image_hash is not 64 hex digits".into()))?,
        ),
        None => None,
    };
    Ok(bonsai_core::report::Registration {
        name: v.name,
        logical_bytes: v.logical_bytes,
        zero_bytes: v.zero_bytes.unwrap_or(0),
        ids: v.ids,
        image_hash,
    })
}

/// Makes `store` a site cache when `serve` was given `--upstream`.
pub(crate) fn attach(store: Store, args: &crate::ServeArgs) -> anyhow::Result<Store> {
    let Some(url) = &args.upstream else {
        return Ok(store);
    };
    let token = match &args.upstream_token_file {
        Some(p) => Some(read_token(p)?),
        None => None,
    };
    let up = Upstream::new(
        url,
        token,
        args.upstream_ca_file.as_deref(),
        args.cache_size,
    )
    .map_err(|e| crate::StartRefused(format!("--upstream {url}: {e}")))?;
    tracing::info!(upstream = %url, limit = ?args.cache_size, "site cache");
    Ok(store.with_upstream(up)?)
}

/// The token in `--upstream-token-file`: its one line, blanks around it dropped.
fn read_token(path: &std::path::Path) -> Result<String, crate::StartRefused> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        crate::StartRefused(format!("cannot read --upstream-token-file {shown}: {e}"))
    })?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(crate::StartRefused(format!(
            "--upstream-token-file {shown} must hold one token on one line"
        )));
    }
    Ok(token.to_string())
}

/// `--cache-size`: a number with an optional k, M, G or T (powers of 1024) and `B`/`iB`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?}: a size is a number with k, M, G or T (500M, 20G)");
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let shift = match unit {
        "" => 0,
        "k" | "K" => 10,
        "m" | "M" => 20,
        "g" | "G" => 30,
        "t" | "T" => 40,
        _ => return Err(bad()),
    };
    let n: f64 = digits.parse().map_err(|_| bad())?;
    let bytes = n * (1u64 << shift) as f64;
    if !(1.0..=u64::MAX as f64).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// An upstream failure, as the cache's clients see it.
pub(crate) fn upstream_error(e: StoreError) -> StorageError {
    StorageError::Upstream(e.to_string())
}

impl Store {
    /// The blocks of `ids` this cache does not hold, fetched (once, however many ask at
    /// the same time), verified and kept; `None` for those the upstream lacks too.
    pub(crate) fn fetch_upstream(
        &self,
        up: &Upstream,
        ids: &[BlockId],
    ) -> Result<HashMap<BlockId, Option<Vec<u8>>>, StorageError> {
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        let mut held = Vec::new();
        let mut failed: Option<String> = None;
        {
            let mut inflight = up.inflight.lock().unwrap_or_else(|p| p.into_inner());
            let mut seen = HashSet::new();
            for id in ids.iter().filter(|i| seen.insert(**i)) {
                // kept by a fetch that ended after the caller looked: read it from here
                match self.index().size_of(id) {
                    Ok(Some(_)) => held.push(*id),
                    Ok(None) => match inflight.get(id) {
                        Some(slot) => theirs.push((*id, slot.clone())),
                        None => {
                            let slot = Arc::new(Slot::default());
                            inflight.insert(*id, slot.clone());
                            mine.push((*id, slot));
                        }
                    },
                    Err(e) => {
                        failed = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        // every block claimed is published, fetched or failed, so no waiter is left hanging
        let mut out = HashMap::new();
        for batch in mine.chunks(FETCH_BATCH) {
            let result = match &failed {
                Some(e) => Err(e.clone()),
                None => self.fetch_batch(up, batch),
            };
            let mut inflight = up.inflight.lock().unwrap_or_else(|p| p.into_inner());
            for (i, (id, slot)) in batch.iter().enumerate() {
                slot.publish(result.as_ref().map(|o| o[i].clone()).map_err(Clone::clone));
                inflight.remove(id);
            }
            drop(inflight);
            match result {
                Ok(objects) => out.extend(batch.iter().map(|(id, _)| *id).zip(objects)),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(StorageError::Upstream(e));
        }
        let mut gone = Vec::new();
        for id in held {
            match self.get_local(&id) {
                Ok(Some(bytes)) => {
                    out.insert(id, Some(bytes));
                }
                // evicted between the look and the read: fetched like any other miss
                Ok(None) | Err(StorageError::Lost(_)) => gone.push(id),
                Err(e) => return Err(e),
            }
        }
        if !gone.is_empty() {
            self.forget_lost(&gone)?;
            out.extend(self.fetch_upstream(up, &gone)?);
        }
        for (id, slot) in theirs {
            out.insert(id, slot.wait().map_err(StorageError::Upstream)?);
        }
        Ok(out)
    }

    /// One upstream request for `batch`; the objects are verified and kept before anyone
    /// is told about them. The error is the one line the clients see.
    fn fetch_batch(
        &self,
        up: &Upstream,
        batch: &[(BlockId, Arc<Slot>)],
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        let ids: Vec<BlockId> = batch.iter().map(|(id, _)| *id).collect();
        let objects = self.get_from_upstream(up, &ids)?;
        let items: Vec<(BlockId, &[u8])> = ids
            .iter()
            .zip(&objects)
            .filter_map(|(id, o)| o.as_deref().map(|o| (*id, o)))
            .collect();
        let kept = self.put_local(&items).map_err(|e| e.to_string())?;
        if let Some(r) = kept.rejected.first() {
            return Err(format!(
                "the upstream sent a damaged block {} ({}); it was refused, not kept",
                r.id, r.reason
            ));
        }
        let bytes: u64 = items.iter().map(|(_, o)| o.len() as u64).sum();
        up.counters
            .fetched_blocks
            .fetch_add(items.len() as u64, Ordering::Relaxed);
        up.counters
            .fetched_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        let held: Vec<BlockId> = items.iter().map(|(id, _)| *id).collect();
        self.record_use(up, &held).map_err(|e| e.to_string())?;
        self.evict_if_over(up).map_err(|e| e.to_string())?;
        Ok(objects)
    }

    /// The objects of `ids` from the upstream, `None` where it has none (asked only when
    /// it answers that one is missing).
    fn get_from_upstream(
        &self,
        up: &Upstream,
        ids: &[BlockId],
    ) -> Result<Vec<Option<Vec<u8>>>, String> {
        use bonsai_core::store::ReadStore;
        match up.client().get(ids) {
            Ok(objects) => Ok(objects.into_iter().map(Some).collect()),
            Err(e) if e.kind() == StoreErrorKind::NotFound => {
                let absent: HashSet<BlockId> = up
                    .client()
                    .missing(ids)
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .collect();
                let there: Vec<BlockId> = ids
                    .iter()
                    .filter(|i| !absent.contains(i))
                    .copied()
                    .collect();
                let mut got = up
                    .client()
                    .get(&there)
                    .map_err(|e| e.to_string())?
                    .into_iter();
                Ok(ids
                    .iter()
                    .map(|i| if absent.contains(i) { None } else { got.next() })
                    .collect())
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

impl Store {
    /// Creates the table of last uses (a cache only; other stores never write it).
    pub(crate) fn ensure_cache_schema(&self) -> Result<u64, StorageError> {
        let db = self.index().conn();
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS cache_use(id BLOB PRIMARY KEY, used INTEGER NOT NULL)
                 WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS cache_use_by_time ON cache_use(used);
             CREATE TABLE IF NOT EXISTS cache_registrants(
                 name TEXT NOT NULL, version INTEGER NOT NULL, by_whom TEXT NOT NULL,
                 PRIMARY KEY(name, version)
             ) WITHOUT ROWID;",
        )?;
        let last: i64 = db.query_row("SELECT coalesce(max(used), 0) FROM cache_use", [], |r| {
            r.get(0)
        })?;
        Ok(last as u64)
    }

    /// Records that `ids` were just used (read or kept), for eviction's order.
    pub(crate) fn record_use(&self, up: &Upstream, ids: &[BlockId]) -> Result<(), StorageError> {
        if ids.is_empty() || up.limit().is_none() {
            return Ok(());
        }
        let mut db = self.index().conn();
        let tx = db.transaction()?;
        {
            let mut put =
                tx.prepare_cached("INSERT OR REPLACE INTO cache_use(id, used) VALUES (?1, ?2)")?;
            for id in ids {
                put.execute(rusqlite::params![&id.as_bytes()[..], up.tick(0) as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Evicts least recently used blocks while the cache holds more than its limit, down to
    /// 90% of it. Index rows go first (one transaction per batch, under the exclusive gc
    /// lock, so no upload's index row races it), then the files; a read that meets a
    /// file just deleted fetches the block again.
    pub(crate) fn evict_if_over(&self, up: &Upstream) -> Result<(), StorageError> {
        let Some(limit) = up.limit() else {
            return Ok(());
        };
        if self.index().stats()?.stored_bytes <= limit {
            return Ok(());
        }
        let target = limit / 10 * 9;
        while self.index().stats()?.stored_bytes > target {
            let victims = {
                let _excl = self.gc_lock.write().unwrap_or_else(|p| p.into_inner());
                let victims = self.oldest(EVICT_BATCH)?;
                if victims.is_empty() {
                    return Ok(());
                }
                self.drop_cached(&victims)?;
                // files go inside the exclusive section too: an upload seeing the row gone
                // and the file still there would index a file about to be deleted
                for (id, _) in &victims {
                    self.backend().delete(id)?;
                }
                victims
            };
            up.counters
                .evicted_blocks
                .fetch_add(victims.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The `n` least recently used blocks (never used first) with their sizes.
    fn oldest(&self, n: usize) -> Result<Vec<(BlockId, u64)>, StorageError> {
        let db = self.index().conn();
        let mut q = db.prepare_cached(
            "SELECT b.id, b.size FROM blocks b LEFT JOIN cache_use c ON c.id = b.id
                 ORDER BY coalesce(c.used, 0) LIMIT ?1",
        )?;
        let rows = q.query_map([n as i64], |r| {
            let id: Vec<u8> = r.get(0)?;
            let size: i64 = r.get(1)?;
            Ok((id, size as u64))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, size) = row?;
            if let Ok(bytes) = <[u8; 32]>::try_from(id.as_slice()) {
                out.push((BlockId(bytes), size));
            }
        }
        Ok(out)
    }

    /// Records who registered a version through this cache: at the upstream every such
    /// version is the cache's token's, so the cache keeps the "only its registrant may
    /// keep its sealed recipe" rule itself.
    pub(crate) fn note_registrant(
        &self,
        name: &str,
        version: u64,
        by: &str,
    ) -> Result<(), StorageError> {
        self.index().conn().execute(
            "INSERT OR IGNORE INTO cache_registrants(name, version, by_whom) VALUES (?1, ?2, ?3)",
            rusqlite::params![name, version as i64, by],
        )?;
        Ok(())
    }

    /// Who registered `name@version` through this cache, if it was registered here.
    pub(crate) fn cache_registrant(
        &self,
        name: &str,
        version: u64,
    ) -> Result<Option<String>, StorageError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .index()
            .conn()
            .query_row(
                "SELECT by_whom FROM cache_registrants WHERE name = ?1 AND version = ?2",
                rusqlite::params![name, version as i64],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Drops the index rows of blocks whose files are gone (a cache refetches them).
    fn forget_lost(&self, ids: &[BlockId]) -> Result<(), StorageError> {
        let _excl = self.gc_lock.write().unwrap_or_else(|p| p.into_inner());
        let lost: Vec<(BlockId, u64)> = ids
            .iter()
            .filter(|id| matches!(self.backend().stat(id), Ok(None)))
            .map(|id| (*id, self.index().size_of(id).ok().flatten().unwrap_or(0)))
            .collect();
        self.drop_cached(&lost)
    }

    /// Drops evicted blocks' index rows and last uses, in one transaction.
    fn drop_cached(&self, victims: &[(BlockId, u64)]) -> Result<(), StorageError> {
        let mut db = self.index().conn();
        let tx = db.transaction()?;
        crate::gc::drop_rows(&tx, victims)?;
        {
            let mut del = tx.prepare_cached("DELETE FROM cache_use WHERE id = ?1")?;
            for (id, _) in victims {
                del.execute([&id.as_bytes()[..]])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Blocks' bytes in order for a cache: those held are served from here (and their
    /// use recorded), the rest fetched from the upstream.
    pub(crate) fn cached_get_many(
        &self,
        up: &Upstream,
        ids: &[BlockId],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let mut out = Vec::with_capacity(ids.len());
        let mut lacking = Vec::new();
        for id in ids {
            let held = match self.get_local(id) {
                Ok(b) => b,
                Err(StorageError::Lost(_)) => {
                    self.forget_lost(std::slice::from_ref(id))?; // evicted under us: fetch it again
                    None
                }
                Err(e) => return Err(e),
            };
            if held.is_none() {
                lacking.push(*id);
            }
            out.push(held);
        }
        let hits: Vec<BlockId> = ids
            .iter()
            .zip(&out)
            .filter(|(_, o)| o.is_some())
            .map(|(id, _)| *id)
            .collect();
        let hit_bytes: u64 = out.iter().flatten().map(|o| o.len() as u64).sum();
        up.counters
            .hit_blocks
            .fetch_add(hits.len() as u64, Ordering::Relaxed);
        up.counters
            .hit_bytes
            .fetch_add(hit_bytes, Ordering::Relaxed);
        self.record_use(up, &hits)?;
        if lacking.is_empty() {
            return Ok(out);
        }
        let fetched = self.fetch_upstream(up, &lacking)?;
        for (id, slot) in ids.iter().zip(out.iter_mut()) {
            if slot.is_none() {
                *slot = fetched.get(id).cloned().flatten();
            }
        }
        Ok(out)
    }
}

impl Store {
    /// Readies a batch download: the ids neither held nor anywhere to be had, which the
    /// download refuses before it starts. A cache first fetches what it lacks (in batches,
    /// kept on disk, not in memory), so the stream that follows reads from here and any
    /// upstream failure is the request's error, not a cut-off stream.
    pub(crate) fn prepare_download(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StorageError> {
        let Some(up) = &self.upstream else {
            return self.missing_exact(ids);
        };
        let absent: HashSet<BlockId> = self.index().missing(ids)?.into_iter().collect();
        let mut seen = HashSet::new();
        let hits: Vec<BlockId> = ids
            .iter()
            .filter(|i| !absent.contains(i) && seen.insert(**i))
            .copied()
            .collect();
        let bytes: u64 = self.index().sizes_of(&hits)?.iter().sum();
        up.counters
            .hit_blocks
            .fetch_add(hits.len() as u64, Ordering::Relaxed);
        up.counters.hit_bytes.fetch_add(bytes, Ordering::Relaxed);
        self.record_use(up, &hits)?;
        let lacking: Vec<BlockId> = absent.into_iter().collect();
        let mut gone: HashSet<BlockId> = HashSet::new();
        for chunk in lacking.chunks(FETCH_BATCH) {
            let got = self.fetch_upstream(up, chunk)?;
            gone.extend(
                chunk
                    .iter()
                    .filter(|id| got.get(id).is_none_or(Option::is_none))
                    .copied(),
            );
        }
        Ok(ids.iter().filter(|i| gone.contains(i)).copied().collect())
    }

    /// One block of a download [`Store::prepare_download`] readied (counted there): from
    /// here, or fetched again if it was evicted since.
    pub(crate) fn get_for_download(&self, id: &BlockId) -> Result<Option<Vec<u8>>, StorageError> {
        let Some(up) = &self.upstream else {
            return self.get(id);
        };
        match self.get_local(id) {
            Ok(Some(bytes)) => Ok(Some(bytes)),
            Ok(None) | Err(StorageError::Lost(_)) => Ok(self
                .fetch_upstream(up, std::slice::from_ref(id))?
                .remove(id)
                .flatten()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_powers_of_1024() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1.5k"), Ok(1536));
        for bad in ["", "big", "0", "5X", "-1G"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
