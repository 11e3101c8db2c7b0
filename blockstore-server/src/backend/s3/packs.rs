//! Blocks in packs (docs/FORMAT.md "Pack"): an upload batch becomes one PUT (or a few, of
//! at most [`PACK_BYTES`]) once ingest verified every block in it, and a download one ranged
//! GET per run of neighbouring blocks in a pack.
//!
//! Where each block lies is kept in a map beside the index (`packs.sqlite`), a cache of the
//! bucket like the index: every pack carries its own index at its end, so the map is
//! rebuilt from a listing and one suffix read per pack. Other servers' packs are learnt
//! incrementally: pack names start with the writer's clock, and [`Packs::refresh`] lists
//! only the names after a watermark [`LAG`] behind the newest listing. A writer whose PUT
//! took longer than half of [`LAG`] writes the pack again under a fresh name, so no pack
//! can appear below a watermark another server already passed.

use super::bucket::{Bucket, Created};
use super::S3Error;
use crate::backend::{BackendError, Put};
use bonsai_core::store::pack::{self, Entry};
use bonsai_core::BlockId;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest pack written: big enough that a GiB costs well under 100 PUTs, small enough
/// that one upload batch (8 MiB of objects) is one pack.
pub(crate) const PACK_BYTES: usize = 16 << 20;
/// How far behind the newest listing the watermark stays (and how long a pack PUT may
/// take before its pack is written again under a fresh name).
pub(crate) const LAG: Duration = Duration::from_secs(600);
/// The pack map's tables (`packs.sqlite`): packs; where each block lies in each pack that
/// holds it (every entry of every pack's own index); copies gc left dead in place.
pub const MAP_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS packs(
         num INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,
         size INTEGER NOT NULL, live INTEGER NOT NULL);
     CREATE TABLE IF NOT EXISTS locs(
         id BLOB NOT NULL, pack INTEGER NOT NULL, offset INTEGER NOT NULL,
         len INTEGER NOT NULL, PRIMARY KEY(id, pack)) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS dead(
         id BLOB NOT NULL, pack INTEGER NOT NULL, PRIMARY KEY(id, pack)) WITHOUT ROWID;
     CREATE TABLE IF NOT EXISTS state(key TEXT PRIMARY KEY, value TEXT NOT NULL);";

/// Whole packs kept in memory for the downloads that follow.
const READ_CACHE: usize = 128 << 20;
/// A first guess at a pack's tail: the index of ~450 blocks in one GET.
const TAIL_GUESS: u64 = 16 << 10;
/// Least time between two listings that an existence query triggers (misses in between
/// are answered "missing": at worst a block stored elsewhere a moment ago is sent again).
const REFRESH_EVERY: Duration = Duration::from_millis(500);

/// Where a block lies: pack number in the map, pack name, offset and length.
#[derive(Debug, Clone)]
pub(crate) struct Loc {
    pub(crate) pack: i64,
    pub(crate) name: String,
    pub(crate) offset: u64,
    pub(crate) len: u32,
}

/// The blocks of a bucket, in packs, and the map of where each lies.
pub(crate) struct Packs {
    bucket: Arc<Bucket>,
    map: Mutex<Connection>,
    refreshing: Mutex<Option<Instant>>,
    group: super::group::Group,
    /// Whole packs read lately, newest first, at most [`READ_CACHE`] bytes.
    recent: Mutex<std::collections::VecDeque<(String, bytes::Bytes)>>,
    /// Packs being read whole by a download now.
    reading: (Mutex<std::collections::HashSet<String>>, std::sync::Condvar),
}

/// Whether a read of these blocks should fetch their whole pack and keep it: when they
/// are an eighth of it or more, or one run of neighbours from its first block or of a MiB
/// (a pull reads an image's blocks in the order a push wrote them, so the rest of the pack
/// is asked for next; scattered reads of a few blocks stay ranged reads).
fn worth_reading_whole(ls: &[(usize, &Loc)], size: u64) -> bool {
    let covered: u64 = ls.iter().map(|(_, l)| u64::from(l.len)).sum();
    if covered * 8 >= size {
        return true;
    }
    let mut runs: Vec<(u64, u64)> = ls
        .iter()
        .map(|(_, l)| (l.offset, l.offset + u64::from(l.len)))
        .collect();
    runs.sort_unstable();
    runs.dedup();
    let contiguous = runs.windows(2).all(|w| w[0].1 == w[1].0);
    let from_start = runs[0].0 == pack::HEADER_LEN as u64 && covered >= 64 << 10;
    contiguous && (from_start || covered >= 1 << 20)
}

