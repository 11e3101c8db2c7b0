//! How the local SQLite index behaves at scale: builds a synthetic index of N blocks
//! (default 10 000 000) the way a rebuild from a bucket listing does (batches of 1 000,
//! one transaction each), then reports its size on disk and the time of `missing` queries
//! of 65 536 ids (the largest a client sends), all present, all absent, and half and half.
//!
//! `cargo run --release -p bonsai-blockstore --example index_scale -- [BLOCKS] [DIR]`
//! DIR defaults to a temporary directory (deleted afterwards).

use bonsai_blockstore::Index;
use bonsai_core::BlockId;
use std::time::Instant;

fn id(n: u64) -> BlockId {
    BlockId(*blake3::hash(&n.to_le_bytes()).as_bytes())
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

fn timed_missing(index: &Index, ids: &[BlockId], label: &str) {
    let t = Instant::now();
    let absent = index.missing(ids).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "missing({} ids, {label}): {:.1} ms, {} absent, {:.0} ids/s",
        ids.len(),
        s * 1e3,
        absent.len(),
        ids.len() as f64 / s
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args
        .next()
        .map(|a| a.parse().expect("BLOCKS"))
        .unwrap_or(10_000_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().into());
    std::fs::create_dir_all(&dir).unwrap();
    let index = Index::open(&dir.join("index.sqlite")).unwrap();
    let t = Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..n {
        batch.push((id(i), 27_000 + i % 10_000));
        if batch.len() == 1000 {
            index.insert(&batch).unwrap();
            batch.clear();
        }
        if i > 0 && i % 1_000_000 == 0 {
            eprintln!("{i} blocks indexed, {:.0} s", t.elapsed().as_secs_f64());
        }
    }
    index.insert(&batch).unwrap();
    let build = t.elapsed().as_secs_f64();
    println!(
        "indexed {n} blocks in {build:.1} s ({:.0} blocks/s)",
        n as f64 / build
    );
    drop(index);
    let index = Index::open(&dir.join("index.sqlite")).unwrap();
    println!(
        "index on disk: {:.1} MiB ({:.1} bytes/block)",
        dir_bytes(&dir) as f64 / 1048576.0,
        dir_bytes(&dir) as f64 / n as f64
    );
    let step = (n / 65_536).max(1);
    let present: Vec<BlockId> = (0..65_536u64).map(|i| id((i * step) % n)).collect();
    let absent: Vec<BlockId> = (0..65_536u64).map(|i| id(n + i)).collect();
    let mixed: Vec<BlockId> = (0..65_536u64)
        .map(|i| {
            if i % 2 == 0 {
                id((i * step) % n)
            } else {
                id(n + 65_536 + i)
            }
        })
        .collect();
    // first query reads the pages from disk (cold for SQLite's cache), the rest are warm
    timed_missing(&index, &present, "all present, first query");
    timed_missing(&index, &present, "all present");
    timed_missing(&index, &absent, "all absent");
    timed_missing(&index, &mixed, "half present");
}
