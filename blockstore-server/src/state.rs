//! Everything a request handler may touch, passed explicitly (no globals).

use crate::auth::Tokens;
use crate::ingest::Store;
use std::sync::Arc;
use std::time::Duration;

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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_block_bytes: bonsai_core::codec::MAX_OBJECT,
            max_request_bytes: bonsai_core::store::limits::MAX_REQUEST_BYTES,
            max_ids: bonsai_core::store::limits::MAX_IDS_PER_QUERY,
            request_timeout: Duration::from_secs(300),
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
}
