//! The object-storage backend against a real S3-compatible server (SeaweedFS `weed mini` on
//! loopback, see `support/weed.rs`): create-if-absent, start-up errors, several servers
//! over one bucket, an empty local index, the object store dying mid-push.

mod support;

use bonsai_blockstore::{
    app, rebuild_index, AppState, Bucket, Created, Limits, S3Backend, S3Error, S3Location,
    S3Settings, Store,
};
use bonsai_core::store::conformance::run_all;
use bonsai_core::store::http::HttpStore;
use bonsai_core::{BlockId, Convergence, Encoder};
use std::sync::Arc;
use support::weed::{Weed, BUCKET};

fn location(prefix: &str) -> S3Location {
    S3Location::parse(&format!("s3://{BUCKET}/{prefix}")).unwrap()
}

fn block(n: u64) -> bonsai_core::codec::EncodedBlock {
    Encoder::new().encode(
        &Convergence::public(),
        format!("block number {n}").as_bytes(),
    )
}

#[test]
fn bucket_creates_if_absent_lists_and_deletes() {
    let weed = Weed::start();
    let b = Bucket::open(&location("objects"), &weed.settings()).unwrap();
    let blocks: Vec<_> = (0..40).map(block).collect();
    let items: Vec<(BlockId, &[u8])> = blocks.iter().map(|b| (b.id, &b.object[..])).collect();
    assert!(b
        .put_blocks(&items)
        .unwrap()
        .iter()
        .all(|c| *c == Created::New));
    // the second upload of the same ids is refused by `If-None-Match: *`
    assert!(b
        .put_blocks(&items[..5])
        .unwrap()
        .iter()
        .all(|c| *c == Created::Existed));
    let absent = block(1000);
    let ids = [blocks[3].id, absent.id];
    assert_eq!(
        b.stat_blocks(&ids).unwrap(),
        vec![Some(blocks[3].object.len() as u64), None]
    );
    assert_eq!(
        b.get_blocks(&ids).unwrap(),
        vec![Some(blocks[3].object.clone()), None]
    );
    let mut listed = Vec::new();
    let n = b
        .list_blocks(|batch| {
            listed.extend(batch);
            Ok::<_, S3Error>(())
        })
        .unwrap();
    assert_eq!(n, 40);
    listed.sort();
    let mut want: Vec<_> = blocks
        .iter()
        .map(|b| (b.id, b.object.len() as u64))
        .collect();
    want.sort();
    assert_eq!(listed, want);
    b.delete_blocks(&[blocks[0].id, absent.id]).unwrap();
    assert_eq!(b.stat_blocks(&[blocks[0].id]).unwrap(), vec![None]);
    b.put_manifest("vm one/ü", b"manifest".to_vec()).unwrap();
    assert_eq!(b.list_manifests().unwrap(), vec!["vm one/ü".to_string()]);
    assert_eq!(b.get_manifest("vm one/ü").unwrap().unwrap(), b"manifest");
    b.delete_manifest("vm one/ü").unwrap();
    assert_eq!(b.get_manifest("vm one/ü").unwrap(), None);
}

fn one_line(e: &S3Error) -> String {
    let s = e.to_string();
    assert!(!s.contains('\n'), "not one line: {s}");
    s
}

