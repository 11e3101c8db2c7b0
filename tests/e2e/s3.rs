//! A store on S3-compatible object storage (SeaweedFS `weed mini` on loopback): several
//! `bonsai serve` processes over one bucket, a server with an empty local index, start-up
//! errors, the object store killed in the middle of a push and of a gc, and gc through one
//! server racing pushes through another.

use crate::util::*;
use crate::weed::{Weed, BUCKET};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// `bonsai serve --data s3://…` with its own local index file.
struct S3Server {
    _serving: crate::serving::Serving,
    url: String,
}

fn serve_cmd(weed: &Weed, data: &str, index: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data,
        "--index-dir",
    ])
    .arg(index)
    .args(extra)
    .env("BONSAI_LOG", "warn");
    for (k, v) in weed.env() {
        cmd.env(k, v);
    }
    cmd
}

impl S3Server {
    fn start(weed: &Weed, data: &str, index: &Path, extra: &[&str]) -> S3Server {
        let mut cmd = serve_cmd(weed, data, index, extra);
        if std::env::var_os("DEBUG_S3").is_none() {
            cmd.stderr(Stdio::null());
        } else {
            cmd.env("BONSAI_LOG", "info");
        }
        let serving = crate::serving::Serving::spawn(cmd);
        S3Server {
            url: serving.url.clone(),
            _serving: serving,
        }
    }
}

fn push(img: &Path, store: &str, recipe: &str) -> serde_json::Value {
    bonsai_json(&[
        "push",
        &img.display().to_string(),
        "--store",
        store,
        "-o",
        recipe,
        "--json",
        "--no-cache",
    ])
}

fn pull_same(recipe: &str, store: &str, out: &Path, want: &Path) {
    let pulled = bonsai_json(&[
        "pull",
        recipe,
        "--store",
        store,
        "-o",
        &out.display().to_string(),
        "--json",
    ]);
    assert_eq!(pulled["verified"], true);
    assert!(
        same_file(want, out),
        "{} differs from {}",
        out.display(),
        want.display()
    );
}

fn index(d: &Dir, name: &str) -> PathBuf {
    d.path(&format!("index-{name}"))
}

#[test]
fn two_servers_share_one_bucket_and_overlapping_pushes_agree() {
    let weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/shared");
    let a = S3Server::start(&weed, &data, &index(&d, "a"), &[]);
    let b = S3Server::start(&weed, &data, &index(&d, "b"), &[]);

    // pushed through one, pulled through the other; the other already knows every block
    let one = d.path("one.raw");
    image(
        &one,
        8 * MIB as u64,
        &[(0, &noise(3 * MIB, 1)), (4 * MIB as u64, &text(2 * MIB, 2))],
    );
    let first = push(&one, &a.url, &d.s("one.recipe"));
    assert!(first["new_chunks"].as_u64().unwrap() > 0);
    pull_same(&d.s("one.recipe"), &b.url, &d.path("one.out"), &one);
    let again = push(&one, &b.url, &d.s("one-b.recipe"));
    assert_eq!(
        again["new_chunks"], 0,
        "server b re-asked for blocks a stored: {again}"
    );

    // overlapping images pushed through both servers at once
    let shared = noise(4 * MIB, 7);
    let imgs: Vec<PathBuf> = (0..4)
        .map(|i| {
            let p = d.path(&format!("ov{i}.raw"));
            image(
                &p,
                8 * MIB as u64,
                &[(0, &shared), (4 * MIB as u64, &noise(2 * MIB, 100 + i))],
            );
            p
        })
        .collect();
    std::thread::scope(|s| {
        for (i, img) in imgs.iter().enumerate() {
            let url = if i % 2 == 0 { &a.url } else { &b.url };
            let recipe = d.s(&format!("ov{i}.recipe"));
            s.spawn(move || push(img, url, &recipe));
        }
    });
    for (i, img) in imgs.iter().enumerate() {
        let other = if i % 2 == 0 { &b.url } else { &a.url };
        pull_same(
            &d.s(&format!("ov{i}.recipe")),
            other,
            &d.path(&format!("ov{i}.out")),
            img,
        );
    }
}

