//! HTTP client for `bonsai serve` (API v1, docs/API.md): binary bodies on the hot paths,
//! keep-alive, retries with backoff on transient failures, bearer token.
//!
//! The client is blocking and cheap to share: the engines call it from several threads at
//! once to keep requests in flight.

use super::{limits, parse_frame, write_frame, BlockStore, PutOutcome, StoreError, StoreStats};
use crate::id::BlockId;
use bytes::Bytes;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use std::time::Duration;

/// A remote block store.
pub struct HttpStore {
    base: String,
    client: Client,
    token: Option<String>,
    retries: u32,
}

/// The server's reply to a batch upload.
#[derive(Debug, serde::Deserialize)]
struct BatchReply {
    stored: u64,
    existed: u64,
    #[serde(default)]
    rejected: Vec<Rejection>,
}

#[derive(Debug, serde::Deserialize)]
struct Rejection {
    id: BlockId,
    reason: String,
}

impl HttpStore {
    /// A client for the store at `base` (`http(s)://host:port`), with an optional token.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, StoreError> {
        Self::new_with_ca(base, token, None)
    }

    /// Like [`HttpStore::new`], also trusting the PEM certificate(s) in `ca_file`: a store
    /// serving TLS with a certificate from a private CA.
    pub fn new_with_ca(
        base: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let base = base.trim_end_matches('/').to_string();
        let mut builder = Client::builder();
        if let Some(path) = ca_file {
            let bad = |reason: String| StoreError::Other {
                store: base.clone(),
                reason: format!("--ca-file {}: {reason}", path.display()),
            };
            let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
            if certs.is_empty() {
                return Err(bad("holds no certificate".into()));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("bonsai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| StoreError::Unreachable {
                store: base.clone(),
                reason: e.to_string(),
            })?;
        Ok(HttpStore {
            base,
            client,
            token,
            retries: 4,
        })
    }

    /// How many times a transient failure is retried (default 4, backoff doubling from 200 ms).
    pub fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.base, path)
    }

    /// Sends a request built by `make`, retrying connection failures, 429 and 5xx.
    pub(crate) fn send(
        &self,
        make: impl Fn(&Client) -> RequestBuilder,
    ) -> Result<Response, StoreError> {
        let mut attempt = 0;
        loop {
            let mut req = make(&self.client);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let transient: Result<(), String> = match req.send() {
                Ok(resp) => {
                    let s = resp.status();
                    if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS {
                        let reason = format!("{s}: {}", error_text(resp));
                        Err(reason)
                    } else {
                        return self.check(resp);
                    }
                }
                Err(e) => Err(describe_reqwest(&e)),
            };
            let reason = transient.unwrap_err();
            if attempt >= self.retries {
                return Err(StoreError::Unreachable {
                    store: self.base.clone(),
                    reason,
                });
            }
            let wait = Duration::from_millis(200 << attempt);
            tracing::warn!(store = %self.base, %reason, ?wait, "retrying");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    fn check(&self, resp: Response) -> Result<Response, StoreError> {
        let s = resp.status();
        if s.is_success() {
            return Ok(resp);
        }
        let store = self.base.clone();
        let text = resp.text().unwrap_or_default();
        if let Ok(reply) = serde_json::from_str::<BatchReply>(&text) {
            if let Some(r) = reply.rejected.first() {
                return Err(StoreError::Rejected {
                    id: r.id,
                    reason: r.reason.clone(),
                });
            }
        }
        let reason = first_line_of_error(&text);
        Err(match s {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                StoreError::Unauthorized { store, reason }
            }
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => match not_found_id(&reason) {
                Some(id) => StoreError::NotFound(id),
                None => StoreError::Other { store, reason },
            },
            _ => StoreError::Other {
                store,
                reason: format!("{s}: {reason}"),
            },
        })
    }

    pub(crate) fn protocol(&self, reason: impl Into<String>) -> StoreError {
        StoreError::Protocol {
            store: self.base.clone(),
            reason: reason.into(),
        }
    }

    pub(crate) fn body(&self, resp: Response) -> Result<Bytes, StoreError> {
        resp.bytes().map_err(|e| StoreError::Unreachable {
            store: self.base.clone(),
            reason: format!("reading reply: {}", describe_reqwest(&e)),
        })
    }

    /// Server version and API level, for `bonsai` to check before a long job.
    pub fn version(&self) -> Result<serde_json::Value, StoreError> {
        let resp = self.send(|c| c.get(self.url("version")))?;
        let body = self.body(resp)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }
}

