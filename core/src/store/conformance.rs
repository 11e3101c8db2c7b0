//! The one suite every store runs (restic's `internal/backend/test` idea): the memory store,
//! the embedded store, HTTP through the server's router, and any future backend must answer
//! the same way. Each check panics with a message naming the store and what it got wrong,
//! so it is meant for tests: call [`run_all`] from a `#[test]` with a fresh store.
//!
//! Blocks are made fresh for every check (unique plaintext per process and call), so the
//! suite also runs against a store that already holds data.

use super::{BlockStore, StoreError};
use crate::codec::{Convergence, EncodedBlock, Encoder};
use crate::id::BlockId;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs every check against `store`.
pub fn run_all(store: &dyn BlockStore) {
    missing_keeps_order_and_duplicates(store);
    get_keeps_order_and_duplicates(store);
    get_of_an_absent_block_is_not_found(store);
    put_is_idempotent(store);
    put_refuses_an_object_that_is_not_its_id(store);
    register_refuses_missing_blocks(store);
    stats_count_new_blocks(store);
    sealed_recipes_round_trip(store);
    forget_then_gc_frees_only_that_images_blocks(store);
    a_second_push_of_a_name_adds_a_version(store);
}

/// Registers through [`super::WriteStore::register_image`]; the reference of what it made
/// (`NAME@V`, or `NAME` from a store without versions).
fn register_ref(store: &dyn BlockStore, name: &str, logical: u64, ids: &[BlockId]) -> String {
    let reg = store
        .register_image(&crate::report::Registration {
            name,
            logical_bytes: logical,
            zero_bytes: 0,
            ids,
            image_hash: None,
        })
        .unwrap_or_else(|e| panic!("{}: register {name}: {e}", store.describe()));
    if reg.version == 0 {
        name.to_string()
    } else {
        format!("{name}@{}", reg.version)
    }
}

/// A second registration of a name is a new version beside the first, never a
/// replacement: both are listed, and gc keeps the blocks of both.
pub fn a_second_push_of_a_name_adds_a_version(store: &dyn BlockStore) {
    let b = fresh_blocks(2);
    put_all(store, &b);
    let name = format!("conformance-versions-{}", b[0].id);
    let first = register_ref(store, &name, 1 << 20, &[b[0].id]);
    let second = register_ref(store, &name, 1 << 20, &[b[1].id]);
    if first == name {
        return; // a store without versions (the memory store)
    }
    assert_eq!(
        (first.as_str(), second.as_str()),
        (&*format!("{name}@1"), &*format!("{name}@2"))
    );
    let listed: Vec<u64> = store
        .images()
        .expect("images")
        .into_iter()
        .filter(|i| i.name == name)
        .map(|i| i.version)
        .collect();
    assert_eq!(listed, vec![1, 2], "{}", store.describe());
    let opts = super::GcOptions {
        grace: std::time::Duration::ZERO,
        dry_run: false,
    };
    if offered(store, "gc", store.gc(&opts)).is_some() {
        let ids = [b[0].id, b[1].id];
        assert!(
            store.missing(&ids).expect("missing").is_empty(),
            "{}: gc freed a block of an earlier version",
            store.describe()
        );
    }
}

/// Whether an admin call is offered: `Some(v)`, or `None` for a typed refusal — the store
/// does not offer it, or not to this caller's role (a write token asking to forget).
fn offered<T>(store: &dyn BlockStore, what: &str, r: Result<T, StoreError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(StoreError::Unsupported { .. } | StoreError::Unauthorized { .. }) => None,
        Err(e) => panic!("{}: {what} failed: {e}", store.describe()),
    }
}

