//! Handlers of the operations routes (docs/API.md "Operating the store"): forget (admin),
//! gc (admin), check (admin), sealed recipes (PUT write, GET read). Each extracts, runs the
//! store call on a blocking thread and answers JSON (or the sealed bytes).
//!
//! gc and check may run for minutes on a large store; the request time limit
//! (`--request-timeout-secs`) applies, and a run cut off by it still completes in the
//! background (the client sees 408 and can look at `bonsai stats`).

use crate::api::{blocking, name_for, read_body};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bonsai_core::name::VersionRef;
use bonsai_core::store::{CheckOptions, CheckReport, GcOptions, GcReport, DEFAULT_GRACE};
use std::time::Duration;

/// `NAME` or `NAME@V` from a path, legal and covered by the caller.
fn version_ref(caller: &Caller, text: &str) -> Result<VersionRef, ApiError> {
    let r = VersionRef::parse(text).map_err(ApiError::bad_request)?;
    name_for(caller, &r.name)?;
    Ok(r)
}

/// `NAME@V` from a path (a sealed recipe belongs to one version).
fn one_version(caller: &Caller, text: &str) -> Result<(String, u64), ApiError> {
    let r = version_ref(caller, text)?;
    match r.version {
        Some(v) => Ok((r.name, v)),
        None => Err(ApiError::bad_request(
            "a sealed recipe, boot profile or manifest belongs to one version: NAME@VERSION (see GET /v1/images)",
        )),
    }
}

/// `DELETE /v1/images/{ref}` → `{"forgotten": ["NAME@V", …]}` (empty: nothing matched).
pub(crate) async fn forget(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let target = version_ref(&caller, &text)?;
    let store = st.store.clone();
    let gone = blocking(&st, move || Ok(store.forget(&target)?)).await?;
    let gone: Vec<String> = gone.iter().map(ToString::to_string).collect();
    Ok(Json(serde_json::json!({ "forgotten": gone })))
}

/// Query of `POST /v1/gc`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcQuery {
    /// Grace period in seconds (default a day).
    grace_seconds: Option<u64>,
    /// Report only.
    #[serde(default)]
    dry_run: bool,
}

/// `POST /v1/gc?grace_seconds=N&dry_run=true` → the gc report.
pub(crate) async fn gc(
    State(st): State<AppState>,
    Query(q): Query<GcQuery>,
) -> Result<Json<GcReport>, ApiError> {
    let opts = GcOptions {
        grace: q.grace_seconds.map_or(DEFAULT_GRACE, Duration::from_secs),
        dry_run: q.dry_run,
    };
    let store = st.store.clone();
    let report = blocking(&st, move || Ok(store.gc(&opts)?)).await?;
    let h = bonsai_core::stats::human_bytes;
    let summary = match report.dry_run {
        true => format!(
            "dry run: would free {} blocks ({})",
            report.blocks_freed,
            h(report.bytes_freed)
        ),
        false => format!(
            "freed {} blocks ({}); {} in grace",
            report.blocks_freed,
            h(report.bytes_freed),
            report.blocks_in_grace
        ),
    };
    st.metrics.note_run(true, summary);
    Ok(Json(report))
}

/// Query of `POST /v1/check`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckQuery {
    /// Re-hash every block.
    #[serde(default)]
    read_data: bool,
}

/// `POST /v1/check?read_data=true` → the check report.
pub(crate) async fn check(
    State(st): State<AppState>,
    Query(q): Query<CheckQuery>,
) -> Result<Json<CheckReport>, ApiError> {
    let store = st.store.clone();
    let opts = CheckOptions {
        read_data: q.read_data,
    };
    let report = blocking(&st, move || Ok(store.check(&opts)?)).await?;
    let summary = format!(
        "{} blocks checked{}, {} damaged",
        report.blocks_checked,
        if report.read_data {
            " and re-hashed"
        } else {
            ""
        },
        report.damaged.len()
    );
    st.metrics.note_run(false, summary);
    Ok(Json(report))
}

/// `PUT /v1/recipes/{name@v}`: body is the sealed recipe (opaque); kept once, and only
/// from the caller that registered the version.
pub(crate) async fn put_recipe(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (name, version) = one_version(&caller, &text)?;
    let sealed = read_body(body, st.limits.max_request_bytes).await?;
    if sealed.is_empty() {
        return Err(ApiError::bad_request("sealed recipe is empty"));
    }
    let store = st.store.clone();
    let n = sealed.len();
    blocking(&st, move || {
        Ok(store.put_sealed_recipe(&name, version, &caller.by, &sealed)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "bytes": n }))).into_response())
}

/// Opaque bytes as a reply (a sealed recipe, a boot profile).
fn octets(bytes: Vec<u8>) -> Response {
    let kind = HeaderValue::from_static("application/octet-stream");
    ([(header::CONTENT_TYPE, kind)], bytes).into_response()
}

/// `GET /v1/recipes/{name@v}` → the sealed bytes, or 404.
pub(crate) async fn get_recipe(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    version_object(
        st,
        &caller,
        &text,
        |store, name, version| store.sealed_recipe(name, version),
        |shown| format!("no sealed recipe for {shown:?} (push it with --keep-recipe)"),
    )
    .await
}

/// `PUT /v1/profiles/{name@v}`: body is a boot profile (docs/FORMAT.md), checked before
/// it is kept; the first one kept for a version stays (`{"kept": false}` for later ones).
pub(crate) async fn put_profile(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
    body: Body,
) -> Result<Response, ApiError> {
    let (name, version) = one_version(&caller, &text)?;
    let profile = read_body(body, st.limits.max_request_bytes).await?;
    bonsai_core::export::profile::decode(&profile)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let store = st.store.clone();
    let kept = blocking(
        &st,
        move || Ok(store.put_profile(&name, version, &profile)?),
    )
    .await?;
    let status = if kept {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(serde_json::json!({ "kept": kept }))).into_response())
}

/// `GET /v1/profiles/{name@v}` → the boot profile's bytes, or 404.
pub(crate) async fn get_profile(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    version_object(
        st,
        &caller,
        &text,
        |store, name, version| store.profile(name, version),
        |shown| {
            format!(
                "no boot profile for {shown:?} (an export records one at its first client's end)"
            )
        },
    )
    .await
}

/// `GET /v1/manifests/{name@v}` → the version's manifest object (docs/FORMAT.md
/// "Manifest"), what `bonsai sync` copies; or 404.
pub(crate) async fn get_manifest(
    State(st): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(text): Path<String>,
) -> Result<Response, ApiError> {
    version_object(
        st,
        &caller,
        &text,
        |store, name, version| store.manifest(name, version),
        |shown| format!("no image version {shown:?}"),
    )
    .await
}

/// Reads one version's object from the store.
type ReadObject =
    fn(&crate::ingest::Store, &str, u64) -> Result<Option<Vec<u8>>, crate::ingest::StorageError>;

/// One opaque object kept per version (sealed recipe, boot profile, manifest) as a reply,
/// or 404 with `missing(NAME@V)`.
async fn version_object(
    st: AppState,
    caller: &Caller,
    text: &str,
    read: ReadObject,
    missing: impl FnOnce(String) -> String,
) -> Result<Response, ApiError> {
    let (name, version) = one_version(caller, text)?;
    let store = st.store.clone();
    let shown = format!("{name}@{version}");
    match blocking(&st, move || Ok(read(&store, &name, version)?)).await? {
        Some(bytes) => Ok(octets(bytes)),
        None => Err(ApiError::not_found(missing(shown))),
    }
}
