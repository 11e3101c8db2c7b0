//! Layers around every route: the request time limit (408) and one log line per request.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bonsai_core::store::ErrorCode;
use std::time::Instant;

/// Answers 408 when a request takes longer than the configured limit.
pub(crate) async fn time_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limit = st.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            ErrorCode::Timeout,
            format!("request took longer than {}s", limit.as_secs()),
        )
        .into_response(),
    }
}

/// One `tracing` line per request: method, path, status, bytes in and out, time.
pub(crate) async fn log_request(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let in_bytes = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let resp = next.run(req).await;
    let out_bytes = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("stream")
        .to_string();
    tracing::info!(
        %method,
        %path,
        status = resp.status().as_u16(),
        in_bytes,
        out_bytes = %out_bytes,
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    resp
}
