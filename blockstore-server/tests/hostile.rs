//! A hostile or broken client against the real server binary on loopback: each test
//! asserts the bound that keeps the server serving everyone else (issue 11). Memory is read
//! from the server process's /proc/PID/status (VmHWM), not guessed.

use bonsai_core::store::conformance::fresh_blocks;
use bonsai_core::store::write_frame;
use reqwest::blocking::Client;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::serving::Serving;

struct Server {
    serving: Serving,
    url: String,
    addr: String,
}

/// The server's command on `data` (created, as `bonsai init` would), stderr kept.
fn command(data: &Path, extra: &[&str]) -> Command {
    std::fs::create_dir_all(data).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonsai-blockstore"));
    cmd.args(["--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("BONSAI_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn spawn(data: &Path, extra: &[&str]) -> Child {
    command(data, extra).spawn().expect("start server")
}

impl Server {
    fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    fn start_with(data: &Path, extra: &[&str]) -> Server {
        let serving = Serving::spawn(command(data, extra));
        let (url, addr) = (serving.url.clone(), serving.addr().to_string());
        Server { serving, url, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.url)
    }

    /// A field of /proc/PID/status in KiB (VmHWM, VmRSS).
    fn mem_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.serving.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `n` blocks of incompressible data, `size` bytes of plaintext each.
fn big_blocks(n: usize, size: usize) -> Vec<bonsai_core::codec::EncodedBlock> {
    let mut enc = bonsai_core::Encoder::new();
    (0..n)
        .map(|i| {
            let mut plain = vec![0u8; size];
            let seed = format!("{:?} {i}", std::time::SystemTime::now());
            blake3::Hasher::new()
                .update(seed.as_bytes())
                .finalize_xof()
                .fill(&mut plain);
            enc.encode(&bonsai_core::Convergence::public(), &plain)
        })
        .collect()
}

fn upload(c: &Client, s: &Server, n: usize) -> Vec<bonsai_core::BlockId> {
    put_blocks(c, s, fresh_blocks(n))
}

fn put_blocks(
    c: &Client,
    s: &Server,
    blocks: Vec<bonsai_core::codec::EncodedBlock>,
) -> Vec<bonsai_core::BlockId> {
    let mut body = Vec::new();
    for b in &blocks {
        write_frame(&mut body, &b.id, &b.object);
    }
    let r = c.post(s.url("blocks")).body(body).send().unwrap();
    assert!(r.status().is_success(), "{}", r.text().unwrap());
    blocks.iter().map(|b| b.id).collect()
}

#[test]
fn stalled_fetch_clients_do_not_starve_others() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    // 16 MiB per reply: far more than socket buffers hold, so every sender stalls
    let ids = put_blocks(&c, &s, big_blocks(64, 256 * 1024));
    let body: Vec<u8> = ids.iter().flat_map(|i| i.0).collect();
    // 530 clients ask for every block and never read the reply
    let mut stalled = Vec::new();
    for _ in 0..530 {
        let mut t = TcpStream::connect(&s.addr).unwrap();
        write!(
            t,
            "POST /v1/blocks/fetch HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        t.write_all(&body).unwrap();
        stalled.push(t);
    }
    std::thread::sleep(Duration::from_secs(2));
    // everyone else is still served
    let r = c.get(s.url("stats")).send().expect("stats answers");
    assert_eq!(r.status(), 200);
    let r = c
        .post(s.url("blocks/missing"))
        .body(body.clone())
        .send()
        .expect("missing answers");
    assert_eq!((r.status().as_u16(), r.bytes().unwrap().len()), (200, 0));
    let r = c
        .post(s.url("blocks/fetch"))
        .body(body[..32 * 10].to_vec())
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.bytes().unwrap().len() > 10 * 36);
    eprintln!(
        "530 stalled fetches: server VmRSS {} KiB, VmHWM {} KiB",
        s.mem_kib("VmRSS:"),
        s.mem_kib("VmHWM:")
    );
    // bounded: well under what 530 buffered 16 MiB replies would cost (8.3 GiB)
    assert!(
        s.mem_kib("VmHWM:") < 1024 * 1024,
        "server peaked at {} KiB",
        s.mem_kib("VmHWM:")
    );
    drop(stalled);
}

#[test]
fn a_flood_of_tiny_invalid_frames_costs_little_and_gets_a_short_reply() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    let _ = c.get(s.url("stats")).send().unwrap();
    let before = s.mem_kib("VmHWM:");
    // 64 MiB of 36-byte frames: random ids, empty objects
    let mut body = Vec::with_capacity(64 << 20);
    let mut n = 0u64;
    while body.len() + 36 <= 64 << 20 {
        let id = bonsai_core::BlockId(*blake3::hash(&n.to_le_bytes()).as_bytes());
        write_frame(&mut body, &id, &[]);
        n += 1;
    }
    let started = std::time::Instant::now();
    let r = c.post(s.url("blocks")).body(body).send().unwrap();
    let status = r.status();
    let reply = r.bytes().unwrap();
    let grew = s.mem_kib("VmHWM:").saturating_sub(before);
    eprintln!(
        "64 MiB of invalid frames: status {status}, reply {} bytes, VmHWM grew {grew} KiB, {:?}",
        reply.len(),
        started.elapsed()
    );
    assert_eq!(status, 422);
    assert!(reply.len() < 64 * 1024, "reply of {} bytes", reply.len());
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(v["code"], "block_rejected");
    assert!(v["rejected"].as_array().unwrap().len() <= 100);
    assert!(grew < 256 * 1024, "server memory grew by {grew} KiB");
}

#[test]
fn huge_logical_sizes_do_not_break_stats() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    let ids = upload(&c, &s, 1);
    for name in ["a", "b"] {
        let mut body = (i64::MAX as u64).to_le_bytes().to_vec();
        body.extend_from_slice(&ids[0].0);
        let r = c
            .put(s.url(&format!("images/{name}")))
            .body(body)
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let r = c.get(s.url("stats")).send().unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    assert_eq!(v["images"], 2);
    assert_eq!(v["logical_bytes"], 2 * (i64::MAX as u64), "no overflow");
}

#[test]
fn a_second_server_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    std::fs::write(dir.path().join("tmp/upload-in-flight"), b"x").unwrap();
    let out = spawn(dir.path(), &[]).wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another process"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        dir.path().join("tmp/upload-in-flight").exists(),
        "tmp/ emptied"
    );
    assert_eq!(client().get(s.url("health")).send().unwrap().status(), 200);
}

