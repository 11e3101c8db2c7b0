//! bonsai-blockstore: the shared store that holds every distinct encrypted block once.
//!
//! # Brief overview
//! - `backend/` holds block objects and manifests behind the [`Backend`] trait; the
//!   directory backend ([`DirBackend`]) lays files out on disk and locks the directory;
//! - `index.rs` is the SQLite index of blocks and registered images (a cache of the backend);
//! - `ingest.rs` ([`Store`]) is the one write path: verify BLAKE3(object) == id, write,
//!   make durable, index;
//! - `conn.rs` is the accept loop: hyper with a timer, so stalled heads and idle
//!   connections are closed, and a graceful shutdown;
//! - `routes.rs` is the route table ([`table`], [`app`]): each route with the role it needs;
//!   `api.rs` its handlers, `batch.rs` the two batch transfers (bounded against hostile
//!   peers), `auth.rs` tokens and roles, `error.rs` the machine-readable
//!   error bodies, `middleware.rs` time limit and request log, `state.rs` the state;
//! - `local.rs` ([`LocalStore`]) is the embedded store: core's store traits over a
//!   directory, no server;
//! - `report.rs` computes the dedup report from the index alone; `dashboard.rs` serves it
//!   as JSON (`/v1/report`) and as a live page (`/`);
//! - `gc.rs`, `check.rs`, `images.rs` operate the store (mark-and-sweep gc and orphans,
//!   check and quarantine, versions, forget, sealed recipes), `versions.rs` keeps versions
//!   in the index, `recover.rs` rebuilds a missing or damaged index from the files,
//!   `api_ops.rs` their routes; `guard.rs` refuses browsers' cross-origin changes and
//!   makes every error JSON; `tls.rs` serves HTTPS.
//!
//! Which store a `--store` argument names is the client's business (the `bonsai` CLI).
//!
//! # Locking: which operation may run beside which
//!
//! One [`Store`] per data directory (`flock` on `DATA/lock`). **G** is `Store::gc_lock`
//! (shared: uploads and existence answers; exclusive: gc sweep, orphan sweep, check's
//! quarantine, in batches); **R** is `Store::registering` (a registration's version
//! number and create-only manifest); every index change is one SQLite transaction.
//! Everything that deletes re-confirms, under the lock that excludes what would make it
//! wrong, what it is about to delete. docs/OPERATING.md has the table with the reasons.
//!
//! ```text
//!                 upload/missing  register     forget      gc mark   gc sweep     gc orphans  check quarantine
//! upload/missing  G shared        tx re-check  -           tx order  G excl       G excl      G excl + re-verify
//! register                        R + create   tx          tx        tx re-check  -           G excl + re-verify
//! forget                                       tx          tx        tx           -           -
//! gc (any part)                                            tx        G excl       G excl      G excl
//! check                                                                                       G excl
//! ```

mod accept;
mod api;
mod api_ops;
mod auth;
mod backend;
mod batch;
mod cache;
mod check;
mod conn;
mod dashboard;
mod data;
mod error;
mod gc;
mod guard;
mod images;
mod index;
mod ingest;
mod local;
mod metrics;
mod middleware;
mod rebuild;
mod recover;
mod refusal;
mod report;
mod routes;
mod shared_view;
mod state;
pub mod tls;
pub use refusal::{error_kind, kind_of, StartRefused};
mod trust;
mod versions;

