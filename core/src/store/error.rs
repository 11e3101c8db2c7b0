//! `StoreError`: why a store call failed, typed so callers branch on variants (and the
//! command line on [`StoreError::kind`]) rather than on message text. Messages are
//! lowercase, one clause, and name the store and what to do.

use super::wire::ErrorCode;
use crate::id::BlockId;

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Network-level failure after retries (connection refused, reset, stalled reply).
    #[error("store {store} unreachable: {reason}")]
    Unreachable {
        /// The store address.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// Missing or wrong token, or a token whose role is too low.
    #[error("store {store} refused the request: {reason} (check --token-file or BONSAI_TOKEN)")]
    Unauthorized {
        /// The store address.
        store: String,
        /// Server's reason.
        reason: String,
    },
    /// A block the caller needs is absent.
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
    /// A reply that does not follow the protocol (or breaks a client-side bound).
    #[error("store {store} sent a malformed reply: {reason}")]
    Protocol {
        /// The store address.
        store: String,
        /// What was wrong.
        reason: String,
    },
    /// The store answered and refused, with its machine code and one-line reason (a full
    /// disk, an over-limit request, a busy server).
    #[error("store {store} refused: {reason}")]
    Refused {
        /// The store address.
        store: String,
        /// The machine code from the error body ([`ErrorCode::Unknown`] if none).
        code: ErrorCode,
        /// Server's reason.
        reason: String,
    },
    /// The request names something wrongly (an illegal image name or version reference):
    /// the caller's to fix, nothing was changed.
    #[error("store {store}: {reason}")]
    BadInput {
        /// The store address.
        store: String,
        /// What is wrong and what is accepted.
        reason: String,
    },
    /// An embedded store's own storage refused (its index, or a backend refusal that is
    /// not an I/O error), with a one-line reason.
    #[error("store {store}: {reason}")]
    Storage {
        /// The store path.
        store: String,
        /// What went wrong.
        reason: String,
    },
    /// The store does not offer this operation (yet, or for this kind of store).
    #[error("store {store} does not support {operation}")]
    Unsupported {
        /// The store address.
        store: String,
        /// The operation asked for.
        operation: std::borrow::Cow<'static, str>,
    },
    /// The address names the store wrongly (`http://` to a TLS port, `https://` to a plain
    /// one, a certificate the client does not trust): a usage error, never retried.
    #[error("store {store}: {reason}")]
    Misaddressed {
        /// The store address.
        store: String,
        /// The mistake and its fix.
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

/// Classes of store failure, for exit codes and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// Could not talk to the store.
    Network,
    /// Token missing, wrong or too weak.
    Auth,
    /// A block or image is absent.
    NotFound,
    /// The store refused data (a block failing verification).
    Rejected,
    /// The store broke the protocol or a client-side bound.
    Protocol,
    /// The store answered with a refusal (limits, full disk, busy).
    Refused,
    /// The operation is not offered.
    Unsupported,
    /// Local disk failure in an embedded store.
    LocalIo,
    /// The address or its TLS settings are wrong (the user's to fix).
    Misaddressed,
    /// A name or reference in the request is wrong (the user's to fix).
    BadInput,
}

impl StoreError {
    /// The class of this failure.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Unreachable { .. } => StoreErrorKind::Network,
            StoreError::Unauthorized { .. } => StoreErrorKind::Auth,
            StoreError::NotFound(_) => StoreErrorKind::NotFound,
            StoreError::Rejected { .. } => StoreErrorKind::Rejected,
            StoreError::Protocol { .. } => StoreErrorKind::Protocol,
            // a site cache whose upstream failed: the network's fault, as if unreachable
            StoreError::Refused {
                code: ErrorCode::Upstream,
                ..
            } => StoreErrorKind::Network,
            StoreError::Refused { .. } | StoreError::Storage { .. } => StoreErrorKind::Refused,
            StoreError::BadInput { .. } => StoreErrorKind::BadInput,
            StoreError::Unsupported { .. } => StoreErrorKind::Unsupported,
            StoreError::Io { .. } => StoreErrorKind::LocalIo,
            StoreError::Misaddressed { .. } => StoreErrorKind::Misaddressed,
        }
    }
}
