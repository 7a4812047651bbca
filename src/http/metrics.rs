//! `GET /metrics` for Prometheus: from loopback as is, from elsewhere with
//! an API key (`Authorization: Bearer`), like the admin API.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::api::ApiError;
use super::auth::{peer_is_loopback, ApiAdmin};
use super::HttpState;

/// The scrape.
pub async fn metrics(State(s): State<Arc<HttpState>>, req: Request) -> Response {
    let (mut parts, _) = req.into_parts();
    if !peer_is_loopback(&parts) {
        if let Err(refused) = ApiAdmin::from_request_parts(&mut parts, &s).await {
            return refused.into_response();
        }
    }
    match s.ops.metrics_text().await {
        Ok(text) => (
            [(header::CONTENT_TYPE, crate::ops::METRICS_CONTENT_TYPE)],
            text,
        )
            .into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}
