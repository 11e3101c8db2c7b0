//! The main job: push then pull gives the identical image, sends only what is new.

use crate::util::*;

const MIB: usize = 1024 * 1024;

fn round_trip(
    store: &str,
    img: &std::path::Path,
    d: &Dir,
    tag: &str,
) -> (serde_json::Value, serde_json::Value) {
    let recipe = d.s(&format!("{tag}.recipe"));
    let out = d.path(&format!("{tag}.out"));
    let push = bonsai_json(&[
        "push",
        &img.display().to_string(),
        "--store",
        store,
        "-o",
        &recipe,
        "--json",
    ]);
    let pull = bonsai_json(&[
        "pull",
        &recipe,
        "--store",
        store,
        "-o",
        &out.display().to_string(),
        "--json",
    ]);
    assert_eq!(pull["verified"], true);
    assert!(same_file(img, &out), "{tag}: pulled image differs");
    (push, pull)
}

#[test]
fn small_image_round_trip_and_second_push_sends_nothing() {
    let d = Dir::new();
    let s = Server::start(&d.path("data"), &[]);
    let img = d.path("small.raw");
    let mut data = text(3 * MIB, 1);
    data.extend(noise(2 * MIB, 2));
    image(&img, 6 * MIB as u64, &[(0, &data)]);
    let (push, pull) = round_trip(&s.url, &img, &d, "small");
    for key in [
        "logical_bytes",
        "zero_bytes",
        "chunks",
        "unique_chunks",
        "known_chunks",
        "new_chunks",
        "new_plain_bytes",
        "sent_bytes",
        "dedup_ratio",
        "wall_seconds",
        "recipe",
    ] {
        assert!(push.get(key).is_some(), "push --json lacks {key}");
    }
    for key in [
        "logical_bytes",
        "fetched_blocks",
        "fetched_bytes",
        "seeded_bytes",
        "verified",
        "wall_seconds",
    ] {
        assert!(pull.get(key).is_some(), "pull --json lacks {key}");
    }
    assert_eq!(push["logical_bytes"], 6 * MIB as u64);
    assert!(push["zero_bytes"].as_u64().unwrap() >= MIB as u64 - 512 * 1024);
    assert_eq!(push["known_chunks"], 0);
    assert_eq!(push["new_chunks"], push["unique_chunks"]);
    // text compresses: fewer bytes sent than plaintext
    assert!(push["sent_bytes"].as_u64().unwrap() < push["new_plain_bytes"].as_u64().unwrap());
    assert_eq!(pull["fetched_blocks"], push["unique_chunks"]);

    let again = bonsai_json(&[
        "push",
        &img.display().to_string(),
        "--store",
        &s.url,
        "-o",
        &d.s("again.recipe"),
        "--json",
    ]);
    assert_eq!(again["new_chunks"], 0);
    assert_eq!(again["sent_bytes"], 0);
    assert_eq!(again["known_chunks"], again["unique_chunks"]);
    assert!(again["dedup_ratio"].is_null());
    assert_eq!(
        std::fs::read(d.path("again.recipe")).unwrap(),
        std::fs::read(d.path("small.recipe")).unwrap()
    );
}

#[test]
fn mostly_zero_image_pulls_sparse() {
    let d = Dir::new();
    let s = Server::start(&d.path("data"), &[]);
    let img = d.path("sparse.raw");
    let size = 256 * MIB as u64;
    image(
        &img,
        size,
        &[
            (10 * MIB as u64, &noise(MIB, 3)),
            (200 * MIB as u64, &text(MIB, 4)),
        ],
    );
    let (push, _) = round_trip(&s.url, &img, &d, "sparse");
    assert!(push["zero_bytes"].as_u64().unwrap() > size - 3 * MIB as u64);
    let alloc = allocated(&d.path("sparse.out"));
    assert!(
        alloc < 4 * MIB as u64,
        "pulled file allocates {alloc} bytes"
    );
}

#[test]
fn odd_sized_and_empty_images() {
    let d = Dir::new();
    let s = Server::start(&d.path("data"), &[]);
    let odd = d.path("odd.raw");
    image(&odd, 1_000_003, &[(0, &noise(1_000_003, 5))]);
    let (push, _) = round_trip(&s.url, &odd, &d, "odd");
    assert_eq!(push["logical_bytes"], 1_000_003);

    let tiny = d.path("tiny.raw");
    image(&tiny, 1, &[(0, b"x")]);
    round_trip(&s.url, &tiny, &d, "tiny");

    let empty = d.path("empty.raw");
    image(&empty, 0, &[]);
    let (push, pull) = round_trip(&s.url, &empty, &d, "empty");
    assert_eq!(push["logical_bytes"], 0);
    assert_eq!(push["chunks"], 0);
    assert_eq!(pull["logical_bytes"], 0);
}

