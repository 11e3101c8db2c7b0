//! HTTP client for `bonsai serve` (API v1, docs/API.md): binary bodies on the hot paths,
//! keep-alive, retries with backoff on transient failures, bearer token.
//!
//! The client is blocking and cheap to share: the engines call it from several threads at
//! once to keep requests in flight.

use super::wire::{ids_body, ErrorBody, ErrorCode};
use super::{
    limits, parse_frame, write_frame, AdminStore, CheckOptions, CheckReport, ForgetReport,
    GcOptions, GcReport, ImageInfo, PutOutcome, ReadStore, StoreError, StoreStats, WriteStore,
};
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

    /// Turns a refusal into a typed error from the body's machine fields (`code`, `id`);
    /// the prose in `error` is only ever shown, never parsed.
    fn check(&self, resp: Response) -> Result<Response, StoreError> {
        let s = resp.status();
        if s.is_success() {
            return Ok(resp);
        }
        let text = resp.text().unwrap_or_default();
        Err(self.refusal(s, &text))
    }

    fn refusal(&self, status: StatusCode, text: &str) -> StoreError {
        let store = self.base.clone();
        let Ok(body) = serde_json::from_str::<ErrorBody>(text) else {
            // not a bonsai error body (a proxy, another server): status and first line only
            let reason = format!("{status}: {}", first_line(text));
            return match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    StoreError::Unauthorized { store, reason }
                }
                _ => StoreError::Refused {
                    store,
                    code: ErrorCode::Unknown,
                    reason,
                },
            };
        };
        let reason = first_line(&body.error);
        match (body.code, body.id) {
            (ErrorCode::BlockMissing, Some(id)) => StoreError::NotFound(id),
            (ErrorCode::BlockRejected, Some(id)) => StoreError::Rejected { id, reason },
            (ErrorCode::Unauthorized | ErrorCode::Forbidden, _) => {
                StoreError::Unauthorized { store, reason }
            }
            (ErrorCode::Unsupported, _) => StoreError::Unsupported {
                store,
                operation: "this operation",
            },
            (code, _) => StoreError::Refused {
                store,
                code,
                reason,
            },
        }
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

    /// `/v1/images/NAME`, the name percent-encoded as one path segment.
    pub fn image_url(&self, name: &str) -> Result<reqwest::Url, StoreError> {
        let mut url =
            reqwest::Url::parse(&self.url("images/")).map_err(|e| self.protocol(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| self.protocol("store address cannot take a path"))?
            .pop_if_empty()
            .push(name);
        Ok(url)
    }

    /// Server version and API level, for `bonsai` to check before a long job.
    pub fn version(&self) -> Result<serde_json::Value, StoreError> {
        let resp = self.send(|c| c.get(self.url("version")))?;
        let body = self.body(resp)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }
}

/// The first line of a reason, trimmed and cut to 200 characters: a hostile or broken
/// server cannot flood the user's terminal through an error message.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    match line.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// The one-line reason of a transient (5xx, 429) reply.
fn error_text(resp: Response) -> String {
    let text = resp.text().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => first_line(&body.error),
        Err(_) => first_line(&text),
    }
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

impl ReadStore for HttpStore {
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

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let resp = self.send(|c| c.get(self.url("stats")))?;
        let body = self.body(resp)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }

    fn describe(&self) -> String {
        self.base.clone()
    }
}

impl WriteStore for HttpStore {
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
            let reply: PutOutcome =
                serde_json::from_slice(&b).map_err(|e| self.protocol(e.to_string()))?;
            total.stored += reply.stored;
            total.existed += reply.existed;
        }
        Ok(total)
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        let mut body = Vec::with_capacity(8 + ids.len() * 32);
        body.extend_from_slice(&logical.to_le_bytes());
        body.extend_from_slice(&ids_body(ids));
        let body = Bytes::from(body);
        let url = self.image_url(name)?;
        self.send(|c| c.put(url.clone()).body(body.clone()))?;
        Ok(())
    }
}

impl AdminStore for HttpStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            images: Vec<ImageInfo>,
        }
        let resp = self.send(|c| c.get(self.url("images")))?;
        let body = self.body(resp)?;
        let reply: Reply =
            serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))?;
        Ok(reply.images)
    }

    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            forgotten: bool,
        }
        let mut report = ForgetReport::default();
        for name in names {
            let url = self.named_url("images/", name)?;
            let resp = self.send(|c| c.delete(url.clone()))?;
            let reply: Reply = self.json(resp)?;
            if reply.forgotten {
                report.forgotten.push(name.clone());
            } else {
                report.unknown.push(name.clone());
            }
        }
        Ok(report)
    }

    fn gc(&self, opts: &GcOptions) -> Result<GcReport, StoreError> {
        let url = format!(
            "{}?grace_seconds={}&dry_run={}",
            self.url("gc"),
            opts.grace.as_secs(),
            opts.dry_run
        );
        let resp = self.send(|c| c.post(&url))?;
        self.json(resp)
    }

    fn check(&self, opts: &CheckOptions) -> Result<CheckReport, StoreError> {
        let url = format!("{}?read_data={}", self.url("check"), opts.read_data);
        let resp = self.send(|c| c.post(&url))?;
        self.json(resp)
    }

    fn put_sealed_recipe(&self, name: &str, sealed: &[u8]) -> Result<(), StoreError> {
        let url = self.named_url("recipes/", name)?;
        let body = Bytes::copy_from_slice(sealed);
        self.send(|c| c.put(url.clone()).body(body.clone()))?;
        Ok(())
    }

    fn get_sealed_recipe(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self.named_url("recipes/", name)?;
        match self.send(|c| c.get(url.clone())) {
            Ok(resp) => Ok(Some(self.body(resp)?.to_vec())),
            Err(StoreError::Refused {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl HttpStore {
    /// `PREFIX/NAME` with the name as one escaped path segment.
    fn named_url(&self, prefix: &str, name: &str) -> Result<reqwest::Url, StoreError> {
        let mut url =
            reqwest::Url::parse(&self.url(prefix)).map_err(|e| self.protocol(e.to_string()))?;
        url.path_segments_mut()
            .map_err(|_| self.protocol("store address cannot take a path"))?
            .pop_if_empty()
            .push(name);
        Ok(url)
    }

    fn json<T: serde::de::DeserializeOwned>(&self, resp: Response) -> Result<T, StoreError> {
        let body = self.body(resp)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }
}
