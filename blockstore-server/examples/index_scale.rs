//! What a server holds per block, measured at scale: fills a store index (`index.sqlite`,
//! every backend) and a pack map (`packs.sqlite`, a bucket's) with N random blocks, then
//! reports size on disk, peak memory, and the time of an existence query for 65,536 ids
//! (half present) as a push asks it.
//!
//!   cargo run --release -p bonsai-blockstore --example index_scale -- N DIR [index|map]
//!
//! Writes JSON lines to stdout. DIR is emptied first; each part's files are removed after
//! it is measured, so the disk needs room for one of them at a time. The fill uses a 4 GB
//! page cache (its time is not a server's rebuild time: bench/s3.sh measures that); the
//! queries run through the server's own code and settings.

use bonsai_blockstore::{Index, PACK_MAP_SCHEMA};
use bonsai_core::BlockId;
use std::path::Path;
use std::time::Instant;

const BATCH: u64 = 500_000;
/// Blocks per pack (16 MiB packs of ~35 KiB objects).
const PER_PACK: u64 = 450;

fn id(n: u64) -> BlockId {
    BlockId::from_slice(blake3::hash(&n.to_le_bytes()).as_bytes()).expect("32 bytes")
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn size_of(dir: &Path, name: &str) -> u64 {
    [""].iter()
        .filter_map(|s| std::fs::metadata(dir.join(format!("{name}{s}"))).ok())
        .map(|m| m.len())
        .sum()
}

/// 65,536 ids, every other one stored.
fn query_ids(n: u64) -> Vec<BlockId> {
    (0..65_536u64)
        .map(|i| {
            if i % 2 == 0 {
                id((i * 7_919) % n)
            } else {
                id(n + i)
            }
        })
        .collect()
}

fn index(n: u64, dir: &Path) {
    let t = Instant::now();
    let path = dir.join("index.sqlite");
    drop(Index::open(&path).expect("index opens")); // the schema, as a server makes it
                                                    // filled through one connection with a large page cache (the server's own connection
                                                    // keeps SQLite's default), in random id order as a rebuild from a listing inserts
    let mut db = rusqlite::Connection::open(&path).expect("index opens");
    db.pragma_update(None, "cache_size", -4_000_000i64)
        .expect("cache");
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let tx = db.transaction().expect("tx");
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO blocks(id, size, first_seen) VALUES (?1, ?2, ?3)",
                )
                .expect("sql");
            for i in start..end {
                ins.execute(rusqlite::params![
                    &id(i).as_bytes()[..],
                    20_000 + (i % 40_000) as i64,
                    1_800_000_000i64
                ])
                .expect("row");
            }
        }
        tx.commit().expect("commit");
        start = end;
    }
    drop(db);
    let fill = t.elapsed().as_secs_f64();
    let bytes = size_of(dir, "index.sqlite");
    // the queries in a process of their own, so its peak memory is a server's, not the fill's
    let out = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([n.to_string(), dir.display().to_string(), "query".into()])
        .output()
        .expect("query process");
    let q: serde_json::Value = serde_json::from_slice(&out.stdout).expect("query figures");
    println!(
        "{}",
        serde_json::json!({"part": "index", "blocks": n, "fill_seconds": fill,
            "bytes": bytes, "bytes_per_block": bytes as f64 / n as f64, "query": q})
    );
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

/// Opens the index as a server does and times two existence queries of 65,536 ids.
fn query(n: u64, dir: &Path) {
    let ix = Index::open(&dir.join("index.sqlite")).expect("index opens");
    let ids = query_ids(n);
    let t = Instant::now();
    let missing = ix.missing(&ids).expect("query").len();
    let cold = t.elapsed().as_secs_f64();
    let t = Instant::now();
    ix.missing(&ids).expect("query");
    let warm = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"missing_query_seconds": cold, "missing_query_warm_seconds": warm,
            "missing": missing, "peak_rss_mib": peak_rss_mib()})
    );
}

fn map(n: u64, dir: &Path) {
    let t = Instant::now();
    let mut db = rusqlite::Connection::open(dir.join("packs.sqlite")).expect("map opens");
    db.pragma_update(None, "cache_size", -4_000_000i64)
        .expect("cache");
    db.pragma_update(None, "journal_mode", "WAL").expect("wal");
    db.pragma_update(None, "synchronous", "NORMAL")
        .expect("sync");
    db.execute_batch(PACK_MAP_SCHEMA).expect("schema");
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let tx = db.transaction().expect("tx");
        {
            let mut pack = tx
                .prepare_cached("INSERT INTO packs(name, size, live) VALUES (?1, ?2, ?2)")
                .expect("sql");
            let mut loc = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO locs(id, pack, offset, len) VALUES (?1, ?2, ?3, ?4)",
                )
                .expect("sql");
            for i in start..end {
                let p = (i / PER_PACK) as i64 + 1;
                if i % PER_PACK == 0 {
                    pack.execute(rusqlite::params![
                        format!("{:013}-{:032x}", 1_800_000_000_000u64 + i, i),
                        16i64 << 20
                    ])
                    .expect("pack row");
                }
                let off = 16 + (i % PER_PACK) as i64 * 35_000;
                loc.execute(rusqlite::params![&id(i).as_bytes()[..], p, off, 35_000i64])
                    .expect("loc row");
            }
        }
        tx.commit().expect("commit");
        start = end;
    }
    let fill = t.elapsed().as_secs_f64();
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
        .expect("checkpoint");
    let ids = query_ids(n);
    let mut q = db
        .prepare(
            "SELECT l.pack, p.name, l.offset, l.len FROM locs l JOIN packs p ON p.num = l.pack
             WHERE l.id = ?1
               AND NOT EXISTS (SELECT 1 FROM dead d WHERE d.id = l.id AND d.pack = l.pack)
             ORDER BY p.name DESC",
        )
        .expect("sql");
    let t = Instant::now();
    let found = ids
        .iter()
        .filter(|i| q.exists([&i.as_bytes()[..]]).expect("query"))
        .count();
    let lookup = t.elapsed().as_secs_f64();
    drop(q);
    drop(db);
    println!(
        "{}",
        serde_json::json!({"part": "map", "blocks": n, "packs": n.div_ceil(PER_PACK),
            "fill_seconds": fill, "bytes": size_of(dir, "packs.sqlite"),
            "bytes_per_block": size_of(dir, "packs.sqlite") as f64 / n as f64,
            "locate_65536_seconds": lookup, "found": found})
    );
    for f in ["packs.sqlite", "packs.sqlite-wal", "packs.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::path::PathBuf::from(
        args.next()
            .unwrap_or_else(|| "/var/tmp/bonsai-index-scale".into()),
    );
    let part = args.next().unwrap_or_else(|| "both".into());
    if part == "query" {
        return query(n, &dir);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    if part != "map" {
        index(n, &dir);
    }
    if part != "index" {
        map(n, &dir);
    }
}
