//! Format test vectors: the block objects and the recipes (versions 1 and 2) this code
//! produces for fixed inputs must match `fixtures/vectors/` byte for byte; the broken
//! recipes of `fixtures/corrupt/` must each give their own error (`corrupt.rs`). A change that alters them is a
//! format change (bump a version, document it in docs/FORMAT.md). Regenerate after an
//! intended format change with `BONSAI_BLESS=1 cargo test -p bonsai-core --test vectors`.

use bonsai_core::chunk::Chunker;
use bonsai_core::codec::{decode, HEADER_LEN};
use bonsai_core::recipe::{
    ExtentEntry, ImageCheck, Recipe, RecipeHeader, RecipeWriter, SourceFormat,
};
use bonsai_core::{ChunkerParams, Convergence, Encoder, ImageHash};
use std::path::PathBuf;

#[path = "vectors/corrupt.rs"]
mod corrupt;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/vectors")
}

fn bless() -> bool {
    std::env::var_os("BONSAI_BLESS").is_some()
}

/// splitmix64 bytes: the generator named in fixtures/vectors/README.md.
fn splitmix(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s = s.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

fn plaintexts() -> Vec<(&'static str, Option<&'static str>, Vec<u8>)> {
    vec![
        ("one-byte", None, vec![0x01]),
        ("small", None, b"hello, bonsai\n".to_vec()),
        ("random-64k", None, splitmix(42, 64 * 1024)),
        (
            "compressible-64k",
            None,
            b"bonsai block ".repeat(5042)[..64 * 1024].to_vec(),
        ),
        (
            "small-private-secret",
            Some("team secret"),
            b"hello, bonsai\n".to_vec(),
        ),
    ]
}

#[test]
fn block_object_vectors() {
    let path = fixtures().join("blocks.json");
    let mut produced = Vec::new();
    for (name, secret, plain) in plaintexts() {
        let conv = secret
            .map(|s| Convergence::from_secret(s.as_bytes()))
            .unwrap_or_else(Convergence::public);
        let b = Encoder::new().encode(&conv, &plain);
        let nonce = &b.object[12..HEADER_LEN];
        assert_eq!(decode(&conv, &b.id, &b.key, &b.object).unwrap(), plain);
        produced.push(serde_json::json!({
            "name": name,
            "secret": secret,
            "plaintext": hex::encode(&plain),
            "key": b.key,
            "nonce": hex::encode(nonce),
            "id": b.id,
            "codec": b.object[5],
            "object": hex::encode(&b.object),
        }));
    }
    let produced = serde_json::Value::Array(produced);
    if bless() {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&produced).unwrap() + "\n",
        )
        .unwrap();
    }
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("fixtures/vectors/blocks.json"))
            .unwrap();
    let (exp, got) = (expected.as_array().unwrap(), produced.as_array().unwrap());
    assert_eq!(exp.len(), got.len());
    for (e, g) in exp.iter().zip(got) {
        for field in ["plaintext", "key", "nonce", "id", "codec", "object"] {
            assert_eq!(
                e[field], g[field],
                "vector {}: {field} changed — a format change",
                e["name"]
            );
        }
    }
}

/// A 1 MiB image with data, a zero run, a repeat of earlier data and an odd tail.
fn vector_image() -> Vec<u8> {
    let a = splitmix(7, 300 * 1024);
    let mut img = a.clone();
    img.extend(vec![0u8; 200 * 1024]);
    img.extend(splitmix(8, 100 * 1024));
    img.extend(&a);
    img.extend(b"tail".repeat(31_000));
    img.truncate(1024 * 1024 - 3);
    img
}

fn vector_header() -> RecipeHeader {
    RecipeHeader {
        chunker: ChunkerParams::fastcdc(16 * 1024),
        object_version: 1,
        source_format: SourceFormat::Raw,
        fingerprint: Convergence::public().fingerprint(),
    }
}

