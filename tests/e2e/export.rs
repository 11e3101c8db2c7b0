//! `bonsai export`: the image served over NBD while it fills, checked with real NBD
//! clients only (qemu-img, qemu-io, nbdinfo, nbdcopy). The store is reached through a
//! relay the test can take down and slow down, so "the store died" and "the fill is still
//! running" are states the test sets, not races it hopes for.

use crate::util::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A TCP relay in front of a store: while down it hangs up on every connection (a dead
/// store); `delay_ms` holds each chunk it forwards to the client (a slow link).
struct Relay {
    url: String,
    down: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Relay {
    fn start(upstream: &str) -> Relay {
        let upstream = upstream.trim_start_matches("http://").to_string();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let down = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (d, ms) = (down.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    drop(c);
                    continue;
                }
                let Ok(s) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (c2, s2) = (c.try_clone().unwrap(), s.try_clone().unwrap());
                let (d1, d2, ms) = (d.clone(), d.clone(), ms.clone());
                std::thread::spawn(move || pipe(c, s, &d1, None));
                std::thread::spawn(move || pipe(s2, c2, &d2, Some(ms)));
            }
        });
        Relay {
            url,
            down,
            delay_ms,
        }
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream, down: &AtomicBool, delay: Option<Arc<AtomicU64>>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(ms) = &delay {
            std::thread::sleep(Duration::from_millis(ms.load(Ordering::SeqCst)));
        }
        if down.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// A running `bonsai export --json`, its events collected as they come.
struct Export {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    rx: mpsc::Receiver<Value>,
    uri: String,
}

impl Export {
    fn start(recipe: &str, store: &str, socket: &str, local: &str, extra: &[&str]) -> Export {
        let mut child = Command::new(bin())
            .args([
                "export", recipe, "--store", store, "--socket", socket, "-o", local, "--json",
            ])
            .args(extra)
            .env("BONSAI_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let ev = events.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).expect("a JSON line");
                ev.lock().unwrap().push(v.clone());
                let _ = tx.send(v);
            }
        });
        let e = Export {
            child,
            events,
            rx,
            uri: format!("nbd+unix:///bonsai?socket={socket}"),
        };
        e.wait_for("serving", 60);
        e
    }

    /// The first event named `name` (seen before or arriving within `secs`).
    fn wait_for(&self, name: &str, secs: u64) -> Value {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = self.seen(name) {
                return v;
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {name:?} event in {secs} s: {:?}",
                self.events.lock().unwrap()
            );
            let _ = self.rx.recv_timeout(left.min(Duration::from_millis(200)));
        }
    }

    fn seen(&self, name: &str) -> Option<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|v| v["event"] == name)
            .cloned()
    }

    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// 48 MiB: 20 MiB of noise, a hole, 6 MiB of text, a hole to the end.
fn test_image(d: &Dir) -> String {
    let img = d.s("vm.raw");
    image(
        &d.path("vm.raw"),
        48 << 20,
        &[(0, &noise(20 << 20, 5)), (32 << 20, &text(6 << 20, 6))],
    );
    img
}