#[test]
fn fifty_concurrent_large_existence_queries_run_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    let known = upload(&c, &s, 100);
    // 65 536 ids each: mostly absent, a few known
    let body: Vec<u8> = (0..65_536u32)
        .flat_map(|i| match known.get(i as usize) {
            Some(id) => id.0,
            None => *blake3::hash(&i.to_le_bytes()).as_bytes(),
        })
        .collect();
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..50 {
            scope.spawn(|| {
                let r = c
                    .post(s.url("blocks/missing"))
                    .body(body.clone())
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.bytes().unwrap().len(), (65_536 - 100) * 32);
            });
        }
    });
    eprintln!("50 concurrent 65 536-id queries: {:?}", started.elapsed());
}

/// Reads from `t` until the server closes it (a reply before closing is fine); how long
/// that took. Fails if the connection is still open after `limit`.
fn closed_within(t: &mut TcpStream, limit: Duration) -> Duration {
    t.set_read_timeout(Some(limit)).unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match t.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) => panic!("connection still open after {limit:?}: {e}"),
        }
    }
}

#[test]
fn stalled_heads_and_idle_connections_are_closed_but_slow_bodies_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with(dir.path(), &["--header-timeout-secs", "1"]);
    // opened and silent
    let mut silent = TcpStream::connect(&s.addr).unwrap();
    // a head dribbled a byte every 200 ms: each byte arrives well within the time-out,
    // the head never completes
    let mut dribble = TcpStream::connect(&s.addr).unwrap();
    let mut writer = dribble.try_clone().unwrap();
    let dribbler = std::thread::spawn(move || {
        let head = format!(
            "GET /v1/health HTTP/1.1\r\nhost: x\r\nx-pad: {}",
            "a".repeat(100)
        );
        for b in head.bytes() {
            if writer.write_all(&[b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    // a keep-alive connection left idle after one answered request
    let mut idle = TcpStream::connect(&s.addr).unwrap();
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut reply = [0u8; 12];
    idle.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"HTTP/1.1 200");
    for (what, t) in [
        ("silent", &mut silent),
        ("dribbled head", &mut dribble),
        ("idle keep-alive", &mut idle),
    ] {
        let took = closed_within(t, Duration::from_secs(10));
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    dribbler.join().unwrap();
    // the time-out is for heads only: a body sent slowly, over three times the time-out,
    // still gets its answer
    let mut slow = TcpStream::connect(&s.addr).unwrap();
    let ids = [7u8; 32 * 3];
    write!(
        slow,
        "POST /v1/blocks/missing HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        ids.len()
    )
    .unwrap();
    for part in ids.chunks(32) {
        std::thread::sleep(Duration::from_millis(1100));
        slow.write_all(part).unwrap();
    }
    let mut answer = Vec::new();
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    slow.read_to_end(&mut answer).unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    // and the server still serves everyone
    assert_eq!(client().get(s.url("health")).send().unwrap().status(), 200);
}

/// A web page cannot drive a store: a cross-origin POST (gc with no grace, from a page
/// the operator happens to visit) and a DNS-rebound one are refused before any work,
/// with the documented JSON body; bonsai's own client is not affected.
#[test]
fn cross_origin_and_rebound_state_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    let ids = upload(&c, &s, 1);
    let gc = s.url("gc?grace_seconds=0");
    let refused = |r: reqwest::blocking::Response| {
        assert_eq!(r.status(), 403);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        assert_eq!(v["code"], "forbidden", "{v}");
        v["error"].as_str().unwrap().to_string()
    };
    let e = refused(
        c.post(&gc)
            .header("origin", "https://evil.example")
            .send()
            .unwrap(),
    );
    assert!(e.contains("cross-origin"), "{e}");
    let e = refused(
        c.post(&gc)
            .header("sec-fetch-site", "cross-site")
            .send()
            .unwrap(),
    );
    assert!(e.contains("cross-origin"), "{e}");
    // DNS rebinding: same origin to the browser, but Host is the page's own name
    let port = s.addr.rsplit_once(':').unwrap().1;
    let e = refused(
        c.post(&gc)
            .header("host", format!("rebind.example:{port}"))
            .header("origin", format!("http://rebind.example:{port}"))
            .send()
            .unwrap(),
    );
    assert!(e.contains("--allow-host"), "{e}");
    let e = refused(
        c.put(s.url("images/vm"))
            .header("origin", "http://evil.example")
            .body(vec![0; 8])
            .send()
            .unwrap(),
    );
    assert!(e.contains("cross-origin"), "{e}");
    // nothing was collected or registered; reads from a page still answer
    assert!(
        c.post(s.url("blocks/missing"))
            .body(ids[0].0.to_vec())
            .send()
            .unwrap()
            .bytes()
            .unwrap()
            .is_empty(),
        "the block is still there"
    );
    let r = c
        .get(s.url("stats"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // the client's own requests (no Origin) go through
    assert_eq!(c.post(&gc).send().unwrap().status(), 200);
}

/// Every error is the documented JSON body, also bad query strings and unknown fields.
#[test]
fn bad_query_strings_get_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    for url in [
        s.url("gc?grace_seconds=soon"),
        s.url("gc?grace=1"),
        s.url("check?read_data=maybe"),
    ] {
        let r = c.post(&url).send().unwrap();
        assert_eq!(r.status(), 400, "{url}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap())
            .unwrap_or_else(|e| panic!("{url}: not JSON: {e}"));
        assert_eq!(v["code"], "bad_request", "{url}: {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

/// Names up to the documented 255 bytes register and list (they are hashed on disk);
/// longer ones and names with '@' or control characters get a 400 with a reason.
#[test]
fn long_names_round_trip_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let c = client();
    let ids = upload(&c, &s, 1);
    let mut body = 4096u64.to_le_bytes().to_vec();
    body.extend_from_slice(&ids[0].0);
    let long = format!("team/{}", "n".repeat(250));
    assert_eq!(long.len(), 255);
    let url = |name: &str| {
        let mut u = reqwest::Url::parse(&s.url("images/")).unwrap();
        u.path_segments_mut().unwrap().pop_if_empty().push(name);
        u
    };
    for _ in 0..2 {
        let r = c.put(url(&long)).body(body.clone()).send().unwrap();
        assert_eq!(r.status(), 201, "{:?}", r.text());
    }
    let r = c.get(s.url("images")).send().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
    let listed: Vec<(String, u64)> = v["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["name"].as_str().unwrap().to_string(),
                i["version"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [(long.clone(), 1), (long.clone(), 2)]);
    for bad in [
        format!("{long}x"),
        "a@b".into(),
        "vm\u{1b}[2J".into(),
        "a//b".into(),
    ] {
        let r = c.put(url(&bad)).body(body.clone()).send().unwrap();
        assert_eq!(r.status(), 400, "{bad:?}");
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().unwrap()).unwrap();
        assert_eq!(v["code"], "bad_request");
    }
}

/// `bonsai-blockstore` with its descriptor limit lowered to `nofile`.
fn spawn_limited(data: &Path, nofile: u64, extra: &[&str]) -> Serving {
    use std::os::unix::process::CommandExt;
    let mut cmd = command(data, extra);
    // SAFETY: setrlimit is async-signal-safe; it runs in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let r = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &r) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Serving::spawn(cmd)
}

/// Idle connections that use up the server's descriptors are logged and shed; once the
/// head time-out closes them, everyone is served again.
#[test]
fn running_out_of_descriptors_is_logged_and_survived() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = spawn_limited(dir.path(), 64, &["--header-timeout-secs", "2"]);
    let url = server.url.clone();
    let addr = url.trim_start_matches("http://").to_string();
    let idle: Vec<TcpStream> = (0..120)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_secs(4));
    drop(idle);
    let c = client();
    let mut ok = false;
    for _ in 0..20 {
        if c.get(format!("{url}/v1/health"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(ok, "the server did not recover");
    server.kill();
    let mut log = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(log.contains("out of file descriptors"), "{log}");
}

/// One address holding many stalled TLS handshakes takes at most its share of the
/// handshake slots: a client from another address is served at once.
#[test]
fn stalled_tls_handshakes_from_one_address_do_not_delay_others() {
    let dir = tempfile::tempdir().unwrap();
    let ca = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, ca.cert.pem()).unwrap();
    std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
    let data = dir.path().join("store");
    let s = Server::start_with(
        &data,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = s.url.rsplit_once(':').unwrap().1.to_string();
    // 300 connections from 127.0.0.1 that never say hello
    let stalled: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(format!("127.0.0.1:{port}")).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let root = reqwest::Certificate::from_pem(ca.cert.pem().as_bytes()).unwrap();
    let other = Client::builder()
        .add_root_certificate(root)
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let t = Instant::now();
    let r = other
        .get(format!("https://127.0.0.1:{port}/v1/health"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "another address waited {:?} behind stalled handshakes",
        t.elapsed()
    );
    drop(stalled);
}
