//! The handlers of HTTP API v1 (normative description: docs/API.md; the route table with
//! each route's role is in `routes.rs`). Handlers extract, call the store on a blocking
//! thread, and respond; they never panic on input.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::images::Exact;
use crate::ingest::IngestOutcome;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bonsai_core::store::ErrorCode;
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

/// Runs storage work on a blocking thread while holding one of the state's slots, so a
/// flood of requests queues here instead of pinning every blocking worker.
pub(crate) async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = st.slots.acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

pub(crate) async fn stats(
    State(st): State<AppState>,
) -> Result<Json<bonsai_core::StoreStats>, ApiError> {
    let store = st.store.clone();
    Ok(Json(blocking(&st, move || Ok(store.stats()?)).await?))
}

/// `GET /v1/images`: every version the caller's namespaces cover.
pub(crate) async fn list_images(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let store = st.store.clone();
    let mut images = blocking(&st, move || Ok(store.images()?)).await?;
    images.retain(|i| caller.covers(&i.name));
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

pub(crate) fn parse_ids(body: &[u8], max: usize) -> Result<Vec<BlockId>, ApiError> {
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
    let absent = blocking(&st, move || Ok(store.missing(&ids)?)).await?;
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
    match blocking(&st, move || Ok(store.get(&id)?)).await? {
        Some(bytes) => Ok(octets(bytes)),
        None => Err(ApiError::block_missing(
            StatusCode::NOT_FOUND,
            id,
            format!("block {id} not found"),
        )),
    }
}

pub(crate) fn verdict(out: IngestOutcome) -> Response {
    if out.rejected.is_empty() {
        return Json(out).into_response();
    }
    let first = &out.rejected[0];
    let msg = format!(
        "{} block(s) rejected; block {}: {}",
        out.rejected_count, first.id, first.reason
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
    let out = blocking(&st, move || Ok(store.put_many(&[(id, &bytes)])?)).await?;
    if out.stored == 1 {
        return Ok((StatusCode::CREATED, Json(out)).into_response());
    }
    Ok(verdict(out))
}

/// A legal image name the caller's namespaces cover, or the refusal.
pub(crate) fn name_for(caller: &Caller, name: &str) -> Result<(), ApiError> {
    if let Some(problem) = bonsai_core::name::name_problem(name) {
        return Err(ApiError::bad_request(problem));
    }
    if !caller.covers(name) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "this token may not use names in namespace {:?}",
                bonsai_core::name::namespace_of(name)
            ),
        ));
    }
    Ok(())
}

/// Figures a client may send with a manifest (docs/API.md); absent ones stay unknown.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RegisterQuery {
    zero_bytes: Option<u64>,
    image_hash: Option<String>,
    /// Register exactly this version (a copy by `bonsai sync`), never renumbered.
    version: Option<u64>,
}

/// `PUT /v1/images/{name}`: registers a new version of `name`.
pub(crate) async fn register(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(figures): Query<RegisterQuery>,
    body: Body,
) -> Result<Response, ApiError> {
    name_for(&caller, &name)?;
    if let Some(h) = &figures.image_hash {
        if h.parse::<bonsai_core::ImageHash>().is_err() || h.len() != 64 {
            return Err(ApiError::bad_request(
                "image_hash must be 64 lowercase hex digits",
            ));
        }
    }
    let body = read_body(body, st.limits.max_request_bytes).await?;
    if body.len() < 8 {
        return Err(ApiError::bad_request(
            "manifest must start with the 8-byte logical size",
        ));
    }
    let logical = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
    let ids = parse_ids(&body[8..], usize::MAX)?;
    if figures.zero_bytes.is_some_and(|z| z > logical) {
        return Err(ApiError::bad_request(format!(
            "zero_bytes exceeds the logical size {logical}"
        )));
    }
    if let Some(version) = figures.version {
        return register_exact(st, caller, name, logical, ids, figures, version).await;
    }
    let store = st.store.clone();
    let n = ids.len();
    let outcome = blocking(&st, move || {
        let v = crate::images::NewVersion {
            name: &name,
            logical_bytes: logical,
            ids: &ids,
            zero_bytes: figures.zero_bytes,
            image_hash: figures.image_hash.as_deref(),
            by: &caller.by,
        };
        Ok(store.register_version(&v)?)
    })
    .await?;
    match outcome {
        Ok(reg) => Ok((
            StatusCode::CREATED,
            Json(serde_json::json!({
                "blocks": n,
                "version": reg.version,
                "earlier_versions": reg.earlier_versions,
            })),
        )
            .into_response()),
        Err(id) => Err(ApiError::block_missing(
            StatusCode::CONFLICT,
            id,
            format!("block {id} not found; upload every block before registering the image"),
        )),
    }
}

/// `PUT /v1/images/{name}?version=V`: registers exactly version V, or finds it there.
async fn register_exact(
    st: AppState,
    caller: Caller,
    name: String,
    logical: u64,
    ids: Vec<BlockId>,
    figures: RegisterQuery,
    version: u64,
) -> Result<Response, ApiError> {
    if version == 0 {
        return Err(ApiError::bad_request("version must be 1 or more"));
    }
    let store = st.store.clone();
    let n = ids.len();
    let shown = format!("{name}@{version}");
    let outcome = blocking(&st, move || {
        let v = crate::images::NewVersion {
            name: &name,
            logical_bytes: logical,
            ids: &ids,
            zero_bytes: figures.zero_bytes,
            image_hash: figures.image_hash.as_deref(),
            by: &caller.by,
        };
        Ok(store.register_exact(&v, version)?)
    })
    .await?;
    let reply = |status, existed| {
        let body = serde_json::json!({"blocks": n, "version": version, "existed": existed});
        Ok((status, Json(body)).into_response())
    };
    match outcome {
        Exact::Created => reply(StatusCode::CREATED, false),
        Exact::Existed => reply(StatusCode::OK, true),
        Exact::Taken => Err(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "{shown} is another image here; a copied version is never renumbered or replaced"
            ),
        )),
        Exact::Missing(id) => Err(ApiError::block_missing(
            StatusCode::CONFLICT,
            id,
            format!("block {id} not found; upload every block before registering the image"),
        )),
    }
}
