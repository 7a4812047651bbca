//! The appliance's HTTP port: health and status now; the mock RTC service,
//! the console and MQTT over WebSocket for browsers can join it later.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::broker::{Broker, StatsSnapshot};
use crate::rtc::MockRtc;
use crate::store::Store;

mod api;
mod rtc;

/// Where every listener of a running appliance is (also `ports.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortsFile {
    /// MQTT over TCP.
    pub mqtt: u16,
    /// MQTT over TLS.
    pub mqtts: u16,
    /// MQTT over WebSocket.
    pub ws: u16,
    /// MQTT over secure WebSocket.
    pub wss: u16,
    /// HTTP.
    pub http: u16,
}

/// What handlers share.
pub struct HttpState {
    /// The running broker.
    pub broker: Arc<Broker>,
    /// Where everything listens.
    pub ports: PortsFile,
    /// The mock RTC channel service.
    pub rtc: Arc<MockRtc>,
    /// SQLite (call data).
    pub store: Arc<Store>,
}

/// The answer of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when the broker is serving.
    pub status: String,
    /// Listener ports.
    pub ports: PortsFile,
    /// Connected clients.
    pub connections: i64,
    /// Refusal and drop counters.
    pub broker: StatsSnapshot,
}

/// The HTTP routes.
pub fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/rtc/v1/join", post(rtc::join))
        .route("/rtc/v1/leave", post(rtc::leave))
        .route("/rtc/v1/channels/{channel}", get(rtc::channel))
        .route("/api/calls/{id}", get(api::call))
        .route("/api/calls/{id}/timeline", get(api::timeline))
        .with_state(state)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

async fn healthz(State(s): State<Arc<HttpState>>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        ports: s.ports,
        connections: s.broker.connections() as i64,
        broker: s.broker.stats(),
    })
}