/// Blocks to read from one pack: (pack number, name), (slot, location) of each, and
/// whether to read the whole pack.
type ReadGroup<'a> = ((i64, String), Vec<(usize, &'a Loc)>, bool);

/// Puts the bytes of each block into its slot.
fn fill(out: &mut [Option<Vec<u8>>], ls: &[(usize, &Loc)], parts: Vec<bytes::Bytes>) {
    for ((slot, _), bytes) in ls.iter().zip(parts) {
        out[*slot] = Some(bytes.to_vec());
    }
}

/// The byte ranges of `ls` cut from a whole pack (empty where the pack is too short: the
/// block then fails its id check and is reported, never served wrong).
fn slices(pack: &bytes::Bytes, ls: &[(usize, &Loc)]) -> Vec<bytes::Bytes> {
    ls.iter()
        .map(|(_, l)| {
            let (a, b) = (l.offset as usize, l.offset as usize + l.len as usize);
            if b <= pack.len() {
                pack.slice(a..b)
            } else {
                bytes::Bytes::new()
            }
        })
        .collect()
}

fn map_err(e: rusqlite::Error) -> BackendError {
    BackendError::Refused {
        what: "pack map (packs.sqlite)".into(),
        reason: e.to_string(),
    }
}

fn s3(e: S3Error) -> BackendError {
    e.into()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A pack's name: the writer's clock and the hash of the pack's index (its footer).
fn pack_name(at_ms: u64, pack: &[u8]) -> String {
    let f = &pack[pack.len() - pack::FOOTER_LEN..];
    format!("{at_ms:013}-{}", hex::encode(&f[4..20]))
}

impl Packs {
    /// Opens the map in `dir` (created if absent) for the packs of `bucket`.
    pub(crate) fn open(bucket: Arc<Bucket>, dir: &Path) -> Result<Self, BackendError> {
        std::fs::create_dir_all(dir).map_err(|e| BackendError::io(dir.display(), e))?;
        let db = Connection::open(dir.join("packs.sqlite")).map_err(map_err)?;
        db.busy_timeout(Duration::from_secs(30)).map_err(map_err)?;
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(map_err)?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(map_err)?;
        db.execute_batch(MAP_SCHEMA).map_err(map_err)?;
        Ok(Packs {
            bucket,
            map: Mutex::new(db),
            refreshing: Mutex::new(None),
            group: Default::default(),
            recent: Default::default(),
            reading: Default::default(),
        })
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where each block lies (the newest pack that holds it live), in order.
    pub(crate) fn locate(&self, ids: &[BlockId]) -> Result<Vec<Option<Loc>>, BackendError> {
        ids.iter()
            .map(|id| Ok(self.locate_all(id)?.into_iter().next()))
            .collect()
    }

    /// Every live copy of a block, newest pack first.
    pub(crate) fn locate_all(&self, id: &BlockId) -> Result<Vec<Loc>, BackendError> {
        let db = self.db();
        let mut stmt = db
            .prepare_cached(
                "SELECT l.pack, p.name, l.offset, l.len FROM locs l JOIN packs p ON p.num = l.pack
                 WHERE l.id = ?1
                   AND NOT EXISTS (SELECT 1 FROM dead d WHERE d.id = l.id AND d.pack = l.pack)
                 ORDER BY p.name DESC",
            )
            .map_err(map_err)?;
        let rows = stmt
            .query_map([&id.as_bytes()[..]], |r| {
                Ok(Loc {
                    pack: r.get(0)?,
                    name: r.get(1)?,
                    offset: r.get::<_, i64>(2)? as u64,
                    len: r.get::<_, i64>(3)? as u32,
                })
            })
            .map_err(map_err)?
            .collect::<Result<_, _>>()
            .map_err(map_err);
        rows
    }

    /// Records a pack and its entries (idempotent).
    fn record(&self, name: &str, size: u64, entries: &[Entry]) -> Result<(), BackendError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(map_err)?;
        let live: u64 = entries.iter().map(|e| u64::from(e.len)).sum();
        let added = tx
            .execute(
                "INSERT OR IGNORE INTO packs(name, size, live) VALUES (?1, ?2, ?3)",
                params![name, size as i64, live as i64],
            )
            .map_err(map_err)?;
        if added == 1 {
            let num = tx.last_insert_rowid();
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO locs(id, pack, offset, len) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(map_err)?;
            for e in entries {
                ins.execute(params![
                    &e.id.as_bytes()[..],
                    num,
                    e.offset as i64,
                    e.len as i64
                ])
                .map_err(map_err)?;
            }
        }
        tx.commit().map_err(map_err)
    }

    /// Writes the blocks not yet in any known pack, and those in `again` (a sweep may be
    /// deleting the copy the map knows), into new packs (one PUT per [`PACK_BYTES`]), and
    /// says which were written. Durable in the bucket on return.
    pub(crate) fn put_many(
        &self,
        items: &[(BlockId, &[u8])],
        again: &std::collections::HashSet<BlockId>,
    ) -> Result<Vec<Put>, BackendError> {
        let ids: Vec<BlockId> = items.iter().map(|i| i.0).collect();
        let mut known = self.locate(&ids)?;
        for (k, id) in known.iter_mut().zip(&ids) {
            if again.contains(id) {
                *k = None;
            }
        }
        let mut seen = std::collections::HashSet::new();
        let fresh: Vec<(BlockId, &[u8])> = items
            .iter()
            .zip(&known)
            .filter(|(i, k)| k.is_none() && seen.insert(i.0))
            .map(|(i, _)| *i)
            .collect();
        if !fresh.is_empty() {
            self.group
                .commit(&fresh, PACK_BYTES, &|objects| self.write_packs(objects))?;
        }
        Ok(known
            .iter()
            .map(|k| {
                if k.is_some() {
                    Put::Present
                } else {
                    Put::Written
                }
            })
            .collect())
    }

    /// Packs `objects` (distinct ids) and stores the packs.
    pub(crate) fn write_packs(&self, objects: &[(BlockId, &[u8])]) -> Result<(), BackendError> {
        let mut groups: Vec<&[(BlockId, &[u8])]> = Vec::new();
        let (mut start, mut bytes) = (0, 0);
        for (i, (_, b)) in objects.iter().enumerate() {
            if i > start && (bytes + b.len() > PACK_BYTES || i - start >= pack::MAX_BLOCKS) {
                groups.push(&objects[start..i]);
                (start, bytes) = (i, 0);
            }
            bytes += b.len();
        }
        if start < objects.len() {
            groups.push(&objects[start..]);
        }
        let packs: Vec<Vec<u8>> = groups.iter().map(|g| pack::encode(g)).collect();
        loop {
            let began = Instant::now();
            let at = now_ms();
            let named: Vec<(String, Vec<u8>)> = packs
                .iter()
                .map(|p| (pack_name(at, p), p.clone()))
                .collect();
            let names: Vec<(String, u64)> = named
                .iter()
                .map(|(n, p)| (n.clone(), p.len() as u64))
                .collect();
            self.bucket.put_packs(named).map_err(s3)?;
            if began.elapsed() > LAG / 2 {
                // another server's watermark may have passed this name: write it again
                tracing::warn!(took = ?began.elapsed(), "slow pack upload; writing it again under a newer name");
                continue;
            }
            for ((name, size), p) in names.iter().zip(&packs) {
                let entries = pack::parse(p).expect("a pack just encoded parses");
                self.record(name, *size, &entries)?;
            }
            return Ok(());
        }
    }

    /// The objects of blocks, `None` where no known pack holds one, in order. A pack found
    /// gone (repacked or collected by another server) is dropped from the map, the map
    /// refreshed, and its blocks looked for again once.
    pub(crate) fn get_many(&self, ids: &[BlockId]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut out: Vec<Option<Vec<u8>>> = vec![None; ids.len()];
        let mut todo: Vec<usize> = (0..ids.len()).collect();
        for attempt in 0..2 {
            let wanted: Vec<BlockId> = todo.iter().map(|&i| ids[i]).collect();
            let mut locs = self.locate(&wanted)?;
            if attempt == 0 && locs.iter().any(Option::is_none) {
                self.refresh(true)?;
                locs = self.locate(&wanted)?;
            }
            let gone = self.read_into(&todo, &locs, &mut out)?;
            if gone.is_empty() {
                break;
            }
            for (num, name) in &gone {
                tracing::info!(pack = %name, "pack is gone from the bucket; dropped from the map");
                self.drop_pack(*num)?;
            }
            self.refresh(true)?;
            todo.retain(|&i| out[i].is_none());
        }
        Ok(out)
    }

    /// Reads the located blocks into `out` (slot `slots[k]` for `locs[k]`); returns the
    /// packs that are gone. A pack this read needs an eighth of or more is read whole and
    /// kept a while (the next steps of a pull want its neighbours); one another download
    /// is reading whole just now is waited for, not read twice.
    fn read_into(
        &self,
        slots: &[usize],
        locs: &[Option<Loc>],
        out: &mut [Option<Vec<u8>>],
    ) -> Result<Vec<(i64, String)>, BackendError> {
        let mut by_pack: HashMap<(i64, String), Vec<(usize, &Loc)>> = HashMap::new();
        for (slot, loc) in slots.iter().zip(locs) {
            if let Some(l) = loc {
                by_pack
                    .entry((l.pack, l.name.clone()))
                    .or_default()
                    .push((*slot, l));
            }
        }
        let mut mine: Vec<ReadGroup<'_>> = Vec::new();
        let mut later = Vec::new();
        for (key, ls) in by_pack {
            if let Some(pack) = self.recent_pack(&key.1) {
                fill(out, &ls, slices(&pack, &ls));
                continue;
            }
            let size = self.pack_size(key.0)?;
            if size > 0 && worth_reading_whole(&ls, size) {
                if self.claim_read(&key.1) {
                    mine.push((key, ls, true));
                } else {
                    later.push((key, ls));
                }
            } else {
                mine.push((key, ls, false));
            }
        }
        let mut gone = self.read_groups(mine, out)?;
        for (key, ls) in later {
            self.await_read(&key.1);
            match self.recent_pack(&key.1) {
                Some(pack) => fill(out, &ls, slices(&pack, &ls)),
                None => gone.extend(self.read_groups(vec![(key, ls, false)], out)?),
            }
        }
        Ok(gone)
    }

    /// Reads groups of blocks, each from its pack (whole, when the flag says, and kept
    /// then): one backend call for all. Returns the packs that are gone.
    fn read_groups(
        &self,
        groups: Vec<ReadGroup<'_>>,
        out: &mut [Option<Vec<u8>>],
    ) -> Result<Vec<(i64, String)>, BackendError> {
        let mut reads = Vec::with_capacity(groups.len());
        for ((num, name), ls, whole) in &groups {
            let ranges: Vec<std::ops::Range<u64>> = match whole {
                true => std::iter::once(0..self.pack_size(*num)?).collect(),
                false => ls
                    .iter()
                    .map(|(_, l)| l.offset..l.offset + u64::from(l.len))
                    .collect(),
            };
            reads.push((name.clone(), ranges));
        }
        let got = self.bucket.read_packs(&reads);
        let mut gone = Vec::new();
        let got = match got {
            Ok(g) => g,
            Err(e) => {
                for (key, _, whole) in &groups {
                    if *whole {
                        self.release_read(&key.1);
                    }
                }
                return Err(s3(e));
            }
        };
        for ((key, ls, whole), parts) in groups.into_iter().zip(got) {
            match parts {
                None => gone.push(key.clone()),
                Some(parts) if whole => {
                    let pack = parts.into_iter().next().unwrap_or_default();
                    self.keep_recent(&key.1, pack.clone());
                    fill(out, &ls, slices(&pack, &ls));
                }
                Some(parts) => fill(out, &ls, parts),
            }
            if whole {
                self.release_read(&key.1);
            }
        }
        Ok(gone)
    }

    /// Claims the whole read of a pack; false if another download is reading it.
    fn claim_read(&self, name: &str) -> bool {
        let (lock, _) = &self.reading;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string())
    }

    fn release_read(&self, name: &str) {
        let (lock, cv) = &self.reading;
        lock.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        cv.notify_all();
    }

    fn await_read(&self, name: &str) {
        let (lock, cv) = &self.reading;
        let mut reading = lock.lock().unwrap_or_else(|p| p.into_inner());
        while reading.contains(name) {
            reading = cv.wait(reading).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// A pack's size, 0 if unknown.
    fn pack_size(&self, num: i64) -> Result<u64, BackendError> {
        let size: Option<i64> = self
            .db()
            .query_row("SELECT size FROM packs WHERE num = ?1", [num], |r| r.get(0))
            .optional()
            .map_err(map_err)?;
        Ok(size.unwrap_or(0) as u64)
    }

    /// A whole pack read lately, if still kept.
    fn recent_pack(&self, name: &str) -> Option<bytes::Bytes> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
    }

    /// Keeps a whole pack for the downloads that follow (a pull asks for an image's blocks
    /// in order, a few MiB at a time, and a pack holds several such steps).
    fn keep_recent(&self, name: &str, pack: bytes::Bytes) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|(n, _)| n != name);
        recent.push_front((name.to_string(), pack));
        let mut total = 0;
        recent.retain(|(_, b)| {
            total += b.len();
            total <= READ_CACHE
        });
    }

    /// The objects at these locations (each from its own pack), `None` where its pack is
    /// gone.
    pub(crate) fn read_at(&self, locs: &[Loc]) -> Result<Vec<Option<Vec<u8>>>, BackendError> {
        let mut out = vec![None; locs.len()];
        let slots: Vec<usize> = (0..locs.len()).collect();
        let locs: Vec<Option<Loc>> = locs.iter().cloned().map(Some).collect();
        self.read_into(&slots, &locs, &mut out)?;
        Ok(out)
    }

    /// Sizes of the blocks some known pack holds, after a refresh if any is unknown (a
    /// forced one if `fresh`).
    pub(crate) fn stat_many(
        &self,
        ids: &[BlockId],
        fresh: bool,
    ) -> Result<Vec<Option<u64>>, BackendError> {
        let mut locs = self.locate(ids)?;
        if locs.iter().any(Option::is_none) && self.refresh(fresh)? {
            locs = self.locate(ids)?;
        }
        Ok(locs
            .iter()
            .map(|l| l.as_ref().map(|l| u64::from(l.len)))
            .collect())
    }

    /// Learns the packs stored since the last look (every pack on the first). Unless
    /// `force`, at most one listing per [`REFRESH_EVERY`]; says whether it listed.
    pub(crate) fn refresh(&self, force: bool) -> Result<bool, BackendError> {
        let mut last = self.refreshing.lock().unwrap_or_else(|p| p.into_inner());
        if !force && last.is_some_and(|t| t.elapsed() < REFRESH_EVERY) {
            return Ok(false);
        }
        let watermark: Option<String> = self
            .db()
            .query_row(
                "SELECT value FROM state WHERE key = 'seen_until'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(map_err)?;
        let listed_at = now_ms();
        let listed = self.bucket.list_packs(watermark.as_deref()).map_err(s3)?;
        self.learn(&listed)?;
        let mark = format!("{:013}-", listed_at.saturating_sub(LAG.as_millis() as u64));
        if watermark.as_deref().is_none_or(|w| mark.as_str() > w) {
            self.db()
                .execute(
                    "INSERT OR REPLACE INTO state(key, value) VALUES ('seen_until', ?1)",
                    [&mark],
                )
                .map_err(map_err)?;
        }
        *last = Some(Instant::now());
        Ok(true)
    }

    /// Reads the indexes of listed packs the map does not know, and records them. A pack
    /// whose tail does not parse is logged and skipped (`check` reports it).
    fn learn(&self, listed: &[(String, u64)]) -> Result<(), BackendError> {
        let unknown: Vec<(String, u64)> = {
            let db = self.db();
            let mut known = db
                .prepare_cached("SELECT 1 FROM packs WHERE name = ?1")
                .map_err(map_err)?;
            let mut v = Vec::new();
            for (name, size) in listed {
                if !known.exists([name]).map_err(map_err)? {
                    v.push((name.clone(), *size));
                }
            }
            v
        };
        for chunk in unknown.chunks(256) {
            for ((name, size), entries) in chunk.iter().zip(self.read_indexes(chunk)?) {
                match entries {
                    Ok(e) => self.record(name, *size, &e)?,
                    Err(why) => {
                        tracing::warn!(pack = %name, %why, "pack index unreadable; its blocks are not used")
                    }
                }
            }
        }
        Ok(())
    }

    /// The entries of packs from their tails: one suffix GET each, a second for a pack
    /// whose index is longer than the first guess.
    pub(crate) fn read_indexes(
        &self,
        packs: &[(String, u64)],
    ) -> Result<Vec<Result<Vec<Entry>, String>>, BackendError> {
        let guesses: Vec<(String, u64)> = packs
            .iter()
            .map(|(n, s)| (n.clone(), (*s).min(TAIL_GUESS)))
            .collect();
        let tails = self.bucket.pack_tails(&guesses).map_err(s3)?;
        let mut out = Vec::with_capacity(packs.len());
        for ((name, size), tail) in packs.iter().zip(tails) {
            let Some(mut tail) = tail else {
                out.push(Err("gone".to_string()));
                continue;
            };
            if let Ok(count) = pack::footer_count(&tail) {
                let need = pack::tail_len(count) as u64;
                if need > tail.len() as u64 && need <= *size {
                    let again = self
                        .bucket
                        .pack_tails(&[(name.clone(), need)])
                        .map_err(s3)?;
                    tail = again.into_iter().next().flatten().unwrap_or_default();
                }
            }
            out.push(pack::parse_tail(*size, &tail).map_err(|e| e.to_string()));
        }
        Ok(out)
    }

    /// Forgets a pack and the blocks it held.
    pub(crate) fn drop_pack(&self, num: i64) -> Result<(), BackendError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(map_err)?;
        tx.execute("DELETE FROM locs WHERE pack = ?1", [num])
            .map_err(map_err)?;
        tx.execute("DELETE FROM dead WHERE pack = ?1", [num])
            .map_err(map_err)?;
        tx.execute("DELETE FROM packs WHERE num = ?1", [num])
            .map_err(map_err)?;
        tx.commit().map_err(map_err)
    }

    /// The map's number of the pack named `name`, if known.
    fn pack_num(&self, name: &str) -> Result<Option<i64>, BackendError> {
        self.db()
            .query_row("SELECT num FROM packs WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(map_err)
    }

    /// [`Packs::drop_pack`] by name (a pack another server's gc deleted).
    pub(crate) fn drop_pack_named(&self, name: &str) -> Result<(), BackendError> {
        let num = self.pack_num(name)?;
        match num {
            Some(n) => self.drop_pack(n),
            None => Ok(()),
        }
    }

    /// Marks every live copy of blocks dead (collected, or the copies found wrong): their
    /// bytes stay in their packs, unused. Returns the packs left with no live block, which
    /// the caller may delete.
    pub(crate) fn unmap(&self, ids: &[BlockId]) -> Result<Vec<(i64, String)>, BackendError> {
        let mut pairs = Vec::new();
        for id in ids {
            pairs.extend(self.locate_all(id)?.into_iter().map(|l| (*id, l.pack)));
        }
        self.mark_dead(&pairs)
    }

    /// Marks the copies of `ids` in the pack `name` dead (another server's gc did).
    pub(crate) fn unmap_in(&self, name: &str, ids: &[BlockId]) -> Result<(), BackendError> {
        let num = self.pack_num(name)?;
        if let Some(num) = num {
            let pairs: Vec<(BlockId, i64)> = ids.iter().map(|i| (*i, num)).collect();
            self.mark_dead(&pairs)?;
        }
        Ok(())
    }

    fn mark_dead(&self, pairs: &[(BlockId, i64)]) -> Result<Vec<(i64, String)>, BackendError> {
        let mut db = self.db();
        let tx = db.transaction().map_err(map_err)?;
        let mut touched = Vec::new();
        {
            let mut len = tx
                .prepare_cached("SELECT len FROM locs WHERE id = ?1 AND pack = ?2")
                .map_err(map_err)?;
            let mut ins = tx
                .prepare_cached("INSERT OR IGNORE INTO dead(id, pack) VALUES (?1, ?2)")
                .map_err(map_err)?;
            let mut dec = tx
                .prepare_cached("UPDATE packs SET live = max(live - ?2, 0) WHERE num = ?1")
                .map_err(map_err)?;
            for (id, pack) in pairs {
                let key = &id.as_bytes()[..];
                let Some(l) = len
                    .query_row(params![key, pack], |r| r.get::<_, i64>(0))
                    .optional()
                    .map_err(map_err)?
                else {
                    continue;
                };
                if ins.execute(params![key, pack]).map_err(map_err)? == 1 {
                    dec.execute(params![pack, l]).map_err(map_err)?;
                    touched.push(*pack);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        let mut empty = Vec::new();
        {
            let mut q = tx
                .prepare_cached("SELECT name FROM packs WHERE num = ?1 AND live = 0")
                .map_err(map_err)?;
            for num in touched {
                if let Some(name) = q
                    .query_row([num], |r| r.get::<_, String>(0))
                    .optional()
                    .map_err(map_err)?
                {
                    empty.push((num, name));
                }
            }
        }
        tx.commit().map_err(map_err)?;
        Ok(empty)
    }

    /// Every entry of the packs whose names sort before `before` (all their blocks, dead
    /// or live, as their own indexes list them): what a gc run may mark.
    pub(crate) fn entries_before(
        &self,
        before: &str,
    ) -> Result<Vec<(BlockId, i64, u32)>, BackendError> {
        let db = self.db();
        let mut q = db
            .prepare(
                "SELECT l.id, l.pack, l.len FROM locs l JOIN packs p ON p.num = l.pack
                 WHERE p.name < ?1",
            )
            .map_err(map_err)?;
        let rows = q
            .query_map([before], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(map_err)?
            .filter_map(|r| match r {
                Ok((id, pack, len)) => {
                    BlockId::from_slice(&id).map(|id| Ok((id, pack, len as u32)))
                }
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(map_err);
        rows
    }

    /// A pack's entries as its own index lists them: id, offset, length, whether dead here.
    pub(crate) fn entries_of(&self, num: i64) -> Result<Vec<(Loc, BlockId, bool)>, BackendError> {
        let db = self.db();
        let mut q = db
            .prepare_cached(
                "SELECT l.id, p.name, l.offset, l.len,
                        EXISTS (SELECT 1 FROM dead d WHERE d.id = l.id AND d.pack = l.pack)
                 FROM locs l JOIN packs p ON p.num = l.pack WHERE l.pack = ?1 ORDER BY l.offset",
            )
            .map_err(map_err)?;
        let rows = q
            .query_map([num], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, bool>(4)?,
                ))
            })
            .map_err(map_err)?
            .filter_map(|r| match r {
                Ok((id, name, offset, len, dead)) => BlockId::from_slice(&id).map(|id| {
                    Ok((
                        Loc {
                            pack: num,
                            name,
                            offset: offset as u64,
                            len: len as u32,
                        },
                        id,
                        dead,
                    ))
                }),
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()
            .map_err(map_err);
        rows
    }

    /// Every mapped block with its length (after listing every pack), one row per id.
    pub(crate) fn each(
        &self,
        each: &mut dyn FnMut(BlockId, u64) -> Result<(), BackendError>,
    ) -> Result<(), BackendError> {
        let listed = self.bucket.list_packs(None).map_err(s3)?;
        self.learn(&listed)?;
        let rows: Vec<(Vec<u8>, i64)> = {
            let db = self.db();
            let mut q = db
                .prepare(
                    "SELECT l.id, min(l.len) FROM locs l
                     WHERE NOT EXISTS (SELECT 1 FROM dead d WHERE d.id = l.id AND d.pack = l.pack)
                     GROUP BY l.id",
                )
                .map_err(map_err)?;
            let rows = q
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(map_err)?
                .collect::<Result<_, _>>()
                .map_err(map_err)?;
            rows
        };
        for (id, len) in rows {
            if let Some(id) = BlockId::from_slice(&id) {
                each(id, len as u64)?;
            }
        }
        Ok(())
    }

    /// Packs known to the map: name, size and live bytes (gc, cost report).
    pub(crate) fn known(&self) -> Result<Vec<(i64, String, u64, u64)>, BackendError> {
        let db = self.db();
        let mut q = db
            .prepare("SELECT num, name, size, live FROM packs ORDER BY name")
            .map_err(map_err)?;
        let rows = q
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(map_err)?
            .collect::<Result<_, _>>()
            .map_err(map_err);
        rows
    }
}

impl From<Created> for Put {
    fn from(c: Created) -> Self {
        match c {
            Created::New => Put::Written,
            Created::Existed => Put::Present,
        }
    }
}
