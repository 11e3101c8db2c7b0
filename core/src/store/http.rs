//! HTTP client for `bonsai serve` (API v1, docs/API.md): binary bodies on the hot paths,
//! keep-alive, retries with backoff on transient failures, bearer token.
//!
//! The client is blocking and cheap to share: the engines call it from several threads at
//! once to keep requests in flight.
//!
//! A store is a peer we do not trust with our memory or our time: every reply is read
//! with a bound derived from what was asked (32 bytes per id asked for `missing`; frames
//! checked one by one against the ids asked and the object size limit for `fetch`; 1 MiB
//! for JSON and 64 KiB for error bodies), and a reply that makes no progress for the
//! stall time-out is an error naming the store. Retries are logged at debug level only;
//! the caller gets one error at the end. A refusal with a body (a full disk) is reported
//! as the store's refusal with its reason, never as "unreachable".

use super::wire::{ids_body, ErrorBody, ErrorCode};
use super::{
    limits, write_frame, AdminStore, CheckOptions, CheckReport, ForgetReport, GcOptions, GcReport,
    ImageInfo, PutOutcome, ReadStore, StoreError, StoreStats, WriteStore,
};
use crate::id::BlockId;
use bytes::Bytes;
use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::StatusCode;
use std::io::Read;
use std::time::Duration;

/// Largest JSON reply accepted (stats, upload verdicts, version).
const MAX_JSON_REPLY: u64 = 1 << 20;
/// Largest boot profile accepted (its format's own bound).
const MAX_PROFILE_BYTES: u64 = 12 + 32 * crate::export::profile::MAX_PROFILE_BLOCKS as u64 + 32;
/// Largest sealed recipe accepted: what a server takes in one request by default.
const MAX_SEALED_RECIPE: u64 = limits::MAX_REQUEST_BYTES as u64;
/// Largest image list accepted.
const MAX_IMAGES_REPLY: u64 = 64 << 20;
/// Largest manifest object: the ids a registration can carry, and its header line.
const MAX_MANIFEST: u64 = limits::MAX_REQUEST_BYTES as u64 + 8192;
/// Largest error body read.
const MAX_ERROR_REPLY: u64 = 64 << 10;

/// A remote block store.
pub struct HttpStore {
    base: String,
    client: Client,
    token: Option<String>,
    retries: u32,
    stall: Duration,
}

/// Why one attempt failed in a way worth retrying.
enum Transient {
    /// The store answered 5xx/429; status and body.
    Reply(StatusCode, String),
    /// No answer (connection refused, reset, timed out).
    Network(String),
}

impl HttpStore {
    /// A client for the store at `base` (`http(s)://host:port`), with an optional token.
    pub fn new(base: &str, token: Option<String>) -> Result<Self, StoreError> {
        Self::with_stall_timeout(base, token, Duration::from_secs(120))
    }

    /// Like [`HttpStore::new`], with the time a request or reply may go without progress
    /// before it fails (default 120 s): a stalled store is an error, not a silent wait.
    pub fn with_stall_timeout(
        base: &str,
        token: Option<String>,
        stall: Duration,
    ) -> Result<Self, StoreError> {
        Self::build(base, token, stall, None)
    }

    /// Like [`HttpStore::new`], also trusting the PEM certificate(s) in `ca_file`: a store
    /// serving TLS with a certificate from a private CA.
    pub fn new_with_ca(
        base: &str,
        token: Option<String>,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        Self::build(base, token, Duration::from_secs(120), ca_file)
    }

