//! `serve --fault-injection` (tests only): loopback endpoints that break a
//! part of the appliance on purpose, so tests can check it recovers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

use super::api::ApiError;
use super::HttpState;

/// The routes (merged only when fault injection is on).
pub fn router() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/debug/faults/controller-panic", post(controller_panic))
        .route("/debug/faults/clock-shift", post(clock_shift))
}

fn allowed(s: &HttpState, peer: SocketAddr) -> Result<&crate::controller::Faults, ApiError> {
    let faults = s.faults.as_ref().ok_or_else(|| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "fault injection is off")
    })?;
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "fault injection answers loopback clients only",
        ));
    }
    Ok(faults)
}

/// Makes the controller's state machine panic, as a bug would.
async fn controller_panic(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
) -> Result<StatusCode, ApiError> {
    allowed(&s, peer)?.panic_controller();
    tracing::warn!("fault injected: the controller panics");
    Ok(StatusCode::ACCEPTED)
}

/// The body of `/debug/faults/clock-shift`.
#[derive(serde::Deserialize)]
struct Shift {
    /// How far to move the wall clock, in milliseconds (negative: back).
    ms: i64,
}

/// Moves the wall clock the appliance reads, as `date -s` would.
async fn clock_shift(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Json(shift): axum::Json<Shift>,
) -> Result<StatusCode, ApiError> {
    allowed(&s, peer)?;
    crate::controller::shift_clock(shift.ms);
    tracing::warn!(ms = shift.ms, "fault injected: the wall clock jumps");
    Ok(StatusCode::ACCEPTED)
}
