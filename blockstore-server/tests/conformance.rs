//! The store conformance suite (core's `store::conformance`) against every store this crate
//! provides: the embedded store, and HTTP through the router in-process (`app()` served on
//! 127.0.0.1:0 by a runtime in this test, the real client on the other side). Plus the
//! machine-readable error bodies and the route permissions, over the same in-process path.

use bonsai_blockstore::{app, AppState, Limits, LocalStore, Store, Tokens};
use bonsai_core::store::conformance::{fresh_blocks, run_all};
use bonsai_core::store::http::HttpStore;
use bonsai_core::store::{ErrorBody, ErrorCode, ReadStore, StoreError};
use std::sync::Arc;

/// A router served on 127.0.0.1:0 from its own thread; stops when dropped.
struct InProcess {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start(tokens: Option<&str>, public_read: bool) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let state = AppState {
            store: Arc::new(Store::open(dir.path()).unwrap()),
            tokens: tokens.map(|t| Arc::new(Tokens::parse(t).unwrap())),
            public_read,
            limits: Limits::default(),
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, app(state))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        InProcess {
            url: format!("http://{addr}"),
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(|t| t.join());
    }
}

#[test]
fn embedded_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    run_all(&LocalStore::open(dir.path()).unwrap());
}

#[test]
fn http_through_the_router_conforms() {
    let server = InProcess::start(None, false);
    run_all(&HttpStore::new(&server.url, None).unwrap());
}

#[test]
fn http_with_a_write_token_conforms() {
    let server = InProcess::start(Some("write wwwwwwwwwwwwwwwwwwww\n"), false);
    run_all(&HttpStore::new(&server.url, Some("wwwwwwwwwwwwwwwwwwww".into())).unwrap());
}

fn error_body(resp: reqwest::blocking::Response) -> ErrorBody {
    let text = resp.text().unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an error body ({e}): {text}"))
}

#[test]
fn errors_carry_machine_fields() {
    let server = InProcess::start(None, false);
    let c = reqwest::blocking::Client::new();
    let b = fresh_blocks(1);
    let hex = b[0].id.to_hex();
    // absent block: 404 block_missing naming it
    let r = c
        .get(format!("{}/v1/blocks/{hex}", server.url))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let body = error_body(r);
    assert_eq!(
        (body.code, body.id),
        (ErrorCode::BlockMissing, Some(b[0].id))
    );
    // uppercase id: refused, one URL per block
    let r = c
        .get(format!("{}/v1/blocks/{}", server.url, hex.to_uppercase()))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_body(r).code, ErrorCode::BadId);
    // unknown route
    let r = c.get(format!("{}/v2/anything", server.url)).send().unwrap();
    assert_eq!(
        (r.status().as_u16(), error_body(r).code),
        (404, ErrorCode::NotFound)
    );
    // the client maps codes, not prose
    let store = HttpStore::new(&server.url, None).unwrap();
    assert!(matches!(store.get(&[b[0].id]), Err(StoreError::NotFound(id)) if id == b[0].id));
}

#[test]
fn roles_are_enforced_per_route_and_bearer_is_case_insensitive() {
    let tokens = "read rrrrrrrrrrrrrrrrrrrr\nwrite wwwwwwwwwwwwwwwwwwww\n";
    let server = InProcess::start(Some(tokens), false);
    let c = reqwest::blocking::Client::new();
    let stats = |auth: Option<&str>| {
        let mut req = c.get(format!("{}/v1/stats", server.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        req.send().unwrap()
    };
    assert_eq!(stats(None).status(), 401);
    assert_eq!(error_body(stats(None)).code, ErrorCode::Unauthorized);
    assert_eq!(stats(Some("Bearer rrrrrrrrrrrrrrrrrrrr")).status(), 200);
    assert_eq!(stats(Some("bearer rrrrrrrrrrrrrrrrrrrr")).status(), 200);
    assert_eq!(stats(Some("BEARER rrrrrrrrrrrrrrrrrrrr")).status(), 200);
    assert_eq!(stats(Some("Basic rrrrrrrrrrrrrrrrrrrr")).status(), 401);
    // open routes stay open
    let r = c.get(format!("{}/v1/health", server.url)).send().unwrap();
    assert_eq!(r.status(), 200);
    // a read token cannot write: 403 forbidden
    let store = HttpStore::new(&server.url, Some("rrrrrrrrrrrrrrrrrrrr".into())).unwrap();
    let b = fresh_blocks(1);
    use bonsai_core::store::WriteStore;
    match store.put(&[(b[0].id, &b[0].object[..])]) {
        Err(StoreError::Unauthorized { reason, .. }) => {
            assert!(reason.contains("may only read"), "{reason}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let r = c
        .put(format!("{}/v1/images/x", server.url))
        .bearer_auth("rrrrrrrrrrrrrrrrrrrr")
        .body(vec![0u8; 8])
        .send()
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_body(r).code),
        (403, ErrorCode::Forbidden)
    );
}
