//! `ApiError`: every failure becomes a status and a one-line JSON body `{"error": "..."}`.
//! Internal causes are logged, not sent: a client learns what to do, not our file paths.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP error with a one-line reason for the client.
#[derive(Debug)]
pub struct ApiError {
    /// Status to send.
    pub status: StatusCode,
    /// Reason for the client.
    pub message: String,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
    /// 404: no such block or image.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }
    /// 413: over a size limit.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, msg)
    }
    /// Any status.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            message: msg.into(),
        }
    }
    /// 500, logging the cause and hiding it from the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal storage error (see server log)",
        )
    }
}

impl From<crate::ingest::StorageError> for ApiError {
    fn from(e: crate::ingest::StorageError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, axum::Json(body)).into_response()
    }
}
