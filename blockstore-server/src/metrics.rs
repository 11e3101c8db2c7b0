//! Prometheus metrics at `GET /metrics` (OpenMetrics text): requests and their latency by
//! route, bytes in and out, the store's figures (blocks, stored and logical bytes, images,
//! dedup ratio), gc and check runs, uptime.
//!
//! Why prometheus-client: the Prometheus project's own Rust client, no global registry,
//! small. Routes are labelled by their pattern (`/v1/blocks/{id}`), never the path asked,
//! so a scan of random paths cannot grow the label set (unknown paths are not counted).
//! The store's figures are read when scraped (the index keeps them as running totals).

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// A request's labels: the route's pattern, the method and the status code.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: String,
    status: u16,
}

/// A route's label alone.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// An operation run: when (Unix seconds) and what it found, in words.
pub(crate) type Run = (i64, String);

/// Every metric the server keeps, and the registry that encodes them.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
    bytes_in: Family<RouteLabels, Counter>,
    bytes_out: Family<RouteLabels, Counter>,
    blocks: Gauge,
    stored_bytes: Gauge,
    logical_bytes: Gauge,
    images: Gauge,
    dedup_ratio: Gauge<f64, AtomicU64>,
    uptime: Gauge<f64, AtomicU64>,
    gc_runs: Counter,
    check_runs: Counter,
    started: Instant,
    /// The last gc and check this server ran.
    last_gc: std::sync::Mutex<Option<Run>>,
    last_check: std::sync::Mutex<Option<Run>>,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric at zero, registered under `bonsai_`.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("bonsai"),
            requests: Family::default(),
            latency: Latency::new_with_constructor(latency_histogram),
            bytes_in: Family::default(),
            bytes_out: Family::default(),
            blocks: Gauge::default(),
            stored_bytes: Gauge::default(),
            logical_bytes: Gauge::default(),
            images: Gauge::default(),
            dedup_ratio: Gauge::default(),
            uptime: Gauge::default(),
            gc_runs: Counter::default(),
            check_runs: Counter::default(),
            started: Instant::now(),
            last_gc: Default::default(),
            last_check: Default::default(),
        };
        let r = &mut m.registry;
        r.register(
            "http_requests",
            "Requests answered, by route, method and status",
            m.requests.clone(),
        );
        r.register(
            "http_request_duration_seconds",
            "Time to answer a request, by route",
            m.latency.clone(),
        );
        r.register(
            "http_request_bytes",
            "Request body bytes declared (Content-Length), by route",
            m.bytes_in.clone(),
        );
        r.register(
            "http_response_bytes",
            "Response body bytes declared (Content-Length), by route",
            m.bytes_out.clone(),
        );
        r.register("store_blocks", "Distinct blocks held", m.blocks.clone());
        r.register(
            "store_stored_bytes",
            "Bytes of block objects held",
            m.stored_bytes.clone(),
        );
        r.register(
            "store_logical_bytes",
            "Sum of the logical sizes of registered image versions",
            m.logical_bytes.clone(),
        );
        r.register(
            "store_images",
            "Registered image versions",
            m.images.clone(),
        );
        r.register(
            "store_dedup_ratio",
            "Logical bytes over stored bytes",
            m.dedup_ratio.clone(),
        );
        r.register(
            "uptime_seconds",
            "Seconds since the server started",
            m.uptime.clone(),
        );
        r.register(
            "gc_runs",
            "Garbage collections run (dry runs included)",
            m.gc_runs.clone(),
        );
        r.register("check_runs", "Store checks run", m.check_runs.clone());
        m
    }

    /// Time since the server started.
    pub(crate) fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Batch downloads answered (`POST /v1/blocks/fetch`, 200) since the start.
    pub(crate) fn fetches(&self) -> u64 {
        let labels = RequestLabels {
            route: "/v1/blocks/fetch",
            method: "POST".into(),
            status: 200,
        };
        self.requests.get_or_create(&labels).get()
    }

    /// Records what a gc (`gc: true`) or check found, now.
    pub(crate) fn note_run(&self, gc: bool, summary: String) {
        let slot = if gc { &self.last_gc } else { &self.last_check };
        let mut last = slot.lock().unwrap_or_else(|e| e.into_inner());
        *last = Some((bonsai_core::stats::unix_now(), summary));
    }

    /// The last gc and check recorded by [`Metrics::note_run`].
    pub(crate) fn last_runs(&self) -> (Option<Run>, Option<Run>) {
        let get =
            |m: &std::sync::Mutex<Option<Run>>| m.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (get(&self.last_gc), get(&self.last_check))
    }

    /// Counts one request to `route`.
    fn record(
        &self,
        route: &'static str,
        method: &str,
        status: StatusCode,
        secs: f64,
        sizes: (u64, u64),
    ) {
        let labels = RequestLabels {
            route,
            method: method.to_string(),
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        let r = RouteLabels { route };
        self.latency.get_or_create(&r).observe(secs);
        self.bytes_in.get_or_create(&r).inc_by(sizes.0);
        self.bytes_out.get_or_create(&r).inc_by(sizes.1);
        if status.is_success() {
            match route {
                "/v1/gc" => drop(self.gc_runs.inc()),
                "/v1/check" => drop(self.check_runs.inc()),
                _ => {}
            }
        }
    }

    /// The text a scrape gets, with the store's figures as of `stats`.
    fn encode(&self, stats: &bonsai_core::StoreStats) -> Result<String, std::fmt::Error> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.blocks.set(clamp(stats.blocks));
        self.stored_bytes.set(clamp(stats.stored_bytes));
        self.logical_bytes.set(clamp(stats.logical_bytes));
        self.images.set(clamp(stats.images));
        self.dedup_ratio.set(stats.dedup_ratio);
        self.uptime.set(self.started.elapsed().as_secs_f64());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A request's declared body size.
fn declared(headers: &axum::http::HeaderMap) -> u64 {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The layer counting requests to one route (added per route, so the pattern is known).
pub(crate) async fn count(
    State((st, route)): State<(AppState, &'static str)>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let bytes_in = declared(req.headers());
    let resp = next.run(req).await;
    let bytes_out = declared(resp.headers());
    let secs = started.elapsed().as_secs_f64();
    st.metrics.record(
        route,
        method.as_str(),
        resp.status(),
        secs,
        (bytes_in, bytes_out),
    );
    resp
}

/// `GET /metrics`.
pub(crate) async fn page(State(st): State<AppState>) -> Result<Response, crate::error::ApiError> {
    let store = st.store.clone();
    let stats = crate::api::blocking(&st, move || Ok(store.stats()?)).await?;
    let text = st
        .metrics
        .encode(&stats)
        .map_err(crate::error::ApiError::internal)?;
    let kind = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, kind)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_store_figures_are_encoded_by_route() {
        let m = Metrics::new();
        m.record("/v1/blocks/{id}", "GET", StatusCode::OK, 0.003, (0, 4096));
        m.record(
            "/v1/blocks/{id}",
            "GET",
            StatusCode::NOT_FOUND,
            0.001,
            (0, 80),
        );
        m.record("/v1/gc", "POST", StatusCode::OK, 0.5, (0, 100));
        let stats = bonsai_core::StoreStats {
            blocks: 7,
            stored_bytes: 1000,
            images: 2,
            logical_bytes: 5000,
            dedup_ratio: 5.0,
            cache: None,
            object_store: None,
        };
        let text = m.encode(&stats).unwrap();
        for line in [
            "bonsai_http_requests_total{route=\"/v1/blocks/{id}\",method=\"GET\",status=\"200\"} 1",
            "bonsai_http_requests_total{route=\"/v1/blocks/{id}\",method=\"GET\",status=\"404\"} 1",
            "bonsai_http_response_bytes_total{route=\"/v1/blocks/{id}\"} 4176",
            "bonsai_store_blocks 7",
            "bonsai_store_dedup_ratio 5.0",
            "bonsai_gc_runs_total 1",
            "bonsai_check_runs_total 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in:\n{text}");
        }
        assert!(text.contains("bonsai_http_request_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}
