//! `/api/v1` provisioning: instances and access keys, Group IDs and grants,
//! parent topics, device credentials, tokens. Same rules and messages as
//! the `mqrtc instance|group|topic|device|token` verbs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{done, ApiResult, Body, Done, ErrorBody};
use crate::directory::P2pScope;
use crate::http::auth::ApiAdmin;
use crate::http::HttpState;
use crate::ops::provision::{
    DeviceInput, GrantInput, GroupInput, InstanceInput, TokenInput, TopicInput,
};
use crate::store::{
    DeviceRow, GroupRow, InstanceRow, NewAccessKey, NewDeviceCredential, NewToken, TokenRow,
    TopicRow,
};

type S = State<Arc<HttpState>>;

pub(super) fn routes() -> OpenApiRouter<Arc<HttpState>> {
    OpenApiRouter::new()
        .routes(routes!(list_instances, create_instance))
        .routes(routes!(delete_instance))
        .routes(routes!(add_access_key))
        .routes(routes!(delete_access_key))
        .routes(routes!(rotate_access_key))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(delete_group))
        .routes(routes!(set_p2p))
        .routes(routes!(grant, revoke_grant))
        .routes(routes!(list_topics, create_topic))
        .routes(routes!(delete_topic))
        .routes(routes!(list_device_credentials, create_device_credential))
        .routes(routes!(delete_device_credential))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(delete_token))
}

/// Instances with their AccessKeyIds.
#[utoipa::path(get, path = "/instances", tag = "provisioning",
    responses((status = 200, body = [InstanceRow]), (status = 401, body = ErrorBody)))]
async fn list_instances(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<InstanceRow>> {
    Ok(Json(s.ops.instances().await?))
}

/// Creates an instance (a tenant).
#[utoipa::path(post, path = "/instances", tag = "provisioning", request_body = InstanceInput,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_instance(
    State(s): S,
    _a: ApiAdmin,
    Body(i): Body<InstanceInput>,
) -> ApiResult<Done> {
    let id = i.id.clone();
    s.ops.create_instance(i).await?;
    Ok(done(format!("created instance {id}")))
}

/// Deletes an instance and everything it owns.
#[utoipa::path(delete, path = "/instances/{id}", tag = "provisioning", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_instance(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Done> {
    s.ops.delete_instance(id.clone()).await?;
    Ok(done(format!("deleted instance {id}")))
}

/// Creates an access key; its secret is in this answer only.
#[utoipa::path(post, path = "/instances/{id}/access-keys", tag = "provisioning", params(("id" = String, Path)),
    responses((status = 200, body = NewAccessKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn add_access_key(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
) -> ApiResult<NewAccessKey> {
    Ok(Json(s.ops.add_access_key(id).await?))
}

/// Revokes an access key; its clients are disconnected.
#[utoipa::path(delete, path = "/access-keys/{key_id}", tag = "provisioning", params(("key_id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_access_key(
    State(s): S,
    _a: ApiAdmin,
    Path(key_id): Path<String>,
) -> ApiResult<Done> {
    s.ops.delete_access_key(key_id.clone()).await?;
    Ok(done(format!("deleted AccessKeyId {key_id}")))
}

/// Replaces an access key by a new one (secret in this answer only) and
/// revokes the old one at once.
#[utoipa::path(post, path = "/access-keys/{key_id}/rotate", tag = "provisioning", params(("key_id" = String, Path)),
    responses((status = 200, body = NewAccessKey), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn rotate_access_key(
    State(s): S,
    _a: ApiAdmin,
    Path(key_id): Path<String>,
) -> ApiResult<NewAccessKey> {
    Ok(Json(s.ops.rotate_access_key(key_id).await?))
}

/// Group IDs with their grants.
#[utoipa::path(get, path = "/groups", tag = "provisioning",
    responses((status = 200, body = [GroupRow]), (status = 401, body = ErrorBody)))]
async fn list_groups(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<GroupRow>> {
    Ok(Json(s.ops.groups().await?))
}

/// Provisions a Group ID.
#[utoipa::path(post, path = "/groups", tag = "provisioning", request_body = GroupInput,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_group(State(s): S, _a: ApiAdmin, Body(g): Body<GroupInput>) -> ApiResult<Done> {
    let msg = format!("created Group ID {} in {}", g.id, g.instance);
    s.ops.create_group(g).await?;
    Ok(done(msg))
}

/// Deletes a Group ID; its clients are disconnected.
#[utoipa::path(delete, path = "/groups/{id}", tag = "provisioning", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_group(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Done> {
    s.ops.delete_group(id.clone()).await?;
    Ok(done(format!(
        "deleted Group ID {id}; its clients are disconnected"
    )))
}

/// Where a group's devices may send P2P.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
struct P2pInput {
    /// instance, group or none.
    scope: P2pScope,
}

