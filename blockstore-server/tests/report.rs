//! The report and the dashboard over real HTTP on loopback: the server binary on an
//! ephemeral port, blocks uploaded and images registered with known sharing, figures read
//! back from `GET /v1/report` and the page at `/`.

use bonsai_core::report::StoreReport;
use bonsai_core::store::write_frame;
use bonsai_core::{BlockId, Convergence, Encoder};
use reqwest::blocking::Client;
use reqwest::StatusCode;
use std::path::Path;
use std::process::{Command, Stdio};

mod support;
use support::serving::Serving;

const WRITE_TOKEN: &str = "write-token-0123456789";
const READ_TOKEN: &str = "read-token-0123456789";
const PLAIN: usize = 4096;
/// Header and tag every block object adds (random plaintext is stored uncompressed).
const OVERHEAD: u64 = 40;

struct Server {
    _serving: Serving,
    url: String,
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
            _serving: serving,
        }
    }
}

/// A block of random-looking plaintext (incompressible: stored as plaintext + 40 bytes).
fn block(seed: u64) -> (BlockId, Vec<u8>) {
    let mut x = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    let data: Vec<u8> = (0..PLAIN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let b = Encoder::new().encode(&Convergence::public(), &data);
    assert_eq!(b.object.len() as u64, PLAIN as u64 + OVERHEAD);
    (b.id, b.object)
}

fn upload(c: &Client, url: &str, token: Option<&str>, blocks: &[(BlockId, Vec<u8>)]) {
    let mut body = Vec::new();
    for (id, obj) in blocks {
        write_frame(&mut body, id, obj);
    }
    let mut req = c.post(format!("{url}/v1/blocks")).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    assert!(req.send().unwrap().status().is_success());
}

fn register(
    c: &Client,
    url: &str,
    token: Option<&str>,
    name: &str,
    logical: u64,
    zeros: Option<u64>,
    ids: &[BlockId],
) -> StatusCode {
    let mut body = logical.to_le_bytes().to_vec();
    for id in ids {
        body.extend_from_slice(id.as_bytes());
    }
    let q = zeros
        .map(|z| format!("?zero_bytes={z}"))
        .unwrap_or_default();
    let mut req = c.put(format!("{url}/v1/images/{name}{q}")).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().unwrap().status()
}

fn report(c: &Client, url: &str) -> StoreReport {
    let resp = c.get(format!("{url}/v1/report")).send().unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

#[test]
fn figures_follow_known_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let c = Client::new();
    let os: Vec<_> = (0..16).map(block).collect();
    let extra: Vec<_> = (100..104).map(block).collect();
    let lonely = block(999);
    upload(&c, &s.url, None, &os);
    upload(&c, &s.url, None, &extra);
    upload(&c, &s.url, None, std::slice::from_ref(&lonely));
    let a_ids: Vec<BlockId> = os.iter().map(|b| b.0).collect();
    let mut b_ids = a_ids.clone();
    b_ids.extend(extra.iter().map(|b| b.0));
    // A: the OS plus 1 MiB of holes; B = A + 4 new blocks, no holes; C registered
    // without figures (an older client).
    let (p, o) = (PLAIN as u64, PLAIN as u64 + OVERHEAD);
    let a_logical = 16 * p + (1 << 20);
    assert_eq!(
        register(&c, &s.url, None, "A", a_logical, Some(1 << 20), &a_ids),
        StatusCode::CREATED
    );
    assert_eq!(
        register(&c, &s.url, None, "B", 20 * p, Some(0), &b_ids),
        StatusCode::CREATED
    );
    assert_eq!(
        register(&c, &s.url, None, "C", 20 * p, None, &b_ids[..2]),
        StatusCode::CREATED
    );
    let r = report(&c, &s.url);
    let names: Vec<&str> = r.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        ["A@1", "B@1", "C@1"],
        "registration order; each version is a row"
    );
    let (a, b, cc) = (&r.images[0], &r.images[1], &r.images[2]);
    assert_eq!((a.data_bytes, a.zero_bytes), (Some(16 * p), Some(1 << 20)));
    assert_eq!(
        (a.distinct_bytes, a.shared_bytes, a.unique_bytes),
        (Some(16 * p), Some(16 * p), Some(0))
    );
    assert_eq!(
        (b.distinct_bytes, b.shared_bytes, b.unique_bytes),
        (Some(20 * p), Some(16 * p), Some(4 * p))
    );
    assert_eq!(
        (b.stored_bytes, b.shared_stored_bytes, b.unique_stored_bytes),
        (20 * o, 16 * o, 4 * o)
    );
    assert_eq!(
        (a.new_stored_bytes, b.new_stored_bytes, cc.new_stored_bytes),
        (16 * o, 4 * o, 0)
    );
    assert_eq!((cc.data_bytes, cc.savings.zero_elimination), (None, None));
    assert_eq!(cc.unique_stored_bytes, 0);
    // Totals over the union; the lonely block is held but used by no image.
    assert_eq!(r.totals.stored_bytes, 20 * o);
    assert_eq!(r.totals.distinct_bytes, Some(20 * p));
    assert_eq!(r.totals.data_bytes, None, "C's zeros are unknown");
    assert_eq!(
        (
            r.totals.unreferenced_blocks,
            r.totals.unreferenced_stored_bytes
        ),
        (1, o)
    );
    // Growth: logical keeps rising, stored flattens.
    let stored: Vec<u64> = r.growth.iter().map(|g| g.stored_bytes).collect();
    assert_eq!(stored, [16 * o, 20 * o, 20 * o]);
    let logical: Vec<u64> = r.growth.iter().map(|g| g.logical_bytes).collect();
    assert_eq!(logical, [a_logical, a_logical + 20 * p, a_logical + 40 * p]);
    assert_eq!(r.growth[1].data_bytes, Some(36 * p));
    assert_eq!(r.growth[2].data_bytes, None);
    // Pairwise sharing.
    assert_eq!(r.matrix.names, ["A@1", "B@1", "C@1"]);
    assert_eq!(r.matrix.stored[0], [16 * o, 16 * o, 2 * o]);
    assert_eq!(r.matrix.stored[1], [16 * o, 20 * o, 2 * o]);
    // The factors multiply to the overall ratio (A alone: all known).
    let sv = a.savings;
    let product =
        sv.zero_elimination.unwrap() * sv.deduplication.unwrap() * sv.compression.unwrap();
    assert!((product - sv.overall.unwrap()).abs() < 1e-9);
    assert_eq!(sv.overall, Some(a_logical as f64 / (16 * o) as f64));
    // A smaller matrix on request.
    let small: StoreReport = c
        .get(format!("{}/v1/report?matrix=2", s.url))
        .send()
        .unwrap()
        .bytes()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(
        (small.matrix.names.len(), small.matrix.truncated),
        (2, true)
    );
}