    fn build(
        base: &str,
        token: Option<String>,
        stall: Duration,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Self, StoreError> {
        let base = base.trim_end_matches('/').to_string();
        let mut builder = Client::builder();
        if let Some(path) = ca_file {
            for cert in read_ca_file(&base, path)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .connect_timeout(Duration::from_secs(10).min(stall))
            // blocking reqwest applies this to sending and to each read of a reply body
            .timeout(stall)
            .pool_max_idle_per_host(16)
            // below the server's head time-out (30 s): never reuse a connection it closed
            .pool_idle_timeout(Duration::from_secs(20))
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
            stall,
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

    /// Sends a request built by `make`, retrying connection failures, 429 and 5xx (but
    /// not 501 or 507, which will not change), quietly; the last failure is returned.
    fn send(&self, make: impl Fn(&Client) -> RequestBuilder) -> Result<Response, StoreError> {
        let mut attempt = 0;
        loop {
            let mut req = make(&self.client);
            if let Some(t) = &self.token {
                req = req.bearer_auth(t);
            }
            let failure = match req.send() {
                Ok(resp) if is_transient(resp.status()) => {
                    let status = resp.status();
                    Transient::Reply(status, read_error_text(resp))
                }
                Ok(resp) => return self.check(resp),
                Err(e) => match misaddressed(&self.base, &e) {
                    Some(reason) => {
                        return Err(StoreError::Misaddressed {
                            store: self.base.clone(),
                            reason,
                        })
                    }
                    None => Transient::Network(self.describe(&e)),
                },
            };
            if attempt >= self.retries {
                let attempts = attempt + 1;
                return Err(match failure {
                    Transient::Reply(status, text) => self.refusal(status, &text),
                    Transient::Network(reason) => StoreError::Unreachable {
                        store: self.base.clone(),
                        reason: format!("{reason} (after {attempts} attempts)"),
                    },
                });
            }
            let wait = Duration::from_millis(200 << attempt.min(6));
            let reason = match &failure {
                Transient::Reply(s, text) => format!("{s}: {}", first_line(text)),
                Transient::Network(r) => r.clone(),
            };
            tracing::info!(store = %self.base, %reason, ?wait, attempt, "retrying");
            std::thread::sleep(wait);
            attempt += 1;
        }
    }

    /// A network error in one clause; a time-out says the store stalled.
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "no progress for {} s (store stalled)",
                self.stall.as_secs_f32()
            );
        }
        describe_reqwest(e)
    }

    /// Turns a refusal into a typed error from the body's machine fields (`code`, `id`);
    /// the prose in `error` is only ever shown, never parsed.
    fn check(&self, resp: Response) -> Result<Response, StoreError> {
        let s = resp.status();
        if s.is_success() {
            return Ok(resp);
        }
        Err(self.refusal(s, &read_error_text(resp)))
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
                operation: format!("this operation ({reason})").into(),
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

    /// Reads a whole reply of at most `limit` bytes; more is a protocol error.
    fn body(&self, resp: Response, limit: u64) -> Result<Vec<u8>, StoreError> {
        let mut out = Vec::new();
        resp.take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| self.read_failed(e))?;
        if out.len() as u64 > limit {
            return Err(self.protocol(format!("reply larger than the {limit} bytes expected")));
        }
        Ok(out)
    }

    fn read_failed(&self, e: std::io::Error) -> StoreError {
        let timed_out = e.kind() == std::io::ErrorKind::TimedOut
            || e.get_ref()
                .and_then(|r| r.downcast_ref::<reqwest::Error>())
                .is_some_and(|r| r.is_timeout());
        StoreError::Unreachable {
            store: self.base.clone(),
            reason: if timed_out {
                format!(
                    "reply stalled: no progress for {} s",
                    self.stall.as_secs_f32()
                )
            } else {
                format!("reading reply: {e}")
            },
        }
    }

    /// Reads the frames of a batch download, checking each against the id asked before
    /// reading its bytes; memory follows what was asked, not what the store claims.
    fn read_frames(&self, resp: Response, batch: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut reader = std::io::BufReader::new(resp);
        let mut out = Vec::with_capacity(batch.len());
        let mut header = [0u8; super::wire::FRAME_HEADER];
        for want in batch {
            read_exact_or(&mut reader, &mut header, || {
                self.protocol("batch download ended early")
            })
            .map_err(|e| e.unwrap_or_else(|e| self.read_failed(e)))?;
            let id = BlockId::from_slice(&header[..32]).expect("32 bytes");
            let len = read_len(&header);
            if len > crate::codec::MAX_OBJECT {
                return Err(self.protocol(format!(
                    "frame for block {id} declares {len} bytes, above the limit {}",
                    crate::codec::MAX_OBJECT
                )));
            }
            if id != *want {
                return Err(self.protocol(format!("asked for block {want}, got {id}")));
            }
            let mut object = vec![0u8; len];
            read_exact_or(&mut reader, &mut object, || {
                self.protocol("batch download ended early")
            })
            .map_err(|e| e.unwrap_or_else(|e| self.read_failed(e)))?;
            out.push(object);
        }
        let mut extra = [0u8; 1];
        match reader.read(&mut extra) {
            Ok(0) => Ok(out),
            Ok(_) => Err(self.protocol("trailing bytes after batch download")),
            Err(e) => Err(self.read_failed(e)),
        }
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
        let body = self.body(resp, MAX_JSON_REPLY)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }
}

