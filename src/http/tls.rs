//! The HTTP service over TLS (the `https` port): browsers give a page camera
//! and microphone only in a secure context, which on another machine of the
//! LAN means HTTPS.
//!
//! An acceptor task takes TCP connections and runs each TLS handshake in its
//! own task, with a deadline, so a client that connects and says nothing
//! delays nobody; finished handshakes are handed to [`super::serve`] through
//! a channel, which keeps its connection handling, `ConnectInfo<SocketAddr>`,
//! header deadline and graceful shutdown exactly as on the plain HTTP port.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::{Extension, Router};

use rustls::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::certs::reload::FollowFiles;

/// Request extension present on every request that came over the HTTPS
/// port (e.g. to give cookies the `Secure` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaHttps;

/// How long a client has, after connecting, to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a client that speaks plain HTTP to the HTTPS port is told before
/// the connection is closed.
const PLAIN_HTTP_ANSWER: &str = "This port speaks HTTPS: use https:// in the address.\n";

/// The rustls server configuration presenting `cert` (which follows its
/// files, see `certs::reload`), with the `ring` provider chosen explicitly:
/// more than one rustls provider is compiled into this binary, so none is
/// the default.
pub fn server_config(cert: Arc<FollowFiles>) -> anyhow::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves, then
/// lets requests in progress finish (like the plain HTTP port). Every
/// request carries the [`ViaHttps`] extension and `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let (tx, rx) = mpsc::channel(64);
    let acceptor = tokio::spawn(accept_loop(listener, TlsAcceptor::from(config), tx));
    let incoming = Handshaken { rx, local };
    super::serve::serve(incoming, router.layer(Extension(ViaHttps)), shutdown).await;
    acceptor.abort();
    Ok(())
}

/// Connections whose TLS handshake is done, as `serve` takes them.
struct Handshaken {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl axum::serve::Listener for Handshaken {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The acceptor ended (it only does once this listener is gone).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Accepts TCP connections until `tx`'s receiver is dropped; each handshake
/// runs in a task of its own.
async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let accepted = tokio::select! {
            _ = tx.closed() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!("HTTPS accept: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&acceptor, tcp)).await {
                Ok(Ok(Some(tls))) => {
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Ok(None)) => tracing::debug!(%peer, "HTTPS port: closed without TLS"),
                Ok(Err(e)) => tracing::debug!(%peer, "HTTPS port: TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "HTTPS port: no TLS handshake in time"),
            }
        });
    }
}

/// The TLS handshake on `tcp`; `None` if the client closed first or spoke
/// something else (a plain HTTP request is answered with a short 400).
async fn handshake(
    acceptor: &TlsAcceptor,
    mut tcp: TcpStream,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if tcp.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    // 0x16: a TLS handshake record, which every ClientHello starts with.
    if first[0] != 0x16 {
        let mut request = [0u8; 4096];
        let n = tcp.read(&mut request).await?; // so that closing sends FIN, not RST
        if looks_like_http(&request[..n]) {
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n\
Connection: close\r\nContent-Length: {}\r\n\r\n{PLAIN_HTTP_ANSWER}",
                PLAIN_HTTP_ANSWER.len()
            );
            tcp.write_all(answer.as_bytes()).await?;
        }
        tcp.shutdown().await?;
        return Ok(None);
    }
    acceptor.accept(tcp).await.map(Some)
}

/// Whether `bytes` start like an HTTP/1 request line (`GET /…`).
fn looks_like_http(bytes: &[u8]) -> bool {
    let method = bytes.split(|&b| b == b' ').next().unwrap_or_default();
    method.len() < bytes.len()
        && (3..=7).contains(&method.len())
        && method.iter().all(u8::is_ascii_uppercase)
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use axum::routing::get;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;

    #[tokio::test]
    async fn requests_carry_via_https_and_the_peer_address() {
        let dir = tempfile::tempdir().unwrap();
        let files = crate::certs::ensure(dir.path(), &crate::config::Tls::default()).unwrap();
        let router =
            Router::new().route(
                "/",
                get(
                    |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                     via: Option<Extension<ViaHttps>>| async move {
                        format!("via_https={} peer={}", via.is_some(), peer.ip())
                    },
                ),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = server_config(FollowFiles::load(&files).unwrap()).unwrap();
        let server = tokio::spawn(serve(listener, config, router, async {
            let _ = stopped.await;
        }));

        let ca = std::fs::read(files.ca.as_ref().unwrap()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(&ca).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let _idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let mut tls = connector.connect(name, tcp).await.unwrap();
        tls.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tls.read_to_end(&mut out).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.0 200"), "{out}");
        assert!(out.ends_with("via_https=true peer=127.0.0.1"), "{out}");

        stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("graceful shutdown despite an idle client")
            .unwrap()
            .unwrap();
    }

    #[test]
    fn plain_http_is_recognised() {
        assert!(looks_like_http(b"GET / HTTP/1.1\r\n"));
        assert!(looks_like_http(b"OPTIONS * HTTP/1.1\r\n"));
        assert!(!looks_like_http(b"\x16\x03\x01"));
        assert!(!looks_like_http(b"GET"));
    }
}
