//! Bad input and broken parts: a clear one-line error, a non-zero exit, no OUT file.

use crate::util::*;

const MIB: usize = 1024 * 1024;

fn pushed(d: &Dir, store: &str) {
    let img = d.path("vm.raw");
    image(&img, 4 * MIB as u64, &[(0, &noise(3 * MIB, 7))]);
    bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        store,
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
}

/// The pull fails with one line holding `needle` and exit code `code`, and leaves no OUT.
fn pull_fails_with(d: &Dir, recipe: &str, store: &str, needle: &str, code: i32) {
    let out = bonsai(&["pull", recipe, "--store", store, "-o", &d.s("out.raw")]);
    fails_as(&out, needle, code);
    assert!(!d.path("out.raw").exists(), "a failed pull left OUT");
}

#[test]
fn corrupt_and_truncated_recipes() {
    let d = Dir::new();
    let store = d.store("store");
    pushed(&d, &store);
    let good = std::fs::read(d.path("vm.recipe")).unwrap();
    let mut flipped = good.clone();
    flipped[60] ^= 0x04;
    std::fs::write(d.path("flipped.recipe"), &flipped).unwrap();
    pull_fails_with(&d, &d.s("flipped.recipe"), &store, "corrupt", EXIT_VERIFY);
    std::fs::write(d.path("short.recipe"), &good[..good.len() / 2]).unwrap();
    pull_fails_with(&d, &d.s("short.recipe"), &store, "truncated", EXIT_VERIFY);
    let mut newer = good.clone();
    newer[4] = 9;
    std::fs::write(d.path("newer.recipe"), &newer).unwrap();
    pull_fails_with(
        &d,
        &d.s("newer.recipe"),
        &store,
        "unsupported recipe format version 9",
        EXIT_USAGE,
    );
    std::fs::write(d.path("text.recipe"), "not a recipe").unwrap();
    pull_fails_with(
        &d,
        &d.s("text.recipe"),
        &store,
        "not a bonsai recipe",
        EXIT_USAGE,
    );
    pull_fails_with(
        &d,
        &d.s("absent.recipe"),
        &store,
        "no such file",
        EXIT_NOT_FOUND,
    );
}

#[test]
fn recipe_for_another_store() {
    let d = Dir::new();
    pushed(&d, &d.store("store-a"));
    let s = Server::start(&d.path("data-b"), &[]);
    pull_fails_with(
        &d,
        &d.s("vm.recipe"),
        &s.url,
        "not in the store",
        EXIT_NOT_FOUND,
    );
}

#[test]
fn block_corrupted_on_the_servers_disk() {
    let d = Dir::new();
    let s = Server::start(&d.path("data"), &[]);
    pushed(&d, &s.url);
    // damage one stored block file in place
    let mut files = Vec::new();
    for a in std::fs::read_dir(d.path("data/blocks")).unwrap() {
        for b in std::fs::read_dir(a.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(b.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
    }
    files.sort();
    let mut bytes = std::fs::read(&files[0]).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0xff;
    std::fs::write(&files[0], bytes).unwrap();
    pull_fails_with(
        &d,
        &d.s("vm.recipe"),
        &s.url,
        "does not match its id",
        EXIT_VERIFY,
    );
}

#[test]
fn tokens_are_enforced() {
    let d = Dir::new();
    std::fs::write(
        d.path("tokens"),
        "write writer-secret-token-1\nread reader-secret-token-1\n",
    )
    .unwrap();
    let s = Server::start(&d.path("data"), &["--token-file", &d.s("tokens")]);
    std::fs::write(d.path("w"), "writer-secret-token-1\n").unwrap();
    std::fs::write(d.path("r"), "reader-secret-token-1").unwrap();
    std::fs::write(d.path("bad"), "not-the-token-at-all").unwrap();
    let img = d.path("vm.raw");
    image(&img, 2 * MIB as u64, &[(0, &noise(MIB, 8))]);
    let push = |token: &str| {
        bonsai(&[
            "push",
            &d.s("vm.raw"),
            "--store",
            &s.url,
            "-o",
            &d.s("vm.recipe"),
            "--token-file",
            &d.s(token),
        ])
    };
    let out = push("bad");
    fails_as(&out, "invalid token", EXIT_AUTH);
    assert!(!d.path("vm.recipe").exists(), "failed push left a recipe");
    let out = push("r");
    fails_as(&out, "may only read", EXIT_AUTH);
    let out = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &s.url,
        "-o",
        &d.s("vm.recipe"),
    ]);
    fails_as(&out, "missing bearer token", EXIT_AUTH);
    assert!(push("w").status.success());
    // reads: the read token works, via the environment too
    let out = bonsai_env(
        &[
            "pull",
            &d.s("vm.recipe"),
            "--store",
            &s.url,
            "-o",
            &d.s("out.raw"),
        ],
        &[("BONSAI_TOKEN", "reader-secret-token-1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &s.url,
        "-o",
        &d.s("out2.raw"),
        "--token-file",
        &d.s("bad"),
    ]);
    fails_as(&out, "invalid token", EXIT_AUTH);
    assert!(!d.path("out2.raw").exists());
}

#[test]
fn server_that_is_down() {
    let d = Dir::new();
    pushed(&d, &d.store("store"));
    let dead = HangUp::start();
    let url = dead.url();
    pull_fails_with(&d, &d.s("vm.recipe"), &url, "unreachable", EXIT_NETWORK);
    let out = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &url,
        "-o",
        &d.s("x.recipe"),
    ]);
    fails_as(&out, "unreachable", EXIT_NETWORK);
    assert!(!d.path("x.recipe").exists());
}

/// Kill the store halfway through a push; after a restart the re-run completes, sends
/// only what the first run had not, and the image pulls back identical.
#[test]
fn store_killed_mid_push_then_rerun_completes() {
    let d = Dir::new();
    let mut s = Server::start(&d.path("data"), &[]);
    let img = d.path("big.raw");
    image(&img, 96 * MIB as u64, &[(0, &noise(96 * MIB, 9))]);
    let mut push = command(&[])
        .args([
            "push",
            &d.s("big.raw"),
            "--store",
            &s.url,
            "-o",
            &d.s("big.recipe"),
            "--quiet",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // wait until the store has indexed some blocks, then kill it
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while bonsai_json(&["stats", "--store", &s.url, "--json"])["blocks"] == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "push never started uploading"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    s.kill();
    let status = push.wait().unwrap();
    assert!(!status.success(), "push succeeded although the store died");
    assert!(!d.path("big.recipe").exists(), "failed push left a recipe");
    let s = s.restart();
    let rerun = bonsai_json(&[
        "push",
        &d.s("big.raw"),
        "--store",
        &s.url,
        "-o",
        &d.s("big.recipe"),
        "--json",
    ]);
    assert!(
        rerun["known_chunks"].as_u64().unwrap() > 0,
        "re-run resent everything: {rerun}"
    );
    assert!(rerun["new_chunks"].as_u64().unwrap() > 0);
    let pull = bonsai_json(&[
        "pull",
        &d.s("big.recipe"),
        "--store",
        &s.url,
        "-o",
        &d.s("out.raw"),
        "--json",
    ]);
    assert_eq!(pull["verified"], true);
    assert!(same_file(&img, &d.path("out.raw")));
}
