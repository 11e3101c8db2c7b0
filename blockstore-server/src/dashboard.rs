//! The read-only dashboard and the report route:
//!
//! ```text
//! GET /v1/report              the dedup report, JSON (`?matrix=N`); read role, bearer token
//! GET /                       the report as a self-contained page that reloads itself
//! GET /dashboard/generation   a short string that changes whenever the store does
//! ```
//!
//! Authentication of the page: a browser cannot attach a bearer header to a page it
//! navigates to, and a `?token=` would land in access logs and browser history. So `/` and
//! `/dashboard/*` take HTTP Basic authentication with any user name and a read (or write)
//! token as the password — the browser asks once and sends it with the page's polls — or a
//! bearer header, or nothing when the store has no tokens or runs with `--public-read`.
//! Only figures and image names are shown: never tokens, keys or block ids.
//!
//! Caveat: Basic credentials travel in clear text without TLS, like bearer tokens do.

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use bonsai_core::report::html::{page, PageOptions};
use bonsai_core::report::{ReportOptions, StoreReport};

/// Path the page polls for the store's generation.
pub const GENERATION_PATH: &str = "/dashboard/generation";

/// Largest sharing matrix a request may ask for (its query is quadratic in images).
const MAX_MATRIX: usize = 64;

/// The dashboard's routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/report", get(report_json))
        .route("/", get(dashboard))
        .route(GENERATION_PATH, get(generation))
}

/// Whether `path` is a dashboard path that checks its own credentials.
pub fn owns(path: &str) -> bool {
    path == "/" || path.starts_with("/dashboard/")
}

#[derive(Debug, Default, serde::Deserialize)]
struct ReportQuery {
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

async fn report_json(
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

async fn generation(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if let Some(denied) = check(&st, &req) {
        return Ok(denied);
    }
    Ok(no_store(current_generation(&st).await?.into_response()))
}

async fn dashboard(State(st): State<AppState>, req: Request) -> Result<Response, ApiError> {
    if let Some(denied) = check(&st, &req) {
        return Ok(denied);
    }
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

/// `None` when the request may read the dashboard, else the 401 that makes a browser ask.
fn check(st: &AppState, req: &Request) -> Option<Response> {
    let tokens = st.tokens.as_ref()?;
    if st.public_read {
        return None;
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth
        .and_then(presented_token)
        .is_some_and(|t| accepts(tokens, &t))
    {
        return None;
    }
    let mut r = ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the dashboard needs a read token: give it as the password (any user name)",
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"bonsai store\", charset=\"UTF-8\""),
    );
    Some(r)
}

fn accepts(tokens: &Tokens, token: &str) -> bool {
    tokens.role_of(token.trim()).is_some()
}

/// The token in an `Authorization` header: a bearer token, or the password of Basic.
fn presented_token(value: &str) -> Option<String> {
    if let Some(t) = value.strip_prefix("Bearer ") {
        return Some(t.to_string());
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':').map(|(_, pass)| pass.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_from_bearer_and_basic() {
        assert_eq!(presented_token("Bearer abc").as_deref(), Some("abc"));
        // "me:s3cret-token" in base64
        assert_eq!(
            presented_token("Basic bWU6czNjcmV0LXRva2Vu").as_deref(),
            Some("s3cret-token")
        );
        assert_eq!(presented_token("Basic !!!"), None);
        assert_eq!(presented_token("Digest x"), None);
        assert!(owns("/") && owns("/dashboard/generation") && !owns("/v1/report"));
    }
}
