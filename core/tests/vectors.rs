//! Format test vectors: the block objects and the recipe this code produces for fixed
//! inputs must match `fixtures/vectors/` byte for byte. A change that alters them is a
//! format change (bump a version, document it in docs/FORMAT.md). Regenerate after an
//! intended format change with `BONSAI_BLESS=1 cargo test -p bonsai-core --test vectors`.

use bonsai_core::codec::{decode, HEADER_LEN};
use bonsai_core::recipe::Recipe;
use bonsai_core::store::mem::MemStore;
use bonsai_core::{ChunkerParams, Convergence, Encoder, NoProgress, PushOptions};
use std::path::PathBuf;

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

#[test]
fn recipe_vector() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.recipe");
    let opts = PushOptions {
        chunker: ChunkerParams::fastcdc(16 * 1024),
        name: "vector".into(),
        ..Default::default()
    };
    let img = vector_image();
    let report = bonsai_core::push(
        &bonsai_core::BytesDisk(&img),
        &MemStore::new(),
        &out,
        &opts,
        &NoProgress,
    )
    .unwrap();
    assert!(report.zero_bytes >= 100 * 1024);
    assert!(
        report.unique_chunks < report.chunks,
        "the repeated part must dedup"
    );
    let bytes = std::fs::read(&out).unwrap();
    let bin = fixtures().join("recipe-v1.bin");
    let json = fixtures().join("recipe-v1.json");
    let rendered = serde_json::to_string_pretty(&Recipe::read_from(&bytes[..]).unwrap().to_json())
        .unwrap()
        + "\n";
    if bless() {
        std::fs::write(&bin, &bytes).unwrap();
        std::fs::write(&json, &rendered).unwrap();
    }
    assert_eq!(
        bytes,
        std::fs::read(&bin).expect("fixtures/vectors/recipe-v1.bin"),
        "recipe bytes changed — a format change"
    );
    assert_eq!(rendered, std::fs::read_to_string(&json).unwrap());
    let r = Recipe::read_from(&bytes[..]).unwrap();
    assert_eq!(r.image_hash.0, *blake3::hash(&img).as_bytes());
    assert_eq!(r.logical_size, img.len() as u64);
}

/// Broken recipes kept in fixtures/corrupt/: each must give its own error, never a panic.
#[test]
fn corrupt_recipe_fixtures() {
    use bonsai_core::RecipeError as E;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/corrupt");
    let read = |name: &str| Recipe::open(&dir.join(name)).unwrap_err();
    assert!(matches!(read("truncated.recipe"), E::Truncated(_)));
    assert!(matches!(
        read("flipped-bit.recipe"),
        E::ChecksumMismatch | E::Malformed { .. }
    ));
    assert!(matches!(read("version-2.recipe"), E::UnsupportedVersion(2)));
    assert!(matches!(read("not-a-recipe.recipe"), E::BadMagic));
    assert!(matches!(read("trailing-bytes.recipe"), E::Malformed { .. }));
}
