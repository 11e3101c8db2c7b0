//! What an operator watches: `GET /metrics` for Prometheus (requests by route, the store's
//! figures, gc runs; a read token like every read), and request logs as JSON lines.

use crate::util::*;
use std::process::Stdio;

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

/// A pushed image in a served store with tokens.
fn served(d: &Dir) -> Server {
    let tokens = format!("read {READ}\nwrite {WRITE}\nadmin {ADMIN}\n");
    std::fs::write(d.path("tokens"), tokens).unwrap();
    let server = Server::start(&d.path("store"), &["--token-file", &d.s("tokens")]);
    std::fs::write(d.path("w"), WRITE).unwrap();
    image(&d.path("vm.raw"), 2 << 20, &[(0, &noise(2 << 20, 9))]);
    let out = bonsai(&[
        "push",
        &d.s("vm.raw"),
        "--store",
        &server.url,
        "--token-file",
        &d.s("w"),
        "-o",
        &d.s("vm.recipe"),
    ]);
    assert!(out.status.success(), "{out:?}");
    server
}

#[test]
fn metrics_count_requests_by_route_and_report_the_store() {
    let d = Dir::new();
    let server = served(&d);
    let url = format!("{}/metrics", server.url);
    assert_eq!(
        http("GET", &url, None, b"").0,
        401,
        "metrics without a token"
    );
    let (status, body) = http(
        "GET",
        &format!("{}/v1/gc?dry_run=true", server.url),
        Some(ADMIN),
        b"",
    );
    assert_eq!(status, 405, "gc is a POST");
    let (status, _) = http(
        "POST",
        &format!("{}/v1/gc?dry_run=true", server.url),
        Some(ADMIN),
        b"",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, body) = http("GET", &url, Some(READ), b"");
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let stats = bonsai_json(&[
        "stats",
        "--store",
        &server.url,
        "--json",
        "--token-file",
        &d.s("w"),
    ]);
    for line in [
        "bonsai_http_requests_total{route=\"/v1/blocks/missing\",method=\"POST\",status=\"200\"}"
            .to_string(),
        "bonsai_http_requests_total{route=\"/metrics\",method=\"GET\",status=\"401\"} 1"
            .to_string(),
        "bonsai_gc_runs_total 1".to_string(),
        format!("bonsai_store_blocks {}", stats["blocks"]),
        format!("bonsai_store_images {}", stats["images"]),
        "# TYPE bonsai_http_request_duration_seconds histogram".to_string(),
    ] {
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
    assert!(text.ends_with("# EOF\n"));
}

#[test]
fn request_logs_can_be_json_lines() {
    let d = Dir::new();
    let store = d.store("store");
    let mut cmd = command(&[("BONSAI_LOG", "info")]);
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        &store,
        "--log-format",
        "json",
    ])
    .stderr(Stdio::piped());
    let mut server = crate::serving::Serving::spawn(cmd);
    let url = server.url.clone();
    assert_eq!(http("GET", &format!("{url}/v1/health"), None, b"").0, 200);
    // SIGTERM: the server finishes and exits, its stderr ends
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) };
    let mut logs = String::new();
    let stderr = server.child.stderr.as_mut().unwrap();
    std::io::Read::read_to_string(stderr, &mut logs).unwrap();
    server.kill();
    let request = logs
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .find(|v| v["fields"]["path"] == "/v1/health")
        .unwrap_or_else(|| panic!("no request line in {logs}"));
    assert_eq!(request["fields"]["status"], 200);
    assert_eq!(request["level"], "INFO");
}
