//! Single-core throughput of the block codec on real data.
//!
//! `cargo bench -p bonsai-core --bench codec -- FILE [MIB]` chunks the first MIB (default
//! 256) MiB of FILE with the default chunker, then times on one thread: chunking alone;
//! key derivation alone; full encode (key, zstd, AES-256-GCM, id); full decode (verify id,
//! decrypt, decompress, re-derive key). `bench/codec.sh` builds a FILE from the system's
//! binaries and libraries so the figure is repeatable on any Debian machine.

use bonsai_core::chunk::Chunker;
use bonsai_core::codec::decode;
use bonsai_core::{ChunkerParams, Convergence, Encoder};
use std::io::Read;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some(path) = args.first() else {
        eprintln!("usage: cargo bench -p bonsai-core --bench codec -- FILE [MIB]");
        return;
    };
    let mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let mut data = Vec::new();
    std::fs::File::open(path)
        .expect("open input")
        .take((mib << 20) as u64)
        .read_to_end(&mut data)
        .unwrap();
    let total = data.len() as f64 / (1 << 20) as f64;
    let rate = |t: Instant| total / t.elapsed().as_secs_f64();

    let t = Instant::now();
    let mut chunker = Chunker::new(&data[..], ChunkerParams::default());
    let mut spans = Vec::new();
    while let Some(c) = chunker.next_chunk().unwrap() {
        spans.push((c.offset as usize, c.data.len()));
    }
    let chunk_rate = rate(t);
    let chunks: Vec<&[u8]> = spans.iter().map(|&(o, l)| &data[o..o + l]).collect();

    let conv = Convergence::public();
    let t = Instant::now();
    let keys: Vec<_> = chunks.iter().map(|c| conv.key_for(c)).collect();
    let key_rate = rate(t);

    let mut enc = Encoder::new();
    let t = Instant::now();
    let blocks: Vec<_> = chunks
        .iter()
        .zip(&keys)
        .map(|(c, k)| enc.encode_with_key(*k, c))
        .collect();
    let enc_rate = rate(t);
    let stored: usize = blocks.iter().map(|b| b.object.len()).sum();

    let t = Instant::now();
    for (b, c) in blocks.iter().zip(&chunks) {
        let plain = decode(&conv, &b.id, &b.key, &b.object).expect("decode");
        assert_eq!(plain.len(), c.len());
    }
    let dec_rate = rate(t);

    println!(
        "input            {total:.0} MiB in {} chunks (avg {} KiB)",
        chunks.len(),
        data.len() / chunks.len().max(1) / 1024
    );
    println!(
        "stored           {:.1} MiB ({:.1}% of input)",
        stored as f64 / (1 << 20) as f64,
        100.0 * stored as f64 / data.len() as f64
    );
    println!("chunk (FastCDC)  {chunk_rate:8.0} MiB/s");
    println!("key (BLAKE3)     {key_rate:8.0} MiB/s");
    println!("encode           {enc_rate:8.0} MiB/s  (key excluded: zstd-3 + AES-256-GCM + id)");
    println!("decode           {dec_rate:8.0} MiB/s  (id check + AES-256-GCM + zstd + key check)");
}
