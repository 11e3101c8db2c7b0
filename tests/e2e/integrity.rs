//! A shared store never loses or forges an image: same-name pushes are versions, gc keeps
//! every version, tokens are scoped to namespaces, sealed recipes are signed and bound to
//! their version, check never quarantines a healthy block while gc and pushes race it, and
//! a lost or damaged index is rebuilt from the store's files.

use crate::util::*;
use std::path::Path;

/// Siblings as in `ops` (a 2 MiB shared base, 1 MiB of their own), other seeds.
fn sibling(path: &Path, seed: u64) {
    crate::ops::sibling(path, 1000 + seed);
}

fn push(img: &Path, store: &str, recipe: &str, extra: &[&str]) -> std::process::Output {
    let img = img.display().to_string();
    let mut args = vec!["push", &img, "--store", store, "-o", recipe, "--no-cache"];
    args.extend_from_slice(extra);
    bonsai(&args)
}

fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn versions(store: &str, token: &str) -> Vec<(String, u64, String)> {
    let v = bonsai_json(&["images", "--store", store, "--token-file", token, "--json"]);
    v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["version"].as_u64().unwrap(),
                i["by"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Token file with owner, mallory (both write), an admin, and scoped tokens.
fn tokens(d: &Dir) -> [String; 5] {
    let t = |c: char| c.to_string().repeat(24);
    std::fs::write(
        d.path("tokens"),
        format!(
            "write {} label=owner\nwrite {} label=mallory\nadmin {}\n\
             write {} ns=team-a label=team-a-ci\nread {} ns=team-b\n",
            t('o'),
            t('m'),
            t('a'),
            t('s'),
            t('r')
        ),
    )
    .unwrap();
    let mut out = [(); 5].map(|_| String::new());
    for (i, c) in ['o', 'm', 'a', 's', 'r'].into_iter().enumerate() {
        let f = d.s(&format!("{c}.tok"));
        std::fs::write(&f, t(c)).unwrap();
        out[i] = f;
    }
    out
}

fn tok(file: &str) -> String {
    std::fs::read_to_string(file).unwrap()
}

/// Two teams push a file called disk.raw at once, and a write token registers an empty
/// manifest under the same name: three versions, and after `gc --grace 0` both real ones
/// pull byte-identical.
#[test]
fn same_name_pushes_are_versions_and_gc_keeps_every_one() {
    let d = Dir::new();
    let [owner, mallory, admin, ..] = tokens(&d);
    let server = Server::start(&d.path("store"), &["--token-file", &d.s("tokens")]);
    let url = server.url.clone();
    std::fs::create_dir(d.path("a")).unwrap();
    std::fs::create_dir(d.path("b")).unwrap();
    let (a, b) = (d.path("a/disk.raw"), d.path("b/disk.raw"));
    sibling(&a, 1);
    sibling(&b, 2);
    let pushes: Vec<_> = [(&a, &owner, "a.recipe"), (&b, &mallory, "b.recipe")]
        .into_iter()
        .map(|(img, token, recipe)| {
            let (img, token, recipe, url) = (img.clone(), token.clone(), d.s(recipe), url.clone());
            std::thread::spawn(move || push(&img, &url, &recipe, &["--token-file", &token]))
        })
        .collect();
    for p in pushes {
        let out = p.join().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        ok(&out);
        assert!(said.contains("pushed disk.raw@"), "{said}");
    }
    let (status, body) = http(
        "PUT",
        &format!("{url}/v1/images/disk.raw"),
        Some(&tok(&mallory)),
        &[0; 8],
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let listed = versions(&url, &owner);
    let numbers: Vec<u64> = listed.iter().map(|v| v.1).collect();
    assert_eq!(numbers, [1, 2, 3], "{listed:?}");
    assert!(listed.iter().all(|v| v.0 == "disk.raw"));
    assert_eq!(listed[2].2, "mallory");
    let g = bonsai_json(&[
        "gc",
        "--store",
        &url,
        "--token-file",
        &admin,
        "--grace",
        "0",
        "--json",
    ]);
    assert_eq!(
        g["blocks_freed"], 0,
        "every block belongs to a version: {g}"
    );
    crate::ops::pull_same(
        &d.s("a.recipe"),
        &url,
        &a,
        &d.path("a.out"),
        &["--token-file", &owner],
    );
    crate::ops::pull_same(
        &d.s("b.recipe"),
        &url,
        &b,
        &d.path("b.out"),
        &["--token-file", &owner],
    );
    // forgetting needs a version, a policy or --all-versions; a policy keeps the newest
    let out = bonsai(&[
        "forget",
        "disk.raw",
        "--store",
        &url,
        "--token-file",
        &admin,
    ]);
    fails_as(&out, "has versions", 2);
    let f = bonsai_json(&[
        "forget",
        "disk.raw",
        "--keep-last",
        "2",
        "--store",
        &url,
        "--token-file",
        &admin,
        "--json",
    ]);
    assert_eq!(f["forgotten"], serde_json::json!(["disk.raw@1"]));
    let left: Vec<u64> = versions(&url, &owner).iter().map(|v| v.1).collect();
    assert_eq!(left, [2, 3]);
}

/// A token scoped to namespace team-a pushes there and nowhere else; a read token scoped
/// to team-b does not see team-a's versions; a 255-byte name round-trips.
#[test]
fn scoped_tokens_stay_in_their_namespaces() {
    let d = Dir::new();
    let [owner, _, _, scoped, reader] = tokens(&d);
    let server = Server::start(&d.path("store"), &["--token-file", &d.s("tokens")]);
    let url = server.url.clone();
    let img = d.path("vm.raw");
    sibling(&img, 3);
    let long = format!("team-a/{}", "n".repeat(248));
    assert_eq!(long.len(), 255);
    ok(&push(
        &img,
        &url,
        &d.s("1.recipe"),
        &["--token-file", &scoped, "--name", &long],
    ));
    for name in ["team-b/vm", "vm"] {
        let out = push(
            &img,
            &url,
            &d.s("2.recipe"),
            &["--token-file", &scoped, "--name", name],
        );
        fails_as(&out, "namespace", 3);
        assert!(!d.path("2.recipe").exists());
    }
    let seen = versions(&url, &owner);
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].0.as_str(), seen[0].2.as_str()),
        (long.as_str(), "team-a-ci")
    );
    assert!(
        versions(&url, &reader).is_empty(),
        "team-b sees nothing of team-a"
    );
    crate::ops::pull_same(
        &d.s("1.recipe"),
        &url,
        &img,
        &d.path("vm.out"),
        &["--token-file", &reader],
    );
}

