//! The browser softphone (`/phone`): one page whose script (static/phone)
//! signs in as a device with the JavaScript SDK (static/sdk) and carries
//! calls with WebRTC media between browsers. The page only needs to know
//! where the MQTT-over-WebSocket listeners are.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;

use super::HttpState;

#[derive(Template, WebTemplate)]
#[template(path = "phone/index.html")]
pub struct PhonePage {
    ws_port: u16,
    wss_port: u16,
    dev: bool,
    client_id: String,
    ice_servers: String,
}

/// `?client_id=` pre-fills the sign-in (the console's "open the softphone as this device").
#[derive(Deserialize)]
pub struct PhoneQuery {
    client_id: Option<String>,
}

/// `GET /phone`.
pub async fn page(State(s): State<Arc<HttpState>>, Query(q): Query<PhoneQuery>) -> PhonePage {
    PhonePage {
        ws_port: s.ports.ws,
        wss_port: s.ports.wss,
        dev: s.ops.dev,
        client_id: q.client_id.unwrap_or_default(),
        ice_servers: serde_json::to_string(
            &s.ice_servers
                .iter()
                .map(|u| serde_json::json!({ "urls": u }))
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into()),
    }
}
