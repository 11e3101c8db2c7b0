//! The qemu reader (qemu-storage-daemon) lives no longer than the bonsai that started it:
//! killed or terminated mid-push, bonsai leaves no daemon holding the image open and no
//! private directory in the temporary directory.

use crate::tools;
use crate::util::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Processes other than `not` whose command line names `needle`.
fn processes_naming(needle: &str, not: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if pid != not && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// Waits up to `secs` for `done`.
fn within(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

#[test]
fn a_killed_or_terminated_push_takes_its_reader_with_it() {
    for signal in [libc::SIGKILL, libc::SIGTERM] {
        let d = Dir::new();
        let vmdk = d.s("thin.vmdk");
        let out = tools::output(
            Command::new("qemu-img").args(["create", "-q", "-f", "vmdk", &vmdk, "1G"]),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = tools::output(Command::new("qemu-io").args(["-c", "write -P 0x5a 0 1M", &vmdk]));
        assert!(out.status.success());
        let tmp = d.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        // a store that is down: the push retries with the image open
        let dead = HangUp::start();
        let mut push = command(&[("TMPDIR", tmp.to_str().unwrap())])
            .args(["--quiet", "push", &vmdk, "--store", &dead.url()])
            .arg("-o")
            .arg(d.path("x.recipe"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let bonsai_pid = push.id();
        // reading: a daemon names the image, and bonsai is connected to it (its private
        // directory is gone once the connection stands)
        let started = within(30, || {
            !processes_naming(&vmdk, bonsai_pid).is_empty() && listing(&tmp).is_empty()
        });
        assert!(started, "no qemu-storage-daemon ever served {vmdk}");
        // SAFETY: kill(2) on the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(bonsai_pid as i32, signal) }, 0);
        let _ = push.wait();
        let gone = within(5, || processes_naming(&vmdk, bonsai_pid).is_empty());
        assert!(
            gone,
            "signal {signal}: a reader still holds {vmdk}: {:?}",
            processes_naming(&vmdk, bonsai_pid)
        );
        assert!(
            listing(&tmp).is_empty(),
            "signal {signal}: left in TMPDIR: {:?}",
            listing(&tmp)
        );
    }
}

#[test]
fn a_push_ended_while_its_reader_starts_leaves_no_directory() {
    use std::os::unix::process::ExitStatusExt;
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let d = Dir::new();
        let pass = d.path("pass");
        std::fs::write(&pass, "right").unwrap();
        // a LUKS key that takes the reader ~2 s to derive: a wide start-up window
        let luks = d.s("slow.luks");
        let secret = format!("secret,id=s0,file={}", pass.display());
        let out = tools::output(Command::new("qemu-img").args([
            "create",
            "-q",
            "--object",
            &secret,
            "-f",
            "luks",
            "-o",
            "key-secret=s0,iter-time=2000",
            &luks,
            "16M",
        ]));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tmp = d.path("tmp");
        std::fs::create_dir(&tmp).unwrap();
        let dead = HangUp::start();
        let mut push = command(&[("TMPDIR", tmp.to_str().unwrap())])
            .args(["--quiet", "push", &luks, "--store", &dead.url()])
            .arg("--image-secret-file")
            .arg(&pass)
            .arg("-o")
            .arg(d.path("x.recipe"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = push.id();
        assert!(
            within(30, || !listing(&tmp).is_empty()),
            "the reader's directory never appeared"
        );
        // SAFETY: kill(2) on the child this test started and has not reaped.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
        let status = push.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(signal),
            "not ended by the signal: {status}"
        );
        assert!(
            within(5, || listing(&tmp).is_empty()),
            "signal {signal}: left in TMPDIR: {:?}",
            listing(&tmp)
        );
        assert!(
            within(5, || processes_naming(&luks, pid).is_empty()),
            "signal {signal}: a reader still holds {luks}"
        );
    }
}
