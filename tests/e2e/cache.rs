//! A site cache (`serve --upstream`): the second pull through it asks the upstream for no
//! block, concurrent pulls through a cold cache fetch each block once, a cache at its size
//! limit evicts and still pulls right, a push through it lands upstream, the upstream down
//! leaves what the cache holds servable and the rest refused in one line, and a tampered
//! block from the upstream is refused, never kept.

use crate::util::*;
use std::path::Path;

const MIB: usize = 1 << 20;

/// The upstream with tokens (write: `u.w`, read: `u.r`), and a cache of it on `dir`.
fn upstream(d: &Dir) -> (Server, String, String) {
    let (w, r) = ("uw".repeat(12), "ur".repeat(12));
    std::fs::write(
        d.path("u.tokens"),
        format!("write {w} label=site\nread {r}\n"),
    )
    .unwrap();
    std::fs::write(d.path("u.w"), &w).unwrap();
    std::fs::write(d.path("u.r"), &r).unwrap();
    let up = Server::start(&d.path("up"), &["--token-file", &d.s("u.tokens")]);
    (up, d.s("u.w"), d.s("u.r"))
}

fn cache(d: &Dir, dir: &str, up: &Server, token: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--upstream", &up.url, "--upstream-token-file", token];
    args.extend_from_slice(extra);
    Server::start(&d.path(dir), &args)
}

fn push(d: &Dir, img: &Path, name: &str, store: &str, token: &str) -> serde_json::Value {
    let (img, recipe) = (img.display().to_string(), d.s(&format!("{name}.recipe")));
    bonsai_json(&[
        "push",
        &img,
        "--store",
        store,
        "--token-file",
        token,
        "-o",
        &recipe,
        "--name",
        name,
        "--no-cache",
        "--json",
        "--quiet",
    ])
}

fn pull(d: &Dir, name: &str, store: &str, out: &str) -> std::process::Output {
    let recipe = d.s(&format!("{name}.recipe"));
    bonsai(&[
        "pull",
        &recipe,
        "--store",
        store,
        "-o",
        &d.s(out),
        "--no-cache",
        "--quiet",
        "--force",
    ])
}

fn cache_stats(store: &str) -> serde_json::Value {
    bonsai_json(&["stats", "--store", store, "--json"])["cache"].clone()
}