#[test]
fn start_up_errors_are_one_line() {
    let weed = Weed::start();
    let mut wrong = weed.settings();
    wrong.keys.as_mut().unwrap().secret_access_key = "not-the-secret".into();
    let e = Bucket::open(&location("p"), &wrong)
        .err()
        .expect("wrong secret refused");
    assert!(matches!(e, S3Error::Denied { .. }), "{e}");
    assert!(one_line(&e).contains("access denied"));

    let nobucket = S3Location::parse("s3://no-such-bucket-here/p").unwrap();
    let e = Bucket::open(&nobucket, &weed.settings())
        .err()
        .expect("no bucket");
    assert!(one_line(&e).contains("no-such-bucket-here"), "{e}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener); // nothing listens there now
    let unreachable = S3Settings {
        endpoint: Some(dead.clone()),
        ..weed.settings()
    };
    let t = std::time::Instant::now();
    let e = Bucket::open(&location("p"), &unreachable)
        .err()
        .expect("unreachable");
    assert!(matches!(e, S3Error::Unreachable { .. }), "{e}");
    assert!(one_line(&e).contains(&dead), "{e}");
    assert!(
        t.elapsed().as_secs() < 60,
        "start-up error took {:?}",
        t.elapsed()
    );
}

/// The router over a store on `backend`, served on 127.0.0.1:0 from its own thread.
struct InProcess {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    fn start(store: Store) -> InProcess {
        let state = AppState::new(Arc::new(store), Limits::default());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app(state))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        InProcess {
            url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

fn s3_store(weed: &Weed, prefix: &str, index_dir: &std::path::Path) -> Store {
    let backend = S3Backend::open(&location(prefix), &weed.settings(), index_dir).unwrap();
    Store::with_backend(index_dir, Arc::new(backend)).unwrap()
}

#[test]
fn s3_backend_passes_the_conformance_suite() {
    let weed = Weed::start();
    let dir = tempfile::tempdir().unwrap();
    let server = InProcess::start(s3_store(&weed, "conformance", dir.path()));
    run_all(&HttpStore::new(&server.url, None).unwrap());
}

#[test]
fn a_second_store_over_the_bucket_sees_what_the_first_stored() {
    let weed = Weed::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "pair", da.path());
    let b = s3_store(&weed, "pair", db.path());
    let blocks: Vec<_> = (0..50).map(|n| block(5000 + n)).collect();
    let items: Vec<(BlockId, &[u8])> = blocks.iter().map(|b| (b.id, &b.object[..])).collect();
    assert_eq!(a.put_many(&items).unwrap().stored, 50);
    let ids: Vec<BlockId> = blocks.iter().map(|b| b.id).collect();
    // b's index is empty, yet nothing is missing, fetches work and a manifest registers
    assert_eq!(b.missing(&ids).unwrap(), Vec::<BlockId>::new());
    let got = b.get_many(&ids).unwrap();
    assert!(got
        .iter()
        .zip(&blocks)
        .all(|(g, b)| g.as_deref() == Some(&b.object[..])));
    assert_eq!(b.register("from-a", 1234, &ids).unwrap(), None);
    // uploading them again through b stores nothing new
    let again = b.put_many(&items).unwrap();
    assert_eq!((again.stored, again.existed), (0, 50));
    // a block that is truly absent stays missing for both
    let absent = block(9999);
    assert_eq!(a.missing(&[absent.id]).unwrap(), vec![absent.id]);
    assert_eq!(b.missing(&[absent.id]).unwrap(), vec![absent.id]);
    // a third store with an empty index is rebuilt from the listing, manifests included
    let dc = tempfile::tempdir().unwrap();
    let c = s3_store(&weed, "pair", dc.path());
    let r = rebuild_index(&c).unwrap();
    assert_eq!((r.blocks, r.images, r.skipped_images), (50, 1, 0));
    let st = c.stats().unwrap();
    assert_eq!((st.blocks, st.images, st.logical_bytes), (50, 1, 1234));
    // a sealed recipe kept through b lives in the bucket: c, with its own index, has it;
    // a's index never saw the registration, yet a accepts it (the manifest is in the bucket)
    b.put_sealed_recipe("from-a", 1, "local", b"sealed bytes")
        .unwrap();
    assert_eq!(
        c.sealed_recipe("from-a", 1).unwrap().as_deref(),
        Some(&b"sealed bytes"[..])
    );
    // the same bytes again through a are accepted; other bytes never replace them
    a.put_sealed_recipe("from-a", 1, "local", b"sealed bytes")
        .unwrap();
    assert!(a.put_sealed_recipe("from-a", 1, "local", b"junk").is_err());
    assert!(c.image_infos().unwrap()[0].sealed_recipe);
    assert!(a.put_sealed_recipe("nobody", 1, "local", b"x").is_err());
    // gc through a server whose index never saw the registration keeps every block of it
    let r = c.gc(&bonsai_core::store::GcOptions::default()).unwrap();
    assert_eq!(r.blocks_freed, 0, "{r:?}");
    assert_eq!(b.missing(&ids).unwrap(), Vec::<BlockId>::new());
    // forgetting through c removes the manifest and the sealed recipe from the bucket
    let every = bonsai_core::name::VersionRef::parse("from-a").unwrap();
    assert_eq!(c.forget(&every).unwrap().len(), 1);
    assert_eq!(a.sealed_recipe("from-a", 1).unwrap(), None);
    let dd = tempfile::tempdir().unwrap();
    let d = s3_store(&weed, "pair", dd.path());
    assert_eq!(rebuild_index(&d).unwrap().images, 0);
}

/// Wrong bytes planted in the bucket under a real block id (by anyone with access to the
/// bucket) never count as present: not when another server asks, not after a rebuild. A
/// push then uploads the block, and the upload overwrites the planted object.
#[test]
fn planted_objects_are_never_present_and_a_push_replaces_them() {
    let weed = Weed::start();
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = s3_store(&weed, "planted", da.path());
    let (good, planted, late) = (block(7001), block(7002), block(7003));
    a.put_many(&[(good.id, &good.object[..])]).unwrap();
    a.backend()
        .put_if_absent(&planted.id, b"not the block at all")
        .unwrap();
    // another server, index empty: the planted object is reported missing
    let b = s3_store(&weed, "planted", db.path());
    assert_eq!(b.missing(&[good.id, planted.id]).unwrap(), vec![planted.id]);
    // a rebuilt index marks what it lists unverified; the first "present" verifies it
    a.backend()
        .put_if_absent(&late.id, b"planted later")
        .unwrap();
    let c = s3_store(&weed, "planted", dc.path());
    let r = rebuild_index(&c).unwrap();
    assert_eq!(r.blocks, 3);
    assert_eq!(
        c.missing(&[good.id, planted.id, late.id]).unwrap(),
        vec![planted.id, late.id]
    );
    assert_eq!(
        c.stats().unwrap().blocks,
        1,
        "the planted objects left the index"
    );
    // the push's upload of the real block overwrites the planted bytes
    let out = b.put_many(&[(planted.id, &planted.object[..])]).unwrap();
    assert_eq!(out.stored, 1);
    assert_eq!(
        a.backend().get(&planted.id).unwrap().as_deref(),
        Some(&planted.object[..])
    );
    assert!(c.missing(&[planted.id]).unwrap().is_empty());
}

/// A server learns the packs another stored after its own first look (the listing that
/// starts after its watermark), for existence answers and downloads alike.
#[test]
fn packs_stored_later_by_another_server_are_found() {
    let weed = Weed::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "later", da.path());
    let b = s3_store(&weed, "later", db.path());
    let first = block(8001);
    a.put_many(&[(first.id, &first.object[..])]).unwrap();
    assert!(b.missing(&[first.id]).unwrap().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(600));
    let later: Vec<_> = (0..5).map(|n| block(8100 + n)).collect();
    let items: Vec<(BlockId, &[u8])> = later.iter().map(|b| (b.id, &b.object[..])).collect();
    a.put_many(&items).unwrap();
    let ids: Vec<BlockId> = later.iter().map(|b| b.id).collect();
    let got = b.get_many(&ids).unwrap();
    assert!(got.iter().all(Option::is_some), "{got:?}");
    assert!(b.missing(&ids).unwrap().is_empty());
}

fn grace(secs: u64) -> bonsai_core::store::GcOptions {
    bonsai_core::store::GcOptions {
        grace: std::time::Duration::from_secs(secs),
        dry_run: false,
    }
}

fn put(s: &Store, blocks: &[bonsai_core::codec::EncodedBlock]) {
    let items: Vec<(BlockId, &[u8])> = blocks.iter().map(|b| (b.id, &b.object[..])).collect();
    s.put_many(&items).unwrap();
}

fn ids(blocks: &[bonsai_core::codec::EncodedBlock]) -> Vec<BlockId> {
    blocks.iter().map(|b| b.id).collect()
}

/// gc through either server over one bucket frees what no image in the bucket names,
/// whoever registered what: an emptied pack is deleted, a mostly dead one rewritten, and
/// every registered image still reads through both servers.
#[test]
fn gc_through_either_server_frees_garbage_and_keeps_every_image() {
    let weed = Weed::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "gc", da.path());
    let b = s3_store(&weed, "gc", db.path());
    let kept: Vec<_> = (0..10).map(|n| block(100 + n)).collect();
    let mixed: Vec<_> = (0..10).map(|n| block(200 + n)).collect();
    let garbage: Vec<_> = (0..10).map(|n| block(300 + n)).collect();
    put(&a, &kept); // one pack, all live
    put(&b, &mixed); // one pack, 8 of 10 dead after the forget
    put(&a, &garbage); // one pack, never registered
    assert_eq!(a.register("kept", 1, &ids(&kept)).unwrap(), None);
    assert_eq!(b.register("mixed", 1, &ids(&mixed)).unwrap(), None);
    assert_eq!(b.register("two", 1, &ids(&mixed[..2])).unwrap(), None);
    // forgotten through a, registered through b: a learns of it from the bucket
    let mixed_ref = bonsai_core::name::VersionRef::parse("mixed").unwrap();
    assert_eq!(a.forget(&mixed_ref).unwrap().len(), 1);
    let names: Vec<String> = b
        .image_infos()
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["kept", "two"], "every server lists the same images");
    let r = b.gc(&grace(0)).unwrap();
    assert_eq!(r.blocks_freed, 18, "{r:?}");
    assert_eq!((r.packs_deleted, r.packs_rewritten), (1, 1), "{r:?}");
    assert!(r.bytes_freed > 0);
    // a learns of the sweep at its next look at the journal (at most a second apart)
    std::thread::sleep(std::time::Duration::from_millis(1100));
    for s in [&a, &b] {
        let got = s.get_many(&ids(&kept)).unwrap();
        assert!(got
            .iter()
            .zip(&kept)
            .all(|(g, k)| g.as_deref() == Some(&k.object[..])));
        let two = s.get_many(&ids(&mixed[..2])).unwrap();
        assert!(two.iter().all(Option::is_some));
        assert_eq!(
            s.missing(&ids(&garbage)).unwrap().len(),
            10,
            "collected for both"
        );
    }
    // the freed blocks come back with a push, and a second gc frees nothing more
    put(&a, &garbage);
    assert!(a.missing(&ids(&garbage)).unwrap().is_empty());
    assert!(b
        .get_many(&ids(&garbage))
        .unwrap()
        .iter()
        .all(Option::is_some));
    assert_eq!(a.register("back", 1, &ids(&garbage)).unwrap(), None);
    assert_eq!(a.gc(&grace(0)).unwrap().blocks_freed, 0);
    // the cost report: packs and their bytes as the map knows them, requests sent
    let o = a
        .stats()
        .unwrap()
        .object_store
        .expect("a bucket store reports its costs");
    assert_eq!(o.packs, 3, "{o:?}"); // kept, mixed rewritten with its two live blocks, garbage again
    let live: u64 = [&kept[..], &mixed[..2], &garbage[..]]
        .iter()
        .flat_map(|g| g.iter())
        .map(|b| b.object.len() as u64)
        .sum();
    assert!(o.live_bytes >= live && o.pack_bytes > o.live_bytes, "{o:?}");
    assert_eq!(o.overhead_bytes, o.pack_bytes - o.live_bytes);
    assert!(
        o.requests.put >= 3 && o.requests.list > 0 && o.written_bytes > 0,
        "{o:?}"
    );
    assert!(o.put_per_gib_written > 0.0);
}

