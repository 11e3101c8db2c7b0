//! Measures the two object layouts on a real S3-compatible service: one object per block
//! (the layout bonsai uses) against packs of many blocks in one object (restic/kopia), for
//! the same bytes; plus the cost of asking "is it there?" per id (HEAD) and of a listing.
//!
//! `AWS_ENDPOINT_URL=… AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… \
//!  cargo run --release -p bonsai-blockstore --example s3_layout -- s3://BUCKET/PREFIX [BLOCKS] [KIB] [PACK_MIB]`
//! (defaults: 4 096 blocks of 27 KiB, the mean stored block of corpus C; packs of 16 MiB).

use bonsai_blockstore::{Bucket, S3Location, S3Settings};
use bonsai_core::BlockId;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use std::time::Instant;

fn object(seed: u64, len: usize) -> (BlockId, Vec<u8>) {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    (BlockId(*blake3::hash(&v).as_bytes()), v)
}

fn report(what: &str, requests: usize, bytes: usize, secs: f64) {
    println!(
        "{what:<34} {requests:>6} requests {:>8.0} req/s {:>8.1} MiB/s {:>7.2} s",
        requests as f64 / secs,
        bytes as f64 / 1048576.0 / secs,
        secs
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let loc = S3Location::parse(&args.next().expect("s3://BUCKET/PREFIX")).unwrap();
    let n: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(4096);
    let kib: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(27);
    let pack_mib: usize = args.next().map(|a| a.parse().unwrap()).unwrap_or(16);
    let settings = S3Settings::from_env().unwrap();
    let bucket = Bucket::open(&loc, &settings).unwrap();
    let blocks: Vec<_> = (0..n as u64)
        .map(|i| object(i ^ 0x5eed, kib * 1024))
        .collect();
    let total: usize = blocks.iter().map(|b| b.1.len()).sum();
    let items: Vec<(BlockId, &[u8])> = blocks.iter().map(|b| (b.0, &b.1[..])).collect();

    let t = Instant::now();
    let absent = bucket
        .stat_blocks(&items.iter().map(|i| i.0).collect::<Vec<_>>())
        .unwrap();
    assert!(absent.iter().all(Option::is_none), "use an empty prefix");
    report(
        "HEAD per block (all absent)",
        n,
        0,
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    bucket.put_blocks(&items).unwrap();
    report(
        "PUT one object per block",
        n,
        total,
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    bucket
        .stat_blocks(&items.iter().map(|i| i.0).collect::<Vec<_>>())
        .unwrap();
    report(
        "HEAD per block (all present)",
        n,
        0,
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    let listed = bucket
        .list_blocks(|_| Ok::<_, bonsai_blockstore::S3Error>(()))
        .unwrap();
    report(
        "LIST all blocks (256 shards)",
        256 + listed as usize / 1000,
        0,
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    bucket
        .get_blocks(&items.iter().map(|i| i.0).collect::<Vec<_>>())
        .unwrap();
    report(
        "GET one object per block",
        n,
        total,
        t.elapsed().as_secs_f64(),
    );

    // packs: the same bytes concatenated into PACK_MIB objects, 4 in flight
    let mut b = AmazonS3Builder::new()
        .with_bucket_name(&loc.bucket)
        .with_region(&settings.region);
    if let Some(e) = &settings.endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(k) = &settings.keys {
        b = b
            .with_access_key_id(&k.access_key_id)
            .with_secret_access_key(&k.secret_access_key);
    }
    let s3 = b.build().unwrap();
    let per_pack = (pack_mib * 1024 / kib).max(1);
    let packs: Vec<Vec<u8>> = blocks
        .chunks(per_pack)
        .map(|c| c.iter().flat_map(|b| b.1.clone()).collect())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let prefix = if loc.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", loc.prefix)
    };
    let t = Instant::now();
    rt.block_on(
        stream::iter(packs.iter().enumerate().map(|(i, p)| {
            let key = Path::from(format!("{prefix}packs/{i:08}"));
            let s3 = &s3;
            async move { s3.put(&key, PutPayload::from(p.clone())).await }
        }))
        .buffered(4)
        .try_collect::<Vec<_>>(),
    )
    .unwrap();
    report(
        &format!("PUT packs of {pack_mib} MiB"),
        packs.len(),
        total,
        t.elapsed().as_secs_f64(),
    );
    let t = Instant::now();
    rt.block_on(
        stream::iter((0..packs.len()).map(|i| {
            let key = Path::from(format!("{prefix}packs/{i:08}"));
            let s3 = &s3;
            async move { s3.get(&key).await?.bytes().await }
        }))
        .buffered(4)
        .try_collect::<Vec<_>>(),
    )
    .unwrap();
    report(
        &format!("GET packs of {pack_mib} MiB"),
        packs.len(),
        total,
        t.elapsed().as_secs_f64(),
    );
}
