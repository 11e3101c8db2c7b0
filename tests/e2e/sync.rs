//! `bonsai sync`: image versions copied between stores (servers with tokens and
//! directories), only the blocks the target lacks sent, idempotent, resumable after
//! SIGKILL, never listing a version before its blocks are there, refusing a damaged
//! block from the source and a version number the target uses for another image.

use crate::util::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const MIB: usize = 1 << 20;

fn sibling(path: &Path, seed: u64) {
    crate::ops::sibling(path, 2000 + seed);
}

/// Token file of a server: `write` (label owner) and `read`; returns their files.
fn tokens(d: &Dir, server: &str) -> (String, String) {
    let (w, r) = (
        format!("{server}w").repeat(8),
        format!("{server}r").repeat(8),
    );
    std::fs::write(
        d.path(&format!("{server}.tokens")),
        format!("write {w} label=owner\nread {r}\n"),
    )
    .unwrap();
    let (wf, rf) = (d.s(&format!("{server}.w")), d.s(&format!("{server}.r")));
    std::fs::write(&wf, w).unwrap();
    std::fs::write(&rf, r).unwrap();
    (wf, rf)
}

fn push_named(d: &Dir, img: &Path, name: &str, store: &str, extra: &[&str]) -> serde_json::Value {
    let img = img.display().to_string();
    let recipe = d.s(&format!("{name}.recipe"));
    let mut args = vec![
        "push",
        &img,
        "--store",
        store,
        "-o",
        &recipe,
        "--name",
        name,
        "--no-cache",
        "--json",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    bonsai_json(&args)
}

fn sync(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["sync", "--json", "--quiet"];
    all.extend_from_slice(args);
    bonsai_json(&all)
}

fn listed(store: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["images", "--store", store, "--json"];
    args.extend_from_slice(extra);
    bonsai_json(&args)["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}@{}", i["name"].as_str().unwrap(), i["version"]))
        .collect()
}

