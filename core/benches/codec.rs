//! Single-core cost of every stage of push and pull, on real data.
//!
//! `cargo bench -p bonsai-core --bench codec -- FILE [MIB] [--json]` chunks the first MIB
//! MiB of FILE (default 256; 0 means all of it) with the default chunker, then times each
//! stage alone on one thread over every chunk: FastCDC, the convergent key (keyed BLAKE3),
//! zstd-3, the nonce (BLAKE3 over the payload), AES-256-GCM sealing, the object id (BLAKE3
//! over the object); and for pull AES-256-GCM opening, zstd decompression and the key check.
//! Then the whole encode and decode as the tool runs them, to compare with the sum of their
//! stages. `bench/codec.sh` builds a FILE from the system's binaries, `bench/run.py` from
//! the data of image C; `--json` prints one object for the bench to tabulate.

use bonsai_core::chunk::Chunker;
use bonsai_core::codec::{decode, derive_nonce};
use bonsai_core::{ChunkerParams, Convergence, Encoder};
use ring::aead::{Aad, LessSafeKey, Nonce, Tag, UnboundKey, AES_256_GCM};
use std::io::Read;
use std::time::Instant;

/// One measured stage: its name, what it covers, and seconds spent on the whole input.
struct Stage {
    name: &'static str,
    side: &'static str,
    seconds: f64,
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let json = args.iter().any(|a| a == "--json");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--json").collect();
    let Some(path) = args.first() else {
        eprintln!("usage: cargo bench -p bonsai-core --bench codec -- FILE [MIB] [--json]");
        return;
    };
    let mib: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let limit = if mib == 0 { u64::MAX } else { mib << 20 };
    let mut data = Vec::new();
    std::fs::File::open(path)
        .expect("open input")
        .take(limit)
        .read_to_end(&mut data)
        .expect("read input");
    let stages = measure(&data);
    if json {
        print_json(data.len(), &stages);
    } else {
        print_text(data.len(), &stages);
    }
}

/// Times `f` once over the whole input.
fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

fn cipher(key: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("32-byte key"))
}

fn measure(data: &[u8]) -> Vec<Stage> {
    let mut stages = Vec::new();
    let mut push = |name, seconds| {
        stages.push(Stage {
            name,
            side: "push",
            seconds,
        })
    };
    let (spans, t) = time(|| {
        let mut chunker = Chunker::new(data, ChunkerParams::default());
        let mut spans = Vec::new();
        while let Some(c) = chunker.next_chunk().expect("chunk") {
            spans.push((c.offset as usize, c.data.len()));
        }
        spans
    });
    push("chunk (FastCDC)", t);
    let chunks: Vec<&[u8]> = spans.iter().map(|&(o, l)| &data[o..o + l]).collect();
    let conv = Convergence::public();
    let (keys, t) = time(|| chunks.iter().map(|c| conv.key_for(c)).collect::<Vec<_>>());
    push("key (keyed BLAKE3 of the plaintext)", t);
    // Into one reused buffer, as the encoder does; the payloads kept for the next stages
    // are made again outside the timing.
    let mut z = zstd::bulk::Compressor::new(3).expect("zstd");
    let mut scratch = Vec::with_capacity(zstd::zstd_safe::compress_bound(1 << 20));
    let ((), t) = time(|| {
        for c in &chunks {
            scratch.clear();
            z.compress_to_buffer(c, &mut scratch).expect("compress");
        }
    });
    push("compress (zstd-3)", t);
    let mut payloads: Vec<Vec<u8>> = chunks
        .iter()
        .map(|c| z.compress(c).expect("zstd"))
        .collect();
    let header = [0u8; 12];
    let (nonces, t) = time(|| {
        keys.iter()
            .zip(&payloads)
            .map(|(k, p)| derive_nonce(k, &header, p))
            .collect::<Vec<_>>()
    });
    push("nonce (BLAKE3 of the payload)", t);
    let (tags, t) = time(|| {
        keys.iter()
            .zip(&nonces)
            .zip(payloads.iter_mut())
            .map(|((k, n), p)| {
                let nonce = Nonce::assume_unique_for_key(*n);
                cipher(k.as_bytes())
                    .seal_in_place_separate_tag(nonce, Aad::from(&header), p)
                    .expect("seal")
            })
            .collect::<Vec<_>>()
    });
    push("seal (AES-256-GCM)", t);
    let ((), t) = time(|| {
        for p in &payloads {
            std::hint::black_box(blake3::hash(p));
        }
    });
    push("id (BLAKE3 of the object)", t);
    pull_stages(&mut stages, &conv, &keys, &nonces, &tags, payloads, &chunks);
    whole(&mut stages, &conv, &chunks);
    stages
}

