//! The admin REST API, `/api/v1`: provisioning, connections, calls, RTC
//! channels, stats, API keys and the live tail. Routes and the OpenAPI 3.1
//! document (`/api/v1/openapi.json`) come from the same declarations, so the
//! document lists exactly the routes that exist.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use super::HttpState;
use crate::ops::OpsError;

mod monitor;
mod provision;

/// Every API error: `{ "error": code, "message": what to do }`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable code: `unauthorized`, `cross_site`, `not_found`,
    /// `conflict`, `invalid`, `internal`.
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

/// An error answer with its status code.
#[derive(Debug)]
pub struct ApiError(StatusCode, ErrorBody);

impl ApiError {
    /// An error with a status, a code and a message.
    pub fn new(status: StatusCode, error: &str, message: impl Into<String>) -> ApiError {
        ApiError(
            status,
            ErrorBody {
                error: error.into(),
                message: message.into(),
            },
        )
    }

    /// A 500: logged with detail, answered without.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!("admin API: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the appliance log",
        )
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> ApiError {
        match e {
            OpsError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            OpsError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            OpsError::Invalid(m) => ApiError::new(StatusCode::BAD_REQUEST, "invalid", m),
            OpsError::Internal(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

/// A JSON body whose errors are answered as `ErrorBody`.
pub struct Body<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Body(v)),
            Err(e @ JsonRejection::MissingJsonContentType(_)) => {
                Err(ApiError::new(e.status(), "invalid", e.body_text()))
            }
            Err(e) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid",
                e.body_text(),
            )),
        }
    }
}

/// Query parameters whose errors are answered as `ErrorBody`.
pub struct Q<T>(pub T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Q(q.0))
            .map_err(|e: QueryRejection| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid", e.body_text())
            })
    }
}

/// A confirmation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Done {
    /// What was done.
    pub message: String,
}

/// `200 {"message": ...}`.
pub fn done(message: impl Into<String>) -> Json<Done> {
    Json(Done {
        message: message.into(),
    })
}

/// Result of a handler.
pub type ApiResult<T> = Result<Json<T>, ApiError>;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::new(super::auth::SESSION_COOKIE),
            )),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mqrtc admin API",
        description = "Provisioning, connections, calls, RTC channels and stats of one mqrtc appliance. \
Authenticate with `Authorization: Bearer <API key>` (create one in the console or with `mqrtc admin api-key create`). \
Errors are `{\"error\": code, \"message\": text}`."
    ),
    modifiers(&BearerAuth),
    security(("api_key" = []), ("session" = [])),
    servers((url = "/api/v1"))
)]
struct ApiDoc;

/// The `/api/v1` routes and the OpenAPI document that describes them.
pub fn router() -> (Router<Arc<HttpState>>, utoipa::openapi::OpenApi) {
    let (routes, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(provision::routes())
        .merge(monitor::routes())
        .split_for_parts();
    (Router::new().nest("/api/v1", routes), api)
}
