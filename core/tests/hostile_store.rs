//! The HTTP client against a hostile or broken store: a small HTTP server inside the test
//! (std TcpListener on 127.0.0.1:0) answers every request with one scripted reply —
//! oversized, stalled, malformed, or a refusal with a reason. Each test asserts a one-line
//! typed error and, for the oversized ones, that the client's memory stayed bounded
//! (VmHWM of this process, from /proc/self/status).

use bonsai_core::store::http::HttpStore;
use bonsai_core::store::{ErrorCode, ReadStore, StoreError};
use bonsai_core::BlockId;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// What the hostile store does after reading a request.
#[derive(Clone)]
enum Reply {
    /// Headers, then `body`, then `endless` more zero bytes (streamed) before closing.
    Send {
        head: String,
        body: Vec<u8>,
        endless: u64,
    },
    /// Headers and then silence for a minute.
    Stall,
}

fn read_request(conn: &mut BufReader<TcpStream>) -> Option<()> {
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body).ok()
}

fn serve(conn: TcpStream, reply: Reply) {
    let mut reader = BufReader::new(conn);
    if read_request(&mut reader).is_none() {
        return;
    }
    let mut conn = reader.into_inner();
    match reply {
        Reply::Send {
            head,
            body,
            endless,
        } => {
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
            let zeros = vec![0u8; 1 << 16];
            let mut sent = 0;
            while sent < endless && conn.write_all(&zeros).is_ok() {
                sent += zeros.len() as u64;
            }
        }
        Reply::Stall => {
            let _ = conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 1000\r\n\r\nabc",
            );
            std::thread::sleep(Duration::from_secs(60));
        }
    }
}

/// Starts the hostile store; returns its URL.
fn hostile(reply: Reply) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let reply = reply.clone();
            std::thread::spawn(move || serve(conn, reply));
        }
    });
    url
}

fn ok_head(len: u64) -> String {
    format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n")
}

fn client(url: &str) -> HttpStore {
    HttpStore::with_stall_timeout(url, None, Duration::from_secs(2))
        .unwrap()
        .with_retries(1)
}

fn hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn one_line(e: &StoreError) -> String {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "{msg}");
    assert!(msg.len() < 400, "{msg}");
    msg
}

#[test]
fn a_huge_missing_reply_is_refused_with_bounded_memory() {
    let before = hwm_kib();
    let url = hostile(Reply::Send {
        head: ok_head(4 << 30),
        body: Vec::new(),
        endless: 4 << 30,
    });
    let err = client(&url).missing(&[BlockId([1; 32])]).unwrap_err();
    let msg = one_line(&err);
    assert!(matches!(err, StoreError::Protocol { .. }), "{msg}");
    assert!(msg.contains("larger than the 32 bytes"), "{msg}");
    let grew = hwm_kib().saturating_sub(before);
    eprintln!("huge missing reply: VmHWM grew {grew} KiB");
    assert!(grew < 64 * 1024, "client memory grew by {grew} KiB");
}

#[test]
fn an_oversized_fetch_frame_is_refused_before_it_is_read() {
    let before = hwm_kib();
    let id = BlockId([7; 32]);
    let mut body = id.0.to_vec();
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let url = hostile(Reply::Send {
        head: "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_string(),
        body,
        endless: 1 << 30,
    });
    let err = client(&url).get(&[id]).unwrap_err();
    let msg = one_line(&err);
    assert!(matches!(err, StoreError::Protocol { .. }), "{msg}");
    assert!(msg.contains("above the limit"), "{msg}");
    let grew = hwm_kib().saturating_sub(before);
    eprintln!("oversized frame: VmHWM grew {grew} KiB");
    assert!(grew < 64 * 1024, "client memory grew by {grew} KiB");
}

#[test]
fn a_frame_for_another_block_is_refused() {
    let mut body = BlockId([9; 32]).0.to_vec();
    body.extend_from_slice(&3u32.to_le_bytes());
    body.extend_from_slice(b"abc");
    let url = hostile(Reply::Send {
        head: ok_head(body.len() as u64),
        body,
        endless: 0,
    });
    let err = client(&url).get(&[BlockId([1; 32])]).unwrap_err();
    assert!(one_line(&err).contains("asked for block"), "{err}");
}

#[test]
fn a_stalled_reply_is_an_error_naming_the_store() {
    let url = hostile(Reply::Stall);
    let started = std::time::Instant::now();
    let err = client(&url).missing(&[BlockId([1; 32])]).unwrap_err();
    let msg = one_line(&err);
    assert!(matches!(err, StoreError::Unreachable { .. }), "{msg}");
    assert!(msg.contains(&url) && msg.contains("stalled"), "{msg}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_malformed_missing_reply_is_a_protocol_error() {
    let url = hostile(Reply::Send {
        head: ok_head(33),
        body: vec![0; 33],
        endless: 0,
    });
    let err = client(&url)
        .missing(&[BlockId([1; 32]), BlockId([2; 32])])
        .unwrap_err();
    assert!(matches!(err, StoreError::Protocol { .. }), "{err}");
}

#[test]
fn a_full_disk_is_the_stores_refusal_not_unreachable() {
    let body = br#"{"error":"the store's disk is full; ask its operator to free space","code":"storage_full"}"#;
    let head = format!(
        "HTTP/1.1 507 Insufficient Storage\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let url = hostile(Reply::Send {
        head,
        body: body.to_vec(),
        endless: 0,
    });
    let err = client(&url).stats().unwrap_err();
    let msg = one_line(&err);
    match &err {
        StoreError::Refused { code, .. } => assert_eq!(*code, ErrorCode::StorageFull),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        msg.contains("disk is full") && !msg.contains("unreachable"),
        "{msg}"
    );
}

#[test]
fn a_500_with_a_reason_after_retries_keeps_the_reason() {
    let body = br#"{"error":"internal storage error (see server log)","code":"internal"}"#;
    let head = format!(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let url = hostile(Reply::Send {
        head,
        body: body.to_vec(),
        endless: 0,
    });
    let err = client(&url).stats().unwrap_err();
    let msg = one_line(&err);
    assert!(
        matches!(
            err,
            StoreError::Refused {
                code: ErrorCode::Internal,
                ..
            }
        ),
        "{msg}"
    );
    assert!(msg.contains("see server log"), "{msg}");
}
