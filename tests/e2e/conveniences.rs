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
