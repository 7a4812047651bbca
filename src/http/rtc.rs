//! The mock RTC channel service over HTTP (`/rtc/v1/...`): what a client
//! does with the join parameters the controller gave it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::rtc::join::JoinBody;
use crate::rtc::MockRtc;
use crate::rtc::RtcError;

/// The `/rtc/v1` routes over `rtc` (the appliance and `mqrtc controller`).
pub fn routes(rtc: Arc<MockRtc>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/rtc/v1/join", post(join))
        .route("/rtc/v1/leave", post(leave))
        .route("/rtc/v1/channels/{channel}", get(channel))
        .with_state(rtc)
}

/// The body of `POST /rtc/v1/leave`.
#[derive(Deserialize)]
pub struct LeaveBody {
    channel: String,
    userid: String,
    session: String,
}

fn refuse(e: RtcError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({ "error": e.code(), "message": e.to_string() })),
    )
        .into_response()
}

/// `POST /rtc/v1/join`
pub async fn join(
    State(rtc): State<Arc<MockRtc>>,
    body: Result<Json<JoinBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return refuse(RtcError::BadRequest(
            "expected the ARTC fields or {\"token\": \"<single parameter>\"}".into(),
        ));
    };
    let req = match body.into_request() {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    match rtc.join(&req, crate::controller::now_ms()) {
        Ok(j) => Json(j).into_response(),
        Err(e) => refuse(e),
    }
}

/// `POST /rtc/v1/leave`
pub async fn leave(
    State(rtc): State<Arc<MockRtc>>,
    body: Result<Json<LeaveBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(b)) = body else {
        return refuse(RtcError::BadRequest(
            "expected {channel, userid, session}".into(),
        ));
    };
    match rtc.leave(&b.channel, &b.userid, &b.session) {
        Ok(left) => Json(json!({ "left": left })).into_response(),
        Err(e) => refuse(e),
    }
}

/// `GET /rtc/v1/channels/{channel}`
pub async fn channel(State(rtc): State<Arc<MockRtc>>, Path(channel): Path<String>) -> Response {
    match rtc.members(&channel) {
        Some((call_id, open, members)) => Json(
            json!({ "channel": channel, "call_id": call_id, "open": open, "members": members, "peers": rtc.peers(&channel) }),
        )
        .into_response(),
        None => refuse(RtcError::NoChannel),
    }
}