fn pull_stages(
    stages: &mut Vec<Stage>,
    conv: &Convergence,
    keys: &[bonsai_core::BlockKey],
    nonces: &[[u8; 12]],
    tags: &[Tag],
    mut sealed: Vec<Vec<u8>>,
    chunks: &[&[u8]],
) {
    let header = [0u8; 12];
    let ((), t) = time(|| {
        for (((k, n), tag), p) in keys.iter().zip(nonces).zip(tags).zip(sealed.iter_mut()) {
            let nonce = Nonce::assume_unique_for_key(*n);
            cipher(k.as_bytes())
                .open_in_place_separate_tag(nonce, Aad::from(&header), *tag, p, 0..)
                .expect("open");
        }
    });
    stages.push(Stage {
        name: "open (AES-256-GCM)",
        side: "pull",
        seconds: t,
    });
    let mut z = zstd::bulk::Decompressor::new().expect("zstd");
    let mut scratch = Vec::with_capacity(1 << 20);
    let ((), t) = time(|| {
        for (p, c) in sealed.iter().zip(chunks) {
            scratch.clear();
            z.decompress_to_buffer(p, &mut scratch).expect("decompress");
            assert_eq!(scratch.len(), c.len());
        }
    });
    stages.push(Stage {
        name: "decompress (zstd)",
        side: "pull",
        seconds: t,
    });
    let ((), t) = time(|| {
        for (p, k) in chunks.iter().zip(keys) {
            assert!(conv.key_for(p) == *k);
        }
    });
    stages.push(Stage {
        name: "key check (keyed BLAKE3)",
        side: "pull",
        seconds: t,
    });
}

/// The encoder and decoder as push and pull call them, over the same chunks.
fn whole(stages: &mut Vec<Stage>, conv: &Convergence, chunks: &[&[u8]]) {
    let mut enc = Encoder::new();
    let (blocks, t) = time(|| {
        chunks
            .iter()
            .map(|c| enc.encode(conv, c))
            .collect::<Vec<_>>()
    });
    stages.push(Stage {
        name: "encode, whole (key to id)",
        side: "push-whole",
        seconds: t,
    });
    let ((), t) = time(|| {
        for (b, c) in blocks.iter().zip(chunks) {
            let plain = decode(conv, &b.id, &b.key, &b.object).expect("decode");
            assert_eq!(plain.len(), c.len());
        }
    });
    stages.push(Stage {
        name: "decode, whole (open to key check)",
        side: "pull-whole",
        seconds: t,
    });
}

const GIB: f64 = (1u64 << 30) as f64;

fn print_text(len: usize, stages: &[Stage]) {
    let gib = len as f64 / GIB;
    println!("input {:.0} MiB, one thread", len as f64 / (1 << 20) as f64);
    for s in stages {
        println!(
            "{:<36} {:>6} {:8.0} MiB/s {:7.2} s/GiB",
            s.name,
            s.side,
            gib * 1024.0 / s.seconds,
            s.seconds / gib
        );
    }
}

fn print_json(len: usize, stages: &[Stage]) {
    let gib = len as f64 / GIB;
    let rows: Vec<String> = stages
        .iter()
        .map(|s| {
            format!(
                "{{\"stage\":\"{}\",\"side\":\"{}\",\"seconds_per_gib\":{:.4}}}",
                s.name,
                s.side,
                s.seconds / gib
            )
        })
        .collect();
    println!("{{\"input_bytes\":{len},\"stages\":[{}]}}", rows.join(","));
}
