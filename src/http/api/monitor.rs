//! `/api/v1` monitoring and control: stats, connections (list, report,
//! kick), calls and their timelines, RTC channels, API keys, the live tail.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures::Stream;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{done, ApiResult, Body, Done, ErrorBody, Q};
use crate::broker::{ClientPage, ClientQuery};
use crate::http::auth::ApiAdmin;
use crate::http::HttpState;
use crate::ops::{DeviceReport, Overview};
use crate::rtc::mock::ChannelInfo;
use crate::store::{ApiKeyRow, CallPage, CallQuery, NewApiKey, TimelineEntry};

type S = State<Arc<HttpState>>;

pub(super) fn routes() -> OpenApiRouter<Arc<HttpState>> {
    OpenApiRouter::new()
        .routes(routes!(stats))
        .routes(routes!(list_connections))
        .routes(routes!(device_report, kick))
        .routes(routes!(list_calls))
        .routes(routes!(get_call))
        .routes(routes!(call_timeline))
        .routes(routes!(call_webhooks))
        .routes(routes!(list_channels))
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(revoke_api_key))
        .routes(routes!(tail))
}

/// Status, counts, rates, refusals and the last 15 minutes of samples.
#[utoipa::path(get, path = "/stats", tag = "monitoring",
    responses((status = 200, body = Overview), (status = 401, body = ErrorBody)))]
async fn stats(State(s): S, _a: ApiAdmin) -> ApiResult<Overview> {
    Ok(Json(s.ops.overview().await?))
}

/// Sessions (online, or offline and kept), filtered, one page.
#[utoipa::path(get, path = "/connections", tag = "monitoring", params(ClientQuery),
    responses((status = 200, body = ClientPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_connections(
    State(s): S,
    _a: ApiAdmin,
    Q(q): Q<ClientQuery>,
) -> ApiResult<ClientPage> {
    Ok(Json(s.ops.clients(q).await))
}

/// Everything about one client id: findings, session, subscriptions,
/// connection history and its user's calls.
#[utoipa::path(get, path = "/connections/{client_id}", tag = "monitoring", params(("client_id" = String, Path)),
    responses((status = 200, body = DeviceReport), (status = 401, body = ErrorBody)))]
async fn device_report(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
) -> ApiResult<DeviceReport> {
    Ok(Json(s.ops.device(id).await?))
}

/// Disconnects a client (MQTT 5: DISCONNECT 0x98).
#[utoipa::path(delete, path = "/connections/{client_id}", tag = "monitoring", params(("client_id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn kick(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Done> {
    s.ops.kick(&id).await?;
    Ok(done(format!("disconnected {id}")))
}

/// Calls, newest first, filtered by state and user.
#[utoipa::path(get, path = "/calls", tag = "calls", params(CallQuery),
    responses((status = 200, body = CallPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn list_calls(State(s): S, _a: ApiAdmin, Q(q): Q<CallQuery>) -> ApiResult<CallPage> {
    Ok(Json(s.ops.calls(q).await?))
}

/// A call as the controller last saved it.
#[utoipa::path(get, path = "/calls/{call_id}", tag = "calls", params(("call_id" = String, Path)),
    responses((status = 200, body = Object), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_call(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
) -> ApiResult<crate::calls::Call> {
    Ok(Json(s.ops.call(id).await?))
}

/// A call's signaling timeline.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeline {
    /// Call id.
    pub call_id: String,
    /// Every message, in order.
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<TimelineEntry>,
}

/// Every signaling message of a call, in order (the JSON export).
#[utoipa::path(get, path = "/calls/{call_id}/timeline", tag = "calls", params(("call_id" = String, Path)),
    responses((status = 200, body = Timeline), (status = 401, body = ErrorBody)))]
async fn call_timeline(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Timeline> {
    let messages = s.ops.timeline(id.clone()).await?;
    Ok(Json(Timeline {
        call_id: id,
        messages,
    }))
}

/// A call's webhook events with every delivery attempt, oldest first.
#[utoipa::path(get, path = "/calls/{call_id}/webhooks", tag = "calls", params(("call_id" = String, Path)),
    responses((status = 200, body = [crate::store::Delivery]), (status = 401, body = ErrorBody)))]
async fn call_webhooks(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
) -> ApiResult<Vec<crate::store::Delivery>> {
    Ok(Json(s.ops.call_webhooks(id).await?))
}

/// RTC channels of the mock RTC service with their members.
#[utoipa::path(get, path = "/rtc/channels", tag = "calls",
    responses((status = 200, body = [ChannelInfo]), (status = 401, body = ErrorBody)))]
async fn list_channels(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<ChannelInfo>> {
    Ok(Json(s.ops.channels()))
}

/// API keys (not the keys).
#[utoipa::path(get, path = "/api-keys", tag = "admin",
    responses((status = 200, body = [ApiKeyRow]), (status = 401, body = ErrorBody)))]
async fn list_api_keys(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<ApiKeyRow>> {
    Ok(Json(s.ops.api_keys().await?))
}

/// A new API key.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct ApiKeyInput {
    /// What it is for.
    name: String,
}

/// Creates an API key; the key is in this answer only.
#[utoipa::path(post, path = "/api-keys", tag = "admin", request_body = ApiKeyInput,
    responses((status = 200, body = NewApiKey), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn create_api_key(
    State(s): S,
    a: ApiAdmin,
    Body(k): Body<ApiKeyInput>,
) -> ApiResult<NewApiKey> {
    Ok(Json(s.ops.create_api_key(k.name, a.name).await?))
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/api-keys/{id}", tag = "admin", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_api_key(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Done> {
    s.ops.revoke_api_key(id.clone()).await?;
    Ok(done(format!("revoked API key {id}")))
}

/// Which messages to tail.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct TailQuery {
    /// MQTT topic filter (`+` and `#` allowed); default `#`.
    filter: Option<String>,
}

/// Live tail: every message the broker routes whose topic matches the
/// filter, as server-sent events (`message` events with a JSON `Tapped`;
/// `lagged` when the watcher fell behind).
#[utoipa::path(get, path = "/tail", tag = "monitoring", params(TailQuery),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 401, body = ErrorBody)))]
async fn tail(
    State(s): S,
    _a: ApiAdmin,
    Q(q): Q<TailQuery>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let filter = q
        .filter
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "#".into());
    let watch = s.ops.tail();
    let stream = futures::stream::unfold((watch, filter), |(mut w, filter)| async move {
        loop {
            let ev = match w.next().await? {
                Ok(m) if crate::bridge::filter_matches(&filter, &m.topic) => Event::default()
                    .event("message")
                    .json_data(&*m)
                    .unwrap_or_default(),
                Ok(_) => continue,
                Err(n) => Event::default().event("lagged").data(n.to_string()),
            };
            return Some((Ok(ev), (w, filter)));
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