pub use auth::{bearer_token, Access, Role, Tokens};
pub use backend::s3::packs::MAP_SCHEMA as PACK_MAP_SCHEMA;
pub use backend::s3::{Bucket, Created, S3Backend, S3Error, S3Location, S3Settings};
pub use backend::{Backend, BackendError, DirBackend, Put};
pub use cache::Upstream;
pub use error::ApiError;
pub use guard::Peer;
pub use images::NewVersion;
pub use index::{Index, IndexError, SCHEMA_VERSION};
pub use ingest::{IngestOutcome, Rejected, StorageError, Store};
pub use local::LocalStore;
pub use rebuild::{rebuild_index, RebuildReport};
pub use routes::{app, route, table, Route};
pub use state::{AppState, Limits};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Options of `bonsai serve` and `bonsai-blockstore`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on. Port 0 picks a free port (printed at start). Keep it on
    /// 127.0.0.1 behind a TLS-terminating reverse proxy for anything but a trusted network.
    /// `host:port`, or `:port` for every interface.
    #[arg(long, default_value = "127.0.0.1:7412", value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Store directory (blocks/, tmp/, index.sqlite) made by `bonsai init DIR`, or an
    /// empty directory (a missing or foreign one is refused), or
    /// `s3://BUCKET/PREFIX` for S3-compatible object storage (endpoint, region and keys
    /// from AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or
    /// ~/.aws/credentials).
    #[arg(long)]
    pub data: PathBuf,
    /// With `--data s3://…`: where this server keeps its local index, a cache of the
    /// bucket (default: under ~/.cache/bonsai/). Each server needs its own.
    #[arg(long)]
    pub index_dir: Option<PathBuf>,
    /// Rebuild the index from a listing of the store before serving (a bucket's index is
    /// also rebuilt whenever it is empty).
    #[arg(long)]
    pub rebuild_index: bool,
    /// File of `ROLE TOKEN` lines (role `read`, `write` or `admin`; whole-line `#`
    /// comments). Without it the store accepts every request: use that only on loopback or
    /// a trusted network.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Let reads (queries, downloads, stats) through without a token; writes still need one.
    #[arg(long)]
    pub public_read: bool,
    /// On a store without --token-file, also take changes from clients that address it by
    /// this host name (besides IP addresses and localhost); protects against web pages
    /// that rebind their DNS name to the store. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub allow_host: Vec<String>,
    /// Largest request body in bytes (batch uploads, manifests).
    #[arg(long, default_value_t = bonsai_core::store::limits::MAX_REQUEST_BYTES)]
    pub max_request_bytes: usize,
    /// Most ids in one existence query or batch download.
    #[arg(long, default_value_t = bonsai_core::store::limits::MAX_IDS_PER_QUERY)]
    pub max_ids: usize,
    /// Seconds a request may take before the server answers 408.
    #[arg(long, default_value_t = 300)]
    pub request_timeout_secs: u64,
    /// Close a connection that does not send a complete request head within this many
    /// seconds: a stalled or dribbled head, or a keep-alive connection left idle.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    pub header_timeout_secs: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); clients of a private
    /// CA pass `--ca-file`.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Be a site cache of the store at URL (`http(s)://host:port`, a `bonsai serve`):
    /// answer reads from --data and fetch what it lacks there (verified, kept, each block
    /// once however many ask); pass uploads and registrations through, acknowledged only
    /// once the upstream has them. Images, sealed recipes and profiles are the upstream's.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// File holding the token this cache presents to its upstream (read, or write to let
    /// pushes through).
    #[arg(long, value_name = "FILE", requires = "upstream")]
    pub upstream_token_file: Option<PathBuf>,
    /// PEM file of a private CA to trust for an `https://` upstream.
    #[arg(long, value_name = "FILE", requires = "upstream")]
    pub upstream_ca_file: Option<PathBuf>,
    /// Most bytes of blocks the cache holds (500M, 20G, 1T: powers of 1024); the least
    /// recently used are evicted beyond it. Without it the cache only grows.
    #[arg(long, value_name = "SIZE", requires = "upstream", value_parser = cache::parse_size)]
    pub cache_size: Option<u64>,
    /// Log lines on stderr as text, or as one JSON object each (for a log pipeline).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How the server writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields` (`method`, `path`,
    /// `status`, `in_bytes`, `out_bytes`, `ms` for requests), `target`.
    Json,
}

/// `--listen`: `host:port` (a name is resolved, first address wins) or `:port`, meaning
/// every interface.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    let full = match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    };
    full.to_socket_addrs()
        .map_err(|e| format!("{s:?} is not host:port or :port ({e})"))?
        .next()
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// Runs the store until SIGTERM or Ctrl-C, finishing in-flight requests first.
/// Prints `listening on http://ADDR` on stdout once the socket is bound.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let tokens = match &args.token_file {
        Some(p) => Some(Arc::new(auth::Tokens::load(p).map_err(StartRefused)?)),
        None => None,
    };
    if tokens.is_none() {
        tracing::warn!("no --token-file: every client may read and write this store");
    }
    let (data, index_dir, rebuild) = (
        args.data.clone(),
        args.index_dir.clone(),
        args.rebuild_index,
    );
    let cache = args.clone();
    let store = tokio::task::spawn_blocking(move || {
        let store = data::open_data(&data, index_dir.as_deref(), rebuild)?;
        cache::attach(store, &cache)
    })
    .await??;
    let limits = state::Limits {
        max_request_bytes: args.max_request_bytes,
        max_ids: args.max_ids,
        request_timeout: Duration::from_secs(args.request_timeout_secs),
        ..Default::default()
    };
    let mut state =
        state::AppState::new(Arc::new(store), limits).with_tokens(tokens, args.public_read);
    state.allowed_hosts = Arc::new(args.allow_host.clone());
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(tls::load_config(c, k)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            StartRefused(format!(
                "cannot listen on {}: {e}; pick another --listen address or port",
                args.listen
            ))
        })?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        writeln!(out, "listening on {scheme}://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, data = %args.data.display(), scheme, "block store ready");
    let app = routes::app(state);
    let head = Duration::from_secs(args.header_timeout_secs.max(1));
    match tls {
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config)?;
            conn::serve(listener, app, head, shutdown_signal()).await
        }
        None => {
            let listener = accept::Acceptor::new(listener);
            conn::serve(listener, app, head, shutdown_signal()).await
        }
    }
    tracing::info!("block store stopped");
    Ok(())
}

/// Runs [`serve`] on its own runtime, for binaries that are otherwise synchronous.
pub fn serve_blocking(args: ServeArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(args))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}

#[cfg(test)]
mod tests {
    #[test]
    fn listen_takes_host_port_and_bare_port() {
        use super::parse_listen as p;
        assert_eq!(p("127.0.0.1:7412").unwrap().to_string(), "127.0.0.1:7412");
        assert_eq!(p(":8080").unwrap().to_string(), "0.0.0.0:8080");
        assert_eq!(p("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert!(p(":http").is_err());
        assert!(p("7412").unwrap_err().contains("host:port or :port"));
    }
}