/// The certificates of `--ca-file`: PEM, at least one.
fn read_ca_file(
    base: &str,
    path: &std::path::Path,
) -> Result<Vec<reqwest::Certificate>, StoreError> {
    let bad = |reason: String| StoreError::Misaddressed {
        store: base.to_string(),
        reason: format!("--ca-file {}: {reason}", path.display()),
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| bad(format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad("holds no certificate".into()));
    }
    Ok(certs)
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

/// Statuses worth another attempt: overload and server failures that may pass.
fn is_transient(s: StatusCode) -> bool {
    s == StatusCode::TOO_MANY_REQUESTS
        || (s.is_server_error()
            && s != StatusCode::NOT_IMPLEMENTED
            && s != StatusCode::INSUFFICIENT_STORAGE)
}

/// An error body, read with a bound (a hostile store cannot make us buffer gigabytes).
fn read_error_text(resp: Response) -> String {
    let mut out = Vec::new();
    let _ = resp.take(MAX_ERROR_REPLY).read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// The u32 LE length of a frame header.
fn read_len(header: &[u8]) -> usize {
    u32::from_le_bytes(header[32..36].try_into().expect("4 bytes")) as usize
}

/// `read_exact`, telling a clean early end (`Ok(err)` from `ended`) from an I/O failure.
fn read_exact_or(
    r: &mut impl Read,
    buf: &mut [u8],
    ended: impl Fn() -> StoreError,
) -> Result<(), Result<StoreError, std::io::Error>> {
    match r.read_exact(buf) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(Ok(ended())),
        Err(e) => Err(Err(e)),
    }
}

/// A scheme or TLS mistake recognised in a connection error, with its fix: retrying
/// cannot help, and the library's words do not say what to do.
fn misaddressed(base: &str, e: &reqwest::Error) -> Option<String> {
    let text = describe_reqwest(e);
    let low = text.to_lowercase();
    let tls = base.starts_with("https://");
    let plain_answer = [
        "invalidcontenttype",
        "corrupt message",
        "wrong version number",
    ];
    if tls && plain_answer.iter().any(|p| low.contains(p)) {
        let fixed = base.replacen("https://", "http://", 1);
        return Some(format!(
            "the store does not speak TLS at this address; use {fixed} (or serve it with --tls-cert and --tls-key)"
        ));
    }
    if tls && (low.contains("invalid peer certificate") || low.contains("unknownissuer")) {
        return Some(format!(
            "the store's TLS certificate is not trusted ({}); pass the CA that signed it with --ca-file CA.pem",
            first_clause_with(&text, "certificate")
        ));
    }
    let tls_answer = [
        "invalid http version",
        "received http/0.9",
        "invalid http response",
    ];
    if !tls && tls_answer.iter().any(|p| low.contains(p)) {
        let fixed = base.replacen("http://", "https://", 1);
        return Some(format!(
            "the store answers with TLS at this address; use {fixed}"
        ));
    }
    None
}

/// The clause of `text` (split at ": ") that mentions `word`, or the last one.
fn first_clause_with<'a>(text: &'a str, word: &str) -> &'a str {
    text.split(": ")
        .find(|c| c.to_lowercase().contains(word))
        .or_else(|| text.rsplit(": ").next())
        .unwrap_or(text)
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
            let reply = self.body(resp, batch.len() as u64 * 32)?;
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
            out.extend(self.read_frames(resp, batch)?);
        }
        Ok(out)
    }

    fn report(
        &self,
        opts: &crate::report::ReportOptions,
    ) -> Result<crate::report::StoreReport, StoreError> {
        let url = format!("{}?matrix={}", self.url("report"), opts.matrix_images);
        let resp = self.send(|c| c.get(&url))?;
        let body = self.body(resp, MAX_IMAGES_REPLY)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }

    fn stats(&self) -> Result<StoreStats, StoreError> {
        let resp = self.send(|c| c.get(self.url("stats")))?;
        let body = self.body(resp, MAX_JSON_REPLY)?;
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
            let b = self.body(resp, MAX_JSON_REPLY)?;
            let reply: PutOutcome =
                serde_json::from_slice(&b).map_err(|e| self.protocol(e.to_string()))?;
            total.stored += reply.stored;
            total.existed += reply.existed;
        }
        Ok(total)
    }

    fn register(&self, name: &str, logical: u64, ids: &[BlockId]) -> Result<(), StoreError> {
        self.register_with(name, logical, ids, &[]).map(drop)
    }

    fn register_image(
        &self,
        reg: &crate::report::Registration<'_>,
    ) -> Result<super::Registered, StoreError> {
        let zeros = reg.zero_bytes.to_string();
        let hash = reg.image_hash.map(|h| h.to_string());
        let mut query = vec![("zero_bytes", zeros.as_str())];
        if let Some(h) = &hash {
            query.push(("image_hash", h.as_str()));
        }
        self.register_with(reg.name, reg.logical_bytes, reg.ids, &query)
    }

    fn register_copy(
        &self,
        reg: &crate::report::Registration<'_>,
        version: u64,
    ) -> Result<bool, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            existed: bool,
        }
        let zeros = reg.zero_bytes.to_string();
        let hash = reg.image_hash.map(|h| h.to_string());
        let number = version.to_string();
        let mut query = vec![("zero_bytes", zeros.as_str()), ("version", number.as_str())];
        if let Some(h) = &hash {
            query.push(("image_hash", h.as_str()));
        }
        let resp = self.put_manifest(reg.name, reg.logical_bytes, reg.ids, &query)?;
        Ok(self.json::<Reply>(resp)?.existed)
    }
}