/// A block a server called "present" while a gc run waited out its grace period is kept
/// by the sweep, run through the other server; one nobody asked about goes.
#[test]
fn a_present_answer_during_the_grace_period_is_honoured_by_the_other_server() {
    let weed = Weed::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "grace", da.path());
    let b = s3_store(&weed, "grace", db.path());
    let (asked, unasked) = (block(400), block(401));
    put(&a, std::slice::from_ref(&asked));
    put(&a, std::slice::from_ref(&unasked));
    let first = a.gc(&grace(1)).unwrap();
    assert_eq!(
        (first.marked_blocks, first.blocks_freed),
        (2, 0),
        "{first:?}"
    );
    // a push through b is told "present": b writes its confirmation to the bucket
    assert!(b.missing(&[asked.id]).unwrap().is_empty());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = a.gc(&grace(1)).unwrap();
    assert_eq!(second.blocks_freed, 1, "{second:?}");
    assert_eq!(b.register("late", 1, &[asked.id]).unwrap(), None);
    assert_eq!(
        b.register("later", 1, &[unasked.id]).unwrap(),
        Some(unasked.id)
    );
    assert!(a.get(&asked.id).unwrap().is_some());
}

/// A flipped byte inside a pack: `check --read-data` names the block, and the next
/// upload of it writes a good copy that every read then uses.
#[test]
fn a_flipped_byte_in_a_pack_is_found_and_a_push_heals_it() {
    let weed = Weed::start();
    let da = tempfile::tempdir().unwrap();
    let a = s3_store(&weed, "flip", da.path());
    let blocks: Vec<_> = (0..4).map(|n| block(500 + n)).collect();
    put(&a, &blocks);
    assert_eq!(a.register("img", 1, &ids(&blocks)).unwrap(), None);
    let bucket = a_bucket(&weed, "flip");
    let name = bucket.list_packs(None).unwrap()[0].0.clone();
    let key = format!("packs/{name}");
    let mut pack = bucket.read(&key).unwrap().unwrap();
    let entries = bonsai_core::store::pack::parse(&pack).unwrap();
    let victim = entries.iter().find(|e| e.id == blocks[2].id).unwrap();
    pack[victim.offset as usize + 5] ^= 0x40;
    bucket.remove(&key).unwrap();
    bucket.create(&key, pack).unwrap();
    let report = a
        .check(&bonsai_core::store::CheckOptions { read_data: true })
        .unwrap();
    assert_eq!(report.damaged, vec![blocks[2].id], "{report:?}");
    assert_eq!(a.missing(&ids(&blocks)).unwrap(), vec![blocks[2].id]);
    put(&a, &blocks[2..3]);
    assert_eq!(
        a.get(&blocks[2].id).unwrap().as_deref(),
        Some(&blocks[2].object[..])
    );
    let again = a
        .check(&bonsai_core::store::CheckOptions { read_data: true })
        .unwrap();
    assert!(again.damaged.is_empty(), "{again:?}");
}

