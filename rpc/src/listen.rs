//! Accepting the RPC's connections: plain TCP or TLS, at most [`Limits::connections_per_client`]
//! open at once from one IP address (below the server-wide cap, so that one client holding
//! idle connections locks nobody else out), and each connection's remote address handed to the
//! layers above as a request extension ([`Peer`]), for the per-client limits
//! ([`crate::limit`]).
//!
//! It is not the JSON-RPC: that is jsonrpsee's service, built per connection from the same
//! configuration and middleware as before.

use crate::limit::{Limits, Peer};
use jsonrpsee::server::{StopHandle, serve_with_graceful_shutdown};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tracing::debug;

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections open per client address.
#[derive(Default)]
struct Open(Mutex<HashMap<IpAddr, usize>>);

/// One open connection, counted until dropped.
struct Counted {
    open: Arc<Open>,
    ip: IpAddr,
}

impl Open {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a new connection from `ip`, unless it already has `max` open.
    fn admit(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Counted> {
        let mut open = self.lock();
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(Counted {
            open: self.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What a client over its connection cap is told before its connection closes (plain HTTP
/// only: over TLS the connection is closed before the handshake).
fn too_many_connections() -> Vec<u8> {
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": TOO_MANY_CONNECTIONS,
            "message": "too many connections from this client: close some first",
            "data": { "name": "too_many_connections" },
        },
    })
    .to_string();
    format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
         Connection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The code of [`too_many_connections`].
pub const TOO_MANY_CONNECTIONS: i32 = 2008;

/// Accept connections on `listener` until `stop`, serving each with a service made by
/// `make` for it.
pub(crate) async fn accept<S, B>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: Limits,
    stop: StopHandle,
    make: impl Fn() -> S + Send + 'static,
) where
    S: tower::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let open = Arc::new(Open::default());
    loop {
        let (mut socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    debug!(error = %e, "rpc accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.clone().shutdown() => return,
        };
        let ip = remote.ip();
        let Some(counted) = open.admit(ip, limits.connections_per_client) else {
            if tls.is_none() {
                tokio::spawn(async move {
                    let _ = socket.write_all(&too_many_connections()).await;
                    let _ = socket.shutdown().await;
                });
            }
            continue;
        };
        let inner = make();
        let service = tower::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(Peer(ip));
            let mut inner = inner.clone();
            async move { inner.call(request).await }
        });
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _counted = counted;
            let served = match tls {
                None => serve_with_graceful_shutdown(socket, service, stop.shutdown()).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => {
                            serve_with_graceful_shutdown(stream, service, stop.shutdown()).await
                        }
                        Ok(Err(e)) => Err(e.into()),
                        Err(_) => Err("the TLS handshake took too long".into()),
                    }
                }
            };
            if let Err(e) = served {
                debug!(%ip, error = %e, "rpc connection ended");
            }
        });
    }
}

/// A TLS acceptor for the certificate chain and private key in these PEM files.
pub fn tls_acceptor(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("TLS certificate {}: {e}", certificate.display())))?;
    if chain.is_empty() {
        return Err(invalid(format!(
            "TLS certificate {}: no certificate in it",
            certificate.display()
        )));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(format!("TLS key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid(format!("TLS certificate and key: {e}")))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
