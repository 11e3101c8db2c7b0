//! The read-only dashboard and the report route:
//!
//! ```text
//! GET /v1/report              the dedup report, JSON (`?matrix=N`); read role, bearer token
//! GET /                       the report as a self-contained page that reloads itself
//! GET /dashboard/generation   a short string that changes whenever the store does
//! ```
//!
//! Authentication of the page (`Access::Page` in routes.rs): a browser cannot attach a
//! bearer header to a page it navigates to, and a `?token=` would land in access logs and
//! browser history. So `/` and `/dashboard/generation` also take HTTP Basic authentication
//! with any user name and a read (or write) token as the password — the browser asks once
//! and sends it with the page's polls — and nothing when the store has no tokens or runs
//! with `--public-read`. Only figures and image names are shown: never tokens, keys or ids.
//!
//! Caveat: Basic credentials travel in clear text without TLS, like bearer tokens do.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bonsai_core::report::html::{page, PageOptions};
use bonsai_core::report::{ReportOptions, StoreReport};

/// Path the page polls for the store's generation.
pub(crate) const GENERATION_PATH: &str = "/dashboard/generation";

/// Largest sharing matrix a request may ask for (its query is quadratic in images).
const MAX_MATRIX: usize = 64;

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ReportQuery {
    matrix: Option<usize>,
}

async fn compute(st: &AppState, matrix: Option<usize>) -> Result<StoreReport, ApiError> {
    let opts = ReportOptions {
        matrix_images: matrix
            .unwrap_or(ReportOptions::default().matrix_images)
            .min(MAX_MATRIX),
    };
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || store.report(&opts))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)
}

pub(crate) async fn report_json(
    State(st): State<AppState>,
    Query(q): Query<ReportQuery>,
) -> Result<Json<StoreReport>, ApiError> {
    Ok(Json(compute(&st, q.matrix).await?))
}

async fn current_generation(st: &AppState) -> Result<String, ApiError> {
    let store = st.store.clone();
    let s = tokio::task::spawn_blocking(move || store.stats())
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::from)?;
    Ok(format!(
        "{}-{}-{}-{}",
        s.images, s.logical_bytes, s.blocks, s.stored_bytes
    ))
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub(crate) async fn generation(State(st): State<AppState>) -> Result<Response, ApiError> {
    Ok(no_store(current_generation(&st).await?.into_response()))
}

pub(crate) async fn dashboard(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Generation first: a push landing meanwhile makes the page reload once more, never
    // show stale figures as current.
    let generation = current_generation(&st).await?;
    let report = compute(&st, None).await?;
    let html = page(
        &report,
        &PageOptions {
            title: "bonsai store".into(),
            source: format!("{} images, updated as pushes land", report.totals.images),
            live: Some((GENERATION_PATH.into(), generation)),
        },
    );
    let mut r = no_store(html.into_response());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
        ),
    );
    Ok(r)
}
