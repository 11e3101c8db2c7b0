//! The block store over real HTTP on loopback: the server binary is started on an
//! ephemeral port with a fresh data directory, and every test talks to it with reqwest.

use bonsai_core::store::write_frame;
use bonsai_core::{BlockId, Convergence, Encoder};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod support;
use support::serving::Serving;

const WRITE_TOKEN: &str = "write-token-0123456789";
const READ_TOKEN: &str = "read-token-0123456789";

struct Server {
    serving: Serving,
    url: String,
    data: PathBuf,
    token_file: Option<PathBuf>,
}

impl Server {
    fn start(data: &Path, token_file: Option<&Path>) -> Server {
        std::fs::create_dir_all(data).unwrap(); // as `bonsai init` would
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_bonsai-blockstore"));
        cmd.args(["--listen", "127.0.0.1:0", "--data"]).arg(data);
        if let Some(t) = token_file {
            cmd.arg("--token-file").arg(t);
        }
        cmd.env("BONSAI_LOG", "warn").stderr(Stdio::inherit());
        let serving = Serving::spawn(cmd);
        Server {
            url: serving.url.clone(),
            serving,
            data: data.to_path_buf(),
            token_file: token_file.map(Path::to_path_buf),
        }
    }

    fn restart(mut self) -> Server {
        self.serving.kill();
        let data = self.data.clone();
        let tokens = self.token_file.clone();
        Server::start(&data, tokens.as_deref())
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.url)
    }
}

fn block(seed: u64, len: usize) -> (BlockId, Vec<u8>) {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let b = Encoder::new().encode(&Convergence::public(), &data);
    (b.id, b.object)
}

fn ids_body(ids: &[BlockId]) -> Vec<u8> {
    ids.iter().flat_map(|i| i.as_bytes().to_vec()).collect()
}

fn frames(blocks: &[(BlockId, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (id, obj) in blocks {
        write_frame(&mut out, id, obj);
    }
    out
}

fn missing(c: &Client, s: &Server, ids: &[BlockId]) -> Vec<BlockId> {
    let r = c
        .post(s.url("blocks/missing"))
        .body(ids_body(ids))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.bytes()
        .unwrap()
        .chunks(32)
        .map(|c| BlockId::from_slice(c).unwrap())
        .collect()
}

fn tokens(dir: &Path) -> PathBuf {
    let p = dir.join("tokens");
    std::fs::write(&p, format!("write {WRITE_TOKEN}\nread {READ_TOKEN}\n")).unwrap();
    p
}

#[test]
fn single_upload_download_round_trip_and_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let c = Client::new();
    let (id, obj) = block(1, 50_000);
    let r = c
        .put(s.url(&format!("blocks/{id}")))
        .body(obj.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // idempotent
    let r = c
        .put(s.url(&format!("blocks/{id}")))
        .body(obj.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let got = c.get(s.url(&format!("blocks/{id}"))).send().unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.bytes().unwrap().to_vec(), obj);

    // bytes that do not hash to the id are refused and not stored
    let (other, _) = block(2, 1000);
    let r = c
        .put(s.url(&format!("blocks/{other}")))
        .body(obj.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().unwrap().contains("does not match its id"));
    assert_eq!(missing(&c, &s, &[other]), vec![other]);
    let r = c.get(s.url(&format!("blocks/{other}"))).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // malformed ids and paths
    let r = c.get(s.url("blocks/nothex")).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(s.url("nowhere")).send().unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let v = c.get(s.url("version")).send().unwrap().json_value();
    assert_eq!(v["api"], 1);
}

#[test]
fn existence_query_batch_upload_and_fetch() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let c = Client::new();
    let blocks: Vec<_> = (0..40)
        .map(|i| block(100 + i, 3000 + i as usize * 100))
        .collect();
    // a bad block in the middle: right length, wrong bytes
    let mut batch = blocks[..20].to_vec();
    let (bad_id, _) = block(999, 500);
    batch.insert(10, (bad_id, blocks[0].1.clone()));
    let r = c.post(s.url("blocks")).body(frames(&batch)).send().unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v = r.json_value();
    assert_eq!(v["stored"], 20);
    assert_eq!(v["rejected"][0]["id"], bad_id.to_hex());
    assert!(v["error"].as_str().unwrap().contains("1 block(s) rejected"));

    let all: Vec<BlockId> = blocks.iter().map(|b| b.0).chain([bad_id]).collect();
    let absent = missing(&c, &s, &all);
    let mut expect: Vec<BlockId> = blocks[20..].iter().map(|b| b.0).collect();
    expect.push(bad_id);
    assert_eq!(absent, expect);

    let r = c
        .post(s.url("blocks"))
        .body(frames(&blocks))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v = r.json_value();
    assert_eq!(
        (v["stored"].as_u64(), v["existed"].as_u64()),
        (Some(20), Some(20))
    );

    // batch download, in the order asked
    let want: Vec<BlockId> = blocks.iter().rev().map(|b| b.0).collect();
    let r = c
        .post(s.url("blocks/fetch"))
        .body(ids_body(&want))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.bytes().unwrap();
    let mut rest = &body[..];
    for id in &want {
        let (got, skip, len) = bonsai_core::store::parse_frame(rest, 1 << 25)
            .unwrap()
            .unwrap();
        assert_eq!(got, *id);
        assert_eq!(
            BlockId(*blake3::hash(&rest[skip..skip + len]).as_bytes()),
            *id
        );
        rest = &rest[skip + len..];
    }
    assert!(rest.is_empty());
    // a download naming an absent block is refused up front
    let r = c
        .post(s.url("blocks/fetch"))
        .body(ids_body(&[want[0], bad_id]))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.text().unwrap().contains(&bad_id.to_hex()));

    // manifests: refused while a block is missing, accepted once all are stored
    let mut manifest = 1_000_000u64.to_le_bytes().to_vec();
    manifest.extend(ids_body(&[blocks[0].0, bad_id]));
    let r = c.put(s.url("images/vm%201")).body(manifest).send().unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let mut manifest = 1_000_000u64.to_le_bytes().to_vec();
    manifest.extend(ids_body(&want));
    let r = c.put(s.url("images/vm%201")).body(manifest).send().unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let st = c.get(s.url("stats")).send().unwrap().json_value();
    assert_eq!(st["blocks"], 40);
    assert_eq!(st["images"], 1);
    assert_eq!(st["logical_bytes"], 1_000_000);
    let images = c.get(s.url("images")).send().unwrap().json_value();
    assert_eq!(images["images"][0]["name"], "vm 1");
}

