//! The HTTP port of `mqrtc controller`: health, the mock RTC service and
//! EMQX's authentication and authorization endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use super::bridge::ExternalBridge;
use super::emqx;
use crate::directory::{Directory, SharedDirectory};
use crate::policy::Rules;

pub(super) struct ControllerState {
    pub directory: Arc<SharedDirectory>,
    pub rules: Rules,
    /// Set once this controller is the active one.
    pub active: std::sync::OnceLock<(Arc<ExternalBridge>, Arc<crate::controller::Health>)>,
}

pub(super) fn router(s: Arc<ControllerState>, rtc: Arc<crate::rtc::MockRtc>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(crate::http::livez))
        .route("/emqx/v5/authn", post(authn))
        .route("/emqx/v5/authz", post(authz))
        .with_state(s)
        .merge(crate::http::rtc::routes(rtc))
        .fallback(crate::http::not_found)
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// 200 while this controller stands by, or is active with its broker
/// connection up and its state machine running; 503 otherwise. `role` says
/// which (`standby` or `active`).
async fn healthz(State(s): State<Arc<ControllerState>>) -> (StatusCode, Json<serde_json::Value>) {
    let Some((bridge, health)) = s.active.get() else {
        let body = json!({ "status": "ok", "role": "standby" });
        return (StatusCode::OK, Json(body));
    };
    let broker = bridge.is_connected();
    let controller = health.state();
    let ok = broker && controller == "ok";
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let status = if ok { "ok" } else { "down" };
    let body = json!({
        "status": status,
        "role": "active",
        "parts": { "broker": if broker { "ok" } else { "down" }, "controller": controller },
        "controller": { "restarts": health.restarts(), "last_error": health.last_error() },
    });
    (code, Json(body))
}

type Body<T> = Result<Json<T>, axum::extract::rejection::JsonRejection>;

fn bad_request(
    e: axum::extract::rejection::JsonRejection,
) -> (StatusCode, Json<serde_json::Value>) {
    let body = json!({ "error": "bad_request", "message": e.body_text() });
    (StatusCode::BAD_REQUEST, Json(body))
}

/// Answers an EMQX request: 400 if the body does not parse, else 200 with
/// `decide`'s answer over the current provisioning data.
fn answer<Q, R: serde::Serialize>(
    s: &ControllerState,
    body: Body<Q>,
    decide: impl FnOnce(&Directory, &Rules, &Q, i64) -> R,
) -> (StatusCode, Json<serde_json::Value>) {
    match body {
        Ok(Json(req)) => {
            let r = decide(&s.directory.get(), &s.rules, &req, crate::store::unix_now());
            (StatusCode::OK, Json(json!(r)))
        }
        Err(e) => bad_request(e),
    }
}

async fn authn(
    State(s): State<Arc<ControllerState>>,
    body: Body<emqx::AuthnRequest>,
) -> (StatusCode, Json<serde_json::Value>) {
    answer(&s, body, |dir, rules, req, now| {
        let r = emqx::authenticate(dir, rules, req, now);
        if r.result != "allow" {
            tracing::info!(
                client_id = req.clientid,
                reason = r.reason,
                "EMQX login refused"
            );
        }
        r
    })
}

async fn authz(
    State(s): State<Arc<ControllerState>>,
    body: Body<emqx::AuthzRequest>,
) -> (StatusCode, Json<serde_json::Value>) {
    answer(&s, body, |dir, rules, req, now| {
        let r = emqx::authorize(dir, rules, req, now);
        if r.result != "allow" {
            tracing::info!(
                client_id = req.clientid,
                topic = req.topic,
                action = req.action,
                reason = r.reason,
                "EMQX action refused"
            );
        }
        r
    })
}