/// A sealed recipe is kept for a registered image and handed back byte for byte; none is
/// kept for a name never given one.
pub fn sealed_recipes_round_trip(store: &dyn BlockStore) {
    let b = fresh_blocks(1);
    put_all(store, &b);
    let name = format!("conformance-sealed-{}", b[0].id);
    let version = register_ref(store, &name, 4096, &[b[0].id]);
    let sealed = format!("opaque sealed bytes of {name}").into_bytes();
    if offered(
        store,
        "put_sealed_recipe",
        store.put_sealed_recipe(&version, &sealed),
    )
    .is_none()
    {
        return;
    }
    let got = offered(
        store,
        "get_sealed_recipe",
        store.get_sealed_recipe(&version),
    );
    assert_eq!(got, Some(Some(sealed.clone())), "{}", store.describe());
    // the same bytes again are fine; other bytes never replace a kept sealed recipe
    store
        .put_sealed_recipe(&version, &sealed)
        .unwrap_or_else(|e| panic!("{}: idempotent put refused: {e}", store.describe()));
    let replaced = store.put_sealed_recipe(&version, b"junk from another token");
    assert!(
        replaced.is_err(),
        "{}: a sealed recipe was replaced",
        store.describe()
    );
    let got = store.get_sealed_recipe(&version).expect("get");
    assert_eq!(got, Some(sealed), "{}", store.describe());
    let none = store.get_sealed_recipe(&format!("{name}-never@1"));
    assert!(matches!(none, Ok(None)), "{}: {none:?}", store.describe());
}

/// Forgetting an image and collecting with no grace frees exactly the blocks only it used;
/// a block another image shares stays, and both answers agree with `missing`.
pub fn forget_then_gc_frees_only_that_images_blocks(store: &dyn BlockStore) {
    let b = fresh_blocks(3);
    put_all(store, &b);
    let (gone, kept) = (
        format!("conformance-forget-{}", b[0].id),
        format!("conformance-keep-{}", b[0].id),
    );
    let gone_ref = register_ref(store, &gone, 1 << 20, &[b[0].id, b[1].id]);
    register_ref(store, &kept, 1 << 20, &[b[1].id]);
    let Some(report) = offered(
        store,
        "forget",
        store.forget(&[gone.clone(), gone.clone() + "?"]),
    ) else {
        return;
    };
    assert_eq!(report.forgotten, vec![gone_ref], "{}", store.describe());
    assert_eq!(
        report.unknown,
        vec![gone.clone() + "?"],
        "{}",
        store.describe()
    );
    let listed = store.images().expect("images");
    assert!(
        !listed.iter().any(|i| i.name == gone),
        "{}",
        store.describe()
    );
    let opts = super::GcOptions {
        grace: std::time::Duration::ZERO,
        dry_run: false,
    };
    if offered(store, "gc", store.gc(&opts)).is_none() {
        return;
    }
    let ids = [b[0].id, b[1].id, b[2].id];
    assert_eq!(
        store.missing(&ids).expect("missing"),
        vec![b[0].id, b[2].id],
        "{}: gc must free the forgotten image's own block and the unreferenced one, nothing else",
        store.describe()
    );
}

/// `n` fresh, valid blocks no other call of this process made.
pub fn fresh_blocks(n: usize) -> Vec<EncodedBlock> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let salt = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut enc = Encoder::new();
    (0..n)
        .map(|_| {
            let k = NEXT.fetch_add(1, Ordering::Relaxed);
            let plain = format!("conformance block {} {salt} {k} ", std::process::id()).repeat(40);
            enc.encode(&Convergence::public(), plain.as_bytes())
        })
        .collect()
}

fn put_all(store: &dyn BlockStore, blocks: &[EncodedBlock]) {
    let items: Vec<(BlockId, &[u8])> = blocks.iter().map(|b| (b.id, &b.object[..])).collect();
    if let Err(e) = store.put(&items) {
        panic!("{}: put of valid blocks failed: {e}", store.describe());
    }
}

/// `missing` answers in the order asked and keeps duplicates.
pub fn missing_keeps_order_and_duplicates(store: &dyn BlockStore) {
    let b = fresh_blocks(4);
    put_all(store, &b[1..2]);
    let ask = [b[3].id, b[1].id, b[0].id, b[3].id, b[2].id];
    let got = store.missing(&ask).expect("missing");
    let want = vec![b[3].id, b[0].id, b[3].id, b[2].id];
    assert_eq!(
        got,
        want,
        "{}: missing lost order or duplicates",
        store.describe()
    );
    assert!(
        store.has(&b[1].id).expect("has"),
        "{}: has",
        store.describe()
    );
    assert!(store.missing(&[]).expect("empty query").is_empty());
}