#[test]
fn malformed_oversized_and_truncated_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let c = Client::new();
    let r = c
        .post(s.url("blocks/missing"))
        .body(vec![0u8; 33])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .post(s.url("blocks/missing"))
        .body(vec![0u8; 32 * 70_000])
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // a frame that declares more than any block may hold
    let mut body = vec![1u8; 32];
    body.extend(u32::MAX.to_le_bytes());
    let r = c.post(s.url("blocks")).body(body).send().unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // a body cut inside a frame: the complete frames before it are kept, the torn one not
    let (a, oa) = block(1, 2000);
    let (b, ob) = block(2, 2000);
    let mut body = frames(&[(a, oa)]);
    let torn = frames(&[(b, ob)]);
    body.extend_from_slice(&torn[..torn.len() - 10]);
    let r = c.post(s.url("blocks")).body(body).send().unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().unwrap().contains("ends inside a frame"));
    assert_eq!(missing(&c, &s, &[a, b]), vec![b]);

    // a connection that promises more body than it sends
    use std::io::{Read, Write};
    let addr = s.url.trim_start_matches("http://").to_string();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        sock,
        "POST /v1/blocks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    sock.write_all(&[0u8; 100]).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = String::new();
    let _ = sock.read_to_string(&mut reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    // and the server is still healthy
    assert_eq!(
        c.get(s.url("health")).send().unwrap().status(),
        StatusCode::OK
    );
}

#[test]
fn tokens_guard_writes_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let tf = tokens(dir.path());
    let s = Server::start(&dir.path().join("data"), Some(&tf));
    let c = Client::new();
    let (id, obj) = block(5, 4000);
    let put = |token: Option<&str>| {
        let mut r = c.put(s.url(&format!("blocks/{id}"))).body(obj.clone());
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().unwrap()
    };
    let r = put(None);
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.text().unwrap().contains("missing bearer token"));
    assert_eq!(
        put(Some("wrong-token-0123456789")).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(put(Some(READ_TOKEN)).status(), StatusCode::FORBIDDEN);
    assert_eq!(
        missing_with(&c, &s, None).status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(put(Some(WRITE_TOKEN)).status(), StatusCode::CREATED);
    assert_eq!(
        missing_with(&c, &s, Some(READ_TOKEN)).status(),
        StatusCode::OK
    );
    // health needs no token
    assert_eq!(
        c.get(s.url("health")).send().unwrap().status(),
        StatusCode::OK
    );
}

fn missing_with(c: &Client, s: &Server, token: Option<&str>) -> reqwest::blocking::Response {
    let mut r = c.post(s.url("blocks/missing")).body(vec![0u8; 32]);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().unwrap()
}

#[test]
fn concurrent_clients_with_overlapping_sets() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let blocks: Vec<_> = (0..96).map(|i| block(1000 + i, 8000)).collect();
    std::thread::scope(|scope| {
        for t in 0..32 {
            let blocks = &blocks;
            let s = &s;
            scope.spawn(move || {
                let c = Client::new();
                // each client sends a window of 32 blocks, overlapping its neighbours
                let mine: Vec<_> = (0..32).map(|i| blocks[(t * 2 + i) % 96].clone()).collect();
                let r = c.post(s.url("blocks")).body(frames(&mine)).send().unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            });
        }
    });
    let c = Client::new();
    let ids: Vec<BlockId> = blocks.iter().map(|b| b.0).collect();
    let st = c.get(s.url("stats")).send().unwrap().json_value();
    let covered: std::collections::HashSet<usize> = (0..32)
        .flat_map(|t| (0..32).map(move |i| (t * 2 + i) % 96))
        .collect();
    assert_eq!(st["blocks"], covered.len() as u64);
    let expect_bytes: usize = covered.iter().map(|&i| blocks[i].1.len()).sum();
    assert_eq!(st["stored_bytes"], expect_bytes as u64);
    assert_eq!(missing(&c, &s, &ids).len(), 96 - covered.len());
}

