//! Operating a store: gc while pushes run, forget + gc figures, check and healing by
//! re-push, sealed recipes, TLS with a private CA, and the admin role.

use crate::util::*;
use std::path::Path;

const MIB: usize = 1024 * 1024;

/// An image sharing a 2 MiB base with its siblings, plus 1 MiB of its own.
pub(crate) fn sibling(path: &Path, seed: u64) {
    let base = noise(2 * MIB, 7);
    let own = noise(MIB, 1000 + seed);
    image(path, 8 * MIB as u64, &[(0, &base), (4 * MIB as u64, &own)]);
}

fn push(img: &Path, store: &str, recipe: &str, name: &str, extra: &[&str]) -> std::process::Output {
    let img = img.display().to_string();
    let mut args = vec![
        "push",
        &img,
        "--store",
        store,
        "-o",
        recipe,
        "--name",
        name,
        "--no-cache",
        "--json",
    ];
    args.extend_from_slice(extra);
    bonsai(&args)
}

/// Pulls `recipe` (or a name, with `--recipe-key` in `extra`) and asserts it is verified and
/// byte-identical to `original`.
pub(crate) fn pull_same(recipe: &str, store: &str, original: &Path, out: &Path, extra: &[&str]) {
    let out_s = out.display().to_string();
    let mut args = vec![
        "pull",
        recipe,
        "--store",
        store,
        "-o",
        &out_s,
        "--no-cache",
        "--json",
    ];
    args.extend_from_slice(extra);
    let v = bonsai_json(&args);
    assert_eq!(v["verified"], true);
    assert!(same_file(original, out), "{recipe}: pulled image differs");
}

/// Pushes race `gc --grace 0` (the harshest setting) for 20 rounds with varying timing;
/// half the images are forgotten as we go so gc has real garbage to take. A push caught
/// out is refused at registration and re-run; never is an incomplete image registered.
#[test]
fn gc_while_pushing_keeps_every_registered_image_whole() {
    let d = Dir::new();
    let data = d.path("store");
    let server = Server::start(&data, &[]);
    let url = server.url.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc_runs = {
        let (url, stop) = (url.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut runs, mut freed) = (0u64, 0u64);
            let mut x = 12345u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(std::time::Duration::from_millis(x % 120));
                let out = bonsai(&["gc", "--store", &url, "--grace", "0", "--json"]);
                assert!(
                    out.status.success(),
                    "gc: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                freed += report["blocks_freed"].as_u64().unwrap();
                runs += 1;
            }
            (runs, freed)
        })
    };
    let mut kept = Vec::new();
    for round in 0..20u64 {
        let img = d.path(&format!("img{round}.raw"));
        sibling(&img, round);
        let recipe = d.s(&format!("img{round}.recipe"));
        let name = format!("img{round}");
        let out = push(&img, &url, &recipe, &name, &[]);
        if out.status.success() {
            kept.push((round, img, recipe));
        } else {
            // Refused three times in a row: must say so, leave no recipe, register nothing.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not in the store"), "round {round}: {err}");
            assert!(!Path::new(&recipe).exists());
        }
        if round % 2 == 1 {
            if let Some(pos) = kept.iter().position(|k| k.0 == round - 1) {
                let (r, ..) = kept.remove(pos);
                let out = bonsai(&[
                    "forget",
                    &format!("img{r}"),
                    "--all-versions",
                    "--store",
                    &url,
                ]);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (runs, freed) = gc_runs.join().unwrap();
    assert!(runs >= 5, "gc ran only {runs} times");
    assert!(freed > 0, "gc never freed anything in {runs} runs");
    assert!(kept.len() >= 5, "too few pushes succeeded: {}", kept.len());
    let listed = bonsai_json(&["images", "--store", &url, "--json"]);
    let names: Vec<&str> = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), kept.len(), "{names:?}");
    for (round, img, recipe) in &kept {
        assert!(names.contains(&format!("img{round}").as_str()));
        pull_same(recipe, &url, img, &d.path(&format!("out{round}")), &[]);
    }
    let check = bonsai_json(&["check", "--store", &url, "--read-data", "--json"]);
    assert_eq!(check["damaged"].as_array().unwrap().len(), 0);
}

fn tokens(d: &Dir) -> (String, String, String) {
    let write = "w".repeat(24);
    let admin = "a".repeat(24);
    std::fs::write(d.path("tokens"), format!("write {write}\nadmin {admin}\n")).unwrap();
    std::fs::write(d.path("write.tok"), &write).unwrap();
    std::fs::write(d.path("admin.tok"), &admin).unwrap();
    (d.s("tokens"), d.s("write.tok"), d.s("admin.tok"))
}

