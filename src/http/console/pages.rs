//! Console pages: overview, provisioning, devices and one device, RTC
//! channels, live tail, API keys.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{url_encode, Chrome};
use crate::broker::{ClientPage, ClientQuery};
use crate::http::auth::ConsoleAdmin;
use crate::http::{when, HttpState};
use crate::ops::provision::Provisioned;
use crate::ops::{DeviceReport, OpsError, Overview};
use crate::rtc::mock::ChannelInfo;
use crate::store::ApiKeyRow;

type S = State<Arc<HttpState>>;

/// A page that could not be built.
pub struct PageError(pub OpsError);

#[derive(Template, WebTemplate)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    message: String,
}

impl From<OpsError> for PageError {
    fn from(e: OpsError) -> PageError {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = match &self.0 {
            OpsError::NotFound(_) => StatusCode::NOT_FOUND,
            OpsError::Invalid(_) => StatusCode::BAD_REQUEST,
            OpsError::Conflict(_) => StatusCode::CONFLICT,
            OpsError::Internal(m) => {
                tracing::error!("console: {m}");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match self.0 {
            OpsError::Internal(_) => "internal error; see the appliance log".to_string(),
            other => other.to_string(),
        };
        let chrome = Chrome {
            title: "Error".into(),
            active: "",
            user: String::new(),
            dev_open: false,
        };
        (status, ErrorPage { chrome, message }).into_response()
    }
}

/// A page or its error.
pub type PageResult<T> = Result<T, PageError>;

#[derive(Template, WebTemplate)]
#[template(path = "console/overview.html")]
pub struct OverviewPage {
    chrome: Chrome,
    o: Overview,
    started: String,
}

pub async fn overview(State(s): S, ConsoleAdmin(a): ConsoleAdmin) -> PageResult<OverviewPage> {
    let o = s.ops.overview().await?;
    Ok(OverviewPage {
        chrome: Chrome::new(&a, "overview", "Overview"),
        started: when(s.ops.started_at),
        o,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/provisioning.html")]
pub struct ProvisioningPage {
    chrome: Chrome,
    p: Provisioned,
}

pub async fn provisioning(
    State(s): S,
    ConsoleAdmin(a): ConsoleAdmin,
) -> PageResult<ProvisioningPage> {
    Ok(ProvisioningPage {
        chrome: Chrome::new(&a, "provisioning", "Provisioning"),
        p: s.ops.provisioned().await?,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/devices.html")]
pub struct DevicesPage {
    chrome: Chrome,
    q: ClientQuery,
    list: ClientPage,
    pages: usize,
    query: String,
}

pub async fn devices(
    State(s): S,
    ConsoleAdmin(a): ConsoleAdmin,
    Query(q): Query<ClientQuery>,
) -> PageResult<DevicesPage> {
    let list = s.ops.clients(q.clone()).await;
    let pages = list.total.div_ceil(list.per_page).max(1);
    let part = |k: &str, v: &Option<String>| {
        v.as_deref()
            .filter(|v| !v.is_empty())
            .map(|v| format!("&{k}={}", url_encode(v)))
            .unwrap_or_default()
    };
    let query = format!(
        "{}{}{}{}",
        part("group", &q.group),
        part("device", &q.device),
        part("address", &q.address),
        if q.online_only {
            "&online_only=true"
        } else {
            ""
        }
    );
    Ok(DevicesPage {
        chrome: Chrome::new(&a, "devices", "Devices"),
        q,
        list,
        pages,
        query,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/device.html")]
pub struct DevicePage {
    chrome: Chrome,
    r: DeviceReport,
    path: String,
}

pub async fn device(
    State(s): S,
    ConsoleAdmin(a): ConsoleAdmin,
    Path(client_id): Path<String>,
) -> PageResult<DevicePage> {
    let r = s.ops.device(client_id.clone()).await?;
    Ok(DevicePage {
        chrome: Chrome::new(&a, "devices", client_id.clone()),
        path: url_encode(&client_id),
        r,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "console/channels.html")]
pub struct ChannelsPage {
    chrome: Chrome,
    channels: Vec<ChannelInfo>,
}

pub async fn channels(State(s): S, ConsoleAdmin(a): ConsoleAdmin) -> ChannelsPage {
    ChannelsPage {
        chrome: Chrome::new(&a, "channels", "RTC channels"),
        channels: s.ops.channels(),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/tail.html")]
pub struct TailPage {
    chrome: Chrome,
}

pub async fn tail(ConsoleAdmin(a): ConsoleAdmin) -> TailPage {
    TailPage {
        chrome: Chrome::new(&a, "tail", "Live tail"),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "console/api_keys.html")]
pub struct ApiKeysPage {
    chrome: Chrome,
    keys: Vec<ApiKeyRow>,
}

pub async fn api_keys(State(s): S, ConsoleAdmin(a): ConsoleAdmin) -> PageResult<ApiKeysPage> {
    Ok(ApiKeysPage {
        chrome: Chrome::new(&a, "api-keys", "API keys"),
        keys: s.ops.api_keys().await?,
    })
}