/// Two VMs that share an OS: the second push sends a fraction of the first, and a pull
/// seeded with the first image fetches exactly the blocks the second push had to send.
#[test]
fn related_images_dedup_and_seeded_pull() {
    let d = Dir::new();
    let s = Server::start(&d.path("data"), &[]);
    let os = [text(4 * MIB, 10), noise(4 * MIB, 11), text(2 * MIB, 12)].concat();
    let mut os2 = os.clone();
    // an "update": 300 KiB inserted in the middle shifts everything after it
    os2.splice(5 * MIB..5 * MIB, noise(300 * 1024, 13));
    let a = d.path("a.raw");
    let b = d.path("b.raw");
    image(
        &a,
        32 * MIB as u64,
        &[(MIB as u64, &os), (20 * MIB as u64, &noise(2 * MIB, 14))],
    );
    image(
        &b,
        32 * MIB as u64,
        &[(MIB as u64, &os2), (20 * MIB as u64, &noise(MIB, 15))],
    );
    let pa = bonsai_json(&[
        "push",
        &d.s("a.raw"),
        "--store",
        &s.url,
        "-o",
        &d.s("a.recipe"),
        "--json",
    ]);
    let pb = bonsai_json(&[
        "push",
        &d.s("b.raw"),
        "--store",
        &s.url,
        "-o",
        &d.s("b.recipe"),
        "--json",
    ]);
    let sent_a = pa["sent_bytes"].as_u64().unwrap();
    let sent_b = pb["sent_bytes"].as_u64().unwrap();
    assert!(
        sent_b * 4 < sent_a,
        "second push sent {sent_b}, first {sent_a}"
    );
    assert!(pb["known_chunks"].as_u64().unwrap() > 0);

    let pull = bonsai_json(&[
        "pull",
        &d.s("b.recipe"),
        "--store",
        &s.url,
        "-o",
        &d.s("b.out"),
        "--seed",
        &d.s("a.raw"),
        "--json",
    ]);
    assert!(same_file(&b, &d.path("b.out")));
    assert_eq!(pull["fetched_blocks"], pb["new_chunks"]);
    assert!(pull["seeded_bytes"].as_u64().unwrap() > 8 * MIB as u64);

    let stats = bonsai_json(&["stats", "--store", &s.url, "--json"]);
    assert_eq!(stats["images"], 2);
    assert_eq!(stats["logical_bytes"], 64 * MIB as u64);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 2.0);
}

#[test]
fn embedded_store_round_trip_stats_and_recipe_show() {
    let d = Dir::new();
    let img = d.path("vm.raw");
    image(
        &img,
        8 * MIB as u64,
        &[(0, &text(2 * MIB, 20)), (5 * MIB as u64, &noise(MIB, 21))],
    );
    let store = d.store("store");
    round_trip(&store, &img, &d, "vm");
    let stats = bonsai_json(&["stats", "--store", &store, "--json"]);
    assert_eq!(stats["images"], 1);
    let show = bonsai(&["recipe", "show", &d.s("vm.recipe"), "--json"]);
    assert!(show.status.success());
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["logical_size"], 8 * MIB as u64);
    // recipe v2: the image hash is over the extents (docs/FORMAT.md), not b3sum
    let recipe = bonsai_core::Recipe::open(&d.path("vm.recipe")).unwrap();
    assert_eq!(
        v["image_hash"],
        recipe.extents_hash().to_hex(),
        "image hash is the hash of the extents"
    );
    let human = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("vm2.recipe"),
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("overall") && text.contains("8.0 MiB logical"),
        "{text}"
    );
}

#[test]
fn private_secret_scopes_dedup_and_is_required_to_pull() {
    let d = Dir::new();
    let img = d.path("vm.raw");
    image(&img, 2 * MIB as u64, &[(0, &noise(2 * MIB, 30))]);
    std::fs::write(d.path("secret"), "our team's secret").unwrap();
    let store = d.store("store");
    let public = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("pub.recipe"),
        "--json",
    ]);
    let private = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("priv.recipe"),
        "--json",
        "--secret-file",
        &d.s("secret"),
    ]);
    // different secret, different blocks: nothing deduplicates across the boundary
    assert_eq!(private["known_chunks"], 0);
    assert_eq!(private["new_chunks"], public["new_chunks"]);
    let out = bonsai(&[
        "pull",
        &d.s("priv.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out"),
    ]);
    fails_as(&out, "different convergence secret", EXIT_USAGE);
    assert!(!d.path("out").exists());
    let ok = bonsai_json(&[
        "pull",
        &d.s("priv.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out"),
        "--json",
        "--secret-file",
        &d.s("secret"),
    ]);
    assert_eq!(ok["verified"], true);
    assert!(same_file(&img, &d.path("out")));
}