/// The value of one metric line of the upstream (0 when absent).
fn metric(up: &Server, token: &str, line: &str) -> u64 {
    let (status, body) = http(
        "GET",
        &format!("{}/metrics", up.url),
        Some(&std::fs::read_to_string(token).unwrap()),
        b"",
    );
    assert_eq!(status, 200);
    String::from_utf8(body)
        .unwrap()
        .lines()
        .find(|l| l.starts_with(line))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

const FETCHES: &str =
    "bonsai_http_requests_total{route=\"/v1/blocks/fetch\",method=\"POST\",status=\"200\"}";

#[test]
fn the_second_pull_through_a_cache_asks_the_upstream_for_nothing() {
    let d = Dir::new();
    let (up, write, read) = upstream(&d);
    crate::ops::sibling(&d.path("a.raw"), 31);
    let pushed = push(&d, &d.path("a.raw"), "a", &up.url, &write);
    let site = cache(&d, "cache", &up, &read, &[]);
    assert!(pull(&d, "a", &site.url, "1.out").status.success());
    assert!(same_file(&d.path("a.raw"), &d.path("1.out")));
    let first = cache_stats(&site.url);
    assert_eq!(first["fetched_blocks"], pushed["unique_chunks"], "{first}");
    let fetches = metric(&up, &read, FETCHES);
    assert!(fetches > 0);
    assert!(pull(&d, "a", &site.url, "2.out").status.success());
    assert!(same_file(&d.path("a.raw"), &d.path("2.out")));
    let second = cache_stats(&site.url);
    assert_eq!(
        second["fetched_blocks"], first["fetched_blocks"],
        "{second}"
    );
    assert_eq!(second["hit_blocks"], pushed["unique_chunks"], "{second}");
    assert_eq!(
        metric(&up, &read, FETCHES),
        fetches,
        "the second pull fetched upstream"
    );
    assert!(second["hit_rate"].as_f64().unwrap() > 0.49);
    let text = bonsai(&["stats", "--store", &site.url]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("site cache of") && text.contains("not fetched over the WAN"),
        "{text}"
    );
}

#[test]
fn eight_pulls_through_a_cold_cache_fetch_each_block_once() {
    let d = Dir::new();
    let (up, write, read) = upstream(&d);
    let img = d.path("big.raw");
    image(&img, 12 * MIB as u64, &[(0, &noise(8 * MIB, 41))]);
    let pushed = push(&d, &img, "big", &up.url, &write);
    let site = cache(&d, "cache", &up, &read, &[]);
    std::thread::scope(|s| {
        for i in 0..8 {
            let (d, site) = (&d, &site);
            s.spawn(move || {
                let out = format!("{i}.out");
                let r = pull(d, "big", &site.url, &out);
                assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
                assert!(same_file(&d.path("big.raw"), &d.path(&out)));
            });
        }
    });
    let st = cache_stats(&site.url);
    assert_eq!(
        st["fetched_blocks"], pushed["unique_chunks"],
        "each block once: {st}"
    );
}

#[test]
fn a_cache_at_its_size_limit_evicts_and_still_pulls_right() {
    let d = Dir::new();
    let (up, write, read) = upstream(&d);
    for (seed, name) in [(51, "a"), (52, "b")] {
        let img = d.path(&format!("{name}.raw"));
        image(&img, 8 * MIB as u64, &[(0, &noise(3 * MIB, seed))]);
        push(&d, &img, name, &up.url, &write);
    }
    let site = cache(&d, "cache", &up, &read, &["--cache-size", "2M"]);
    for name in ["a", "b", "a"] {
        let r = pull(&d, name, &site.url, "x.out");
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
        assert!(same_file(&d.path(&format!("{name}.raw")), &d.path("x.out")));
        let held = bonsai_json(&["stats", "--store", &site.url, "--json"]);
        assert!(
            held["stored_bytes"].as_u64().unwrap() <= 2 * MIB as u64,
            "{held}"
        );
    }
    assert!(cache_stats(&site.url)["evicted_blocks"].as_u64().unwrap() > 0);
}

#[test]
fn a_push_through_a_cache_lands_upstream_and_images_are_the_upstreams() {
    let d = Dir::new();
    let (up, write, read) = upstream(&d);
    let site = cache(&d, "cache", &up, &write, &[]);
    crate::ops::sibling(&d.path("vm.raw"), 61);
    let img = d.s("vm.raw");
    let recipe = d.s("vm.recipe");
    let r = bonsai_json(&[
        "push",
        &img,
        "--store",
        &site.url,
        "-o",
        &recipe,
        "--name",
        "team/vm",
        "--json",
        "--quiet",
        "--no-cache",
    ]);
    assert_eq!(r["version"], 1, "{r}");
    let through = bonsai_json(&["images", "--store", &site.url, "--json"]);
    let direct = bonsai_json(&[
        "images",
        "--store",
        &up.url,
        "--token-file",
        &read,
        "--json",
    ]);
    assert_eq!(through["images"], direct["images"]);
    assert_eq!(direct["images"][0]["by"], "site");
    crate::ops::pull_same(
        &recipe,
        &up.url,
        &d.path("vm.raw"),
        &d.path("o.raw"),
        &["--token-file", &read],
    );
    let out = bonsai(&["gc", "--store", &site.url, "--quiet"]);
    fails_as(&out, "site cache", EXIT_USAGE);
}

#[test]
fn with_the_upstream_down_the_cache_serves_what_it_holds_and_refuses_the_rest() {
    let d = Dir::new();
    let (mut up, write, read) = upstream(&d);
    for seed in [71, 72] {
        crate::ops::sibling(&d.path(&format!("{seed}.raw")), seed);
        push(
            &d,
            &d.path(&format!("{seed}.raw")),
            &seed.to_string(),
            &up.url,
            &write,
        );
    }
    let site = cache(&d, "cache", &up, &read, &[]);
    assert!(pull(&d, "71", &site.url, "a.out").status.success());
    up.kill();
    let r = pull(&d, "71", &site.url, "b.out");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(same_file(&d.path("71.raw"), &d.path("b.out")));
    let r = pull(&d, "72", &site.url, "c.out");
    let err = fails_as(&r, "upstream", EXIT_NETWORK);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn a_tampered_block_from_the_upstream_is_refused_and_not_kept() {
    let d = Dir::new();
    let (up, write, read) = upstream(&d);
    crate::ops::sibling(&d.path("vm.raw"), 81);
    push(&d, &d.path("vm.raw"), "vm", &up.url, &write);
    let block = crate::sync::first_block_file(&d.path("up/blocks"));
    let mut bytes = std::fs::read(&block).unwrap();
    let n = bytes.len();
    bytes[n / 3] ^= 0x40;
    std::fs::write(&block, &bytes).unwrap();
    let site = cache(&d, "cache", &up, &read, &[]);
    let r = pull(&d, "vm", &site.url, "o.out");
    fails_as(&r, "damaged", EXIT_NETWORK);
    let name = block.file_name().unwrap();
    let kept = std::fs::read_dir(d.path("cache/blocks"))
        .into_iter()
        .flatten()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).into_iter().flatten())
        .any(|e| e.unwrap().file_name() == name);
    assert!(!kept, "the damaged block was kept");
}

