//! The handlers of HTTP API v1 (normative description: docs/API.md; the route table with
//! each route's role is in `routes.rs`). Handlers extract, call the store on a blocking
//! thread, and respond; they never panic on input.

use crate::error::ApiError;
use crate::ingest::IngestOutcome;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bonsai_core::store::{parse_frame, ErrorCode};
use bonsai_core::BlockId;
use futures_util::StreamExt;

pub(crate) async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

pub(crate) async fn version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "name": "bonsai-blockstore",
        "version": env!("CARGO_PKG_VERSION"),
        "api": 1,
        "block_format": bonsai_core::codec::OBJECT_VERSION,
    }))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub(crate) async fn stats(
    State(st): State<AppState>,
) -> Result<Json<bonsai_core::StoreStats>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || Ok(store.stats()?)).await?))
}

pub(crate) async fn list_images(
    State(st): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.store.clone();
    let images = blocking(move || Ok(store.images()?)).await?;
    Ok(Json(serde_json::json!({ "images": images })))
}

/// Reads a whole body, refusing more than `limit` bytes and reporting a cut-off body.
pub(crate) async fn read_body(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("request body incomplete: {e}")))?;
        if out.len() + chunk.len() > limit {
            return Err(ApiError::too_large(format!(
                "request body exceeds {limit} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

fn parse_ids(body: &[u8], max: usize) -> Result<Vec<BlockId>, ApiError> {
    if !body.len().is_multiple_of(32) {
        return Err(ApiError::bad_request(format!(
            "body of {} bytes is not a whole number of 32-byte ids",
            body.len()
        )));
    }
    if body.len() / 32 > max {
        return Err(ApiError::too_large(format!(
            "more than {max} ids in one request"
        )));
    }
    Ok(body
        .chunks_exact(32)
        .map(|c| BlockId::from_slice(c).expect("32 bytes"))
        .collect())
}

/// A block id from a path: exactly 64 lowercase hex digits (uppercase is refused, so one
/// block has one URL).
fn parse_id(hex: &str) -> Result<BlockId, ApiError> {
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(ApiError::bad_id());
    }
    hex.parse().map_err(|_| ApiError::bad_id())
}

fn octets(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        )],
        bytes,
    )
        .into_response()
}

pub(crate) async fn missing(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, st.limits.max_ids * 32).await?;
    let ids = parse_ids(&body, st.limits.max_ids)?;
    let store = st.store.clone();
    let absent = blocking(move || Ok(store.missing(&ids)?)).await?;
    let mut out = Vec::with_capacity(absent.len() * 32);
    for id in absent {
        out.extend_from_slice(id.as_bytes());
    }
    Ok(octets(out))
}

pub(crate) async fn get_block(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let store = st.store.clone();
    match blocking(move || Ok(store.get(&id)?)).await? {
        Some(bytes) => Ok(octets(bytes)),
        None => Err(ApiError::block_missing(
            StatusCode::NOT_FOUND,
            id,
            format!("block {id} not found"),
        )),
    }
}