fn a_bucket(weed: &Weed, prefix: &str) -> Bucket {
    Bucket::open(&location(prefix), &weed.settings()).unwrap()
}

/// A sweep cut short after its plan was written (its server or the bucket died): another
/// server neither says "present" for what the plan may delete nor sweeps over it, and the
/// same server's next gc resumes the plan and finishes it.
#[test]
fn a_sweep_cut_short_is_honoured_by_others_and_resumed_by_its_server() {
    let weed = Weed::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "cut", da.path());
    let b = s3_store(&weed, "cut", db.path());
    let kept: Vec<_> = (0..3).map(|n| block(600 + n)).collect();
    let garbage: Vec<_> = (0..3).map(|n| block(700 + n)).collect();
    put(&a, &kept);
    put(&a, &garbage);
    assert_eq!(a.register("kept", 1, &ids(&kept)).unwrap(), None);
    assert_eq!(a.gc(&grace(3600)).unwrap().marked_blocks, 3);
    // what a's sweep leaves when it dies right after writing its plan
    let server = std::fs::read_to_string(da.path().join("server-id")).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut plan = serde_json::to_vec(&serde_json::json!({
        "server": server.trim(), "at_ms": now, "expires_ms": now + 1_800_000
    }))
    .unwrap();
    plan.push(b'\n');
    for g in &garbage {
        plan.extend_from_slice(g.id.as_bytes());
    }
    let bucket = a_bucket(&weed, "cut");
    assert_eq!(
        bucket.create("gc/0000000001.plan", plan).unwrap(),
        Created::New
    );
    // b may not promise what the plan may delete, nor sweep over a's plan
    assert_eq!(b.missing(&ids(&garbage)).unwrap().len(), 3);
    let e = b.gc(&grace(0)).unwrap_err();
    assert!(
        matches!(e, bonsai_blockstore::StorageError::Conflict(_)),
        "{e:?}"
    );
    let e = e.to_string();
    assert!(e.contains("being swept through another server"), "{e}");
    // a resumes its own plan and finishes it; what b confirmed meanwhile (b wrote its
    // confirmations before it saw the plan) is kept by that sweep, and the next run takes it
    let r = a.gc(&grace(0)).unwrap();
    assert_eq!(r.blocks_freed, 0, "{r:?}");
    assert!(bucket.read("gc/0000000001.done").unwrap().is_some());
    let r = a.gc(&grace(0)).unwrap();
    assert_eq!((r.blocks_freed, r.packs_deleted), (3, 1), "{r:?}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(b.get_many(&ids(&kept)).unwrap().iter().all(Option::is_some));
    assert!(
        b.register("late", 1, &ids(&garbage)).unwrap().is_some(),
        "collected"
    );
}