#[test]
fn interrupted_pull_resumes_from_what_it_wrote() {
    let d = Dir::new();
    let img = d.path("vm.raw");
    image(&img, 8 * MIB as u64, &[(0, &noise(6 * MIB, 40))]);
    let store = d.store("store");
    bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    let show = bonsai(&["recipe", "show", &d.s("vm.recipe"), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    let last = v["extents"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e.get("id").is_some())
        .unwrap();
    let id = last["id"].as_str().unwrap();
    let block = d.path(&format!("store/blocks/{}/{}/{}", &id[..2], &id[2..4], id));
    let good = std::fs::read(&block).unwrap();
    let mut bad = good.clone();
    bad[40] ^= 1;
    std::fs::write(&block, &bad).unwrap();

    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
    ]);
    fails_as(&out, "does not match its id", EXIT_VERIFY);
    assert!(!d.path("out.raw").exists(), "failed pull left OUT");

    std::fs::write(&block, &good).unwrap();
    let pull = bonsai_json(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
        "--json",
    ]);
    assert!(same_file(&img, &d.path("out.raw")));
    assert!(pull["resumed_bytes"].as_u64().unwrap() > 0, "{pull}");
    assert!(pull["fetched_blocks"].as_u64().unwrap() < v["distinct_blocks"].as_u64().unwrap());
    assert_eq!(
        listing(d.0.path())
            .iter()
            .filter(|n| n.contains("partial"))
            .count(),
        0
    );
}

#[test]
fn demo_tells_the_whole_story() {
    let out = bonsai(&["demo", "--quiet"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("byte-identical: true"), "{text}");
}

#[test]
fn analyze_shows_what_each_image_adds() {
    let d = Dir::new();
    let os = [text(2 * MIB, 50), noise(2 * MIB, 51)].concat();
    image(&d.path("a.raw"), 8 * MIB as u64, &[(0, &os)]);
    image(
        &d.path("b.raw"),
        8 * MIB as u64,
        &[(0, &os), (5 * MIB as u64, &noise(MIB, 52))],
    );
    let v = bonsai_json(&["analyze", &d.s("a.raw"), &d.s("b.raw"), "--json"]);
    let rows = v["images"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let new_a = rows[0]["new_bytes"].as_u64().unwrap();
    let new_b = rows[1]["new_bytes"].as_u64().unwrap();
    assert!(new_a >= 4 * MIB as u64 - 128 * 1024);
    assert!(
        new_b <= MIB as u64 + 256 * 1024,
        "second image adds {new_b}"
    );
    assert!(
        rows[1]["cumulative_ratio"].as_f64().unwrap()
            > rows[0]["cumulative_ratio"].as_f64().unwrap()
    );
    let human = bonsai(&["analyze", &d.s("a.raw"), &d.s("b.raw")]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("zero×dedup"));
}

/// A re-push takes every id from the key cache; with the store emptied, cached ids are
/// encoded late and uploaded, and the image still pulls back identical.
#[test]
fn key_cache_skips_encoding_known_chunks() {
    let d = Dir::new();
    let img = d.path("vm.raw");
    image(
        &img,
        6 * MIB as u64,
        &[
            (0, &text(2 * MIB, 80)),
            (3 * MIB as u64, &noise(2 * MIB, 81)),
        ],
    );
    let first = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.store("s1"),
        "-o",
        &d.s("a.recipe"),
        "--json",
    ]);
    let again = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.store("s1"),
        "-o",
        &d.s("b.recipe"),
        "--json",
    ]);
    assert_eq!(again["cache_hits"], first["unique_chunks"]);
    assert_eq!(again["new_chunks"], 0);
    // a fresh store: every cached id is missing there, so each is encoded and sent
    let fresh = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.store("s2"),
        "-o",
        &d.s("c.recipe"),
        "--json",
    ]);
    assert_eq!(fresh["cache_hits"], first["unique_chunks"]);
    assert_eq!(fresh["new_chunks"], first["new_chunks"]);
    assert_eq!(fresh["sent_bytes"], first["sent_bytes"]);
    bonsai_json(&[
        "pull",
        &d.s("c.recipe"),
        "--store",
        &d.store("s2"),
        "-o",
        &d.s("out.raw"),
        "--json",
    ]);
    assert!(same_file(&img, &d.path("out.raw")));
    let off = bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &d.store("s1"),
        "-o",
        &d.s("e.recipe"),
        "--json",
        "--no-cache",
    ]);
    assert_eq!(off["cache_hits"], 0);
}
