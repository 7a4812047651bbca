//! Read-only call data for operators: a call's state and its timeline.
//! Until the console brings admin sign-in, these answer loopback clients only.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::HttpState;

fn local_only(peer: SocketAddr) -> Option<Response> {
    (!peer.ip().is_loopback()).then(|| {
        let body = json!({ "error": "forbidden", "message": "the call API answers only on loopback until admin sign-in exists" });
        (StatusCode::FORBIDDEN, Json(body)).into_response()
    })
}

fn blocking_error(e: impl std::fmt::Display) -> Response {
    tracing::error!("call API: {e}");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({ "error": "internal", "message": "see the appliance log" })),
    )
        .into_response()
}

/// `GET /api/calls/{id}`: the call as the controller last saved it.
pub async fn call(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = local_only(peer) {
        return r;
    }
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.stored_call(&id)).await {
        Ok(Ok(Some(c))) => Json(c).into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "not_found", "message": "no such call" })),
        )
            .into_response(),
        Ok(Err(e)) => blocking_error(e),
        Err(e) => blocking_error(e),
    }
}

/// `GET /api/calls/{id}/timeline`: every signaling message of the call, in order.
pub async fn timeline(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = local_only(peer) {
        return r;
    }
    let (store, key) = (s.store.clone(), id.clone());
    match tokio::task::spawn_blocking(move || store.timeline(&key)).await {
        Ok(Ok(t)) => Json(json!({ "call_id": id, "messages": t })).into_response(),
        Ok(Err(e)) => blocking_error(e),
        Err(e) => blocking_error(e),
    }
}
