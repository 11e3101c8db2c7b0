//! Push then pull through the engines with an in-memory store: any bytes come back
//! identical, holes stay holes, and a corrupted stored block is caught, not written.

use bonsai_core::recipe::Extent;
use bonsai_core::store::mem::MemStore;
use bonsai_core::{AdminStore, ReadStore, WriteStore};
use bonsai_core::{
    pull, push, BlockStore, BytesDisk, ChunkerParams, Error, NoProgress, PullOptions, PushOptions,
    Recipe,
};
use bonsai_core::{BlockId, ErrorKind, StoreError};
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
    let report = push(
        &BytesDisk(image),
        &store,
        &recipe_path,
        &opts(avg),
        &NoProgress,
    )
    .unwrap();
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
    push(&BytesDisk(&image), &store, &rp, &opts(4096), &NoProgress).unwrap();
    let recipe = Recipe::open(&rp).unwrap();
    let victim = recipe.blocks[0].id;
    let mut obj = store.get(&[victim]).unwrap().remove(0);
    obj[30] ^= 1;
    store.corrupt(&victim, obj);
    let out = dir.path().join("out");
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert_eq!(err.kind(), bonsai_core::ErrorKind::Verification, "{err}");
    assert!(
        err.to_string()
            .contains("run the same pull again to resume"),
        "{err}"
    );
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
    push(
        &BytesDisk(&image),
        &store,
        &dir.path().join("a"),
        &o,
        &NoProgress,
    )
    .unwrap();
    let recipe = Recipe::open(&dir.path().join("a")).unwrap();
    let victim = recipe.blocks[0];
    cache.insert([(victim.key, bonsai_core::BlockId([7; 32]))]);
    let empty = MemStore::new();
    let err = push(
        &BytesDisk(&image),
        &empty,
        &dir.path().join("b"),
        &o,
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("wrong id"), "{err}");
    assert!(!dir.path().join("b").exists());
    let ok = push(
        &BytesDisk(&image),
        &empty,
        &dir.path().join("b"),
        &o,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(ok.unique_chunks, recipe.blocks.len() as u64);
    assert_eq!(
        Recipe::open(&dir.path().join("b")).unwrap().blocks,
        recipe.blocks
    );
}

/// Every block verifies but the whole image does not (here: a recipe whose image hash was
/// rewritten): the pull fails, OUT is not created and the partial file is removed. A v2
/// recipe with a rewritten hash is refused before anything is written.
#[test]
fn whole_image_mismatch_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image: Vec<u8> = (0..500_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let rp = dir.path().join("r");
    push(&BytesDisk(&image), &store, &rp, &opts(4096), &NoProgress).unwrap();
    let mut recipe = Recipe::open(&rp).unwrap();
    recipe.image_hash = bonsai_core::ImageHash([3; 32]);
    let out = dir.path().join("out");
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Recipe { .. }), "{err}");
    recipe.version = 1;
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::ImageMismatch { .. }), "{err}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "only the recipe remains"
    );
}

/// Counts (and can fail) calls to a store, to see what a pull did before refusing.
struct Counting {
    inner: MemStore,
    gets: std::sync::atomic::AtomicUsize,
    missing: std::sync::atomic::AtomicUsize,
    /// `get` fails once this many calls have succeeded.
    fail_after: Option<usize>,
}

impl Counting {
    fn new(inner: MemStore) -> Self {
        Counting {
            inner,
            gets: Default::default(),
            missing: Default::default(),
            fail_after: None,
        }
    }
    fn gets(&self) -> usize {
        self.gets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl ReadStore for Counting {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        self.missing
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.missing(ids)
    }
    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let n = self.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail_after.is_some_and(|k| n >= k) {
            return Err(StoreError::Unreachable {
                store: "test".into(),
                reason: "connection reset".into(),
            });
        }
        self.inner.get(ids)
    }
    fn stats(&self) -> Result<bonsai_core::StoreStats, StoreError> {
        self.inner.stats()
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

impl WriteStore for Counting {
    fn put(&self, b: &[(BlockId, &[u8])]) -> Result<bonsai_core::store::PutOutcome, StoreError> {
        self.inner.put(b)
    }
    fn register(&self, name: &str, l: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        self.inner.register(name, l, ids)
    }
}

impl AdminStore for Counting {}

/// Noise with zero runs: data, holes and repeats.
fn holey_image(len: usize) -> Vec<u8> {
    let mut x = 99u64;
    let mut v: Vec<u8> = (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 59) as u8
        })
        .collect();
    v[len / 4..len / 2].fill(0);
    v[len * 3 / 4..len * 3 / 4 + 50_000].fill(0);
    v
}

