//! The route table: every route of API v1 with the access it needs, declared together so
//! permissions are read where routes are added. The only way to add a route is a
//! [`Route`], which cannot be built without an [`Access`] — a new route cannot default to
//! open. Each route gets its own authorization layer from its entry; nothing matches path
//! strings at request time.
//!
//! ```text
//! GET  /v1/health            open    liveness
//! GET  /v1/version           open    server and API version
//! GET  /metrics              read    Prometheus metrics (OpenMetrics text)
//! GET  /v1/stats             read    store-wide figures, JSON
//! POST /v1/blocks/missing    read    body: ids (32 bytes each) → the absent ones
//! POST /v1/blocks/fetch      read    body: ids → frames, in the order asked
//! GET  /v1/blocks/{id}       read    one object
//! GET  /v1/images            read    registered images, JSON
//! POST /v1/blocks            write   body: frames id ‖ u32 LE len ‖ object → verdicts
//! PUT  /v1/blocks/{id}       write   upload one object
//! PUT  /v1/images/{name}     write   body: u64 LE logical size ‖ ids → a new version
//!                                    (`?zero_bytes=N&image_hash=HEX`; `&version=V`
//!                                    registers exactly V: a copy, never renumbered)
//! GET  /v1/report            read    the dedup report, JSON (`?matrix=N`)
//! GET  /                     page    the dashboard: read token, also as the Basic password
//! GET  /dashboard/generation page    what the dashboard polls to reload on change
//! GET  /v1/recipes/{name@v} read    a version's sealed recipe (opaque bytes)
//! PUT  /v1/recipes/{name@v} write   keep it, once (only the version's registrant)
//! GET  /v1/manifests/{name@v} read  a version's manifest object (what sync copies)
//! DELETE /v1/images/{ref}    admin   forget NAME@V, or every version of NAME
//! POST /v1/gc                admin   collect garbage (?grace_seconds=N&dry_run=true)
//! POST /v1/check             admin   verify blocks (?read_data=true)
//! ```
//! Admin routes (forget, gc, check) are declared here with `Access::Needs(Role::Admin)`;
//! on a store without tokens they answer only to loopback peers. Names in paths are one
//! percent-encoded segment (`team%2Fvm@3`); handlers check the caller's namespaces.

use crate::auth::{basic_password, bearer_token, Access, Caller, Role};
use crate::dashboard;
use crate::error::ApiError;
use crate::guard::{json_errors, same_origin, Peer};
use crate::middleware::{log_request, time_limit};
use crate::state::AppState;
use crate::{api, api_ops, batch};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::handler::Handler;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use bonsai_core::store::ErrorCode;

/// One route: method, path, the access it needs, and its handler.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern (axum syntax).
    pub path: &'static str,
    /// What a caller must present.
    pub access: Access,
    handler: MethodRouter<AppState>,
}

/// Declares a route. `method` must be one axum can filter on (GET, PUT, POST, DELETE…).
pub fn route<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Route
where
    H: Handler<T, AppState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
    Route {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route of API v1.
pub fn table() -> Vec<Route> {
    use Access::{Needs, Open};
    use Method as M;
    use Role::{Admin, Read, Write};
    vec![
        route(M::GET, "/v1/health", Open, api::health),
        route(M::GET, "/v1/version", Open, api::version),
        route(M::GET, "/metrics", Needs(Read), crate::metrics::page),
        route(M::GET, "/v1/stats", Needs(Read), api::stats),
        route(M::POST, "/v1/blocks/missing", Needs(Read), api::missing),
        route(M::POST, "/v1/blocks/fetch", Needs(Read), batch::fetch),
        route(M::GET, "/v1/blocks/{id}", Needs(Read), api::get_block),
        route(M::GET, "/v1/images", Needs(Read), api::list_images),
        route(M::POST, "/v1/blocks", Needs(Write), batch::upload_batch),
        route(M::PUT, "/v1/blocks/{id}", Needs(Write), api::put_block),
        route(M::PUT, "/v1/images/{name}", Needs(Write), api::register),
        route(M::GET, "/v1/report", Needs(Read), dashboard::report_json),
        route(M::GET, "/", Access::Page, dashboard::dashboard),
        route(
            M::GET,
            dashboard::GENERATION_PATH,
            Access::Page,
            dashboard::generation,
        ),
        // operations (api_ops.rs, docs/OPERATING.md)
        route(
            M::GET,
            "/v1/recipes/{name}",
            Needs(Read),
            api_ops::get_recipe,
        ),
        route(
            M::PUT,
            "/v1/recipes/{name}",
            Needs(Write),
            api_ops::put_recipe,
        ),
        route(
            M::GET,
            "/v1/manifests/{name}",
            Needs(Read),
            api_ops::get_manifest,
        ),
        route(
            M::GET,
            "/v1/profiles/{name}",
            Needs(Read),
            api_ops::get_profile,
        ),
        route(
            M::PUT,
            "/v1/profiles/{name}",
            Needs(Write),
            api_ops::put_profile,
        ),
        route(
            M::DELETE,
            "/v1/images/{name}",
            Needs(Admin),
            api_ops::forget,
        ),
        route(M::POST, "/v1/gc", Needs(Admin), api_ops::gc),
        route(M::POST, "/v1/check", Needs(Admin), api_ops::check),
    ]
}

/// The API over `state`, built from [`table`]: what `serve` runs and what tests drive
/// in-process.
pub fn app(state: AppState) -> Router {
    let mut router = Router::new();
    for r in table() {
        let guard = middleware::from_fn_with_state((state.clone(), r.access), authorize);
        let count = middleware::from_fn_with_state((state.clone(), r.path), crate::metrics::count);
        router = router.route(r.path, r.handler.route_layer(guard).route_layer(count));
    }
    router
        .fallback(|| async { ApiError::not_found("no such endpoint (API v1 lives under /v1/)") })
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(middleware::from_fn_with_state(state.clone(), same_origin))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(log_request))
        // Bodies are streamed and bounded by our own limits, per endpoint.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

fn deny(status: StatusCode, code: ErrorCode, msg: String, page: bool) -> Response {
    let mut r = ApiError::new(status, code, msg).into_response();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if page {
            "Basic realm=\"bonsai store\", charset=\"UTF-8\""
        } else {
            "Bearer"
        };
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    r
}

/// Lets a request through if its caller's role covers the route's access, with the
/// [`Caller`] attached for the handler (which checks namespaces).
async fn authorize(
    State((st, access)): State<(AppState, Access)>,
    mut req: Request,
    next: Next,
) -> Response {
    match identify(&st, access, &req) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(refusal) => *refusal,
    }
}

