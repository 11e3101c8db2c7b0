//! HTTP API v1 (normative description: docs/API.md). Handlers extract, call the store on
//! a blocking thread, and respond; they never panic on input.
//!
//! ```text
//! GET  /v1/health            liveness (no token)
//! GET  /v1/version           server and API version (no token)
//! GET  /v1/stats             store-wide figures, JSON
//! POST /v1/blocks/missing    body: ids (32 bytes each) → the absent ones, same encoding
//! POST /v1/blocks            body: frames id ‖ u32 LE len ‖ object → JSON verdicts
//! POST /v1/blocks/fetch      body: ids → frames, in the order asked (404 if any absent)
//! GET  /v1/blocks/{id}       one object
//! PUT  /v1/blocks/{id}       upload one object
//! GET  /v1/images            registered images, JSON
//! PUT  /v1/images/{name}     body: u64 LE logical size ‖ ids → register a manifest
//! DELETE /v1/images/{name}   forget an image (admin)
//! POST /v1/gc                collect unreferenced blocks (admin; api_ops.rs)
//! POST /v1/check             verify blocks, quarantine damaged ones (admin)
//! PUT  /v1/recipes/{name}    keep a sealed recipe (write); GET fetches it (read)
//! ```

use crate::auth::Role;
use crate::error::ApiError;
use crate::ingest::IngestOutcome;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use bonsai_core::store::parse_frame;
use bonsai_core::BlockId;
use futures_util::StreamExt;
use std::time::Instant;

/// The API router over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/version", get(version))
        .route("/v1/stats", get(stats))
        .route("/v1/blocks/missing", post(missing))
        .route("/v1/blocks/fetch", post(fetch))
        .route("/v1/blocks", post(upload_batch))
        .route("/v1/blocks/{id}", get(get_block).put(put_block))
        .route("/v1/images", get(list_images))
        .route(
            "/v1/images/{name}",
            put(register).delete(crate::api_ops::forget),
        )
        .route("/v1/gc", post(crate::api_ops::gc))
        .route("/v1/check", post(crate::api_ops::check))
        .route(
            "/v1/recipes/{name}",
            get(crate::api_ops::get_recipe).put(crate::api_ops::put_recipe),
        )
        .fallback(|| async { ApiError::not_found("no such endpoint (API v1 lives under /v1/)") })
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn(log_request))
        // Bodies are streamed and bounded by our own limits, per endpoint.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

async fn version() -> Json<serde_json::Value> {
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

async fn stats(State(st): State<AppState>) -> Result<Json<bonsai_core::StoreStats>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(move || Ok(store.stats()?)).await?))
}

async fn list_images(State(st): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.store.clone();
    let list = blocking(move || Ok(store.image_infos()?)).await?;
    Ok(Json(serde_json::json!({ "images": list })))
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

fn parse_id(hex: &str) -> Result<BlockId, ApiError> {
    hex.parse()
        .map_err(|_| ApiError::bad_request("block id must be 64 lowercase hex digits"))
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

async fn missing(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
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

async fn get_block(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    let store = st.store.clone();
    match blocking(move || Ok(store.get(&id)?)).await? {
        Some(bytes) => Ok(octets(bytes)),
        None => Err(ApiError::not_found(format!("block {id} not found"))),
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
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

async fn put_block(
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
async fn upload_batch(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
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
async fn fetch(State(st): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let body = read_body(body, st.limits.max_ids * 32).await?;
    let ids = parse_ids(&body, st.limits.max_ids)?;
    let store = st.store.clone();
    let check = ids.clone();
    let absent = blocking(move || Ok(store.missing(&check)?)).await?;
    if let Some(id) = absent.first() {
        return Err(ApiError::not_found(format!("block {id} not found")));
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

async fn register(
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
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("block {id} not found; upload every block before registering the image"),
        ));
    }
    Ok((StatusCode::CREATED, Json(serde_json::json!({"blocks": n}))).into_response())
}

// ---- middleware ------------------------------------------------------------------------

fn needs(method: &Method, path: &str) -> Option<Role> {
    match (method, path) {
        (_, "/v1/health") | (_, "/v1/version") => None,
        (&Method::DELETE, _) | (&Method::POST, "/v1/gc") | (&Method::POST, "/v1/check") => {
            Some(Role::Admin)
        }
        (&Method::PUT, _) => Some(Role::Write),
        (&Method::POST, "/v1/blocks") => Some(Role::Write),
        _ => Some(Role::Read),
    }
}

async fn authorize(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let Some(tokens) = &st.tokens else {
        return next.run(req).await;
    };
    let need = match needs(req.method(), req.uri().path()) {
        None => return next.run(req).await,
        Some(Role::Read) if st.public_read => return next.run(req).await,
        Some(r) => r,
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let deny = |status, msg: &str| {
        let mut r = ApiError::new(status, msg).into_response();
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    };
    match presented.map(|t| tokens.role_of(t.trim())) {
        None => deny(StatusCode::UNAUTHORIZED, "missing bearer token"),
        Some(None) => deny(StatusCode::UNAUTHORIZED, "invalid token"),
        Some(Some(role)) if role < need => deny(
            StatusCode::FORBIDDEN,
            match need {
                Role::Admin => "the request needs an admin token",
                _ => "this token may only read; the request needs a write token",
            },
        ),
        Some(Some(_)) => next.run(req).await,
    }
}

async fn time_limit(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let limit = st.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("request took longer than {}s", limit.as_secs()),
        )
        .into_response(),
    }
}

async fn log_request(req: Request, next: Next) -> Response {
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
