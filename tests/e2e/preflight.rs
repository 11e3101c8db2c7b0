//! Mistakes a new user makes are caught before any work, with a line saying what is wrong:
//! a mistyped `serve --data`, a server's token file given to the client, a mistyped
//! `--seed`.

use crate::util::*;

#[test]
fn serve_never_creates_a_store_from_a_typo() {
    let d = Dir::new();
    let typo = d.path("stroe");
    let out = bonsai(&["serve", "--listen", "127.0.0.1:0", "--data", &d.s("stroe")]);
    let err = fails_as(&out, "does not exist", EXIT_USAGE);
    assert!(err.contains("bonsai init"), "{err}");
    assert!(!typo.exists(), "a directory was made");
    std::fs::create_dir(d.path("docs")).unwrap();
    std::fs::write(d.path("docs/notes.txt"), "not a store").unwrap();
    let out = bonsai(&["serve", "--listen", "127.0.0.1:0", "--data", &d.s("docs")]);
    fails_as(&out, "not a bonsai store", EXIT_USAGE);
    assert!(!d.path("docs/index.sqlite").exists());
    // an existing store, or an empty directory, is served
    let store = d.store("store");
    let server = Server::start(std::path::Path::new(&store), &[]);
    assert!(bonsai(&["stats", "--store", &server.url]).status.success());
    drop(server);
    // an address already taken, and a token file that is not there
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bonsai(&["serve", "--listen", &addr, "--data", &store]);
    fails_as(&out, "cannot listen on", EXIT_USAGE);
    let out = bonsai(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        &store,
        "--token-file",
        &d.s("no-tokens"),
    ]);
    fails_as(&out, "no-tokens", EXIT_USAGE);
}

#[test]
fn a_servers_token_file_given_to_the_client_is_a_usage_error() {
    let d = Dir::new();
    std::fs::write(
        d.path("tokens"),
        format!("read {}\nwrite {}\n", "r".repeat(20), "w".repeat(20)),
    )
    .unwrap();
    std::fs::write(d.path("empty.tok"), "\n").unwrap();
    let server = Server::start(&d.path("store"), &["--token-file", &d.s("tokens")]);
    let out = bonsai(&[
        "stats",
        "--store",
        &server.url,
        "--token-file",
        &d.s("tokens"),
    ]);
    let err = fails_as(&out, "holds the token alone", 2);
    assert!(err.contains("server's token file"), "{err}");
    assert!(!err.contains("attempts"), "no retries: {err}");
    let out = bonsai(&[
        "stats",
        "--store",
        &server.url,
        "--token-file",
        &d.s("empty.tok"),
    ]);
    fails_as(&out, "is empty", 2);
    let out = bonsai_env(
        &["stats", "--store", &server.url],
        &[("BONSAI_TOKEN", "read rrrrrrrrrrrrrrrrrrrr")],
    );
    fails_as(&out, "BONSAI_TOKEN holds 2 words", 2);
    std::fs::write(d.path("ok.tok"), format!("{}\n", "r".repeat(20))).unwrap();
    let out = bonsai(&[
        "stats",
        "--store",
        &server.url,
        "--token-file",
        &d.s("ok.tok"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_mistyped_seed_is_refused_before_anything_is_fetched() {
    let d = Dir::new();
    let store = d.store("store");
    let img = d.path("vm.raw");
    image(&img, 4 << 20, &[(0, &noise(1 << 20, 3))]);
    let out = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("vm.recipe"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
        "--seed",
        &d.s("od.raw"),
    ]);
    fails_as(&out, "seed", 4);
    let left = listing(d.path("").as_path());
    assert!(
        !left.iter().any(|f| f.contains("partial") || f == "out.raw"),
        "{left:?}"
    );
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &store,
        "-o",
        &d.s("out.raw"),
        "--seed",
        &d.s("store"),
    ]);
    fails_as(&out, "is a directory", 2);
}

/// Scheme and TLS mistakes are named with their fix at once (exit 2), never retried into
/// "unreachable … after 5 attempts".
#[test]
fn scheme_and_certificate_mistakes_say_what_to_do() {
    let d = Dir::new();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    std::fs::write(d.path("cert.pem"), cert.pem()).unwrap();
    std::fs::write(d.path("key.pem"), key.serialize_pem()).unwrap();
    let tls = Server::start(
        &d.path("tls-store"),
        &["--tls-cert", &d.s("cert.pem"), "--tls-key", &d.s("key.pem")],
    );
    let plain = Server::start(&d.path("plain-store"), &[]);
    let no_retries = |err: &str| assert!(!err.contains("attempts"), "retried: {err}");
    let as_http = tls.url.replacen("https://", "http://", 1);
    let out = bonsai(&["stats", "--store", &as_http]);
    no_retries(&fails_as(&out, "use https://", 2));
    let out = bonsai(&["stats", "--store", &tls.url]);
    no_retries(&fails_as(&out, "--ca-file", 2));
    let as_https = plain.url.replacen("http://", "https://", 1);
    let out = bonsai(&["stats", "--store", &as_https]);
    no_retries(&fails_as(&out, "does not speak TLS", 2));
    let out = bonsai(&["stats", "--store", &tls.url, "--ca-file", &d.s("cert.pem")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `pull --force` over an older copy of the image reuses what that copy holds (verified by
/// key) instead of fetching every block again.
#[test]
fn pull_force_over_an_older_copy_reuses_it() {
    let d = Dir::new();
    let store = d.store("store");
    let base = noise(2 << 20, 41);
    image(&d.path("v1.raw"), 8 << 20, &[(0, &base)]);
    image(
        &d.path("v2.raw"),
        8 << 20,
        &[(0, &base), (4 << 20, &noise(256 << 10, 42))],
    );
    for v in ["v1", "v2"] {
        let out = bonsai(&[
            "push",
            &d.s(&format!("{v}.raw")),
            "--store",
            &store,
            "-o",
            &d.s(&format!("{v}.recipe")),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pull = |recipe: &str, force: bool| {
        let out_path = d.s("out.raw");
        let recipe = d.s(recipe);
        let mut args = vec![
            "pull",
            recipe.as_str(),
            "--store",
            store.as_str(),
            "-o",
            out_path.as_str(),
            "--json",
            "--no-cache",
        ];
        if force {
            args.push("--force");
        }
        bonsai_json(&args)
    };
    let first = pull("v1.recipe", false);
    assert!(first["fetched_blocks"].as_u64().unwrap() > 10);
    let again = pull("v2.recipe", true);
    assert_eq!(again["verified"], true);
    assert!(
        again["seeded_bytes"].as_u64().unwrap() >= 2 << 20,
        "{again}"
    );
    assert!(
        again["fetched_bytes"].as_u64().unwrap() < 600 << 10,
        "fetched more than the new data: {again}"
    );
    assert!(same_file(&d.path("v2.raw"), &d.path("out.raw")));
}

#[test]
fn an_unreadable_or_empty_ca_file_is_a_usage_error_before_any_connection() {
    let d = Dir::new();
    let down = HangUp::start();
    let url = down.url().replace("http://", "https://");
    let out = bonsai(&["stats", "--store", &url, "--ca-file", &d.s("no-ca.pem")]);
    fails_as(&out, "--ca-file", EXIT_USAGE);
    std::fs::write(d.path("empty.pem"), "").unwrap();
    let out = bonsai(&["stats", "--store", &url, "--ca-file", &d.s("empty.pem")]);
    fails_as(&out, "no certificate", EXIT_USAGE);
}