/// Who the request comes from, or the refusal to send.
fn identify(st: &AppState, access: Access, req: &Request) -> Result<Caller, Box<Response>> {
    let page = access == Access::Page;
    let Some(tokens) = st.tokens.as_ref() else {
        if access == Access::Needs(Role::Admin) && !from_loopback(req) {
            return Err(Box::new(deny(
                StatusCode::FORBIDDEN,
                ErrorCode::Forbidden,
                "a store without tokens answers admin requests only on loopback; give the \
                 server a --token-file and use an admin token"
                    .into(),
                false,
            )));
        }
        return Ok(Caller::anonymous());
    };
    let need = match access {
        Access::Open => None,
        Access::Needs(role) => Some(role),
        Access::Page => Some(Role::Read),
    };
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented: Option<String> = header_value
        .and_then(bearer_token)
        .map(String::from)
        .or_else(|| header_value.filter(|_| page).and_then(basic_password));
    let caller = presented.as_deref().and_then(|t| tokens.caller(t));
    let lenient = need.is_none() || (st.public_read && need == Some(Role::Read));
    let unauthorized = |msg: &str| {
        deny(
            StatusCode::UNAUTHORIZED,
            ErrorCode::Unauthorized,
            msg.into(),
            page,
        )
    };
    let caller = match (caller, presented.is_some()) {
        (Some(c), _) => c,
        (None, _) if lenient => Caller::public(),
        (None, false) => return Err(Box::new(unauthorized("missing bearer token"))),
        (None, true) => return Err(Box::new(unauthorized("invalid token"))),
    };
    match need {
        Some(need) if caller.role < need => Err(Box::new(deny(
            StatusCode::FORBIDDEN,
            ErrorCode::Forbidden,
            format!(
                "this token may only {}; the request needs {} {} token",
                match caller.role {
                    Role::Read => "read",
                    _ => "read and write",
                },
                if need == Role::Admin { "an" } else { "a" },
                need.name()
            ),
            page,
        ))),
        _ => Ok(caller),
    }
}

/// Whether the request came over a loopback connection (in-process tests have no peer:
/// they are the process itself).
fn from_loopback(req: &Request) -> bool {
    req.extensions()
        .get::<Peer>()
        .is_none_or(|p| p.0.ip().is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_declares_access_and_only_liveness_is_open() {
        let table = table();
        let open: Vec<_> = table
            .iter()
            .filter(|r| r.access == Access::Open)
            .map(|r| r.path)
            .collect();
        assert_eq!(open, ["/v1/health", "/v1/version"]);
        for r in &table {
            let writes = r.method == Method::PUT || r.path == "/v1/blocks";
            if writes {
                assert!(
                    matches!(r.access, Access::Needs(role) if role >= Role::Write),
                    "{} {} changes the store but does not need a write token",
                    r.method,
                    r.path
                );
            }
        }
    }
}