/// The vector image's recipe built from the parts alone — chunker, codec, writer — so the
/// vectors pin the formats whatever the push engine looks like.
fn build_recipe(version: u8) -> Vec<u8> {
    let img = vector_image();
    let conv = Convergence::public();
    let mut w = match version {
        1 => RecipeWriter::new_v1(Vec::new(), &vector_header()).unwrap(),
        _ => RecipeWriter::new(Vec::new(), &vector_header()).unwrap(),
    };
    let mut chunks = Chunker::new(&img[..], vector_header().chunker);
    while let Some(c) = chunks.next_chunk().unwrap() {
        if c.is_zero() {
            w.hole(c.data.len() as u64);
        } else {
            let b = Encoder::new().encode(&conv, c.data);
            w.block(&b.id, &b.key, c.data.len() as u32).unwrap();
        }
    }
    match version {
        1 => {
            let whole = ImageHash(*blake3::hash(&img).as_bytes());
            w.finish_v1(img.len() as u64, &whole).unwrap()
        }
        _ => w.finish(img.len() as u64).unwrap().0,
    }
}

/// The recipe vectors of both versions: bytes, JSON rendering, and what each promises.
#[test]
fn recipe_vectors() {
    let img = vector_image();
    for version in [1u8, 2] {
        let bytes = build_recipe(version);
        let bin = fixtures().join(format!("recipe-v{version}.bin"));
        let json = fixtures().join(format!("recipe-v{version}.json"));
        let r = Recipe::read_from(&bytes[..]).unwrap();
        let rendered = serde_json::to_string_pretty(&r.to_json()).unwrap() + "\n";
        if bless() {
            std::fs::write(&bin, &bytes).unwrap();
            std::fs::write(&json, &rendered).unwrap();
        }
        let stored = std::fs::read(&bin).expect("fixtures/vectors/recipe-v*.bin");
        assert_eq!(
            bytes, stored,
            "recipe v{version} bytes changed — a format change"
        );
        assert_eq!(rendered, std::fs::read_to_string(&json).unwrap());
        assert_eq!(r.version, version);
        assert_eq!(r.logical_size, img.len() as u64);
        assert!(r.hole_bytes() >= 100 * 1024);
        assert!(
            r.blocks.len() < r.extents.len(),
            "the repeated part must dedup"
        );
        assert_eq!(r.write_to(Vec::new()).unwrap(), stored);
        let whole = ImageHash(*blake3::hash(&img).as_bytes());
        match r.image_check() {
            ImageCheck::WholeImageBlake3(h) => assert_eq!((version, h), (1, whole)),
            ImageCheck::Extents(h) => assert_eq!((version, h), (2, r.extents_hash())),
        }
    }
    let (v1, v2) = (build_recipe(1), build_recipe(2));
    let (r1, r2) = (
        Recipe::read_from(&v1[..]).unwrap(),
        Recipe::read_from(&v2[..]).unwrap(),
    );
    assert_eq!((&r1.blocks, &r1.extents), (&r2.blocks, &r2.extents));
    assert_eq!(r1.extents_hash(), r2.image_hash);
    // the two versions differ in the version byte and the trailer's hash (and checksum) only
    let n = v1.len() - 64;
    assert_eq!(v1.len(), v2.len());
    assert_eq!(v1[5..n], v2[5..n]);
}

/// The extents hash recomputed by hand from the image, independently of the writer.
#[test]
fn v2_image_hash_from_the_image() {
    let img = vector_image();
    let conv = Convergence::public();
    let p = vector_header().chunker;
    let mut keys = Vec::new();
    for c in fastcdc::v2020::FastCDC::new(&img, p.min, p.avg, p.max) {
        let data = &img[c.offset..c.offset + c.length];
        let zero = data.iter().all(|&b| b == 0);
        keys.push((c.length as u64, (!zero).then(|| conv.key_for(data))));
    }
    let entries = keys.iter().map(|(len, key)| match key {
        Some(k) => ExtentEntry::Block(*len, k),
        None => ExtentEntry::Hole(*len),
    });
    let want = bonsai_core::recipe::extents_hash(&p, entries);
    let r = Recipe::open(&fixtures().join("recipe-v2.bin")).unwrap();
    assert_eq!(r.image_hash, want);
}
