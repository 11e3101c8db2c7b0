//! What a browser must not be able to make the store do, and errors that are always JSON.
//!
//! - A state-changing request (anything but GET, HEAD, OPTIONS) that a browser sent from
//!   another origin is refused with 403: its `Origin` names another host than `Host`, or
//!   `Sec-Fetch-Site` says `cross-site`/`same-site`. bonsai's own client sends neither
//!   header. This stops a web page from driving a store that trusts its network.
//! - On a store without tokens a state-changing request must also name the server by an
//!   IP address, `localhost`, or a name given with `--allow-host`: a page that rebinds its
//!   own DNS name to the store's address (DNS rebinding) is same-origin to the browser, but
//!   its `Host` is the page's name, so it is refused.
//! - Admin routes (forget, gc, check) of a store without tokens answer only to loopback
//!   peers (`routes.rs`, with the peer address `conn.rs` attaches).
//! - Every error leaves as the documented JSON body (`error.rs`), also the rejections of
//!   axum's extractors (a bad query string, a bad path), which are plain text otherwise.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bonsai_core::store::ErrorCode;

/// The address of the peer of a connection, attached to each of its requests.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::SocketAddr);

/// Refuses cross-site state changes (see the module doc).
pub(crate) async fn same_origin(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        if let Some(why) = cross_site(req.headers()) {
            return forbidden(why);
        }
        if st.tokens.is_none() && !host_allowed(req.headers(), &st.allowed_hosts) {
            return forbidden(
                "this store has no tokens and takes changes only when addressed by IP, as \
                 localhost, or by a name given with --allow-host"
                    .into(),
            );
        }
    }
    next.run(req).await
}

fn forbidden(why: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why).into_response()
}

/// Why a request looks sent by a page of another site, if it does.
fn cross_site(h: &HeaderMap) -> Option<String> {
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Some(format!(
                "cross-origin request refused (Sec-Fetch-Site: {site})"
            ));
        }
    }
    let origin = h.get(header::ORIGIN)?;
    let origin = origin.to_str().unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    let host = get("host").unwrap_or("");
    (origin_host.is_empty() || !origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("cross-origin request refused (Origin {origin:?} is not this store)"))
}

/// Whether `Host` is an IP literal, localhost, or an allowed name.
fn host_allowed(h: &HeaderMap, allowed: &[String]) -> bool {
    let Some(host) = h.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return true; // HTTP/1.0 without Host: not a browser
    };
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.parse::<std::net::IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().ends_with(".localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// Most bytes of a plain-text error body carried into the JSON one.
const MAX_TEXT_ERROR: usize = 1024;

/// Rewrites error responses that are not JSON (extractor rejections) into the JSON body.
pub(crate) async fn json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = match axum::body::to_bytes(body, MAX_TEXT_ERROR).await {
        Ok(b) => String::from_utf8_lossy(&b).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        s if s.is_server_error() => ErrorCode::Internal,
        _ => ErrorCode::BadRequest,
    };
    let line = text.lines().next().unwrap_or("").to_string();
    let msg = if line.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        line
    };
    let mut out = ApiError::new(status, code, msg).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k, v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn cross_site_requests_are_recognised() {
        assert!(cross_site(&headers(&[("host", "127.0.0.1:7412")])).is_none());
        let same = headers(&[("host", "store:7412"), ("origin", "http://store:7412")]);
        assert!(cross_site(&same).is_none());
        let evil = headers(&[
            ("host", "127.0.0.1:7412"),
            ("origin", "https://evil.example"),
        ]);
        assert!(cross_site(&evil).unwrap().contains("evil.example"));
        let null = headers(&[("host", "127.0.0.1:7412"), ("origin", "null")]);
        assert!(cross_site(&null).is_some());
        let fetch = headers(&[("host", "127.0.0.1:7412"), ("sec-fetch-site", "cross-site")]);
        assert!(cross_site(&fetch).is_some());
    }

    #[test]
    fn rebound_names_are_not_hosts_of_a_tokenless_store() {
        let ok = |h: &str| host_allowed(&headers(&[("host", h)]), &["store.lan".into()]);
        assert!(ok("127.0.0.1:7412") && ok("[::1]:7412") && ok("localhost:1"));
        assert!(ok("store.lan:7412"));
        assert!(!ok("evil.example:7412"));
    }
}
