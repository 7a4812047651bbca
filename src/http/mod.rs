//! The appliance's HTTP port: health, the mock RTC service, the admin REST
//! API (`/api/v1`), the web console (`/console`) and its static assets.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::broker::{Broker, StatsSnapshot};
use crate::rtc::MockRtc;
use crate::store::Store;

pub mod api;
mod assets;
pub mod auth;
pub mod console;
mod faults;
mod metrics;
mod phone;
pub mod rtc;
pub mod serve;
pub mod tls;

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
    /// The same HTTP service over TLS (0 in a `ports.json` from before it existed).
    #[serde(default)]
    pub https: u16,
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
    /// The operators' service layer (console and admin API).
    pub ops: Arc<crate::ops::Ops>,
    /// ICE server URLs handed to softphones (none: host candidates only).
    pub ice_servers: Vec<String>,
    /// Fault injection (`serve --fault-injection`, tests only).
    pub faults: Option<crate::controller::Faults>,
}

/// The answer of `GET /healthz`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// `"ok"` when every part works, `"down"` when one does not (HTTP 503).
    pub status: String,
    /// Each part: broker, controller, store, rtc.
    #[serde(default)]
    pub parts: crate::ops::Parts,
    /// Listener ports.
    pub ports: PortsFile,
    /// Connected clients.
    pub connections: i64,
    /// Refusal and drop counters.
    pub broker: StatsSnapshot,
    /// Times the controller failed and was restarted, and why it last failed.
    #[serde(default)]
    pub controller: ControllerHealth,
}

/// The controller's restarts, in `/healthz`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ControllerHealth {
    /// Restarts since the appliance started.
    pub restarts: u64,
    /// Why it last failed (a panic, or a commit SQLite refused).
    pub last_error: Option<String>,
}

/// The HTTP routes.
pub fn router(state: Arc<HttpState>) -> Router {
    let (api, doc) = api::router();
    let doc = Arc::new(doc);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics::metrics))
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .merge(api)
        .merge(console::router())
        .route("/phone", get(phone::page))
        .route("/static/{*path}", get(assets::serve))
        .merge(faults::router())
        .with_state(state.clone())
        .merge(rtc::routes(state.rtc.clone()))
        .fallback(not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The 404 answer of every HTTP service.
pub async fn not_found(uri: axum::http::Uri) -> api::ApiError {
    api::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("nothing at {}", uri.path()),
    )
}

/// A Unix-milliseconds time in RFC 3339 (`2026-12-02T22:05:11.123Z`; empty if out of range).
pub fn rfc3339(ms: i64) -> String {
    format_ms(ms, &time::format_description::well_known::Rfc3339)
}

/// A Unix-milliseconds time as `2026-12-02 22:05:11 UTC` (empty if out of range).
pub fn when(ms: i64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    format_ms(ms, &fmt)
}

fn format_ms(ms: i64, fmt: &(impl time::formatting::Formattable + ?Sized)) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_default()
}

/// `GET /healthz`, readiness: every part of the appliance works (200), or
/// one does not (503, and which one in `parts`).
async fn healthz(State(s): State<Arc<HttpState>>) -> (axum::http::StatusCode, Json<Health>) {
    let parts = s.ops.parts().await;
    let ok = parts.ok();
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if ok { "ok" } else { "down" }.into(),
        parts,
        ports: s.ports,
        connections: s.broker.connections() as i64,
        broker: s.broker.stats(),
        controller: s
            .ops
            .controller_health()
            .map(|h| ControllerHealth {
                restarts: h.restarts(),
                last_error: h.last_error(),
            })
            .unwrap_or_default(),
    };
    (status, Json(health))
}

/// `GET /livez`, liveness: the process answers HTTP.
pub async fn livez() -> &'static str {
    "alive\n"
}