#[test]
fn empty_local_index_is_rebuilt_from_the_bucket() {
    let weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/rebuild");
    let img = d.path("img.raw");
    image(&img, 6 * MIB as u64, &[(0, &noise(5 * MIB, 3))]);
    let stored = {
        let a = S3Server::start(&weed, &data, &index(&d, "a"), &[]);
        let p = push(&img, &a.url, &d.s("img.recipe"));
        p["new_chunks"].as_u64().unwrap()
    };
    // a new server with no index at all: rebuilt at start
    let fresh = S3Server::start(&weed, &data, &index(&d, "fresh"), &[]);
    let stats = bonsai_json(&["stats", "--store", &fresh.url, "--json"]);
    assert_eq!(stats["blocks"].as_u64().unwrap(), stored, "{stats}");
    assert_eq!(stats["images"], 1, "{stats}");
    assert_eq!(
        push(&img, &fresh.url, &d.s("again.recipe"))["new_chunks"],
        0
    );
    pull_same(&d.s("img.recipe"), &fresh.url, &d.path("out.raw"), &img);
    drop(fresh);
    // --rebuild-index over an existing index gives the same figures
    let again = S3Server::start(&weed, &data, &index(&d, "fresh"), &["--rebuild-index"]);
    let stats2 = bonsai_json(&["stats", "--store", &again.url, "--json"]);
    assert_eq!(stats2["blocks"], stats["blocks"]);
    assert_eq!(stats2["stored_bytes"], stats["stored_bytes"]);
}

fn serve_fails(weed: &Weed, data: &str, d: &Dir, env: &[(&str, String)]) -> Output {
    let mut cmd = serve_cmd(weed, data, &index(d, "x"), &[]);
    cmd.env("BONSAI_LOG", "error"); // the error line only, not the no-token warning
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "start-up error took {:?}",
        t.elapsed()
    );
    out
}

#[test]
fn wrong_credentials_and_unreachable_endpoint_fail_at_start() {
    let weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/p");
    let out = serve_fails(
        &weed,
        &data,
        &d,
        &[("AWS_SECRET_ACCESS_KEY", "wrong".into())],
    );
    fails_as(&out, "access denied", EXIT_AUTH);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let out = serve_fails(&weed, &data, &d, &[("AWS_ENDPOINT_URL", dead.clone())]);
    let err = fails_as(&out, "cannot reach", EXIT_NETWORK);
    assert!(err.contains(&dead), "{err}");
    let out = serve_fails(&weed, "s3://No_Such/p", &d, &[]);
    fails_as(&out, "bucket name", EXIT_USAGE);
}

/// The object store dies halfway through a push: the push fails without a recipe; once the
/// store is back, the re-run completes and the image pulls back identical.
#[test]
fn object_store_killed_mid_push_then_rerun_completes() {
    let mut weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/killed");
    let s = S3Server::start(&weed, &data, &index(&d, "a"), &[]);
    let img = d.path("big.raw");
    image(&img, 48 * MIB as u64, &[(0, &noise(48 * MIB, 9))]);
    let mut pushing = Command::new(bin())
        .args([
            "push",
            &d.s("big.raw"),
            "--store",
            &s.url,
            "-o",
            &d.s("big.recipe"),
        ])
        .args(["--quiet", "--no-cache"])
        .env("BONSAI_LOG", "error")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while bonsai_json(&["stats", "--store", &s.url, "--json"])["blocks"] == 0 {
        assert!(Instant::now() < deadline, "push never started uploading");
        std::thread::sleep(Duration::from_millis(5));
    }
    weed.kill();
    let status = pushing.wait().unwrap();
    assert!(
        !status.success(),
        "push succeeded although the object store died"
    );
    assert!(!d.path("big.recipe").exists(), "failed push left a recipe");
    weed.restart();
    let rerun = push(&img, &s.url, &d.s("big.recipe"));
    assert!(
        rerun["known_chunks"].as_u64().unwrap() > 0,
        "re-run resent everything: {rerun}"
    );
    pull_same(&d.s("big.recipe"), &s.url, &d.path("out.raw"), &img);
}

fn try_push(img: &Path, store: &str, recipe: &str, name: &str) -> Output {
    bonsai(&[
        "push",
        &img.display().to_string(),
        "--store",
        store,
        "-o",
        recipe,
        "--name",
        name,
        "--quiet",
        "--no-cache",
    ])
}