/// Builds what an attacker with a write token and the owner's *public* key can make: a
/// well-formed sealed recipe of their own image, encrypted to the owner, with a signature
/// they made up.
fn forge(owner_key: &Path, name: &str, version: u64, image_hash: &str, recipe: &[u8]) -> Vec<u8> {
    let text = std::fs::read_to_string(owner_key).unwrap();
    let secret = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap();
    let public = secret.parse::<age::x25519::Identity>().unwrap().to_public();
    let mut plain =
        format!("bonsai-sealed-recipe 2\n{name}\n{version}\n{image_hash}\n").into_bytes();
    plain.extend_from_slice(recipe);
    plain.extend_from_slice(&[0x42; 64]);
    age::encrypt(&public, &plain).unwrap()
}

#[test]
fn forged_sealed_recipes_are_refused_and_only_registrants_keep_one() {
    let d = Dir::new();
    let [owner, mallory, ..] = tokens(&d);
    let server = Server::start(&d.path("store"), &["--token-file", &d.s("tokens")]);
    let url = server.url.clone();
    ok(&bonsai(&["recipe", "keygen", &d.s("key")]));
    let (mine, theirs) = (d.path("mine.raw"), d.path("theirs.raw"));
    sibling(&mine, 4);
    sibling(&theirs, 5);
    let key = d.s("key");
    ok(&push(
        &mine,
        &url,
        &d.s("m.recipe"),
        &[
            "--token-file",
            &owner,
            "--name",
            "vm",
            "--keep-recipe",
            "--recipe-key",
            &key,
        ],
    ));
    // mallory pushes her image as vm (a new version, vm@2) and seals it to the owner
    let v = ok(&push(
        &theirs,
        &url,
        &d.s("t.recipe"),
        &["--token-file", &mallory, "--name", "vm", "--json"],
    ));
    assert_eq!(v["version"], 2);
    let hash = v["image_hash"].as_str().unwrap();
    let forged = forge(
        Path::new(&key),
        "vm",
        2,
        hash,
        &std::fs::read(d.path("t.recipe")).unwrap(),
    );
    let (status, _) = http(
        "PUT",
        &format!("{url}/v1/recipes/vm@2"),
        Some(&tok(&mallory)),
        &forged,
    );
    assert_eq!(
        status, 201,
        "mallory may keep a sealed recipe for her own version"
    );
    let (status, body) = http(
        "PUT",
        &format!("{url}/v1/recipes/vm@1"),
        Some(&tok(&mallory)),
        b"junk",
    );
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    let out = d.s("vm.out");
    let pull = |what: &str| {
        bonsai(&[
            "pull",
            what,
            "--store",
            &url,
            "-o",
            &out,
            "--token-file",
            &owner,
            "--recipe-key",
            &key,
        ])
    };
    fails_as(&pull("vm"), "signature does not verify", 5);
    assert!(!d.path("vm.out").exists());
    crate::ops::pull_same(
        "vm@1",
        &url,
        &mine,
        &d.path("vm.out"),
        &["--token-file", &owner, "--recipe-key", &key],
    );
}

