//! HTTPS for `bonsai serve --tls-cert C --tls-key K`: rustls with the ring provider.
//!
//! [`TlsListener`] is an axum `Listener`: a task accepts TCP connections (through
//! `accept.rs`, which survives running out of descriptors) and runs each TLS handshake in
//! its own task (at most [`MAX_HANDSHAKES`] at once, at most [`MAX_HANDSHAKES_PER_PEER`]
//! from one address — a connection over that is closed at once — each cut off after
//! [`HANDSHAKE_TIMEOUT`]), handing finished streams to axum. A slow or hostile client
//! therefore never holds up others' handshakes. Certificates are read once at start; to
//! rotate them, restart the server (SIGTERM finishes in-flight requests).
//!
//! A reverse proxy terminating TLS (README's nginx recipe) remains an alternative.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Handshakes running at once; further connections wait in the kernel's backlog.
pub const MAX_HANDSHAKES: usize = 256;
/// Handshakes one peer address may have running; more are closed unanswered, so one
/// address cannot take the slots every other client needs.
pub const MAX_HANDSHAKES_PER_PEER: usize = 16;
/// Longest a client may take to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the TLS configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("--tls-cert/--tls-key refused: {0}")]
    Config(#[from] rustls::Error),
}

/// Builds the server configuration from a PEM certificate chain and a PEM private key.
pub fn load_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, TlsError> {
    let pem = |path: &Path, reason: String| TlsError::Pem {
        path: path.to_path_buf(),
        reason,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| pem(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| pem(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(pem(cert, "no certificate in the file".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| pem(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A listener that yields TLS streams whose handshake completed.
pub struct TlsListener {
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `tcp` with `config`.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        let addr = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let permits = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let peers = Arc::new(PeerCounts::default());
        let mut tcp = crate::accept::Acceptor::new(tcp);
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = tcp.next().await;
                let Some(slot) = peers.take(peer.ip()) else {
                    tracing::debug!(%peer, "too many handshakes from this address; closed");
                    continue;
                };
                let (acceptor, out) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let result = done.await;
                    drop((permit, slot));
                    match result {
                        Ok(Ok(tls)) => {
                            let _ = out.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, %e, "tls handshake failed"),
                        Err(_) => tracing::debug!(%peer, "tls handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { rx, addr })
    }
}

/// Handshakes in progress per peer address.
#[derive(Default)]
struct PeerCounts(std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>);

/// One running handshake of a peer; released on drop.
struct PeerSlot(Arc<PeerCounts>, IpAddr);

impl PeerCounts {
    /// A slot for `ip`, unless it has [`MAX_HANDSHAKES_PER_PEER`] running.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<PeerSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= MAX_HANDSHAKES_PER_PEER {
            return None;
        }
        *n += 1;
        Some(PeerSlot(self.clone(), ip))
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut m = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.1);
            }
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task ended (runtime shutting down): never yield again.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_files_are_one_line_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key) = (d.path().join("cert.pem"), d.path().join("key.pem"));
        let e = load_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("cert.pem") && !e.contains('\n'), "{e}");
        std::fs::write(&cert, "not a certificate\n").unwrap();
        let e = load_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("no certificate"), "{e}");
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, ca.cert.pem()).unwrap();
        std::fs::write(&key, "junk\n").unwrap();
        let e = load_config(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("key.pem"), "{e}");
        std::fs::write(&key, ca.signing_key.serialize_pem()).unwrap();
        load_config(&cert, &key).unwrap();
    }
}
