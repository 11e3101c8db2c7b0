//! Broken recipes kept in `fixtures/corrupt/`, one per rule of docs/FORMAT.md's refusal
//! order: each must give its own error, never a panic. Version 2 cases are built here from
//! the vector header with crafted entries and a correct checksum, so each reaches the rule
//! it names; `BONSAI_BLESS=1` rewrites the files.

use super::{bless, build_recipe};
use bonsai_core::recipe::{Fault, Recipe, RecipeError};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/corrupt")
}

/// Rewrites the trailing checksum so a crafted change reaches the rule behind it.
fn reseal(bytes: &mut [u8]) {
    let n = bytes.len() - 32;
    let sum = blake3::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(sum.as_bytes());
}

/// A version 2 recipe: the vector's header (patched), raw entry bytes, a trailer.
fn crafted(patch: &[(usize, u8)], entries: &[u8], size: u64) -> Vec<u8> {
    let mut v = build_recipe(2)[..28].to_vec();
    for &(i, b) in patch {
        v[i] = b;
    }
    v.extend_from_slice(entries);
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&[0; 64]);
    reseal(&mut v);
    v
}

fn new_block(key: u8, len: &[u8]) -> Vec<u8> {
    let mut e = vec![2u8];
    e.extend([0xab; 32]);
    e.extend([key; 32]);
    e.extend(len);
    e
}

type Check = fn(&RecipeError) -> bool;

fn fault(e: &RecipeError) -> Option<&Fault> {
    match e {
        RecipeError::Malformed { fault, .. } => Some(fault),
        _ => None,
    }
}

/// (file name, bytes, expected error) for the whole-file cases: damage and trailer rules.
fn file_cases() -> Vec<(&'static str, Vec<u8>, Check)> {
    let v2 = build_recipe(2);
    let mut flipped = v2.clone();
    flipped[40] ^= 1; // inside the first id: structure intact, checksum catches it
    let mut trailing = v2.clone();
    trailing.push(0);
    let mut wrong_hash = v2.clone();
    let at = wrong_hash.len() - 64;
    wrong_hash[at] ^= 1;
    reseal(&mut wrong_hash);
    let mut version3 = v2.clone();
    version3[4] = 3;
    vec![
        ("v2-truncated.recipe", v2[..v2.len() / 2].to_vec(), |e| {
            matches!(e, RecipeError::Truncated(_))
        }),
        ("v2-flipped-bit.recipe", flipped, |e| {
            matches!(e, RecipeError::ChecksumMismatch)
        }),
        ("v2-trailing-bytes.recipe", trailing, |e| {
            fault(e) == Some(&Fault::TrailingBytes)
        }),
        ("version-3.recipe", version3, |e| {
            matches!(e, RecipeError::UnsupportedVersion(3))
        }),
        ("extents-hash-mismatch.recipe", wrong_hash, |e| {
            matches!(e, RecipeError::ExtentsHashMismatch)
        }),
    ]
}

/// Crafted version 2 recipes with a correct checksum, one per header or entry rule.
fn crafted_cases() -> Vec<(&'static str, Vec<u8>, Check)> {
    let two_blocks = [new_block(1, &[10]), new_block(1, &[10]), vec![0]].concat();
    vec![
        ("unknown-chunker.recipe", crafted(&[(5, 9)], &[0], 0), |e| {
            fault(e) == Some(&Fault::UnknownChunker(9))
        }),
        (
            "unknown-object-version.recipe",
            crafted(&[(6, 2)], &[0], 0),
            |e| fault(e) == Some(&Fault::UnknownObjectVersion(2)),
        ),
        (
            "unknown-source-format.recipe",
            crafted(&[(7, 9)], &[0], 0),
            |e| fault(e) == Some(&Fault::UnknownSourceFormat(9)),
        ),
        // min (bytes 8..12) raised above avg
        (
            "bad-chunker-params.recipe",
            crafted(&[(10, 1)], &[0], 0),
            |e| matches!(fault(e), Some(Fault::ChunkerParams(_))),
        ),
        (
            "overlong-number.recipe",
            crafted(&[], &[1, 0x85, 0x00, 0], 5),
            |e| fault(e) == Some(&Fault::OverlongNumber),
        ),
        (
            "number-too-large.recipe",
            crafted(
                &[],
                &[
                    1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0,
                ],
                0,
            ),
            |e| fault(e) == Some(&Fault::NumberTooLarge),
        ),
        ("empty-hole.recipe", crafted(&[], &[1, 0, 0], 0), |e| {
            fault(e) == Some(&Fault::EmptyHole)
        }),
        (
            "adjacent-holes.recipe",
            crafted(&[], &[1, 5, 1, 5, 0], 10),
            |e| fault(e) == Some(&Fault::AdjacentHoles),
        ),
        (
            "empty-block.recipe",
            crafted(&[], &[new_block(1, &[0]), vec![0]].concat(), 0),
            |e| matches!(fault(e), Some(Fault::BlockLength { len: 0, .. })),
        ),
        // 65537 bytes: one more than the vector's chunker max (64 KiB)
        (
            "block-too-long.recipe",
            crafted(
                &[],
                &[new_block(1, &[0x81, 0x80, 0x04]), vec![0]].concat(),
                65537,
            ),
            |e| matches!(fault(e), Some(Fault::BlockLength { len: 65537, .. })),
        ),
        ("repeated-key.recipe", crafted(&[], &two_blocks, 20), |e| {
            fault(e) == Some(&Fault::RepeatedKey)
        }),
        ("unknown-block.recipe", crafted(&[], &[3, 0], 0), |e| {
            fault(e) == Some(&Fault::UnknownBlock(0))
        }),
        ("size-mismatch.recipe", crafted(&[], &[1, 5, 0], 6), |e| {
            fault(e)
                == Some(&Fault::SizeMismatch {
                    extents: 5,
                    logical: 6,
                })
        }),
    ]
}

#[test]
fn corrupt_recipe_fixtures() {
    for (name, bytes, check) in file_cases().into_iter().chain(crafted_cases()) {
        let path = dir().join(name);
        if bless() {
            std::fs::write(&path, &bytes).unwrap();
        }
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{name} changed");
        let err = Recipe::open(&path).unwrap_err();
        assert!(check(&err), "{name}: unexpected {err:?}");
    }
}

/// The version 1 fixtures from the first format, kept as they were written.
#[test]
fn corrupt_v1_fixtures() {
    let read = |name: &str| Recipe::open(&dir().join(name)).unwrap_err();
    assert!(matches!(
        read("truncated.recipe"),
        RecipeError::Truncated(_)
    ));
    assert!(matches!(
        read("flipped-bit.recipe"),
        RecipeError::ChecksumMismatch | RecipeError::Malformed { .. }
    ));
    assert!(matches!(read("not-a-recipe.recipe"), RecipeError::BadMagic));
    assert_eq!(
        fault(&read("trailing-bytes.recipe")),
        Some(&Fault::TrailingBytes)
    );
}
