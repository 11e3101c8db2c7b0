//! What users of restic, borg and kopia take for granted: shell completions, man pages,
//! a `--version` naming the build, and a store, token and CA given once (config file or
//! environment) instead of on every command — with flags first, then the environment,
//! then the file.

use crate::util::*;

#[test]
fn completions_for_every_shell_and_a_bash_script_that_parses() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = bonsai(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {out:?}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["push", "pull", "store", "output-format"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
    }
    let d = Dir::new();
    let out = bonsai(&["completions", "bash"]);
    std::fs::write(d.path("bonsai.bash"), &out.stdout).unwrap();
    run_tool("bash", &["-n", &d.s("bonsai.bash")]);
    let out = bonsai(&["completions", "tcsh"]);
    fails_as(&out, "tcsh", EXIT_USAGE);
}

#[test]
fn man_pages_for_every_command() {
    let d = Dir::new();
    std::fs::create_dir(d.path("man1")).unwrap();
    let out = bonsai(&["man", &d.s("man1")]);
    assert!(out.status.success(), "{out:?}");
    for page in [
        "bonsai.1",
        "bonsai-push.1",
        "bonsai-pull.1",
        "bonsai-recipe-show.1",
    ] {
        let text = std::fs::read_to_string(d.path(&format!("man1/{page}"))).unwrap();
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{page}: {text:.80}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(page));
    }
    let push = std::fs::read_to_string(d.path("man1/bonsai-push.1")).unwrap();
    assert!(push.contains("recipe"), "the page lacks the command's text");
    fails_as(
        &bonsai(&["man", &d.s("nope")]),
        "not a directory",
        EXIT_USAGE,
    );
}

#[test]
fn version_names_the_build() {
    let out = bonsai(&["--version"]);
    assert!(out.status.success());
    let v = String::from_utf8(out.stdout).unwrap();
    assert!(
        v.starts_with(&format!("bonsai {} (", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    assert!(v.contains("rustc "), "{v}");
    assert!(v.contains(std::env::consts::ARCH), "{v}");
}

/// A store directory with one pushed image, and a config file naming the store.
fn configured(d: &Dir, config: &str) -> String {
    let store = d.store("store");
    image(&d.path("vm.raw"), 1 << 20, &[(0, &noise(1 << 20, 3))]);
    bonsai_json(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &store,
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    std::fs::write(d.path("config.toml"), config.replace("STORE", &store)).unwrap();
    store
}

#[test]
fn a_config_file_gives_the_store_and_flags_and_environment_come_first() {
    let d = Dir::new();
    let store = configured(
        &d,
        "# the usual store\nstore = \"STORE\"\ntoken_file = \"~/token\"\nca_file = \"/nonexistent/ca.pem\"\n",
    );
    let cfg = d.s("config.toml");
    let with = |args: &[&str], extra: &[(&str, &str)]| {
        let mut env = vec![("BONSAI_CONFIG", cfg.as_str())];
        env.extend_from_slice(extra);
        bonsai_env(args, &env)
    };
    // no --store: the config's; its token and CA are for http(s) stores and not refused
    // for a directory (only the flags are)
    let out = with(&["stats", "--json"], &[]);
    assert!(out.status.success(), "{out:?}");
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["images"], 1);
    // the environment beats the file, the flag beats both
    std::fs::create_dir(d.path("other")).unwrap();
    let other = d.s("other");
    let out = with(&["stats"], &[("BONSAI_STORE", &other)]);
    fails_as(&out, "bonsai init", EXIT_USAGE);
    let out = with(&["stats", "--store", &store], &[("BONSAI_STORE", &other)]);
    assert!(out.status.success(), "{out:?}");
    // without any: the usual message
    let out = bonsai(&["stats"]);
    fails_as(&out, "--store", EXIT_USAGE);
}

#[test]
fn a_config_file_with_a_mistake_is_refused_naming_it() {
    let d = Dir::new();
    for (text, needle) in [
        ("stroe = \"/srv/bonsai\"\n", "unknown key `stroe`"),
        ("store = 7412\n", "must be a string"),
        ("store = \"/srv\"\nca_file =\n", "line 2"),
    ] {
        std::fs::write(d.path("config.toml"), text).unwrap();
        let out = bonsai_env(&["stats"], &[("BONSAI_CONFIG", &d.s("config.toml"))]);
        let err = fails_as(&out, needle, EXIT_USAGE);
        assert!(err.contains("config.toml"), "{err}");
    }
    // found through XDG_CONFIG_HOME as well
    std::fs::create_dir_all(d.path("xdg/bonsai")).unwrap();
    std::fs::write(d.path("xdg/bonsai/config.toml"), "bogus = \"x\"\n").unwrap();
    let out = bonsai_env(&["stats"], &[("XDG_CONFIG_HOME", &d.s("xdg"))]);
    fails_as(&out, "unknown key `bogus`", EXIT_USAGE);
}

#[test]
fn pull_dry_run_says_where_each_block_would_come_from_and_writes_nothing() {
    let d = Dir::new();
    let store = configured(&d, "");
    let dry = |extra: &[&str]| {
        let out_path = d.s("out.raw");
        let mut args = vec![
            "pull",
            "--dry-run",
            "--json",
            &d.s("vm.recipe"),
            "--store",
            &store,
            "-o",
            &out_path,
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let out = bonsai(&args);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        (out, v)
    };
    let before = listing(d.path("").as_path());
    let (out, v) = dry(&[]);
    assert!(out.status.success(), "{out:?}");
    let blocks = v["unique_chunks"].as_u64().unwrap();
    assert!(blocks > 0);
    assert_eq!(v["fetch_blocks"], blocks);
    assert_eq!(v["missing_blocks"], 0);
    assert_eq!(v["resume_from"], serde_json::Value::Null);
    assert_eq!(
        listing(d.path("").as_path()),
        before,
        "a dry run wrote files"
    );
    // a seed holding the image: nothing from the store
    let (_, v) = dry(&["--seed", &d.s("vm.raw")]);
    assert_eq!(v["seeded_blocks"], blocks);
    assert_eq!(v["fetch_blocks"], 0);
    // an interrupted pull's partial file: resumed
    let recipe = bonsai_core::Recipe::open(&d.path("vm.recipe")).unwrap();
    let partial = bonsai_core::pull::partial_path(&d.path("out.raw"), &recipe);
    std::fs::copy(d.path("vm.raw"), &partial).unwrap();
    let (_, v) = dry(&[]);
    assert_eq!(v["resumed_blocks"], blocks);
    assert_eq!(v["resume_from"], partial.display().to_string());
    std::fs::remove_file(&partial).unwrap();
    // a store without the blocks: said, exit 4; an existing OUT: refused as the pull would
    let empty = d.store("empty");
    let out = bonsai(&[
        "pull",
        "--dry-run",
        &d.s("vm.recipe"),
        "--store",
        &empty,
        "-o",
        &d.s("out.raw"),
    ]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("the pull would fail"), "{said}");
    fails_as(&out, "lacks", EXIT_NOT_FOUND);
    std::fs::write(d.path("out.raw"), b"precious").unwrap();
    let (out, _) = dry(&[]);
    fails_as(&out, "exists; pass --force", EXIT_USAGE);
}
