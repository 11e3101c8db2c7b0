//! The block store as the engines see it: ask which ids are missing, put objects, get
//! objects, register an image's manifest, read statistics. Every call is batched because
//! round trips dominate across a WAN.
//!
//! Two implementations: [`http::HttpStore`] talks to a `bonsai serve` over HTTP; the
//! embedded store (a directory, no server) lives in `bonsai-blockstore` beside the server
//! so the on-disk layout is written once. [`mem::MemStore`] is for tests of the engines.

pub mod http;
pub mod mem;

use crate::id::BlockId;

/// Store-wide figures, as `bonsai stats` and `GET /v1/stats` report them.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoreStats {
    /// Distinct blocks held.
    pub blocks: u64,
    /// Bytes of block objects held.
    pub stored_bytes: u64,
    /// Images whose manifests are registered.
    pub images: u64,
    /// Sum of the logical sizes of registered images.
    pub logical_bytes: u64,
    /// `logical_bytes / stored_bytes` (0 when empty).
    pub dedup_ratio: f64,
}

impl StoreStats {
    /// Fills `dedup_ratio` from the two byte counts.
    pub fn with_ratio(mut self) -> Self {
        self.dedup_ratio = if self.stored_bytes == 0 {
            0.0
        } else {
            self.logical_bytes as f64 / self.stored_bytes as f64
        };
        self
    }
}

/// Result of a batch upload: the store verified and kept (or already had) each block.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PutOutcome {
    /// Blocks newly written.
    pub stored: u64,
    /// Blocks the store already held (idempotent re-upload).
    pub existed: u64,
}

/// Why a store call failed. Messages name the store and what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Network-level failure after retries.
    #[error("store {store} unreachable: {reason}")]
    Unreachable {
        /// The store address.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// Missing or wrong token.
    #[error("store {store} refused the request: {reason} (check --token-file or BONSAI_TOKEN)")]
    Unauthorized {
        /// The store address.
        store: String,
        /// Server's reason.
        reason: String,
    },
    /// A block the recipe needs is absent.
    #[error(
        "block {0} is not in the store (recipe made for another store, or the block was removed)"
    )]
    NotFound(BlockId),
    /// The store refused a block (hash mismatch and the like).
    #[error("store rejected block {id}: {reason}")]
    Rejected {
        /// The block.
        id: BlockId,
        /// Server's reason.
        reason: String,
    },
    /// A reply that does not follow the protocol.
    #[error("store {store} sent a malformed reply: {reason}")]
    Protocol {
        /// The store address.
        store: String,
        /// What was wrong.
        reason: String,
    },
    /// Any other refusal, with the server's one-line reason.
    #[error("store {store}: {reason}")]
    Other {
        /// The store address.
        store: String,
        /// Server's reason.
        reason: String,
    },
    /// Local storage failed (embedded store).
    #[error("store {store}: {source}")]
    Io {
        /// The store path.
        store: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

/// A block store. Implementations are shared between threads.
pub trait BlockStore: Send + Sync {
    /// Which of `ids` the store lacks, in the order given.
    fn missing(&self, ids: &[BlockId]) -> Result<Vec<BlockId>, StoreError>;
    /// Uploads objects; the store verifies each against its id before keeping it.
    fn put(&self, blocks: &[(BlockId, &[u8])]) -> Result<PutOutcome, StoreError>;
    /// Fetches objects, in the order asked. A missing id is [`StoreError::NotFound`].
    fn get(&self, ids: &[BlockId]) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Records that image `name` of `logical_bytes` uses `ids` (never keys).
    fn register(&self, name: &str, logical_bytes: u64, ids: &[BlockId]) -> Result<(), StoreError>;
    /// Store-wide figures.
    fn stats(&self) -> Result<StoreStats, StoreError>;
    /// How the user named the store, for messages.
    fn describe(&self) -> String;
    /// Registers an image with the figures reports need (its zero bytes). A store that
    /// keeps no figures registers the manifest alone.
    fn register_image(&self, reg: &crate::report::Registration<'_>) -> Result<(), StoreError> {
        self.register(reg.name, reg.logical_bytes, reg.ids)
    }
    /// The dedup report (docs/RATIOS.md), computed from the store's index.
    fn report(
        &self,
        opts: &crate::report::ReportOptions,
    ) -> Result<crate::report::StoreReport, StoreError> {
        let _ = opts;
        Err(StoreError::Other {
            store: self.describe(),
            reason: "this store keeps no report".into(),
        })
    }
}

/// Limits both sides agree on; the server enforces them, the client batches below them.
pub mod limits {
    /// Most ids in one existence query or batch download.
    pub const MAX_IDS_PER_QUERY: usize = 65_536;
    /// Largest request body the server accepts (batch upload).
    pub const MAX_REQUEST_BYTES: usize = 128 * 1024 * 1024;
    /// Target size of one batch upload or download.
    pub const BATCH_BYTES: usize = 8 * 1024 * 1024;
}

/// Reads one frame of the batch wire format (`id ‖ u32 LE length ‖ bytes`) from a buffer.
/// Returns `None` when the buffer holds no complete frame yet.
pub fn parse_frame(buf: &[u8], max_len: usize) -> Result<Option<(BlockId, usize, usize)>, String> {
    if buf.len() < 36 {
        return Ok(None);
    }
    let id = BlockId::from_slice(&buf[..32]).expect("32 bytes");
    let len = u32::from_le_bytes(buf[32..36].try_into().expect("4 bytes")) as usize;
    if len > max_len {
        return Err(format!(
            "frame for block {id} declares {len} bytes, above the limit {max_len}"
        ));
    }
    if buf.len() < 36 + len {
        return Ok(None);
    }
    Ok(Some((id, 36, len)))
}

/// Appends one frame of the batch wire format.
pub fn write_frame(out: &mut Vec<u8>, id: &BlockId, object: &[u8]) {
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&(object.len() as u32).to_le_bytes());
    out.extend_from_slice(object);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bound() {
        let mut buf = Vec::new();
        write_frame(&mut buf, &BlockId([1; 32]), b"hello");
        assert_eq!(parse_frame(&buf[..10], 100), Ok(None));
        assert_eq!(parse_frame(&buf[..38], 100), Ok(None));
        assert_eq!(parse_frame(&buf, 100), Ok(Some((BlockId([1; 32]), 36, 5))));
        assert!(parse_frame(&buf, 4).is_err());
    }
}
