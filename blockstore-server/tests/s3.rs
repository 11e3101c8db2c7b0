//! The object-storage backend against a real S3-compatible server (SeaweedFS `weed mini` on
//! loopback, see `support/weed.rs`): create-if-absent, start-up errors, several servers
//! over one bucket, an empty local index, the object store dying mid-push.

mod support;

use bonsai_blockstore::s3::bucket::Created;
use bonsai_blockstore::s3::{Bucket, S3Error, S3Location, S3Settings};
use bonsai_core::{BlockId, Convergence, Encoder};
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
            Ok(())
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