/// `--store` twice, nearest first: a pull takes what the near directory holds and the rest
/// from the far server; with the far one down, an image the near one holds whole still
/// pulls; commands that administer one store refuse two.
#[test]
fn several_stores_nearest_first() {
    let d = Dir::new();
    let (mut far, write, read) = upstream(&d);
    let far_url = far.url.clone();
    let near = d.store("near");
    crate::ops::sibling(&d.path("a.raw"), 91);
    crate::ops::sibling(&d.path("c.raw"), 92);
    push(&d, &d.path("a.raw"), "a", &far_url, &write);
    push(&d, &d.path("c.raw"), "c", &far_url, &write);
    let a = d.s("a.raw");
    ok(&bonsai(&[
        "push",
        &a,
        "--store",
        &near,
        "-o",
        &d.s("near-a.recipe"),
        "--quiet",
    ]));
    let both = |recipe: &str, out: &str| {
        bonsai(&[
            "pull",
            &d.s(recipe),
            "--store",
            &near,
            "--store",
            &far_url,
            "--token-file",
            &read,
            "-o",
            &d.s(out),
            "--json",
            "--quiet",
            "--no-cache",
            "--force",
        ])
    };
    let r = both("c.recipe", "c.out");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(same_file(&d.path("c.raw"), &d.path("c.out")));
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(
        report["store"].as_str().unwrap().contains(", then "),
        "{report}"
    );
    far.kill();
    let r = both("a.recipe", "a.out");
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(same_file(&d.path("a.raw"), &d.path("a.out")));
    let r = both("c.recipe", "c2.out");
    assert!(!r.status.success(), "c needs the far store");
    let out = bonsai(&["stats", "--store", &near, "--store", &near]);
    fails_as(&out, "only pull, export", EXIT_USAGE);
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private CA's certificate for 127.0.0.1, written as ca.pem, cert.pem, key.pem in `d`.
fn private_ca(d: &Dir) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params
        .signed_by(&key, &rcgen::Issuer::from_params(&ca_params, &ca_key))
        .unwrap();
    std::fs::write(d.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.path("key.pem"), key.serialize_pem()).unwrap();
}

