//! Serves the router on accepted connections, as `axum::serve` does (a task
//! per connection, `ConnectInfo<SocketAddr>` on every request, graceful
//! shutdown), with the deadline it lacks: `axum::serve` installs no timer,
//! so hyper's header read timeout never applies and a client that sends a
//! request's headers a byte at a time (slowloris), or nothing at all,
//! holds its connection for ever.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::serve::Listener;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

/// How long a client has to send a request's headers: on a new connection
/// from the moment it is accepted, on a kept-alive one from its first byte.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener on `addr` whose kernel queue holds `backlog` connections not
/// yet accepted (`limits.listen_backlog`, as on the MQTT ports; tokio's
/// default is 1,024, and a burst beyond it is dropped or half-open).
pub fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// How long a stop waits for requests in progress (an open `/tail` stream
/// never ends by itself).
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on what `listener` accepts until `shutdown` resolves,
/// then waits (at most [`DRAIN`]) for the connections to finish their requests.
pub async fn serve<L>(mut listener: L, router: Router, shutdown: impl Future<Output = ()>)
where
    L: Listener<Addr = SocketAddr>,
{
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            conn = listener.accept() => conn,
            () = &mut shutdown => break,
        };
        let service = router
            .clone()
            .map_request(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "HTTP connection: {e}");
            }
        });
    }
    if tokio::time::timeout(DRAIN, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP: requests still running after {DRAIN:?}, closed");
    }
}
