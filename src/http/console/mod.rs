//! The web console (`/console`): server-rendered pages (askama, one view
//! struct per page beside its handler), sign-in and sign-out. Pages read
//! through the service layer; their forms and buttons call `/api/v1` with
//! the session cookie (static/console/console.js), so the console and
//! scripts share one API.

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Form, Router};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::auth::{same_origin, ApiAdmin, Via, SESSION_COOKIE};
use super::HttpState;
use crate::ops::SignInError;

mod calls;
mod diagram;
mod pages;

/// The console's routes.
pub fn router() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", axum::routing::post(logout))
        .route("/console", get(pages::overview))
        .route("/console/provisioning", get(pages::provisioning))
        .route("/console/devices", get(pages::devices))
        .route("/console/devices/{client_id}", get(pages::device))
        .route("/console/calls", get(calls::calls))
        .route("/console/calls/{call_id}", get(calls::call))
        .route("/console/channels", get(pages::channels))
        .route("/console/tail", get(pages::tail))
        .route("/console/api-keys", get(pages::api_keys))
}

/// What every page's frame shows.
pub struct Chrome {
    /// Page title.
    pub title: String,
    /// Which navigation entry is current.
    pub active: &'static str,
    /// Who is signed in.
    pub user: String,
    /// `--dev` without sign-in on loopback.
    pub dev_open: bool,
}

impl Chrome {
    /// The frame for `admin` on page `active`.
    pub fn new(admin: &ApiAdmin, active: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            active,
            user: admin.name.clone(),
            dev_open: admin.via == Via::DevLoopback,
        }
    }
}

/// Percent-encodes a path segment or query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Template, WebTemplate)]
#[template(path = "console/login.html")]
struct LoginPage {
    error: String,
    next: String,
    dev: bool,
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// Only local paths: never a redirect to another site.
fn local_next(next: Option<String>) -> String {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("//"))
        .unwrap_or_else(|| "/console".into())
}

async fn login_page(State(s): State<Arc<HttpState>>, Query(q): Query<Next>) -> LoginPage {
    LoginPage {
        error: String::new(),
        next: local_next(q.next),
        dev: s.ops.dev,
    }
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

async fn login(
    State(s): State<Arc<HttpState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    parts: Parts,
    jar: CookieJar,
    Form(c): Form<Credentials>,
) -> Response {
    let next = local_next(c.next);
    if !same_origin(&parts) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the request's Origin is not this appliance",
        )
            .into_response();
    }
    let page = |error: &str| LoginPage {
        error: error.into(),
        next: next.clone(),
        dev: s.ops.dev,
    };
    match s.ops.sign_in(c.name, c.password, peer.ip()).await {
        Ok(signed) => {
            let cookie = Cookie::build((SESSION_COOKIE, signed.token))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Strict)
                .secure(parts.extensions.get::<super::tls::ViaHttps>().is_some())
                .max_age(time::Duration::seconds(crate::ops::SESSION_SECS))
                .build();
            (jar.add(cookie), Redirect::to(&next)).into_response()
        }
        Err(SignInError::Wrong) => {
            (StatusCode::UNAUTHORIZED, page("Wrong name or password.")).into_response()
        }
        Err(SignInError::Ops(e)) => {
            tracing::error!("sign-in: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("The appliance failed; see its log."),
            )
                .into_response()
        }
    }
}

async fn logout(State(s): State<Arc<HttpState>>, parts: Parts, jar: CookieJar) -> Response {
    if !same_origin(&parts) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the request's Origin is not this appliance",
        )
            .into_response();
    }
    if let Some(c) = jar.get(SESSION_COOKIE) {
        if let Err(e) = s.ops.sign_out(c.value().to_string()).await {
            tracing::error!("sign-out: {e}");
        }
    }
    let gone = Cookie::build((SESSION_COOKIE, "")).path("/").build();
    (
        jar.remove(gone),
        [(header::CACHE_CONTROL, "no-store")],
        Redirect::to("/console/login"),
    )
        .into_response()
}
