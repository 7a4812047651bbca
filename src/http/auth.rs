//! Who is asking: an admin signed in to the console (session cookie), a
//! script with an API key (`Authorization: Bearer`), or, with `--dev`, anyone
//! on loopback. As extractors, so a handler that needs an admin cannot
//! forget to ask. Every state-changing request made with a cookie must come
//! from a page of this appliance (its `Origin` matches `Host`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::CookieJar;

use super::api::ApiError;
use super::HttpState;

/// The console session cookie.
pub const SESSION_COOKIE: &str = "mqrtc_session";

/// How an admin proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A console session cookie.
    Session,
    /// An API key.
    ApiKey,
    /// `--dev` on loopback, without sign-in.
    DevLoopback,
}

/// An admin, for an API route (refusals are JSON 401/403).
#[derive(Debug, Clone)]
pub struct ApiAdmin {
    /// Admin name.
    pub name: String,
    /// How they proved it.
    pub via: Via,
}

/// An admin, for a console page (no session: redirect to the sign-in page).
#[derive(Debug, Clone)]
pub struct ConsoleAdmin(pub ApiAdmin);

/// Why a request is refused.
#[derive(Debug)]
pub enum Denied {
    /// No valid credential.
    Unauthorized(&'static str),
    /// A cookie-borne change from a foreign page.
    CrossSite,
    /// The appliance failed.
    Internal(String),
}

pub(crate) fn peer_is_loopback(parts: &Parts) -> bool {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|c| c.0.ip().is_loopback())
}

/// Whether a state-changing request comes from a page of this appliance.
pub fn same_origin(parts: &Parts) -> bool {
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = parts
        .headers
        .get(header::ORIGIN)
        .or_else(|| parts.headers.get(header::REFERER))
        .and_then(|h| h.to_str().ok());
    match (host, origin) {
        (Some(host), Some(origin)) => {
            let rest = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"));
            rest.map(|r| r.split('/').next().unwrap_or(""))
                .is_some_and(|o| o.eq_ignore_ascii_case(host))
        }
        _ => false,
    }
}

/// Finds the admin behind a request.
pub async fn authenticate(parts: &Parts, s: &Arc<HttpState>) -> Result<ApiAdmin, Denied> {
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.strip_prefix("Bearer ").unwrap_or("").trim().to_string());
    if let Some(key) = bearer {
        return match s.ops.api_key_user(key).await {
            Ok(Some(name)) => Ok(ApiAdmin {
                name,
                via: Via::ApiKey,
            }),
            Ok(None) => Err(Denied::Unauthorized("API key unknown or revoked")),
            Err(e) => Err(Denied::Internal(e.to_string())),
        };
    }
    let jar = CookieJar::from_headers(&parts.headers);
    let found = match jar.get(SESSION_COOKIE) {
        Some(c) => s
            .ops
            .session_user(c.value().to_string())
            .await
            .map_err(|e| Denied::Internal(e.to_string()))?
            .map(|name| ApiAdmin {
                name,
                via: Via::Session,
            }),
        None => None,
    };
    let admin = match found {
        Some(a) => a,
        None if s.ops.dev && peer_is_loopback(parts) => ApiAdmin {
            name: "dev".into(),
            via: Via::DevLoopback,
        },
        None => {
            return Err(Denied::Unauthorized(
                "sign in to the console, or send Authorization: Bearer <API key>",
            ))
        }
    };
    if !same_origin(parts) {
        return Err(Denied::CrossSite);
    }
    Ok(admin)
}

impl FromRequestParts<Arc<HttpState>> for ApiAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<HttpState>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(parts, s).await.map_err(|d| match d {
            Denied::Unauthorized(m) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m),
            Denied::CrossSite => ApiError::new(
                StatusCode::FORBIDDEN,
                "cross_site",
                "refused: the request's Origin is not this appliance",
            ),
            Denied::Internal(m) => ApiError::internal(m),
        })
    }
}

impl FromRequestParts<Arc<HttpState>> for ConsoleAdmin {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        s: &Arc<HttpState>,
    ) -> Result<Self, Self::Rejection> {
        match authenticate(parts, s).await {
            Ok(a) => Ok(ConsoleAdmin(a)),
            Err(Denied::Unauthorized(_)) => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/console");
                let to = format!("/console/login?next={}", super::console::url_encode(next));
                Err(Redirect::to(&to).into_response())
            }
            Err(Denied::CrossSite) => Err((
                StatusCode::FORBIDDEN,
                "refused: the request's Origin is not this appliance",
            )
                .into_response()),
            Err(Denied::Internal(m)) => Err(ApiError::internal(m).into_response()),
        }
    }
}
