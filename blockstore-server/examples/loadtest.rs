//! Load test for a running block store over HTTP.
//!
//! `cargo run --release -p bonsai-blockstore --example loadtest -- URL [BLOCKS] [KIB] [CLIENTS]`
//! (defaults: 100000 blocks of 64 KiB, 4 clients). Objects carry a valid header and
//! pseudo-random payload, so the server does all its real work (BLAKE3 of every byte,
//! write, sync, index) while the client spends little CPU making them. Reports blocks/s and
//! MiB/s for batch upload, existence queries of 10 000 ids, and batch download.

use bonsai_core::codec::{HEADER_LEN, OBJECT_MAGIC, OBJECT_VERSION, TAG_LEN};
use bonsai_core::store::http::HttpStore;
use bonsai_core::{BlockId, ReadStore, WriteStore};
use std::time::Instant;

fn object(seed: u64, len: usize) -> (BlockId, Vec<u8>) {
    let mut obj = Vec::with_capacity(len);
    obj.extend_from_slice(OBJECT_MAGIC);
    obj.push(OBJECT_VERSION);
    obj.push(0);
    obj.extend_from_slice(&[0, 0]);
    obj.extend_from_slice(&((len - HEADER_LEN - TAG_LEN) as u32).to_le_bytes());
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    while obj.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        obj.extend_from_slice(&x.to_le_bytes());
    }
    obj.truncate(len);
    (BlockId(*blake3::hash(&obj).as_bytes()), obj)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args
        .first()
        .expect("usage: loadtest URL [BLOCKS] [KIB] [CLIENTS]")
        .clone();
    let blocks: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let size = args
        .get(2)
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(64)
        * 1024;
    let clients: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let token = std::env::var("BONSAI_TOKEN").ok();
    let store = HttpStore::new(&url, token).expect("client");
    let per_batch = (8 << 20) / size as u64;
    let seed0 = std::process::id() as u64 * 1_000_000_007;
    let mib = (blocks * size as u64) as f64 / (1 << 20) as f64;

    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients {
            let store = &store;
            s.spawn(move || {
                let mut i = c * per_batch;
                while i < blocks {
                    let end = (i + per_batch).min(blocks);
                    let objs: Vec<_> = (i..end).map(|n| object(seed0 + n, size)).collect();
                    let refs: Vec<(BlockId, &[u8])> =
                        objs.iter().map(|(id, o)| (*id, &o[..])).collect();
                    store.put(&refs).expect("upload");
                    i += per_batch * clients;
                }
            });
        }
    });
    let up = t.elapsed().as_secs_f64();
    println!("upload    {blocks} blocks of {} KiB, {clients} clients: {:.0} blocks/s, {:.0} MiB/s ({up:.1} s)", size / 1024, blocks as f64 / up, mib / up);

    let ids: Vec<BlockId> = (0..blocks).map(|n| object(seed0 + n, size).0).collect();
    let rounds = 20usize;
    let t = Instant::now();
    for r in 0..rounds {
        let start = (r * 10_000) % ids.len().max(1);
        let q: Vec<BlockId> = ids
            .iter()
            .cycle()
            .skip(start)
            .take(10_000)
            .copied()
            .collect();
        let missing = store.missing(&q).expect("query");
        assert!(missing.is_empty(), "store lost blocks");
    }
    let qt = t.elapsed().as_secs_f64() / rounds as f64;
    println!(
        "query     10000 ids per request: {:.1} ms per query, {:.0} ids/s",
        qt * 1000.0,
        10_000.0 / qt
    );

    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..clients as usize {
            let (store, ids) = (&store, &ids);
            s.spawn(move || {
                for (k, batch) in ids.chunks(per_batch as usize).enumerate() {
                    if k % clients as usize == c {
                        let objs = store.get(batch).expect("download");
                        assert_eq!(objs.len(), batch.len());
                    }
                }
            });
        }
    });
    let down = t.elapsed().as_secs_f64();
    println!(
        "download  {blocks} blocks, {clients} clients: {:.0} blocks/s, {:.0} MiB/s ({down:.1} s)",
        blocks as f64 / down,
        mib / down
    );
}