/// A block one gc run left dead inside a kept pack, then registered through a server that
/// never learnt it was collected, survives a later run that rewrites the pack.
#[test]
fn a_dead_block_registered_again_survives_a_rewrite_of_its_pack() {
    let weed = Weed::start();
    let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = s3_store(&weed, "revive", da.path());
    let kept: Vec<_> = (0..4).map(|n| block(800 + n)).collect();
    let later: Vec<_> = (0..5).map(|n| block(900 + n)).collect();
    let x = block(999);
    let mut all = kept.clone();
    all.push(x.clone());
    all.extend(later.iter().cloned());
    put(&a, &all); // one pack of ten blocks
    assert_eq!(a.register("k", 1, &ids(&kept)).unwrap(), None);
    assert_eq!(a.register("l", 1, &ids(&later)).unwrap(), None);
    // x alone is garbage: a tenth of the pack, left dead in place
    let r = a.gc(&grace(0)).unwrap();
    assert_eq!(
        (r.blocks_freed, r.packs_rewritten, r.packs_deleted),
        (1, 0, 0),
        "{r:?}"
    );
    // runs later, that run's journal is pruned; a new server rebuilds its map from the
    // packs alone, sees x, and a version names it
    let bucket = a_bucket(&weed, "revive");
    for what in ["marks", "plan", "done"] {
        bucket.remove(&format!("gc/0000000001.{what}")).unwrap();
    }
    let c = s3_store(&weed, "revive", dc.path());
    rebuild_index(&c).unwrap();
    assert_eq!(c.register("x", 1, &[x.id]).unwrap(), None);
    // the other half goes: a rewrites the pack, and must keep x although its map says dead
    let l = bonsai_core::name::VersionRef::parse("l").unwrap();
    assert_eq!(a.forget(&l).unwrap().len(), 1);
    let r = a.gc(&grace(0)).unwrap();
    assert_eq!((r.blocks_freed, r.packs_rewritten), (5, 1), "{r:?}");
    let got = c.get_many(&[x.id, kept[0].id]).unwrap();
    assert_eq!(
        got[0].as_deref(),
        Some(&x.object[..]),
        "x survived the rewrite"
    );
    assert!(got[1].is_some());
}

/// A damaged marks object (anyone with access to the bucket can write one) stops nothing:
/// existence answers go on, and the next gc marks and sweeps a run of its own.
#[test]
fn damaged_gc_marks_are_skipped() {
    let weed = Weed::start();
    let da = tempfile::tempdir().unwrap();
    let a = s3_store(&weed, "damaged", da.path());
    let (kept, garbage) = (block(1001), block(1002));
    put(&a, std::slice::from_ref(&kept));
    put(&a, std::slice::from_ref(&garbage));
    assert_eq!(a.register("k", 1, &[kept.id]).unwrap(), None);
    let bucket = a_bucket(&weed, "damaged");
    bucket
        .create("gc/0000000001.marks", b"not a marks object".to_vec())
        .unwrap();
    assert!(a.missing(&[kept.id, garbage.id]).unwrap().is_empty());
    let r = a.gc(&grace(0)).unwrap();
    assert_eq!(r.blocks_freed, 1, "{r:?}");
    assert!(bucket.read("gc/0000000002.done").unwrap().is_some());
}