fn pushed(dir: &std::path::Path, image: &[u8], store: &dyn BlockStore) -> Recipe {
    let rp = dir.join("r");
    push(&BytesDisk(image), store, &rp, &opts(4096), &NoProgress).unwrap();
    Recipe::open(&rp).unwrap()
}

/// Issue 11: a crafted recipe declares a block shorter than its content, followed by a
/// hole; the image hash is that of the image it describes. The spilled bytes must not
/// reach OUT, and nothing says verified.
#[test]
fn crafted_short_block_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image = holey_image(300_000);
    let honest = pushed(dir.path(), &image, &store);
    let b = honest.blocks[0];
    let short = b.len - 100;
    let mut described = image[..short as usize].to_vec();
    described.extend([0u8; 100]);
    for version in [1u8, 2] {
        let mut crafted = Recipe {
            version,
            header: honest.header,
            logical_size: b.len as u64,
            image_hash: bonsai_core::ImageHash(*blake3::hash(&described).as_bytes()),
            blocks: vec![bonsai_core::recipe::BlockRef { len: short, ..b }],
            extents: vec![Extent::Block { index: 0 }, Extent::Hole { len: 100 }],
        };
        if version == 2 {
            crafted.image_hash = crafted.extents_hash();
        }
        let out = dir.path().join("out");
        let err = pull(&crafted, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
        assert!(matches!(err, Error::Noted { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::Verification, "{err}");
        assert!(err.to_string().contains("recipe says"), "{err}");
        assert!(!out.exists());
    }
}

/// Issue 11: a leftover partial file with bytes planted inside the image's holes (and a
/// wrong block) is resumed, but only verified bytes survive: OUT is exactly the image.
#[test]
fn tampered_partial_file_cannot_reach_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::new(MemStore::new());
    let image = holey_image(400_000);
    let recipe = pushed(dir.path(), &image, &store);
    let out = dir.path().join("out");
    let mut planted = image.clone();
    planted[image.len() / 3] = 0x55; // inside the first zero run
    planted[10] ^= 0xff; // inside the first block
    std::fs::write(bonsai_core::pull::partial_path(&out, &recipe), &planted).unwrap();
    let r = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap();
    assert!(r.verified);
    assert!(r.resumed_bytes > 0 && r.fetched_blocks >= 1, "{r:?}");
    assert_eq!(std::fs::read(&out).unwrap(), image);
}

/// In place, old bytes in a hole are found by the read-back and fail the pull, naming
/// the offset; with discard_holes the same pull succeeds.
#[test]
fn in_place_hole_with_old_data_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image = holey_image(400_000);
    let recipe = pushed(dir.path(), &image, &store);
    let out = dir.path().join("disk");
    let mut old = image.clone();
    let planted = image.len() / 3;
    old[planted] = 1;
    std::fs::write(&out, &old).unwrap();
    let mut o = PullOptions {
        in_place: true,
        ..Default::default()
    };
    let err = pull(&recipe, &store, &out, &o, &NoProgress).unwrap_err();
    assert!(
        matches!(err, Error::HoleNotZero { offset, .. } if offset == planted as u64),
        "{err}"
    );
    assert!(err.to_string().contains("--discard-holes"), "{err}");
    o.discard_holes = true;
    assert!(
        pull(&recipe, &store, &out, &o, &NoProgress)
            .unwrap()
            .verified
    );
    assert_eq!(std::fs::read(&out).unwrap(), image);
}

/// A symlink planted at the predictable partial-file name is refused, never followed.
#[test]
fn symlink_at_partial_name_is_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let store = MemStore::new();
    let image = holey_image(200_000);
    let recipe = pushed(dir.path(), &image, &store);
    let out = dir.path().join("out");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, bonsai_core::pull::partial_path(&out, &recipe)).unwrap();
    let err = pull(&recipe, &store, &out, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!out.exists());
}