#[test]
fn impossible_figures_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), None);
    let c = Client::new();
    let b = block(1);
    upload(&c, &s.url, None, std::slice::from_ref(&b));
    let st = register(&c, &s.url, None, "x", 100, Some(101), &[b.0]);
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(report(&c, &s.url).images.is_empty(), "nothing registered");
}

#[test]
fn dashboard_takes_basic_auth_and_follows_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("write {WRITE_TOKEN}\nread {READ_TOKEN}\n")).unwrap();
    let s = Server::start(&dir.path().join("data"), Some(&tokens));
    let c = Client::new();
    // Without credentials: the browser is asked for them, nothing is shown.
    let resp = c.get(format!("{}/", s.url)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Basic "), "{challenge}");
    let resp = c.get(format!("{}/v1/report", s.url)).send().unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let wrong = c
        .get(format!("{}/", s.url))
        .basic_auth("me", Some("not-a-token-at-all"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let gen = |c: &Client| {
        c.get(format!("{}/dashboard/generation", s.url))
            .basic_auth("me", Some(READ_TOKEN))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let before = gen(&c);
    let b = block(7);
    upload(&c, &s.url, Some(WRITE_TOKEN), std::slice::from_ref(&b));
    let st = register(
        &c,
        &s.url,
        Some(WRITE_TOKEN),
        "web-<1>",
        8192,
        Some(4096),
        &[b.0],
    );
    assert_eq!(st, StatusCode::CREATED);
    assert_ne!(gen(&c), before, "a registration moves the generation");
    let page = c
        .get(format!("{}/", s.url))
        .basic_auth("me", Some(READ_TOKEN))
        .send()
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    let html = page.text().unwrap();
    assert!(html.contains("web-&lt;1&gt;"), "name shown, escaped");
    assert!(!html.contains(READ_TOKEN) && !html.contains(&b.0.to_string()));
    assert!(html.contains(&format!("data-generation=\"{}\"", gen(&c))));
    // The API route takes the bearer token as every read does.
    let r: StoreReport = c
        .get(format!("{}/v1/report", s.url))
        .bearer_auth(READ_TOKEN)
        .send()
        .unwrap()
        .bytes()
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    assert_eq!(r.images[0].zero_bytes, Some(4096));
}