/// A, B, C pushed to a server with tokens (C with a sealed recipe); A and B synced to a
/// directory, then C: only C's own blocks travel, its version number and sealed recipe
/// come along, and a second sync of everything sends nothing.
#[test]
fn sync_sends_only_the_blocks_the_target_lacks_and_is_idempotent() {
    let d = Dir::new();
    let (write, read) = tokens(&d, "s");
    let source = Server::start(&d.path("src"), &["--token-file", &d.s("s.tokens")]);
    ok(&bonsai(&["recipe", "keygen", &d.s("key")]));
    let key = d.s("key");
    let mut pushes = Vec::new();
    for (seed, name) in [(1, "a"), (2, "b"), (3, "c")] {
        sibling(&d.path(&format!("{name}.raw")), seed);
        let extra: &[&str] = if name == "c" {
            &[
                "--token-file",
                &write,
                "--keep-recipe",
                "--recipe-key",
                &key,
            ]
        } else {
            &["--token-file", &write]
        };
        pushes.push(push_named(
            &d,
            &d.path(&format!("{name}.raw")),
            name,
            &source.url,
            extra,
        ));
    }
    // c again: a second version, so numbers are not all 1
    push_named(
        &d,
        &d.path("c.raw"),
        "c",
        &source.url,
        &["--token-file", &write, "--force"],
    );
    let target = d.store("dst");
    let from = [
        "--from",
        &source.url,
        "--from-token-file",
        &read,
        "--to",
        &target,
    ];
    let first = sync(&[&from[..], &["a", "b"]].concat());
    assert_eq!(first["versions"].as_array().unwrap().len(), 2, "{first}");
    let c = sync(&[&from[..], &["c@1"]].concat());
    let copied = &c["versions"][0];
    assert_eq!(copied["version"], "c@1");
    assert_eq!(copied["existed"], false);
    assert_eq!(copied["sealed_recipe"], true);
    assert_eq!(copied["sent_blocks"], pushes[2]["new_chunks"], "{c}");
    assert_eq!(copied["sent_bytes"], pushes[2]["sent_bytes"], "{c}");
    // everything: a, b, c@1 are there; c@2 (the same disk) is registered, sending nothing
    let again = sync(&[&from[..], &["--all"]].concat());
    let versions = again["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 4, "{again}");
    for v in versions {
        assert_eq!(v["existed"], v["version"] != "c@2", "{again}");
        assert_eq!(v["sent_blocks"], 0, "{again}");
    }
    assert_eq!(again["sent_bytes"], 0);
    let twice = sync(&[&from[..], &["--all"]].concat());
    assert!(twice["versions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|v| v["existed"] == true));
    assert_eq!(
        listed(&target, &[]),
        listed(&source.url, &["--token-file", &read])
    );
    // the sealed recipe pulls c@1 at the target by name, with nothing but the key
    crate::ops::pull_same(
        "c@1",
        &target,
        &d.path("c.raw"),
        &d.path("c.out"),
        &["--recipe-key", &key],
    );
    crate::ops::pull_same(
        &d.s("a.recipe"),
        &target,
        &d.path("a.raw"),
        &d.path("a.out"),
        &[],
    );
}

/// A sync to a server paced to 1 MiB/s is killed part way: the target lists nothing, yet
/// keeps the blocks it got; a second run sends only the rest and the image pulls whole.
#[test]
fn an_interrupted_sync_lists_nothing_and_resumes() {
    let d = Dir::new();
    let (write, read) = tokens(&d, "t");
    let source = d.store("src");
    let img = d.path("big.raw");
    image(&img, 16 * MIB as u64, &[(0, &noise(12 * MIB, 77))]);
    let pushed = push_named(&d, &img, "big", &source, &[]);
    let target = Server::start(&d.path("dst"), &["--token-file", &d.s("t.tokens")]);
    let args = [
        "sync",
        "--from",
        &source,
        "--to",
        &target.url,
        "--to-token-file",
        &write,
        "big",
        "--limit-rate",
        "1M",
        "--quiet",
    ];
    let mut child = command(&[])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let stats =
        |url: &str| bonsai_json(&["stats", "--store", url, "--token-file", &read, "--json"]);
    while stats(&target.url)["blocks"].as_u64().unwrap() < 16
        && t.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let held = stats(&target.url)["blocks"].as_u64().unwrap();
    assert!(held >= 16, "some blocks arrived before the kill ({held})");
    assert!(
        listed(&target.url, &["--token-file", &read]).is_empty(),
        "a version before its blocks"
    );
    let rest = sync(&[
        "--from",
        &source,
        "--to",
        &target.url,
        "--to-token-file",
        &write,
        "big",
    ]);
    let total = pushed["new_chunks"].as_u64().unwrap();
    let sent = rest["sent_blocks"].as_u64().unwrap();
    assert!(
        sent + held >= total && sent < total,
        "resumed: {sent} sent, {held} held, {total} in all"
    );
    crate::ops::pull_same(
        &d.s("big.recipe"),
        &target.url,
        &img,
        &d.path("big.out"),
        &["--token-file", &read],
    );
}

/// A block damaged in the source directory is refused by the sync (exit 5, naming it)
/// and nothing is registered at the target; a target using the version number for
/// another image is refused and keeps its own.
#[test]
fn a_damaged_block_or_a_taken_version_number_is_refused() {
    let d = Dir::new();
    let source = d.store("src");
    let target = d.store("dst");
    sibling(&d.path("vm.raw"), 5);
    sibling(&d.path("other.raw"), 6);
    push_named(&d, &d.path("vm.raw"), "vm", &source, &[]);
    let block = first_block_file(&d.path("src/blocks"));
    let good = std::fs::read(&block).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    std::fs::write(&block, &bad).unwrap();
    let out = bonsai(&["sync", "--from", &source, "--to", &target, "vm", "--quiet"]);
    let id = block.file_name().unwrap().to_string_lossy().to_string();
    let err = fails_as(&out, &id, EXIT_VERIFY);
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(listed(&target, &[]).is_empty());
    std::fs::write(&block, &good).unwrap();
    // the target's own vm@1 is another image: refused, and it stays
    let other = d.s("other.raw");
    let recipe = d.s("other.recipe");
    ok(&bonsai(&[
        "push", &other, "--store", &target, "-o", &recipe, "--name", "vm", "--quiet",
    ]));
    let out = bonsai(&["sync", "--from", &source, "--to", &target, "vm", "--quiet"]);
    fails_as(&out, "never renumbered", 1); // the store refused: exit 1
    assert_eq!(listed(&target, &[]), ["vm@1"]);
    crate::ops::pull_same(
        &recipe,
        &target,
        &d.path("other.raw"),
        &d.path("o.out"),
        &[],
    );
    let out = bonsai(&[
        "sync", "--from", &source, "--to", &target, "nope", "--quiet",
    ]);
    fails_as(&out, "no image named nope", EXIT_NOT_FOUND);
}

pub(crate) fn first_block_file(dir: &Path) -> std::path::PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else if e.file_name().unwrap().len() == 64 {
                return e;
            }
        }
    }
    panic!("no block file under {}", dir.display());
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