fn ids_body(ids: &[BlockId]) -> Vec<u8> {
    let mut body = Vec::with_capacity(ids.len() * 32);
    for id in ids {
        body.extend_from_slice(id.as_bytes());
    }
    body
}

/// The one-line reason a server gave: the `error` field of its JSON body, or the text.
fn error_text(resp: Response) -> String {
    first_line_of_error(&resp.text().unwrap_or_default())
}

fn first_line_of_error(text: &str) -> String {
    let text = text.to_string();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
        .unwrap_or(text);
    msg.lines().next().unwrap_or("").trim().to_string()
}

fn not_found_id(reason: &str) -> Option<BlockId> {
    reason
        .split_whitespace()
        .find_map(|w| w.parse::<BlockId>().ok())
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

impl BlockStore for HttpStore {
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError> {
        let mut out = Vec::new();
        for batch in ids.chunks(limits::MAX_IDS_PER_QUERY) {
            let body = Bytes::from(ids_body(batch));
            let resp = self.send(|c| c.post(self.url("blocks/missing")).body(body.clone()))?;
            let reply = self.body(resp)?;
            if !reply.len().is_multiple_of(32) {
                return Err(self.protocol("missing-ids reply is not a multiple of 32 bytes"));
            }
            out.extend(
                reply
                    .chunks_exact(32)
                    .map(|c| BlockId::from_slice(c).expect("32")),
            );
        }
        Ok(out)
    }

    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError> {
        let mut total = PutOutcome::default();
        let mut i = 0;
        while i < blocks.len() {
            let mut body = Vec::new();
            while i < blocks.len()
                && (body.is_empty() || body.len() + blocks[i].1.len() < limits::BATCH_BYTES * 2)
            {
                write_frame(&mut body, &blocks[i].0, blocks[i].1);
                i += 1;
            }
            // Bytes: a retry re-sends the same buffer instead of copying it.
            let body = Bytes::from(body);
            let resp = self.send(|c| c.post(self.url("blocks")).body(body.clone()))?;
            let b = self.body(resp)?;
            let reply: BatchReply =
                serde_json::from_slice(&b).map_err(|e| self.protocol(e.to_string()))?;
            if let Some(r) = reply.rejected.first() {
                return Err(StoreError::Rejected {
                    id: r.id,
                    reason: r.reason.clone(),
                });
            }
            total.stored += reply.stored;
            total.existed += reply.existed;
        }
        Ok(total)
    }

    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(limits::MAX_IDS_PER_QUERY) {
            let body = Bytes::from(ids_body(batch));
            let resp = self.send(|c| c.post(self.url("blocks/fetch")).body(body.clone()))?;
            let reply = self.body(resp)?;
            let mut rest = &reply[..];
            for want in batch {
                let (id, skip, len) = parse_frame(rest, crate::codec::MAX_OBJECT)
                    .map_err(|e| self.protocol(e))?
                    .ok_or_else(|| self.protocol("batch download ended early"))?;
                if id != *want {
                    return Err(self.protocol(format!("asked for block {want}, got {id}")));
                }
                out.push(rest[skip..skip + len].to_vec());
                rest = &rest[skip + len..];
            }
            if !rest.is_empty() {
                return Err(self.protocol("trailing bytes after batch download"));
            }
        }
        Ok(out)
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        let mut body = Vec::with_capacity(8 + ids.len() * 32);
        body.extend_from_slice(&logical.to_le_bytes());
        body.extend_from_slice(&ids_body(ids));
        let body = Bytes::from(body);
        let mut url =
            reqwest::Url::parse(&self.url("images/")).map_err(|e| self.protocol(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| self.protocol("store address cannot take a path"))?
            .pop_if_empty()
            .push(name);
        self.send(|c| c.put(url.clone()).body(body.clone()))?;
        Ok(())
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let resp = self.send(|c| c.get(self.url("stats")))?;
        let body = self.body(resp)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}