fn push(img: &str, store: &str, recipe: &str) {
    let out = bonsai(&["push", img, "--store", store, "-o", recipe, "--name", "vm"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything a tool printed, stdout then stderr.
fn said(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn tool(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

#[test]
fn real_clients_read_the_exact_image_while_it_fills_and_local_becomes_it() {
    let d = Dir::new();
    let img = test_image(&d);
    let server = Server::start(&d.path("data"), &[]);
    let relay = Relay::start(&server.url);
    push(&img, &relay.url, &d.s("vm.recipe"));
    relay.delay_ms.store(15, Ordering::SeqCst);
    let local = d.s("local.raw");
    let e = Export::start(
        &d.s("vm.recipe"),
        &relay.url,
        &d.s("s.sock"),
        &local,
        &["--threads", "1"],
    );
    assert!(
        e.seen("filled").is_none(),
        "the fill should still be running"
    );
    let cmp = tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", &img, &e.uri],
    );
    assert!(
        cmp.status.success(),
        "qemu-img compare: {}",
        String::from_utf8_lossy(&cmp.stdout)
    );
    let map = String::from_utf8(tool("nbdinfo", &["--map", &e.uri]).stdout).unwrap();
    assert!(
        map.contains("hole,zero"),
        "nbdinfo --map shows the holes: {map}"
    );
    let hole_at = |o: u64| {
        map.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (s, n): (u64, u64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
            s <= o && o < s + n && l.contains("hole")
        })
    };
    assert!(
        hole_at(24 << 20) && hole_at(40 << 20) && !hole_at(1 << 20),
        "{map}"
    );
    // concurrent random reads from qemu-io, and a multi-connection copy by nbdcopy
    let mut io = vec!["-r".to_string(), "-f".into(), "raw".into(), e.uri.clone()];
    for (i, off) in [5u64, 33, 0, 17, 36, 9, 47, 2].iter().enumerate() {
        io.extend(["-c".into(), format!("aio_read {}M {}k", off, 64 * (i + 1))]);
    }
    io.extend(["-c".into(), "aio_flush".into()]);
    let io: Vec<&str> = io.iter().map(|s| s.as_str()).collect();
    let out = tool("qemu-io", &io);
    let said = said(&out);
    assert!(
        out.status.success() && !said.contains("error"),
        "qemu-io: {said}"
    );
    let copy = d.s("copy.raw");
    let out = tool(
        "nbdcopy",
        &["--connections=2", "--requests=8", &e.uri, &copy],
    );
    assert!(
        out.status.success(),
        "nbdcopy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        same_file(&d.path("copy.raw"), &d.path("vm.raw")),
        "nbdcopy's copy differs"
    );
    relay.delay_ms.store(0, Ordering::SeqCst);
    let filled = e.wait_for("filled", 120);
    assert_eq!(filled["verified"], true);
    assert!(
        same_file(&d.path("local.raw"), &d.path("vm.raw")),
        "LOCAL is the image"
    );
    let cmp = tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", &img, &e.uri],
    );
    assert!(cmp.status.success(), "served after the fill too");
    e.kill();
}

#[test]
fn a_dead_store_fails_reads_of_absent_blocks_with_eio_and_the_export_recovers() {
    let d = Dir::new();
    let img = test_image(&d);
    let server = Server::start(&d.path("data"), &[]);
    let relay = Relay::start(&server.url);
    push(&img, &relay.url, &d.s("vm.recipe"));
    relay.down.store(true, Ordering::SeqCst);
    let e = Export::start(
        &d.s("vm.recipe"),
        &relay.url,
        &d.s("s.sock"),
        &d.s("l.raw"),
        &[],
    );
    let started = Instant::now();
    let out = tool("qemu-io", &["-r", "-f", "raw", &e.uri, "-c", "read 1M 64k"]);
    let said = said(&out);
    assert!(
        said.contains("Input/output error"),
        "EIO, not bytes: {said}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "EIO within a bound"
    );
    let hole = tool(
        "qemu-io",
        &["-r", "-f", "raw", &e.uri, "-c", "read -P 0 40M 1M"],
    );
    assert!(
        hole.status.success() && !String::from_utf8_lossy(&hole.stdout).contains("error"),
        "holes need no store"
    );
    e.wait_for("store_down", 30);
    relay.down.store(false, Ordering::SeqCst);
    e.wait_for("filled", 120);
    let cmp = tool(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "raw", &img, &e.uri],
    );
    assert!(
        cmp.status.success(),
        "after recovery the export serves the image"
    );
}

#[test]
fn a_killed_export_restarts_without_fetching_anything_twice() {
    let d = Dir::new();
    let img = test_image(&d);
    let server = Server::start(&d.path("data"), &[]);
    let relay = Relay::start(&server.url);
    push(&img, &relay.url, &d.s("vm.recipe"));
    relay.delay_ms.store(15, Ordering::SeqCst);
    let (recipe, sock, local) = (d.s("vm.recipe"), d.s("s.sock"), d.s("l.raw"));
    let e = Export::start(&recipe, &relay.url, &sock, &local, &["--threads", "1"]);
    // the first 8 MiB read through the export, then SIGKILL mid-fill
    let out = tool("qemu-io", &["-r", "-f", "raw", &e.uri, "-c", "read 0 8M"]);
    assert!(out.status.success());
    assert!(e.seen("filled").is_none(), "killed before the fill ended");
    e.kill();
    relay.delay_ms.store(0, Ordering::SeqCst);
    let e = Export::start(&recipe, &relay.url, &sock, &local, &[]);
    let r = e.wait_for("filled", 120);
    let (total, resumed, fetched) = (
        r["blocks"].as_u64().unwrap(),
        r["resumed_blocks"].as_u64().unwrap(),
        r["fetched_blocks"].as_u64().unwrap(),
    );
    assert!(resumed * 4 >= total / 10, "the 8 MiB read were kept: {r}");
    assert_eq!(resumed + fetched, total, "nothing fetched twice: {r}");
    assert!(same_file(&d.path("l.raw"), &d.path("vm.raw")));
}

#[test]
fn a_tampered_block_is_an_io_error_on_its_range_only() {
    let d = Dir::new();
    let img = test_image(&d);
    let store = d.store("st");
    push(&img, &store, &d.s("vm.recipe"));
    let shown = bonsai_json(&["recipe", "show", &d.s("vm.recipe"), "--json"]);
    let first = shown["extents"][0]["id"].as_str().unwrap().to_string();
    let path = d
        .path("st")
        .join("blocks")
        .join(&first[..2])
        .join(&first[2..4])
        .join(&first);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let e = Export::start(
        &d.s("vm.recipe"),
        &store,
        &d.s("s.sock"),
        &d.s("l.raw"),
        &[],
    );
    let bad = tool("qemu-io", &["-r", "-f", "raw", &e.uri, "-c", "read 0 4k"]);
    let said = said(&bad);
    assert!(
        said.contains("Input/output error"),
        "the tampered block is EIO: {said}"
    );
    let good = tool(
        "qemu-io",
        &[
            "-r",
            "-f",
            "raw",
            &e.uri,
            "-c",
            "read 10M 1M",
            "-c",
            "read 33M 1M",
        ],
    );
    let said = String::from_utf8_lossy(&good.stdout).to_string();
    assert!(
        good.status.success() && !said.contains("error"),
        "other ranges read: {said}"
    );
    let failed = e.wait_for("fill_failed", 60);
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("failed verification"),
        "{failed}"
    );
    assert!(
        !d.path("l.raw").exists(),
        "an incomplete LOCAL is never published"
    );
}