/// Sets where a group's devices may send P2P.
#[utoipa::path(put, path = "/groups/{id}/p2p", tag = "provisioning", params(("id" = String, Path)), request_body = P2pInput,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_p2p(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
    Body(p): Body<P2pInput>,
) -> ApiResult<Done> {
    s.ops.set_p2p(id.clone(), p.scope).await?;
    Ok(done(format!(
        "Group ID {id}: P2P scope {}",
        p.scope.as_str()
    )))
}

/// Grants publish and/or subscribe on a parent topic (from the first grant
/// on, the group may use only granted topics).
#[utoipa::path(put, path = "/groups/{id}/grants/{topic}", tag = "provisioning",
    params(("id" = String, Path), ("topic" = String, Path)), request_body = GrantInput,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn grant(
    State(s): S,
    _a: ApiAdmin,
    Path((id, topic)): Path<(String, String)>,
    Body(g): Body<GrantInput>,
) -> ApiResult<Done> {
    s.ops.grant(id.clone(), topic.clone(), g).await?;
    Ok(done(format!("Group ID {id} granted {topic}")))
}

/// Removes a grant.
#[utoipa::path(delete, path = "/groups/{id}/grants/{topic}", tag = "provisioning",
    params(("id" = String, Path), ("topic" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_grant(
    State(s): S,
    _a: ApiAdmin,
    Path((id, topic)): Path<(String, String)>,
) -> ApiResult<Done> {
    s.ops.revoke_grant(id.clone(), topic.clone()).await?;
    Ok(done(format!("Group ID {id}: grant on {topic} removed")))
}

/// Parent topics.
#[utoipa::path(get, path = "/topics", tag = "provisioning",
    responses((status = 200, body = [TopicRow]), (status = 401, body = ErrorBody)))]
async fn list_topics(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<TopicRow>> {
    Ok(Json(s.ops.topics().await?))
}

/// Provisions a parent topic.
#[utoipa::path(post, path = "/topics", tag = "provisioning", request_body = TopicInput,
    responses((status = 200, body = Done), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_topic(State(s): S, _a: ApiAdmin, Body(t): Body<TopicInput>) -> ApiResult<Done> {
    let msg = format!(
        "created {} topic {} in {}",
        t.role.as_str(),
        t.name,
        t.instance
    );
    s.ops.create_topic(t).await?;
    Ok(done(msg))
}

/// Deletes a parent topic.
#[utoipa::path(delete, path = "/topics/{name}", tag = "provisioning", params(("name" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_topic(State(s): S, _a: ApiAdmin, Path(name): Path<String>) -> ApiResult<Done> {
    s.ops.delete_topic(name.clone()).await?;
    Ok(done(format!("deleted parent topic {name}")))
}

/// Device credentials (no secrets).
#[utoipa::path(get, path = "/device-credentials", tag = "provisioning",
    responses((status = 200, body = [DeviceRow]), (status = 401, body = ErrorBody)))]
async fn list_device_credentials(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<DeviceRow>> {
    Ok(Json(s.ops.device_credentials().await?))
}

/// Issues a DeviceCredential key pair; its secret is in this answer only.
#[utoipa::path(post, path = "/device-credentials", tag = "provisioning", request_body = DeviceInput,
    responses((status = 200, body = NewDeviceCredential), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_device_credential(
    State(s): S,
    _a: ApiAdmin,
    Body(d): Body<DeviceInput>,
) -> ApiResult<NewDeviceCredential> {
    Ok(Json(s.ops.create_device_credential(d).await?))
}

/// Deletes a device credential; its client is disconnected.
#[utoipa::path(delete, path = "/device-credentials/{id}", tag = "provisioning", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_device_credential(
    State(s): S,
    _a: ApiAdmin,
    Path(id): Path<String>,
) -> ApiResult<Done> {
    s.ops.delete_device_credential(id.clone()).await?;
    Ok(done(format!("deleted device credential {id}")))
}

/// Tokens (not the tokens themselves).
#[utoipa::path(get, path = "/tokens", tag = "provisioning",
    responses((status = 200, body = [TokenRow]), (status = 401, body = ErrorBody)))]
async fn list_tokens(State(s): S, _a: ApiAdmin) -> ApiResult<Vec<TokenRow>> {
    Ok(Json(s.ops.tokens().await?))
}

/// Issues a token; the token is in this answer only.
#[utoipa::path(post, path = "/tokens", tag = "provisioning", request_body = TokenInput,
    responses((status = 200, body = NewToken), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_token(State(s): S, _a: ApiAdmin, Body(t): Body<TokenInput>) -> ApiResult<NewToken> {
    Ok(Json(s.ops.create_token(t).await?))
}

/// Revokes a token; its clients are told and disconnected.
#[utoipa::path(delete, path = "/tokens/{id}", tag = "provisioning", params(("id" = String, Path)),
    responses((status = 200, body = Done), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_token(State(s): S, _a: ApiAdmin, Path(id): Path<String>) -> ApiResult<Done> {
    s.ops.delete_token(id.clone()).await?;
    Ok(done(format!("revoked token {id}")))
}
