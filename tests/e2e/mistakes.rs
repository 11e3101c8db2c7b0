//! Client-side mistakes a careful user expects refused, not silently "done": store typos,
//! clobbering, a directory as OUT, a character device as IMAGE, a closed stdout. Also the
//! exit code of each failure class, logs without ANSI escapes, and 0600 secrets.

use crate::util::*;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

const MIB: usize = 1024 * 1024;

fn small_image(d: &Dir) -> String {
    image(&d.path("vm.raw"), 2 * MIB as u64, &[(0, &noise(MIB, 3))]);
    d.s("vm.raw")
}

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

/// Runs bonsai in `cwd`, so that a stray directory it might create would land there.
fn bonsai_in(cwd: &Path, args: &[&str]) -> std::process::Output {
    command(&[]).current_dir(cwd).args(args).output().unwrap()
}

#[test]
fn store_typos_are_refused_and_create_nothing() {
    let d = Dir::new();
    let img = small_image(&d);
    let work = d.path("work");
    std::fs::create_dir(&work).unwrap();
    let cases = [
        ("127.0.0.1:7412", "write http://127.0.0.1:7412"),
        ("htp://127.0.0.1:7412", "unsupported scheme"),
        ("http://", "no host"),
        (
            "nosuchdir",
            "does not exist; create it with `bonsai init nosuchdir`",
        ),
    ];
    for (store, needle) in cases {
        for args in [
            vec!["push", &img, "--store", store, "-o", "r.recipe"],
            vec!["pull", "r.recipe", "--store", store, "-o", "out.raw"],
            vec!["stats", "--store", store],
        ] {
            let out = bonsai_in(&work, &args);
            fails_as(&out, needle, EXIT_USAGE);
        }
    }
    assert_eq!(listing(&work), Vec::<String>::new(), "a typo created files");
    // a directory holding other things is not a store; an empty one is not one to read
    std::fs::write(work.join("notes.txt"), "x").unwrap();
    let work_s = work.display().to_string();
    let out = bonsai(&["push", &img, "--store", &work_s, "-o", &d.s("r.recipe")]);
    fails_as(&out, "is not a bonsai store", EXIT_USAGE);
    let empty = d.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = bonsai(&["stats", "--store", &d.s("empty")]);
    fails_as(&out, "bonsai init", EXIT_USAGE);
    assert_eq!(listing(&empty), Vec::<String>::new());
    // a token file means a server: refused for a directory store rather than ignored
    std::fs::write(d.path("token"), "t").unwrap();
    let out = bonsai(&[
        "stats",
        "--store",
        &d.store("st"),
        "--token-file",
        &d.s("token"),
    ]);
    fails_as(
        &out,
        "--token-file applies to http(s) stores only",
        EXIT_USAGE,
    );
}

#[test]
fn scheme_in_any_case_reaches_the_server_and_summaries_name_the_store() {
    let d = Dir::new();
    let img = small_image(&d);
    let s = Server::start(&d.path("data"), &[]);
    let upper = s.url.replace("http://", "HTTP://");
    let out = bonsai(&["push", &img, "--store", &upper, "-o", &d.s("vm.recipe")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("to store {}", s.url)), "{text}");
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &upper,
        "-o",
        &d.s("o.raw"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("from store {}", s.url)), "{text}");
    let out = bonsai(&["stats", "--store", &s.url]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&s.url));
    let j = bonsai_json(&[
        "push",
        &img,
        "--store",
        &upper,
        "-o",
        &d.s("j.recipe"),
        "--json",
    ]);
    assert_eq!(j["store"], s.url.as_str());
    assert!(same_file(&d.path("vm.raw"), &d.path("o.raw")));
}

#[test]
fn existing_recipe_and_output_are_not_clobbered_without_force() {
    let d = Dir::new();
    let img = small_image(&d);
    let store = d.store("store");
    std::fs::write(d.path("vm.recipe"), "precious").unwrap();
    let push = |force: bool| {
        let mut a = vec!["push", &img, "--store", &store, "-o", "PLACEHOLDER"];
        let r = d.s("vm.recipe");
        a[5] = &r;
        if force {
            a.push("--force");
        }
        bonsai(&a)
    };
    let out = push(false);
    fails_as(&out, "exists; pass --force", EXIT_USAGE);
    assert_eq!(std::fs::read(d.path("vm.recipe")).unwrap(), b"precious");
    assert!(push(true).status.success());

    std::fs::write(d.path("out.raw"), "precious").unwrap();
    let pull = |extra: &[&str]| {
        let mut a = vec!["pull", "R", "--store", &store, "-o", "O"];
        let (r, o) = (d.s("vm.recipe"), d.s("out.raw"));
        a[1] = &r;
        a[5] = &o;
        a.extend_from_slice(extra);
        bonsai(&a)
    };
    let out = pull(&[]);
    fails_as(&out, "exists; pass --force", EXIT_USAGE);
    assert_eq!(std::fs::read(d.path("out.raw")).unwrap(), b"precious");
    assert!(pull(&["--force"]).status.success());
    assert!(same_file(&d.path("vm.raw"), &d.path("out.raw")));
}