#[test]
fn the_first_clients_reads_become_a_boot_profile_the_next_export_fetches_first() {
    let d = Dir::new();
    let img = test_image(&d);
    let server = Server::start(&d.path("data"), &[]);
    push(&img, &server.url, &d.s("vm.recipe"));
    let e = Export::start(
        &d.s("vm.recipe"),
        &server.url,
        &d.s("a.sock"),
        &d.s("a.raw"),
        &[],
    );
    // a probe first, as `qemu-img create -b` is before a boot: it must not become the profile
    assert!(tool("nbdinfo", &[&e.uri]).status.success());
    let out = tool(
        "qemu-io",
        &[
            "-r",
            "-f",
            "raw",
            &e.uri,
            "-c",
            "read 12M 1M",
            "-c",
            "read 34M 512k",
        ],
    );
    assert!(out.status.success());
    let saved = e.wait_for("profile_saved", 30);
    assert_eq!(saved["version"], "vm@1");
    assert_eq!(saved["kept"], true);
    let n = saved["blocks"].as_u64().unwrap();
    assert!(n > 0 && n < 100, "only what was read: {saved}");
    e.kill();
    let e = Export::start(
        &d.s("vm.recipe"),
        &server.url,
        &d.s("b.sock"),
        &d.s("b.raw"),
        &[],
    );
    let used = e.wait_for("profile_used", 30);
    assert_eq!(used["version"], "vm@1");
    assert_eq!(
        used["blocks"].as_u64().unwrap(),
        n,
        "every recorded block is fetched first"
    );
    e.wait_for("filled", 60);
    let (code, body) = http(
        "GET",
        &format!("{}/v1/profiles/vm@1", server.url),
        None,
        b"",
    );
    assert_eq!(code, 200);
    assert_eq!(&body[..4], b"BNSP");
}

