//! Push then pull through the engines with an in-memory store: any bytes come back
//! identical, holes stay holes, and a corrupted stored block is caught, not written.

use bonsai_core::store::mem::MemStore;
use bonsai_core::ReadStore;
use bonsai_core::{pull, push, ChunkerParams, Error, NoProgress, PullOptions, PushOptions, Recipe};
use proptest::prelude::*;

fn opts(avg: u32) -> PushOptions {
    PushOptions {
        chunker: ChunkerParams::fastcdc(avg),
        ..Default::default()
    }
}

fn round_trip(image: &[u8], avg: u32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let recipe_path = dir.path().join("r");
    let report = push(image, &store, &recipe_path, &opts(avg), &NoProgress).unwrap();
    assert_eq!(report.logical_bytes, image.len() as u64);
    let recipe = Recipe::open(&recipe_path).unwrap();
    let out = dir.path().join("out");
    let pulled = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap();
    assert!(pulled.verified);
    std::fs::read(out).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn any_image_round_trips(
        parts in proptest::collection::vec((any::<u8>(), 1usize..40_000, any::<bool>()), 0..12),
        avg in prop::sample::select(vec![1024u32, 4096]),
    ) {
        // runs of a repeated byte or of zeros, so dedup and holes both occur
        let mut image = Vec::new();
        for (b, len, zero) in parts {
            let byte = if zero { 0 } else { b };
            image.extend((0..len).map(|i| byte ^ (i as u8 & if zero { 0 } else { 0x0f })));
        }
        prop_assert_eq!(round_trip(&image, avg), image);
    }
}

#[test]
fn corrupted_block_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let rp = dir.path().join("r");
    push(&image[..], &store, &rp, &opts(4096), &NoProgress).unwrap();
    let recipe = Recipe::open(&rp).unwrap();
    let victim = recipe.blocks[0].id;
    let mut obj = store.get(&[victim]).unwrap().remove(0);
    obj[30] ^= 1;
    store.corrupt(&victim, obj);
    let out = dir.path().join("out");
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Codec(_)), "{err}");
    assert!(!out.exists());
}

/// A wrong cache entry cannot reach a recipe: the block is re-encoded when the store lacks
/// it, the mismatch fails the push and removes the entry, and the next push succeeds.
#[test]
fn wrong_cache_entry_fails_the_push_then_heals() {
    use bonsai_core::cache::KeyCache;
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(KeyCache::open(&dir.path().join("keys.sqlite")).unwrap());
    let image: Vec<u8> = (0..200_000u32).map(|i| (i * 13 % 241) as u8).collect();
    let mut o = opts(4096);
    o.cache = Some(cache.clone());
    let store = MemStore::new();
    push(&image[..], &store, &dir.path().join("a"), &o, &NoProgress).unwrap();
    let recipe = Recipe::open(&dir.path().join("a")).unwrap();
    let victim = recipe.blocks[0];
    cache.insert([(victim.key, bonsai_core::BlockId([7; 32]))]);
    let empty = MemStore::new();
    let err = push(&image[..], &empty, &dir.path().join("b"), &o, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("wrong id"), "{err}");
    assert!(!dir.path().join("b").exists());
    let ok = push(&image[..], &empty, &dir.path().join("b"), &o, &NoProgress).unwrap();
    assert_eq!(ok.unique_chunks, recipe.blocks.len() as u64);
    assert_eq!(
        Recipe::open(&dir.path().join("b")).unwrap().blocks,
        recipe.blocks
    );
}

/// Every block verifies but the whole image does not (here: a recipe whose image hash was
/// rewritten): the pull fails, OUT is not created and the partial file is removed.
#[test]
fn whole_image_mismatch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image: Vec<u8> = (0..500_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let rp = dir.path().join("r");
    push(&image[..], &store, &rp, &opts(4096), &NoProgress).unwrap();
    let mut recipe = Recipe::open(&rp).unwrap();
    recipe.image_hash = bonsai_core::ImageHash([3; 32]);
    let out = dir.path().join("out");
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::ImageMismatch { .. }), "{err}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the recipe remains"
    );
}