#[test]
fn directory_as_out_is_refused_before_the_store_is_asked() {
    let d = Dir::new();
    let img = small_image(&d);
    bonsai_json(&[
        "push",
        &img,
        "--store",
        &d.store("st"),
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    // a store that hangs up: had the pull asked it anything, this would be a network error
    let dead = HangUp::start();
    for force in [false, true] {
        let mut args = vec!["pull", "", "--store", "", "-o", ""];
        let (r, u, o) = (d.s("vm.recipe"), dead.url(), d.s("st"));
        args[1] = &r;
        args[3] = &u;
        args[5] = &o;
        if force {
            args.push("--force");
        }
        let out = bonsai(&args);
        fails_as(&out, "is a directory", EXIT_USAGE);
    }
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &dead.url(),
        "-o",
        &d.s("no/such/out"),
    ]);
    fails_as(&out, "does not exist", EXIT_USAGE);
}

#[test]
fn character_devices_and_pipes_are_not_images() {
    let d = Dir::new();
    let store = d.store("st");
    let out = bonsai(&[
        "push",
        "/dev/zero",
        "--store",
        &store,
        "-o",
        &d.s("z.recipe"),
    ]);
    fails_as(&out, "/dev/zero is a character device", EXIT_USAGE);
    let fifo = d.path("fifo");
    let c = std::ffi::CString::new(fifo.display().to_string()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo has no other preconditions.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let out = bonsai(&[
        "push",
        &d.s("fifo"),
        "--store",
        &store,
        "-o",
        &d.s("f.recipe"),
    ]);
    fails_as(&out, "is a named pipe", EXIT_USAGE);
    assert!(!d.path("z.recipe").exists() && !d.path("f.recipe").exists());
    assert_eq!(
        bonsai_json(&["stats", "--store", &store, "--json"])["images"],
        0
    );
}

/// `| head` closes stdout early: every command that prints ends quietly, exit 0, no panic.
#[test]
fn closed_stdout_ends_quietly() {
    let d = Dir::new();
    // many small chunks: the JSON rendering is far larger than a pipe's buffer
    image(
        &d.path("big.raw"),
        16 * MIB as u64,
        &[(0, &noise(16 * MIB, 5))],
    );
    let store = d.store("st");
    let recipe = d.s("big.recipe");
    let big = d.s("big.raw");
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "push",
            &big,
            "--store",
            &store,
            "-o",
            &recipe,
            "--chunk-kib",
            "4",
            "--json",
        ],
        vec!["recipe", "show", "--json", &recipe],
        vec!["recipe", "show", &recipe],
        vec!["stats", "--store", &store],
        vec!["stats", "--store", &store, "--json"],
        vec!["analyze", &big],
        vec!["inspect", &big],
        vec!["push", &big, "--store", &store, "-o", &recipe, "--force"],
    ];
    for args in runs {
        let mut child = command(&[])
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), Some(0), "{args:?}: {err}");
        assert!(err.is_empty(), "{args:?} wrote to stderr: {err}");
    }
    assert!(d.path("big.recipe").exists());
}