/// `get` answers in the order asked, duplicates included, with the exact bytes.
pub fn get_keeps_order_and_duplicates(store: &dyn BlockStore) {
    let b = fresh_blocks(3);
    put_all(store, &b);
    let got = store
        .get(&[b[2].id, b[0].id, b[2].id, b[1].id])
        .expect("get");
    let want = vec![&b[2].object, &b[0].object, &b[2].object, &b[1].object];
    assert!(
        got.iter().eq(want.into_iter()),
        "{}: get returned other bytes or another order",
        store.describe()
    );
    assert!(store.get(&[]).expect("empty get").is_empty());
}

/// Asking for an absent block is `NotFound` naming that block, even after present ones.
pub fn get_of_an_absent_block_is_not_found(store: &dyn BlockStore) {
    let b = fresh_blocks(2);
    put_all(store, &b[..1]);
    match store.get(&[b[0].id, b[1].id]) {
        Err(StoreError::NotFound(id)) => assert_eq!(id, b[1].id, "{}", store.describe()),
        other => panic!("{}: expected NotFound, got {other:?}", store.describe()),
    }
}

/// Uploading held blocks again succeeds and counts them as existing.
pub fn put_is_idempotent(store: &dyn BlockStore) {
    let b = fresh_blocks(2);
    let items: Vec<(BlockId, &[u8])> = b.iter().map(|b| (b.id, &b.object[..])).collect();
    let first = store.put(&items).expect("first put");
    assert_eq!(
        (first.stored, first.existed),
        (2, 0),
        "{}",
        store.describe()
    );
    let again = store.put(&items).expect("second put");
    assert_eq!(
        (again.stored, again.existed),
        (0, 2),
        "{}",
        store.describe()
    );
    let c = fresh_blocks(1);
    let twice = [(c[0].id, &c[0].object[..]), (c[0].id, &c[0].object[..])];
    let dup = store.put(&twice).expect("put with a duplicate");
    assert_eq!((dup.stored, dup.existed), (1, 1), "{}", store.describe());
}

/// An object that does not hash to its id is rejected, naming the id, and not stored.
pub fn put_refuses_an_object_that_is_not_its_id(store: &dyn BlockStore) {
    let b = fresh_blocks(2);
    match store.put(&[(b[0].id, &b[1].object[..])]) {
        Err(StoreError::Rejected { id, .. }) => assert_eq!(id, b[0].id, "{}", store.describe()),
        other => panic!("{}: expected Rejected, got {other:?}", store.describe()),
    }
    let absent = store.missing(&[b[0].id, b[1].id]).expect("missing");
    assert_eq!(
        absent.len(),
        2,
        "{}: a refused block was stored",
        store.describe()
    );
}

/// A manifest naming an absent block is refused with `NotFound` naming it; once every block
/// is there the same manifest registers.
pub fn register_refuses_missing_blocks(store: &dyn BlockStore) {
    let b = fresh_blocks(3);
    put_all(store, &b[..2]);
    let name = format!("conformance-{}", b[0].id);
    let ids = [b[0].id, b[2].id, b[1].id];
    match store.register(&name, 1 << 20, &ids) {
        Err(StoreError::NotFound(id)) => assert_eq!(id, b[2].id, "{}", store.describe()),
        other => panic!("{}: expected NotFound, got {other:?}", store.describe()),
    }
    put_all(store, &b[2..]);
    store.register(&name, 1 << 20, &ids).expect("register");
    match store.images() {
        Ok(list) => assert!(
            list.iter()
                .any(|i| i.name == name && i.logical_bytes == 1 << 20 && i.blocks == 3),
            "{}: registered image not listed",
            store.describe()
        ),
        Err(StoreError::Unsupported { .. }) => {}
        Err(e) => panic!("{}: images failed: {e}", store.describe()),
    }
}

/// New blocks show in the figures; known ones do not count twice.
pub fn stats_count_new_blocks(store: &dyn BlockStore) {
    let before = store.stats().expect("stats");
    let b = fresh_blocks(2);
    put_all(store, &b);
    put_all(store, &b);
    let after = store.stats().expect("stats");
    let bytes: u64 = b.iter().map(|b| b.object.len() as u64).sum();
    assert_eq!(after.blocks - before.blocks, 2, "{}", store.describe());
    assert_eq!(
        after.stored_bytes - before.stored_bytes,
        bytes,
        "{}",
        store.describe()
    );
}
