//! Ctrl-C (SIGINT) and SIGTERM end bonsai as the signal does (exit status 130 in a shell)
//! after one line on stderr saying what the interrupted work left: the partial file a
//! re-run of the pull resumes, or that a push registered nothing and what a re-run sends.

use crate::util::*;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A "store" that accepts connections and never answers: work against it is under way
/// until a signal ends it.
fn stalled_store() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for c in l.incoming().flatten() {
            held.push(c);
        }
    });
    url
}

/// Runs bonsai with `args`, sends `signal` once `ready` holds (or after 5 s), and returns
/// the signal that ended it and its stderr.
fn interrupted(args: &[&str], signal: i32, ready: &dyn Fn() -> bool) -> (Option<i32>, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: signal(2) in the child before exec, resetting a disposition a parent
    // shell may have set to "ignore" (background jobs ignore SIGINT).
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let start = Instant::now();
    while !ready() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on the child this test started and has not reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    (
        out.status.signal(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_interrupted_pull_says_where_its_partial_file_is_and_a_rerun_resumes() {
    let d = Dir::new();
    let store = d.store("st");
    image(&d.path("a.raw"), 4 << 20, &[(0, &noise(3 << 20, 9))]);
    let (img, recipe, out) = (d.s("a.raw"), d.s("a.recipe"), d.s("out.raw"));
    assert!(bonsai(&["push", &img, "--store", &store, "-o", &recipe])
        .status
        .success());
    let partial_exists = || {
        listing(d.0.path())
            .iter()
            .any(|f| f.ends_with(".bonsai-partial"))
    };
    let stalled = stalled_store();
    let pull = ["pull", &recipe, "--store", &stalled, "-o", &out];
    let (signal, err) = interrupted(&pull, libc::SIGINT, &partial_exists);
    assert_eq!(signal, Some(libc::SIGINT), "ended by the signal: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(
        lines[0].starts_with("bonsai: interrupted; the blocks written so far are kept in ")
            && lines[0].contains(".bonsai-partial")
            && lines[0].ends_with("run the same pull again to resume"),
        "{err}"
    );
    assert!(!d.path("out.raw").exists(), "nothing that looks complete");
    let again = bonsai_json(&["pull", &recipe, "--store", &store, "-o", &out, "--json"]);
    assert_eq!(again["verified"], true);
    assert!(same_file(&d.path("a.raw"), &d.path("out.raw")));
    assert!(!partial_exists(), "the partial file became OUT");
}

#[test]
fn an_interrupted_push_says_nothing_was_registered() {
    let d = Dir::new();
    image(&d.path("a.raw"), 2 << 20, &[(0, &noise(1 << 20, 3))]);
    let (img, recipe) = (d.s("a.raw"), d.s("a.recipe"));
    let stalled = stalled_store();
    let push = [
        "push", &img, "--store", &stalled, "-o", &recipe, "--name", "vm",
    ];
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let (got, err) = interrupted(&push, signal, &|| false);
        assert_eq!(got, Some(signal), "{err}");
        assert_eq!(
            err.trim_end(),
            "bonsai: interrupted; no version of vm was registered and no recipe written; \
             the blocks already uploaded stay in the store, so the same push again sends \
             only the rest"
        );
        assert!(!d.path("a.recipe").exists());
    }
}

#[test]
fn an_interrupted_command_without_a_note_still_says_so() {
    let d = Dir::new();
    let stalled = stalled_store();
    let (signal, err) = interrupted(&["images", "--store", &stalled], libc::SIGINT, &|| false);
    assert_eq!(signal, Some(libc::SIGINT));
    assert_eq!(err.trim_end(), "bonsai: interrupted");
    drop(d);
}