/// OUT a directory, or an existing file without force: refused before any fetch.
#[test]
fn bad_out_refused_before_any_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::new(MemStore::new());
    let image = holey_image(200_000);
    let recipe = pushed(dir.path(), &image, &store);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    let err = pull(&recipe, &store, &sub, &PullOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::IsDirectory { .. }), "{err}");
    let existing = dir.path().join("existing");
    std::fs::write(&existing, b"keep me").unwrap();
    let err = pull(
        &recipe,
        &store,
        &existing,
        &PullOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Usage);
    assert_eq!(store.gets(), 0, "nothing fetched");
    assert_eq!(std::fs::read(&existing).unwrap(), b"keep me");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        3,
        "no partial file left"
    );
    let forced = PullOptions {
        force: true,
        ..Default::default()
    };
    assert!(
        pull(&recipe, &store, &existing, &forced, &NoProgress)
            .unwrap()
            .verified
    );
    assert_eq!(std::fs::read(&existing).unwrap(), image);
}

/// An existing recipe is refused before the image is read or the store asked.
#[test]
fn existing_recipe_refused_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let store = Counting::new(MemStore::new());
    let rp = dir.path().join("r");
    std::fs::write(&rp, b"old recipe").unwrap();
    let image = holey_image(200_000);
    let err = push(&BytesDisk(&image), &store, &rp, &opts(4096), &NoProgress).unwrap_err();
    assert!(matches!(err, Error::Exists { .. }), "{err}");
    assert_eq!(store.missing.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(std::fs::read(&rp).unwrap(), b"old recipe");
    let mut o = opts(4096);
    o.force = true;
    push(&BytesDisk(&image), &store, &rp, &o, &NoProgress).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&rp).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "recipe is private: {mode:o}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

/// A failed fetch keeps the partial file, says so, and a re-run resumes from it.
#[test]
fn interrupted_pull_says_where_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let image = holey_image(3_000_000);
    let mem = MemStore::new();
    let recipe = pushed(dir.path(), &image, &mem);
    let mut store = Counting::new(mem);
    store.fail_after = Some(0);
    let out = dir.path().join("out");
    let o = PullOptions {
        network_threads: 1,
        ..Default::default()
    };
    let err = pull(&recipe, &store, &out, &o, &NoProgress).unwrap_err();
    let partial = bonsai_core::pull::partial_path(&out, &recipe);
    assert_eq!(err.kind(), ErrorKind::Network, "{err}");
    assert!(
        err.to_string().contains(&partial.display().to_string()),
        "{err}"
    );
    assert!(partial.exists() && !out.exists());
    store.fail_after = None;
    let r = pull(&recipe, &store, &out, &o, &NoProgress).unwrap();
    assert!(r.verified);
    assert_eq!(std::fs::read(&out).unwrap(), image);
    assert!(!partial.exists());
}

/// Issue 11: a cache entry pointing a key at another block the store holds must not
/// yield an unpullable recipe: such an entry fails its tag and is treated as a miss.
#[test]
fn swapped_cache_entry_cannot_reach_a_recipe() {
    use bonsai_core::cache::KeyCache;
    let dir = tempfile::tempdir().unwrap();
    let cache_path = dir.path().join("keys.sqlite");
    let cache = std::sync::Arc::new(KeyCache::open(&cache_path).unwrap());
    let image = holey_image(300_000);
    let mut o = opts(4096);
    o.cache = Some(cache.clone());
    let store = MemStore::new();
    push(
        &BytesDisk(&image),
        &store,
        &dir.path().join("a"),
        &o,
        &NoProgress,
    )
    .unwrap();
    let first = Recipe::open(&dir.path().join("a")).unwrap();
    let (b0, b1) = (first.blocks[0], first.blocks[1]);
    let db = rusqlite::Connection::open(&cache_path).unwrap();
    let n = db
        .execute(
            "UPDATE entries SET id = ?1 WHERE key = ?2",
            rusqlite::params![&b1.id.as_bytes()[..], &b0.key.as_bytes()[..]],
        )
        .unwrap();
    assert_eq!(n, 1);
    let report = push(
        &BytesDisk(&image),
        &store,
        &dir.path().join("b"),
        &o,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.new_chunks, 0);
    let second = Recipe::open(&dir.path().join("b")).unwrap();
    assert_eq!(second.blocks, first.blocks);
    let out = dir.path().join("out");
    assert!(
        pull(&second, &store, &out, &PullOptions::default(), &NoProgress)
            .unwrap()
            .verified
    );
}
