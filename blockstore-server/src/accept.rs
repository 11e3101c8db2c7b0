//! Accepting connections that survives running out of file descriptors, and says so.
//!
//! When the process hits its descriptor limit, `accept` fails with `EMFILE` while the
//! connection stays queued; a plain loop spins or sleeps while every new client hangs in
//! the backlog, and nothing is logged. [`Acceptor`] keeps one descriptor in reserve: on
//! `EMFILE`/`ENFILE` it logs (at most every 10 s, naming the limit), frees the reserve,
//! accepts the queued connection and closes it at once — the client sees a closed
//! connection instead of a hang — takes the reserve back and backs off briefly. Idle
//! connections are closed by the head time-out (`conn.rs`), so the server recovers.

use axum::serve::Listener;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

/// Pause after running out of descriptors, so closing connections can free some.
const BACKOFF: Duration = Duration::from_millis(50);
/// Least time between two log lines about it.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// A TCP listener with a reserve descriptor (see the module doc).
pub(crate) struct Acceptor {
    tcp: TcpListener,
    reserve: Option<std::fs::File>,
    warned: Option<Instant>,
}

fn reserve() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset
    )
}

/// The soft limit on open descriptors, for the log line.
fn descriptor_limit() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0 {
        r.rlim_cur
    } else {
        0
    }
}

impl Acceptor {
    /// Wraps a bound listener.
    pub(crate) fn new(tcp: TcpListener) -> Self {
        Acceptor {
            tcp,
            reserve: reserve(),
            warned: None,
        }
    }

    /// The next connection; errors are handled here (see the module doc).
    pub(crate) async fn next(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.tcp.accept().await {
                Ok(c) => {
                    if self.reserve.is_none() {
                        self.reserve = reserve();
                    }
                    return c;
                }
                Err(e) if connection_error(&e) => {}
                Err(e) if out_of_descriptors(&e) => self.shed(&e).await,
                Err(e) => {
                    tracing::error!(%e, "accept failed");
                    tokio::time::sleep(BACKOFF).await;
                }
            }
        }
    }

    /// Out of descriptors: log, close the queued connection, back off.
    async fn shed(&mut self, e: &std::io::Error) {
        if self.warned.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            self.warned = Some(Instant::now());
            tracing::error!(
                %e,
                limit = descriptor_limit(),
                "out of file descriptors: closing new connections until some end (raise the \
                 limit, e.g. LimitNOFILE= or `ulimit -n`, or lower --header-timeout-secs)"
            );
        }
        self.reserve = None;
        if let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(10), self.tcp.accept()).await
        {
            drop(stream);
        }
        self.reserve = reserve();
        tokio::time::sleep(BACKOFF).await;
    }
}

impl Listener for Acceptor {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.next().await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