/// Eight images that share half their data, pushed through two servers over one bucket
/// while `forget` and `gc --grace 0` run in a loop through the other: every version that
/// registered pulls back identical through both servers, a push the race refused
/// succeeds when run again, and gc freed the forgotten images' own data.
#[test]
fn gc_through_one_server_racing_pushes_through_the_other_loses_nothing() {
    let weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/race");
    let a = S3Server::start(&weed, &data, &index(&d, "a"), &[]);
    let b = S3Server::start(&weed, &data, &index(&d, "b"), &[]);
    let shared = noise(3 * MIB, 31);
    let imgs: Vec<PathBuf> = (0..8u64)
        .map(|i| {
            let p = d.path(&format!("vm{i}.raw"));
            image(
                &p,
                6 * MIB as u64,
                &[(0, &shared), (3 * MIB as u64, &noise(2 * MIB, 40 + i))],
            );
            p
        })
        .collect();
    // two old images through a, to be forgotten and collected while the others push
    for (i, img) in imgs.iter().enumerate().take(2) {
        ok(&try_push(
            img,
            &a.url,
            &d.s(&format!("vm{i}.recipe")),
            &format!("old{i}"),
        ));
    }
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (freed, gcs) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let (mut freed, mut runs) = (0u64, 0u32);
            let mut forgotten = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || runs < 2 {
                let url = if runs % 2 == 0 { &b.url } else { &a.url };
                if forgotten < 2 {
                    ok(&bonsai(&[
                        "forget",
                        &format!("old{forgotten}"),
                        "--all-versions",
                        "--store",
                        url,
                    ]));
                    forgotten += 1;
                }
                let out = bonsai(&["gc", "--grace", "0", "--store", url, "--json"]);
                if out.status.success() {
                    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                    freed += v["bytes_freed"].as_u64().unwrap();
                }
                runs += 1;
            }
            (freed, runs)
        });
        let pushes: Vec<_> = (2..8)
            .map(|i| {
                let (img, url) = (&imgs[i], if i % 2 == 0 { &a.url } else { &b.url });
                let recipe = d.s(&format!("vm{i}.recipe"));
                s.spawn(move || {
                    (
                        i,
                        try_push(img, url, &recipe, &format!("vm{i}"))
                            .status
                            .success(),
                    )
                })
            })
            .collect();
        let refused: Vec<usize> = pushes
            .into_iter()
            .map(|p| p.join().unwrap())
            .filter(|(_, ok)| !ok)
            .map(|(i, _)| i)
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let (freed, runs) = gc.join().unwrap();
        // a push the race refused (a block it was told about was swept) succeeds again
        for i in refused {
            ok(&try_push(
                &imgs[i],
                &a.url,
                &d.s(&format!("vm{i}.recipe")),
                &format!("vm{i}"),
            ));
        }
        (freed, runs)
    });
    assert!(gcs >= 2, "gc ran {gcs} times");
    assert!(freed > 0, "gc freed nothing of the forgotten images");
    for (i, img) in imgs.iter().enumerate().skip(2) {
        for (side, url) in [("a", &a.url), ("b", &b.url)] {
            let out = d.path(&format!("vm{i}.{side}.out"));
            pull_same(&d.s(&format!("vm{i}.recipe")), url, &out, img);
        }
    }
    let listed = bonsai_json(&["images", "--store", &b.url, "--json"]);
    assert_eq!(listed["images"].as_array().unwrap().len(), 6, "{listed}");
}

/// The object store dies while a gc runs (wherever the kill lands, from marking to the last
/// delete; `blockstore-server/tests/s3.rs` resumes a sweep cut short at a known point):
/// nothing registered is lost, and once the store is back a gc run finishes the job.
#[test]
fn object_store_killed_mid_gc_then_rerun_completes() {
    let mut weed = Weed::start();
    let d = Dir::new();
    let data = format!("s3://{BUCKET}/killed-gc");
    let s = S3Server::start(&weed, &data, &index(&d, "a"), &[]);
    let keep = d.path("keep.raw");
    image(&keep, 8 * MIB as u64, &[(0, &noise(8 * MIB, 61))]);
    push(&keep, &s.url, &d.s("keep.recipe"));
    let gone = d.path("gone.raw");
    image(&gone, 64 * MIB as u64, &[(0, &noise(64 * MIB, 62))]);
    push(&gone, &s.url, &d.s("gone.recipe"));
    ok(&bonsai(&[
        "forget",
        "gone.raw",
        "--all-versions",
        "--store",
        &s.url,
    ]));
    let before = bonsai_json(&["stats", "--store", &s.url, "--json"]);
    let gc = Command::new(bin())
        .args(["gc", "--grace", "0", "--store", &s.url, "--json"])
        .env("BONSAI_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    weed.kill();
    let out = gc.wait_with_output().unwrap();
    weed.restart();
    // killed or finished first: either way a second run completes and frees the rest
    let again = bonsai_json(&["gc", "--grace", "0", "--store", &s.url, "--json"]);
    let after = bonsai_json(&["stats", "--store", &s.url, "--json"]);
    let (was, now) = (
        before["object_store"]["pack_bytes"].as_u64().unwrap(),
        after["object_store"]["pack_bytes"].as_u64().unwrap(),
    );
    assert!(
        now < was / 2,
        "gc freed too little: {was} -> {now} ({again}; first: {:?})",
        out.status
    );
    pull_same(&d.s("keep.recipe"), &s.url, &d.path("keep.out"), &keep);
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "bonsai failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