#[test]
fn a_qcow2_overlay_takes_the_writes_and_is_rebased_onto_local_after_the_fill() {
    let d = Dir::new();
    let img = test_image(&d);
    let store = d.store("st");
    push(&img, &store, &d.s("vm.recipe"));
    let local = d.s("l.raw");
    let e = Export::start(&d.s("vm.recipe"), &store, &d.s("s.sock"), &local, &[]);
    let ov = d.s("ov.qcow2");
    qemu_img(&[
        "create", "-q", "-f", "qcow2", "-b", &e.uri, "-F", "raw", &ov,
    ]);
    let w = tool("qemu-io", &["-f", "qcow2", &ov, "-c", "write -P 171 0 64k"]);
    assert!(w.status.success(), "{}", String::from_utf8_lossy(&w.stderr));
    e.wait_for("filled", 60);
    e.kill();
    // the export is gone: the overlay now reads through LOCAL
    qemu_img(&["rebase", "-u", "-b", &local, "-F", "raw", &ov]);
    let r = tool(
        "qemu-io",
        &[
            "-r",
            "-f",
            "qcow2",
            &ov,
            "-c",
            "read -P 171 0 64k",
            "-c",
            "read -P 0 40M 1M",
        ],
    );
    let said = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success() && !said.contains("fail") && !said.contains("error"),
        "{said}"
    );
    let mut want = std::fs::read(&img).unwrap();
    want[..64 << 10].fill(171);
    let flat = d.s("flat.raw");
    qemu_img(&["convert", "-O", "raw", &ov, &flat]);
    assert!(
        std::fs::read(&flat).unwrap() == want,
        "the overlay is the image plus the VM's write"
    );
    assert!(
        same_file(&d.path("l.raw"), &d.path("vm.raw")),
        "LOCAL itself was never written"
    );
}

#[test]
fn without_the_fill_only_reads_are_fetched_sigusr1_says_so_and_pull_finishes_local() {
    let d = Dir::new();
    let img = test_image(&d);
    let server = Server::start(&d.path("data"), &[]);
    push(&img, &server.url, &d.s("vm.recipe"));
    let e = Export::start(
        &d.s("vm.recipe"),
        &server.url,
        &d.s("a.sock"),
        &d.s("a.raw"),
        &["--no-fill", "--no-profile"],
    );
    let out = tool(
        "qemu-io",
        &["-r", "-f", "raw", &e.uri, "-c", "read 12M 64k"],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert_eq!(unsafe { libc::kill(e.child.id() as i32, libc::SIGUSR1) }, 0);
    let st = e.wait_for("status", 30);
    assert_eq!(st["filling"], false, "{st}");
    assert_eq!(st["failed_reads"], 0, "{st}");
    let (local, data) = (
        st["local_bytes"].as_u64().unwrap(),
        st["data_bytes"].as_u64().unwrap(),
    );
    assert!(
        (26 << 20..32 << 20).contains(&data),
        "the image's 26 MiB of data and the zeros its chunks hold, not its holes: {st}"
    );
    assert!(local > 0 && local < 1 << 20, "only the read's blocks: {st}");
    assert!(st["read_fetched_bytes"].as_u64().unwrap() > 0, "{st}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(e.seen("filled").is_none(), "no fill, so never filled");
    e.kill();
    let out = bonsai(&[
        "pull",
        &d.s("vm.recipe"),
        "--store",
        &server.url,
        "-o",
        &d.s("a.raw"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", said(&out));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["resumed_bytes"].as_u64().unwrap() > 0,
        "the export's blocks are reused: {r}"
    );
    assert_eq!(
        std::fs::read(d.path("a.raw")).unwrap(),
        std::fs::read(&img).unwrap()
    );
}