/// A store that answers with another version's sealed recipe (replayed, or kept back
/// after a newer push) is refused; a newer version without one is not silently replaced
/// by an older one.
#[test]
fn replayed_and_stale_sealed_recipes_are_refused() {
    let d = Dir::new();
    let store = d.store("store");
    ok(&bonsai(&["recipe", "keygen", &d.s("key")]));
    let key = d.s("key");
    let img = d.path("vm.raw");
    for (seed, recipe) in [(6, "1.recipe"), (7, "2.recipe")] {
        sibling(&img, seed);
        ok(&push(
            &img,
            &store,
            &d.s(recipe),
            &["--name", "vm", "--keep-recipe", "--recipe-key", &key],
        ));
    }
    // the operator swaps the two sealed recipes
    let dir = d.path("store/recipes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2);
    files.sort();
    let (x, y) = (
        std::fs::read(&files[0]).unwrap(),
        std::fs::read(&files[1]).unwrap(),
    );
    std::fs::write(&files[0], &y).unwrap();
    std::fs::write(&files[1], &x).unwrap();
    let out = d.s("vm.out");
    for what in ["vm", "vm@1"] {
        let r = bonsai(&[
            "pull",
            what,
            "--store",
            &store,
            "-o",
            &out,
            "--recipe-key",
            &key,
        ]);
        fails_as(&r, "replayed or stale", 5);
    }
    std::fs::write(&files[0], &x).unwrap();
    std::fs::write(&files[1], &y).unwrap();
    crate::ops::pull_same(
        "vm",
        &store,
        &img,
        &d.path("ok.out"),
        &["--recipe-key", &key],
    );
    // a re-push without --keep-recipe: pull by name means the newest, which has none
    ok(&push(&img, &store, &d.s("3.recipe"), &["--name", "vm"]));
    let r = bonsai(&[
        "pull",
        "vm",
        "--store",
        &store,
        "-o",
        &out,
        "--recipe-key",
        &key,
    ]);
    fails_as(&r, "no sealed recipe for vm@3", 4);
}

/// `check --read-data` and `gc --grace 0` run in a loop while an image is pushed, pulled
/// and forgotten 20 times, the server pinned to one core: no check ever reports damage
/// (there is none), and every successful push pulls byte-identical.
#[test]
fn check_racing_gc_and_pushes_never_quarantines_a_healthy_block() {
    let d = Dir::new();
    let server = Server::start(&d.path("store"), &[]);
    server.pin_to_one_core();
    let url = server.url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looping = |args: &'static [&'static str]| {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut runs = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut a = args.to_vec();
                a.extend(["--store", &url, "--json"]);
                let v = bonsai_json(&a);
                if let Some(damaged) = v["damaged"].as_array() {
                    assert!(
                        damaged.is_empty(),
                        "check reported damage that is not there: {v}"
                    );
                }
                runs += 1;
            }
            runs
        })
    };
    let checks = looping(&["check", "--read-data"]);
    let gcs = looping(&["gc", "--grace", "0"]);
    let mut pulled = 0;
    for round in 0..20u64 {
        let img = d.path("vm.raw");
        sibling(&img, 10 + round % 3);
        let recipe = d.s(&format!("{round}.recipe"));
        let out = push(&img, &url, &recipe, &["--name", "vm"]);
        if out.status.success() {
            crate::ops::pull_same(&recipe, &url, &img, &d.path(&format!("{round}.out")), &[]);
            pulled += 1;
        }
        if round % 2 == 1 {
            ok(&bonsai(&[
                "forget",
                "vm",
                "--all-versions",
                "--store",
                &url,
            ]));
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (c, g) = (checks.join().unwrap(), gcs.join().unwrap());
    assert!(c >= 3 && g >= 3, "checks {c}, gcs {g}");
    assert!(pulled >= 15, "only {pulled} of 20 pushes succeeded");
    let last = bonsai_json(&["check", "--store", &url, "--read-data", "--json"]);
    assert!(last["damaged"].as_array().unwrap().is_empty());
    assert!(
        !d.path("store/quarantine").exists(),
        "nothing was quarantined"
    );
}

/// The index is a cache of the store's files: deleted, or overwritten with junk, it is
/// rebuilt when the store opens and lists the same versions.
#[test]
fn a_lost_or_damaged_index_is_rebuilt_with_the_same_images() {
    let d = Dir::new();
    let store = d.store("store");
    let img = d.path("vm.raw");
    for (seed, name) in [(20, "vm"), (21, "vm"), (22, "team/db")] {
        sibling(&img, seed);
        ok(&push(
            &img,
            &store,
            &d.s(&format!("{seed}.recipe")),
            &["--name", name],
        ));
    }
    let listing = || {
        let mut v = bonsai_json(&["images", "--store", &store, "--json"]);
        v["images"].take()
    };
    let before = listing();
    assert_eq!(before.as_array().unwrap().len(), 3);
    let index = d.path("store/index.sqlite");
    for f in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path(&format!("store/{f}")));
    }
    assert_eq!(listing(), before, "after the index was deleted");
    std::fs::write(&index, vec![0x5a; 64 * 1024]).unwrap();
    assert_eq!(listing(), before, "after the index was damaged");
    let check = bonsai_json(&["check", "--store", &store, "--read-data", "--json"]);
    assert!(check["blocks_checked"].as_u64().unwrap() > 0);
    crate::ops::pull_same(&d.s("22.recipe"), &store, &img, &d.path("db.out"), &[]);
}

/// A name the store would refuse is refused before anything is read or sent: the default
/// name comes from the file name, which may hold an '@'.
#[test]
fn an_illegal_name_is_refused_before_the_push() {
    let d = Dir::new();
    let store = d.store("store");
    let img = d.path("vm@2024.raw");
    sibling(&img, 30);
    let out = push(&img, &store, &d.s("vm.recipe"), &[]);
    fails_as(&out, "give a legal one with --name", 2);
    let out = push(&img, &store, &d.s("vm.recipe"), &["--name", "a//b"]);
    fails_as(&out, "--name", 2);
    assert!(!d.path("vm.recipe").exists());
    ok(&push(
        &img,
        &store,
        &d.s("vm.recipe"),
        &["--name", "vm-2024"],
    ));
}