/// Tokens and TLS on every hop: an https upstream with tokens, an https cache of it with
/// its own tokens, a pull through the cache and a sync from the upstream.
#[test]
fn tokens_and_tls_on_every_hop() {
    let d = Dir::new();
    private_ca(&d);
    let tls = ["--tls-cert", &d.s("cert.pem"), "--tls-key", &d.s("key.pem")].map(String::from);
    let (w, r) = ("uw".repeat(12), "ur".repeat(12));
    std::fs::write(
        d.path("u.tokens"),
        format!("write {w} label=site\nread {r}\n"),
    )
    .unwrap();
    std::fs::write(d.path("u.w"), &w).unwrap();
    std::fs::write(d.path("u.r"), &r).unwrap();
    std::fs::write(d.path("c.tokens"), format!("read {}\n", "cr".repeat(12))).unwrap();
    std::fs::write(d.path("c.r"), "cr".repeat(12)).unwrap();
    let up = Server::start(
        &d.path("up"),
        &[&tls[..], &["--token-file".into(), d.s("u.tokens")]]
            .concat()
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(up.url.starts_with("https://"));
    crate::ops::sibling(&d.path("vm.raw"), 95);
    let (img, recipe, ca) = (d.s("vm.raw"), d.s("vm.recipe"), d.s("ca.pem"));
    ok(&bonsai(&[
        "push",
        &img,
        "--store",
        &up.url,
        "--token-file",
        &d.s("u.w"),
        "--ca-file",
        &ca,
        "-o",
        &recipe,
        "--name",
        "vm",
        "--quiet",
    ]));
    let cache_args: Vec<String> = [
        &tls[..],
        &[
            "--token-file",
            &d.s("c.tokens"),
            "--upstream",
            &up.url,
            "--upstream-token-file",
            &d.s("u.r"),
            "--upstream-ca-file",
            &ca,
        ]
        .map(String::from)[..],
    ]
    .concat();
    let site = Server::start(
        &d.path("cache"),
        &cache_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    crate::ops::pull_same(
        &recipe,
        &site.url,
        &d.path("vm.raw"),
        &d.path("o.raw"),
        &["--token-file", &d.s("c.r"), "--ca-file", &ca],
    );
    let target = d.store("dst");
    let v = bonsai_json(&[
        "sync",
        "--from",
        &site.url,
        "--from-token-file",
        &d.s("c.r"),
        "--ca-file",
        &ca,
        "--to",
        &target,
        "vm",
        "--json",
        "--quiet",
    ]);
    assert_eq!(v["versions"][0]["version"], "vm@1", "{v}");
    crate::ops::pull_same(&recipe, &target, &d.path("vm.raw"), &d.path("o2.raw"), &[]);
    // the cache's own token is not the upstream's
    let out = bonsai(&[
        "images",
        "--store",
        &site.url,
        "--token-file",
        &d.s("u.r"),
        "--ca-file",
        &ca,
    ]);
    fails_as(&out, "token", EXIT_AUTH);
}

/// Through a cache every version is the cache's token's at the upstream, so the cache
/// keeps the registrant rule: the pusher keeps its sealed recipe, another write token of
/// the site may not keep one for that version.
#[test]
fn through_a_cache_only_the_registrant_keeps_a_sealed_recipe() {
    let d = Dir::new();
    let (up, write, _read) = upstream(&d);
    let (alice, mallory) = ("al".repeat(12), "ma".repeat(12));
    std::fs::write(
        d.path("site.tokens"),
        format!("write {alice} label=alice\nwrite {mallory} label=mallory\n"),
    )
    .unwrap();
    std::fs::write(d.path("alice"), &alice).unwrap();
    let site = cache(
        &d,
        "cache",
        &up,
        &write,
        &["--token-file", &d.s("site.tokens")],
    );
    ok(&bonsai(&["recipe", "keygen", &d.s("key")]));
    crate::ops::sibling(&d.path("vm.raw"), 97);
    let (img, recipe, key) = (d.s("vm.raw"), d.s("vm.recipe"), d.s("key"));
    crate::ops::sibling(&d.path("w.raw"), 98);
    let w = d.s("w.raw");
    ok(&bonsai(&[
        "push",
        &w,
        "--store",
        &site.url,
        "--token-file",
        &d.s("alice"),
        "-o",
        &d.s("w.recipe"),
        "--name",
        "w",
        "--quiet",
    ]));
    let (status, _) = http(
        "PUT",
        &format!("{}/v1/recipes/w@1", site.url),
        Some(&mallory),
        b"sealed",
    );
    assert_eq!(
        status, 403,
        "another token kept a sealed recipe for alice's version"
    );
    ok(&bonsai(&[
        "push",
        &img,
        "--store",
        &site.url,
        "--token-file",
        &d.s("alice"),
        "-o",
        &recipe,
        "--name",
        "vm",
        "--keep-recipe",
        "--recipe-key",
        &key,
        "--quiet",
    ]));
    crate::ops::pull_same(
        "vm",
        &site.url,
        &d.path("vm.raw"),
        &d.path("o.raw"),
        &["--token-file", &d.s("alice"), "--recipe-key", &key],
    );
}