impl HttpStore {
    /// `PUT /v1/images/{name}` with the manifest body and figures as query parameters
    /// (ignored by servers that keep none); the reply names the new version.
    fn register_with(
        &self,
        name: &str,
        logical: u64,
        ids: &[BlockId],
        query: &[(&str, &str)],
    ) -> Result<super::Registered, StoreError> {
        let resp = self.put_manifest(name, logical, ids, query)?;
        self.json(resp)
    }

    /// The `PUT /v1/images/{name}` request itself.
    fn put_manifest(
        &self,
        name: &str,
        logical: u64,
        ids: &[BlockId],
        query: &[(&str, &str)],
    ) -> Result<Response, StoreError> {
        let mut body = Vec::with_capacity(8 + ids.len() * 32);
        body.extend_from_slice(&logical.to_le_bytes());
        body.extend_from_slice(&ids_body(ids));
        let body = Bytes::from(body);
        let mut url = self.image_url(name)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.send(|c| c.put(url.clone()).body(body.clone()))
    }
}

impl AdminStore for HttpStore {
    fn images(&self) -> Result<Vec<ImageInfo>, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            images: Vec<ImageInfo>,
        }
        let resp = self.send(|c| c.get(self.url("images")))?;
        let body = self.body(resp, MAX_IMAGES_REPLY)?;
        let reply: Reply =
            serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))?;
        Ok(reply.images)
    }

    fn forget(&self, names: &[String]) -> Result<ForgetReport, StoreError> {
        #[derive(serde::Deserialize)]
        struct Reply {
            forgotten: Vec<String>,
        }
        let mut report = ForgetReport::default();
        for name in names {
            let url = self.named_url("images/", name)?;
            let resp = self.send(|c| c.delete(url.clone()))?;
            let reply: Reply = self.json(resp)?;
            if reply.forgotten.is_empty() {
                report.unknown.push(name.clone());
            }
            report.forgotten.extend(reply.forgotten);
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
        self.get_named("recipes/", name, MAX_SEALED_RECIPE)
    }

    fn get_manifest(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_named("manifests/", name, MAX_MANIFEST)
    }

    fn put_profile(&self, name: &str, profile: &[u8]) -> Result<bool, StoreError> {
        let url = self.named_url("profiles/", name)?;
        let body = Bytes::copy_from_slice(profile);
        let resp = self.send(|c| c.put(url.clone()).body(body.clone()))?;
        Ok(resp.status() == reqwest::StatusCode::CREATED)
    }

    fn get_profile(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_named("profiles/", name, MAX_PROFILE_BYTES)
    }
}

impl HttpStore {
    /// The object at `PREFIX/NAME` (a sealed recipe, a boot profile), `None` on 404.
    fn get_named(&self, prefix: &str, name: &str, max: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let url = self.named_url(prefix, name)?;
        match self.send(|c| c.get(url.clone())) {
            Ok(resp) => Ok(Some(self.body(resp, max)?)),
            Err(StoreError::Refused {
                code: ErrorCode::NotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

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
        let body = self.body(resp, MAX_JSON_REPLY)?;
        serde_json::from_slice(&body).map_err(|e| self.protocol(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unusable_ca_file_is_refused_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("absent.pem");
        let e = HttpStore::new_with_ca("https://h:1", None, Some(&missing))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("--ca-file") && e.contains("absent.pem"), "{e}");
        let junk = d.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = HttpStore::new_with_ca("https://h:1", None, Some(&junk))
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("junk.pem") && e.contains("certificate"), "{e}");
    }
}