#[test]
fn restart_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let c = Client::new();
    let blocks: Vec<_> = (0..10).map(|i| block(50 + i, 10_000)).collect();
    c.post(s.url("blocks"))
        .body(frames(&blocks))
        .send()
        .unwrap();
    let s = s.restart();
    let ids: Vec<BlockId> = blocks.iter().map(|b| b.0).collect();
    assert!(missing(&c, &s, &ids).is_empty());
    for (id, obj) in &blocks {
        let got = c
            .get(s.url(&format!("blocks/{id}")))
            .send()
            .unwrap()
            .bytes()
            .unwrap();
        assert_eq!(&got[..], &obj[..]);
    }
}

/// SIGKILL in the middle of a large batch upload: after restart every indexed block is
/// readable and hashes to its id, and the store still accepts the rest.
#[test]
fn sigkill_during_batch_upload_restarts_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let blocks: Vec<_> = (0..600).map(|i| block(5000 + i, 64 * 1024)).collect();
    let body = frames(&blocks);
    let url = s.url("blocks");
    let sender = std::thread::spawn(move || {
        // send slowly enough that the kill lands mid-request
        let c = Client::new();
        let chunks: Vec<Vec<u8>> = body.chunks(1 << 20).map(|c| c.to_vec()).collect();
        let stream = chunks.into_iter().map(|c| {
            std::thread::sleep(std::time::Duration::from_millis(15));
            Ok::<_, std::io::Error>(c)
        });
        let reader = IterReader {
            it: Box::new(stream),
            buf: Vec::new(),
        };
        let _ = c
            .post(url)
            .body(reqwest::blocking::Body::new(reader))
            .send();
    });
    // kill -9 as soon as the first group of the batch is indexed, then restart
    let c = Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while c.get(s.url("stats")).send().unwrap().json_value()["blocks"] == 0 {
        assert!(std::time::Instant::now() < deadline, "upload never started");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let s = s.restart();
    sender.join().unwrap();
    let c = Client::new();
    let ids: Vec<BlockId> = blocks.iter().map(|b| b.0).collect();
    let absent = missing(&c, &s, &ids);
    let present: Vec<BlockId> = ids
        .iter()
        .filter(|i| !absent.contains(i))
        .copied()
        .collect();
    assert!(
        !present.is_empty() && !absent.is_empty(),
        "kill did not land mid-upload ({} present)",
        present.len()
    );
    let r = c
        .post(s.url("blocks/fetch"))
        .body(ids_body(&present))
        .send()
        .unwrap();
    let body = r.bytes().unwrap();
    let mut rest = &body[..];
    for id in &present {
        let (got, skip, len) = bonsai_core::store::parse_frame(rest, 1 << 25)
            .unwrap()
            .unwrap();
        assert_eq!(got, *id);
        assert_eq!(
            BlockId(*blake3::hash(&rest[skip..skip + len]).as_bytes()),
            *id,
            "indexed block fails verification"
        );
        rest = &rest[skip + len..];
    }
    // no stray temporaries survive a restart, and the rest can still be uploaded
    assert_eq!(
        std::fs::read_dir(dir.path().join("data/tmp"))
            .unwrap()
            .count(),
        0
    );
    let r = c
        .post(s.url("blocks"))
        .body(frames(&blocks))
        .send()
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(missing(&c, &s, &ids).is_empty());
}

struct IterReader {
    it: Box<dyn Iterator<Item = Result<Vec<u8>, std::io::Error>> + Send>,
    buf: Vec<u8>,
}

impl std::io::Read for IterReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.it.next() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.drain(..n);
        Ok(n)
    }
}

trait JsonBody {
    fn json_value(self) -> serde_json::Value;
}

impl JsonBody for reqwest::blocking::Response {
    fn json_value(self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes().unwrap()).unwrap()
    }
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(&dir.path().join("data"), None);
    let c = Client::new();
    let (id, obj) = block(77, 1000);
    c.put(s.url(&format!("blocks/{id}")))
        .body(obj)
        .send()
        .unwrap();
    unsafe { libc::kill(s.serving.child.id() as i32, libc::SIGTERM) };
    let status = s.serving.child.wait().unwrap();
    assert!(status.success(), "server exited with {status}");
    let s = Server::start(&dir.path().join("data"), None);
    assert!(missing(&c, &s, &[id]).is_empty());
}
