//! `ApiError`: every failure becomes a status and a JSON body with machine fields,
//! `{"error": "...", "code": "block_missing", "id": "<hex>"}` (core's `wire::ErrorBody`;
//! codes listed in docs/API.md). Clients branch on `code` and `id`, never on the prose.
//! Internal causes are logged, not sent: a client learns what to do, not our file paths.

use crate::ingest::StorageError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bonsai_core::store::{ErrorBody, ErrorCode};
use bonsai_core::BlockId;

/// An HTTP error with a one-line reason and a machine code for the client.
#[derive(Debug)]
pub struct ApiError {
    /// Status to send.
    pub status: StatusCode,
    /// What happened, for programs.
    pub code: ErrorCode,
    /// Reason for the client.
    pub message: String,
    /// The block concerned, if any.
    pub id: Option<BlockId>,
}

impl ApiError {
    /// Any status and code.
    pub fn new(status: StatusCode, code: ErrorCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: msg.into(),
            id: None,
        }
    }
    /// Names the block concerned.
    pub fn with_id(mut self, id: BlockId) -> Self {
        self.id = Some(id);
        self
    }
    /// 400: the request is malformed.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, ErrorCode::BadRequest, msg)
    }
    /// 400: a block id in the path is not 64 lowercase hex digits.
    pub fn bad_id() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::BadId,
            "block id must be 64 lowercase hex digits",
        )
    }
    /// 404: no such route or image.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, msg)
    }
    /// 404 (or 409 for a manifest): block `id` is absent.
    pub fn block_missing(status: StatusCode, id: BlockId, msg: impl Into<String>) -> Self {
        Self::new(status, ErrorCode::BlockMissing, msg).with_id(id)
    }
    /// 413: over a size limit.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, ErrorCode::TooLarge, msg)
    }
    /// 503: too much in flight; the client retries later.
    pub fn busy(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Busy, msg)
    }
    /// 500, logging the cause and hiding it from the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Internal,
            "internal storage error (see server log)",
        )
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::Backend(b) if b.is_full() => {
                tracing::error!(cause = %e, "store is full");
                ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    ErrorCode::StorageFull,
                    "the store's disk is full; ask its operator to free space",
                )
            }
            StorageError::Unsupported(_) => ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                ErrorCode::Unsupported,
                e.to_string(),
            ),
            StorageError::NoImage(_) => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, e.to_string())
            }
            StorageError::Forbidden(_) => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, e.to_string())
            }
            StorageError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, ErrorCode::Conflict, e.to_string())
            }
            StorageError::Upstream(_) => {
                tracing::warn!(cause = %e, "upstream failed");
                ApiError::new(StatusCode::BAD_GATEWAY, ErrorCode::Upstream, e.to_string())
            }
            StorageError::Forwarded(f) => forwarded(f),
            StorageError::Lost(id) => {
                tracing::error!(cause = %e, "indexed block lost");
                let id = *id;
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    e.to_string(),
                )
                .with_id(id)
            }
            _ => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            code: self.code,
            id: self.id,
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// An upstream's answer to a request a site cache forwarded, passed on with its meaning:
/// its refusals keep their code, its failures are the upstream's (502).
fn forwarded(e: &bonsai_core::store::StoreError) -> ApiError {
    use bonsai_core::store::StoreError as E;
    let status = |code: ErrorCode| match code {
        ErrorCode::BadRequest | ErrorCode::BadId => StatusCode::BAD_REQUEST,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::Conflict | ErrorCode::BlockMissing => StatusCode::CONFLICT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Unsupported => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::BAD_GATEWAY,
    };
    match e {
        E::Refused { code, reason, .. } => ApiError::new(status(*code), *code, reason.clone()),
        E::BadInput { reason, .. } => ApiError::bad_request(reason.clone()),
        E::Unauthorized { reason, .. } => ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!("the upstream refused this cache's token: {reason}"),
        ),
        E::Unsupported { operation, .. } => ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            ErrorCode::Unsupported,
            format!("the upstream does not offer {operation}"),
        ),
        E::Rejected { id, reason } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::BlockRejected,
            format!("block {id}: {reason}"),
        )
        .with_id(*id),
        E::NotFound(id) => ApiError::block_missing(
            StatusCode::CONFLICT,
            *id,
            format!(
                "block {id} not found upstream; upload every block before registering the image"
            ),
        ),
        other => ApiError::new(
            StatusCode::BAD_GATEWAY,
            ErrorCode::Upstream,
            format!("upstream store: {other}"),
        ),
    }
}