fn verdict(out: IngestOutcome) -> Response {
    if out.rejected.is_empty() {
        return Json(out).into_response();
    }
    let first = &out.rejected[0];
    let msg = format!(
        "{} block(s) rejected; block {}: {}",
        out.rejected.len(),
        first.id,
        first.reason
    );
    let mut body = serde_json::to_value(&out).expect("serializable");
    body["error"] = serde_json::Value::String(msg);
    body["code"] = serde_json::to_value(ErrorCode::BlockRejected).expect("serializable");
    body["id"] = serde_json::Value::String(first.id.to_hex());
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

pub(crate) async fn put_block(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let bytes = read_body(body, st.limits.max_block_bytes).await?;
    let store = st.store.clone();
    let out = blocking(move || Ok(store.put_many(&[(id, &bytes)])?)).await?;
    if out.stored == 1 {
        return Ok((StatusCode::CREATED, Json(out)).into_response());
    }
    Ok(verdict(out))
}

/// Batch upload: frames are parsed as they arrive and stored in groups of ~8 MiB, so a
/// large request needs little memory. A cut-off body stores the complete frames before
/// the cut and nothing of the incomplete one.
pub(crate) async fn upload_batch(
    State(st): State<AppState>,
    body: Body,
) -> Result<Response, ApiError> {
    const GROUP: usize = 8 * 1024 * 1024;
    let limit = st.limits.max_request_bytes;
    let max_block = st.limits.max_block_bytes;
    let mut stream = body.into_data_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut total = 0usize;
    let mut outcome = IngestOutcome::default();
    let mut eof = false;
    while !eof {
        match stream.next().await {
            Some(Ok(chunk)) => {
                total += chunk.len();
                if total > limit {
                    return Err(ApiError::too_large(format!(
                        "request body exceeds {limit} bytes; send smaller batches"
                    )));
                }
                buf.extend_from_slice(&chunk);
            }
            Some(Err(e)) => {
                return Err(ApiError::bad_request(format!(
                    "request body incomplete: {e}"
                )))
            }
            None => eof = true,
        }
        // Index complete frames at the front of the buffer.
        let mut frames = Vec::new();
        let mut pos = 0;
        while let Some((id, skip, len)) =
            parse_frame(&buf[pos..], max_block).map_err(ApiError::too_large)?
        {
            frames.push((id, pos + skip, len));
            pos += skip + len;
        }
        if pos > 0 && (pos >= GROUP || eof) {
            let rest = buf.split_off(pos);
            let data = std::mem::replace(&mut buf, rest);
            let store = st.store.clone();
            let out = blocking(move || {
                let items: Vec<(BlockId, &[u8])> = frames
                    .iter()
                    .map(|&(id, at, len)| (id, &data[at..at + len]))
                    .collect();
                Ok(store.put_many(&items)?)
            })
            .await?;
            outcome.stored += out.stored;
            outcome.existed += out.existed;
            outcome.rejected.extend(out.rejected);
        }
    }
    if !buf.is_empty() {
        return Err(ApiError::bad_request(format!(
            "request body ends inside a frame ({} stray bytes); complete frames before it were stored",
            buf.len()
        )));
    }
    Ok(verdict(outcome))
}

/// Batch download: all ids are checked first (404 names the first absent one), then the
/// objects stream out as frames in the order asked.
pub(crate) async fn fetch(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, st.limits.max_ids * 32).await?;
    let ids = parse_ids(&body, st.limits.max_ids)?;
    let store = st.store.clone();
    let check = ids.clone();
    let absent = blocking(move || Ok(store.missing(&check)?)).await?;
    if let Some(id) = absent.first() {
        return Err(ApiError::block_missing(
            StatusCode::NOT_FOUND,
            *id,
            format!("block {id} not found"),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || {
        let mut frame = Vec::new();
        for id in ids {
            let item = match store.get(&id) {
                Ok(Some(obj)) => {
                    frame.clear();
                    bonsai_core::store::write_frame(&mut frame, &id, &obj);
                    Ok(Bytes::copy_from_slice(&frame))
                }
                Ok(None) => Err(std::io::Error::other(format!("block {id} vanished"))),
                Err(e) => {
                    tracing::error!(%e, "reading block for download");
                    Err(std::io::Error::other("storage error"))
                }
            };
            let stop = item.is_err();
            if tx.blocking_send(item).is_err() || stop {
                return;
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut resp = Body::from_stream(stream).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(resp)
}

pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && !name.chars().any(|c| c.is_control() || c == '/')
}

pub(crate) async fn register(
    State(st): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    if !valid_name(&name) {
        return Err(ApiError::bad_request(
            "image name must be 1-255 characters, without '/' or control characters",
        ));
    }
    let body = read_body(body, st.limits.max_request_bytes).await?;
    if body.len() < 8 {
        return Err(ApiError::bad_request(
            "manifest must start with the 8-byte logical size",
        ));
    }
    let logical = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let ids = parse_ids(&body[8..], usize::MAX)?;
    let store = st.store.clone();
    let n = ids.len();
    let absent = blocking(move || Ok(store.register(&name, logical, &ids)?)).await?;
    if let Some(id) = absent {
        return Err(ApiError::block_missing(
            StatusCode::CONFLICT,
            id,
            format!("block {id} not found; upload every block before registering the image"),
        ));
    }
    Ok((StatusCode::CREATED, Json(serde_json::json!({"blocks": n}))).into_response())
}