#[test]
fn forget_then_gc_frees_exactly_the_blocks_only_that_image_held() {
    let d = Dir::new();
    let (tokens, write, admin) = tokens(&d);
    let server = Server::start(&d.path("store"), &["--token-file", &tokens]);
    let url = server.url.clone();
    let (a, b) = (d.path("a.raw"), d.path("b.raw"));
    sibling(&a, 1);
    sibling(&b, 2);
    for (img, name) in [(&a, "a"), (&b, "b")] {
        let out = push(
            img,
            &url,
            &d.s(&format!("{name}.recipe")),
            name,
            &["--token-file", &write],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = bonsai_json(&["images", "--store", &url, "--token-file", &write, "--json"]);
    let only_a = list["images"][0]["unique_bytes"].as_u64().unwrap();
    assert_eq!(list["images"][0]["name"], "a");
    assert!(only_a > MIB as u64 / 2, "a holds {only_a} bytes of its own");
    let before = bonsai_json(&["stats", "--store", &url, "--token-file", &write, "--json"]);

    // A write token may neither forget nor collect.
    let out = bonsai(&["forget", "a@1", "--store", &url, "--token-file", &write]);
    fails_as(&out, "admin token", 3);
    let out = bonsai(&[
        "gc",
        "--store",
        &url,
        "--token-file",
        &write,
        "--grace",
        "0",
    ]);
    fails_as(&out, "admin token", 3);
    let out = bonsai(&["check", "--store", &url, "--token-file", &write]);
    fails_as(&out, "admin token", 3);
    let out = bonsai(&["forget", "nope", "--store", &url, "--token-file", &admin]);
    fails_as(&out, "no image named", 4);

    let adm = [
        "--store",
        url.as_str(),
        "--token-file",
        admin.as_str(),
        "--json",
    ];
    let out = bonsai(&[&["forget", "a@1"][..], &adm[..4]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Within the grace period nothing goes: the blocks are only marked.
    let g = bonsai_json(&[&["gc", "--grace", "1h"][..], &adm[..]].concat());
    assert_eq!(g["blocks_freed"], 0);
    assert!(g["marked_blocks"].as_u64().unwrap() > 0);
    let dry = bonsai_json(&[&["gc", "--grace", "0", "--dry-run"][..], &adm[..]].concat());
    assert_eq!(dry["bytes_freed"].as_u64().unwrap(), only_a);
    let g = bonsai_json(&[&["gc", "--grace", "0"][..], &adm[..]].concat());
    assert_eq!(g["bytes_freed"].as_u64().unwrap(), only_a);
    assert_eq!(g["blocks_freed"], dry["blocks_freed"]);
    let after = bonsai_json(&["stats", "--store", &url, "--token-file", &write, "--json"]);
    assert_eq!(
        before["blocks"].as_u64().unwrap() - after["blocks"].as_u64().unwrap(),
        g["blocks_freed"].as_u64().unwrap()
    );
    assert_eq!(
        before["stored_bytes"].as_u64().unwrap() - after["stored_bytes"].as_u64().unwrap(),
        only_a
    );
    let g = bonsai_json(&[&["gc", "--grace", "0"][..], &adm[..]].concat());
    assert_eq!(g["blocks_freed"], 0);
    pull_same(
        &d.s("b.recipe"),
        &url,
        &b,
        &d.path("b.out"),
        &["--token-file", &write],
    );
}

/// Block files of an embedded store, in a stable order.
fn block_files(store: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for a in std::fs::read_dir(store.join("blocks")).unwrap() {
        for b in std::fs::read_dir(a.unwrap().path()).unwrap() {
            for f in std::fs::read_dir(b.unwrap().path()).unwrap() {
                out.push(f.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn check_finds_flipped_truncated_and_missing_blocks_and_a_re_push_heals() {
    let d = Dir::new();
    let store = d.path("store");
    std::fs::create_dir(&store).unwrap();
    let s = store.display().to_string();
    let img = d.path("vm.raw");
    sibling(&img, 3);
    let recipe = d.s("vm.recipe");
    assert!(push(&img, &s, &recipe, "vm", &[]).status.success());
    let clean = bonsai_json(&["check", "--store", &s, "--read-data", "--json"]);
    let total = clean["blocks_checked"].as_u64().unwrap();
    assert!(total >= 10 && clean["damaged"].as_array().unwrap().is_empty());

    let files = block_files(&store);
    let mut bytes = std::fs::read(&files[0]).unwrap();
    bytes[100] ^= 0x10;
    std::fs::write(&files[0], bytes).unwrap();
    let len = std::fs::metadata(&files[1]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    std::fs::remove_file(&files[2]).unwrap();

    let quick = bonsai(&["check", "--store", &s, "--json"]);
    assert_eq!(
        quick.status.code(),
        Some(5),
        "damage found is a verification failure"
    );
    let q: serde_json::Value = serde_json::from_slice(&quick.stdout).unwrap();
    let mut problems: Vec<&str> = q["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["problem"].as_str().unwrap())
        .collect();
    problems.sort();
    assert_eq!(problems, ["missing", "wrong_size"]);
    let full = bonsai(&["check", "--store", &s, "--read-data", "--json"]);
    let f: serde_json::Value = serde_json::from_slice(&full.stdout).unwrap();
    assert_eq!(f["problems"][0]["problem"], "wrong_hash");
    assert_eq!(f["damaged_images"][0], "vm@1");
    assert_eq!(f["images_missing_blocks"][0]["missing_blocks"], 3);
    let out = bonsai(&["recipe", "check", &recipe, "--store", &s]);
    fails_as(&out, "3 of", 4);

    let healed = push(&img, &s, &d.s("vm2.recipe"), "vm", &[]);
    let h: serde_json::Value = serde_json::from_slice(&healed.stdout).unwrap();
    assert_eq!(
        h["new_chunks"], 3,
        "re-push uploads exactly the damaged blocks"
    );
    let ok = bonsai_json(&["check", "--store", &s, "--read-data", "--json"]);
    assert_eq!(ok["blocks_checked"].as_u64().unwrap(), total);
    assert!(ok["damaged_images"].as_array().unwrap().is_empty());
    let out = bonsai(&["recipe", "check", &recipe, "--store", &s]);
    assert!(out.status.success());
    pull_same(&recipe, &s, &img, &d.path("vm.out"), &[]);
}

#[test]
fn sealed_recipe_round_trip_and_wrong_key_refused() {
    let d = Dir::new();
    let server = Server::start(&d.path("store"), &[]);
    let url = server.url.clone();
    assert!(bonsai(&["recipe", "keygen", &d.s("key")]).status.success());
    assert!(bonsai(&["recipe", "keygen", &d.s("other")])
        .status
        .success());
    fails_as(
        &bonsai(&["recipe", "keygen", &d.s("key")]),
        "must not exist",
        2,
    );
    let img = d.path("vm.raw");
    sibling(&img, 4);
    let recipe = d.s("vm.recipe");
    let out = push(
        &img,
        &url,
        &recipe,
        "vm",
        &["--keep-recipe", "--recipe-key", &d.s("key")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&recipe).unwrap();
    let list = bonsai_json(&["images", "--store", &url, "--json"]);
    assert_eq!(list["images"][0]["sealed_recipe"], true);
    pull_same(
        "vm",
        &url,
        &img,
        &d.path("vm.out"),
        &["--recipe-key", &d.s("key")],
    );
    let out = bonsai(&[
        "pull",
        "vm",
        "--store",
        &url,
        "-o",
        &d.s("x.out"),
        "--recipe-key",
        &d.s("other"),
    ]);
    fails_as(&out, "wrong --recipe-key", 5);
    assert!(!d.path("x.out").exists());
    let out = bonsai(&[
        "pull",
        "nosuch",
        "--store",
        &url,
        "-o",
        &d.s("y.out"),
        "--recipe-key",
        &d.s("key"),
    ]);
    fails_as(&out, "no image nosuch", 4);
}

#[test]
fn tls_round_trip_with_a_private_ca_and_untrusted_certificate_refused() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let d = Dir::new();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    std::fs::write(d.path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(d.path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.path("key.pem"), key.serialize_pem()).unwrap();
    let server = Server::start(
        &d.path("store"),
        &["--tls-cert", &d.s("cert.pem"), "--tls-key", &d.s("key.pem")],
    );
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );
    let url = server.url.clone();
    let img = d.path("vm.raw");
    sibling(&img, 5);
    let ca_file = d.s("ca.pem");
    let out = push(
        &img,
        &url,
        &d.s("vm.recipe"),
        "vm",
        &["--ca-file", &ca_file],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pull_same(
        &d.s("vm.recipe"),
        &url,
        &img,
        &d.path("vm.out"),
        &["--ca-file", &ca_file],
    );
    // Without the CA the certificate is not trusted; nothing is sent in the clear either.
    let out = bonsai(&["stats", "--store", &url]);
    fails_as(&out, "certificate", EXIT_USAGE);
    let plain = url.replacen("https://", "http://", 1);
    assert!(!bonsai(&["stats", "--store", &plain]).status.success());
}
