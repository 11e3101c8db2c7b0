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
use bonsai_core::report::html::{page, HealthItem, PageOptions};
use bonsai_core::report::{ReportOptions, StoreReport};
use bonsai_core::stats::{human_bytes, utc};

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
            generated: Some(bonsai_core::stats::unix_now()),
            health: health(&st, &report),
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

/// What an operator checks first: which server, since when, how full, when gc and check
/// last ran and what they found, what is garbage, what was pushed last, what was pulled.
fn health(st: &AppState, report: &StoreReport) -> Vec<HealthItem> {
    let item = |key, label: &str, value: String| HealthItem {
        key,
        label: label.into(),
        value,
    };
    let backend = st.store.backend();
    let mut items = vec![
        item(
            "version",
            "server",
            format!("bonsai {}", env!("CARGO_PKG_VERSION")),
        ),
        item("uptime", "up for", duration(st.metrics.uptime().as_secs())),
        item("data", "data", backend.describe()),
    ];
    if let Some((used, free)) = backend.local_root().and_then(disk) {
        let value = format!("{} used, {} free", human_bytes(used), human_bytes(free));
        items.push(item("disk", "disk", value));
    }
    let (gc, check) = st.metrics.last_runs();
    let since = "not since the server started";
    let ran = |r: Option<crate::metrics::Run>| {
        r.map_or(since.to_string(), |(t, what)| {
            format!("{} UTC: {what}", utc(t))
        })
    };
    items.push(item("last_gc", "last gc", ran(gc)));
    items.push(item("last_check", "last check", ran(check)));
    let garbage = report.totals.unreferenced_stored_bytes;
    items.push(item(
        "garbage",
        "unreferenced",
        format!(
            "{} in blocks no image uses (gc frees them after the grace period)",
            human_bytes(garbage)
        ),
    ));
    // newest first; images come in registration order, so ties keep it reversed
    let mut recent: Vec<_> = report.images.iter().rev().collect();
    recent.sort_by_key(|i| std::cmp::Reverse(i.registered));
    let pushes: Vec<String> = recent
        .iter()
        .take(5)
        .map(|i| format!("{} ({})", i.name, &utc(i.registered)[..16]))
        .collect();
    let pushes = if pushes.is_empty() {
        "none".into()
    } else {
        pushes.join(", ")
    };
    items.push(item("recent_pushes", "last pushed", pushes));
    items.push(item(
        "fetches",
        "pulls served",
        format!("{} batch downloads since the start", st.metrics.fetches()),
    ));
    items
}

/// `3 d 4 h`, `2 h 5 min`, `40 s`.
fn duration(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86_400 => format!("{} h {} min", secs / 3600, secs % 3600 / 60),
        _ => format!("{} d {} h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// Bytes used and free (for unprivileged users) on the file system holding `dir`.
fn disk(dir: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `c` is a valid C string.
    let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut v) } != 0 {
        return None;
    }
    let unit = v.f_frsize as u64;
    let used = (v.f_blocks as u64).saturating_sub(v.f_bfree as u64) * unit;
    Some((used, v.f_bavail as u64 * unit))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(super::duration(40), "40 s");
        assert_eq!(super::duration(7500), "2 h 5 min");
        assert_eq!(super::duration(3 * 86_400 + 4 * 3600 + 5), "3 d 4 h");
    }
}
