//! Everything a request handler may touch, passed explicitly (no globals).

use crate::auth::Tokens;
use crate::ingest::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Limits on what one request may ask or send.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest block object accepted.
    pub max_block_bytes: usize,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Most ids in one query, batch download or manifest page.
    pub max_ids: usize,
    /// Longest a request may take before the server answers 408.
    pub request_timeout: Duration,
    /// Most storage calls (index queries, block reads and writes) running at once, over all
    /// requests. Work holds a slot only while it runs, never while a client is slow to read.
    pub max_blocking: usize,
    /// Most invalid frames one batch upload may carry before the server stops reading it.
    pub max_rejected: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_bytes: bonsai_core::codec::MAX_OBJECT,
            max_request_bytes: bonsai_core::store::limits::MAX_REQUEST_BYTES,
            max_ids: bonsai_core::store::limits::MAX_IDS_PER_QUERY,
            request_timeout: Duration::from_secs(300),
            max_blocking: 32,
            max_rejected: 1024,
        }
    }
}

/// Shared server state.
#[derive(Clone)]
pub struct AppState {
    /// Blocks and index.
    pub store: Arc<Store>,
    /// Accepted tokens; `None` means no authentication (loopback or trusted network only).
    pub tokens: Option<Arc<Tokens>>,
    /// Whether reads need no token.
    pub public_read: bool,
    /// Request limits.
    pub limits: Limits,
    /// Slots for storage calls ([`Limits::max_blocking`] of them).
    pub slots: Arc<Semaphore>,
    /// Host names (besides IP addresses and localhost) a store without tokens takes
    /// changes under (`--allow-host`; `guard.rs`).
    pub allowed_hosts: Arc<Vec<String>>,
    /// What `GET /metrics` reports.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AppState {
    /// State over `store` with `limits`, no tokens (add them with [`AppState::with_tokens`]).
    pub fn new(store: Arc<Store>, limits: Limits) -> Self {
        AppState {
            store,
            tokens: None,
            public_read: false,
            slots: Arc::new(Semaphore::new(limits.max_blocking.max(1))),
            limits,
            allowed_hosts: Arc::default(),
            metrics: Arc::default(),
        }
    }

    /// Requires tokens; with `public_read`, reads need none.
    pub fn with_tokens(mut self, tokens: Option<Arc<Tokens>>, public_read: bool) -> Self {
        self.tokens = tokens;
        self.public_read = public_read;
        self
    }
}