#[test]
fn each_failure_class_has_its_exit_code() {
    let d = Dir::new();
    let img = small_image(&d);
    // usage: clap's own errors use the documented code, on one line
    let out = bonsai(&["push", &img, "--no-such-flag"]);
    fails_as(&out, "--no-such-flag", EXIT_USAGE);
    // auth
    std::fs::write(d.path("tokens"), "write good-token-of-length-20\n").unwrap();
    let s = Server::start(&d.path("data"), &["--token-file", &d.s("tokens")]);
    std::fs::write(d.path("bad"), "bad-token-of-length-20").unwrap();
    let out = bonsai(&[
        "push",
        &img,
        "--store",
        &s.url,
        "--token-file",
        &d.s("bad"),
        "-o",
        &d.s("x.recipe"),
    ]);
    assert_eq!(
        code(&out),
        Some(EXIT_AUTH),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // not found: the recipe file, and a block the store lacks
    let out = bonsai(&["recipe", "show", &d.s("absent.recipe")]);
    let err = fails_as(&out, "no such file", EXIT_NOT_FOUND);
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "cause printed twice: {err}"
    );
    assert_eq!(code(&out), Some(EXIT_NOT_FOUND));
    bonsai_json(&[
        "push",
        &img,
        "--store",
        &d.store("a"),
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &d.store("b"),
        "-o",
        &d.s("o.raw"),
    ]);
    fails_as(&out, "not in the store", EXIT_NOT_FOUND);
    // verification: a recipe whose bytes changed
    let mut bytes = std::fs::read(d.path("vm.recipe")).unwrap();
    bytes[60] ^= 4;
    std::fs::write(d.path("bad.recipe"), bytes).unwrap();
    let out = bonsai(&[
        "pull",
        &d.s("bad.recipe"),
        "--store",
        &d.s("a"),
        "-o",
        &d.s("o.raw"),
    ]);
    fails_as(&out, "corrupt", EXIT_VERIFY);
    // local I/O: reading a "recipe" that is a directory (fails even for root)
    let out = bonsai(&["recipe", "show", &d.s("a")]);
    fails_as(&out, "is a directory", EXIT_LOCAL_IO);
    // network: see failures::server_that_is_down
}

/// stderr into a file: no ANSI escapes even at debug level, and at the default level a
/// store that is down yields the one error line, not a warning per retry.
#[test]
fn logs_in_a_file_carry_no_colour_and_retries_are_quiet() {
    let d = Dir::new();
    let img = small_image(&d);
    let dead = HangUp::start();
    for (level, verbose) in [(None, false), (Some("debug"), true)] {
        let log = std::fs::File::create(d.path("log")).unwrap();
        let mut cmd = command(&[]);
        if let Some(l) = level {
            cmd.env("BONSAI_LOG", l);
        } else {
            cmd.env_remove("BONSAI_LOG");
        }
        let out = cmd
            .args(["push", &img, "--store", &dead.url(), "-o", &d.s("x.recipe")])
            .stderr(log)
            .output()
            .unwrap();
        assert_eq!(code(&out), Some(EXIT_NETWORK));
        let text = std::fs::read_to_string(d.path("log")).unwrap();
        assert!(!text.contains('\u{1b}'), "ANSI escape in the log: {text:?}");
        let lines = text.lines().count();
        if verbose {
            assert!(text.contains("retrying"), "{text}");
        } else {
            assert_eq!(lines, 1, "expected only the error line: {text}");
        }
    }
}

#[test]
fn recipes_and_the_key_cache_are_private_and_per_test() {
    let d = Dir::new();
    let img = small_image(&d);
    bonsai_json(&[
        "push",
        &img,
        "--store",
        &d.store("st"),
        "-o",
        &d.s("vm.recipe"),
        "--json",
    ]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&d.path("vm.recipe")), 0o600);
    let cache = cache_dir();
    assert_eq!(mode(&cache), 0o700);
    let dbs: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sqlite"))
        .collect();
    assert_eq!(dbs.len(), 1, "the key cache is not in the test's directory");
    assert_eq!(mode(&dbs[0]), 0o600);
    assert!(!cache.join("home").exists(), "something used $HOME/.cache");
    assert!(!cache.join("xdg").exists());
}

/// On a terminal (a pty made by util-linux `script`) logs are coloured; `NO_COLOR` turns
/// that off.
#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let d = Dir::new();
    let img = small_image(&d);
    let dead = HangUp::start();
    let line = format!(
        "{} -v --quiet push {img} --store {} -o {}",
        bin(),
        dead.url(),
        d.s("x.recipe")
    );
    for no_color in ["", "1"] {
        let out = crate::tools::output(
            command_of("script", &[("NO_COLOR", no_color)])
                .env_remove("BONSAI_LOG")
                .args(["-qec", &line, "/dev/null"]),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("retrying"), "{text}");
        let coloured = text.contains("\u{1b}[");
        assert_eq!(
            coloured,
            no_color.is_empty(),
            "NO_COLOR={no_color:?}: {text:?}"
        );
    }
}
