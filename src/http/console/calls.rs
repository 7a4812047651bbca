//! Console pages for calls: the list (filter by state and user) and one
//! call with its participants and its timeline as a sequence diagram.

use std::sync::Arc;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};

use super::diagram::{layout, Diagram};
use super::pages::PageResult;
use super::{url_encode, Chrome};
use crate::http::auth::ConsoleAdmin;
use crate::http::{when, HttpState};
use crate::store::{CallPage, CallQuery, CallRow, TimelineEntry};

type S = State<Arc<HttpState>>;

#[derive(Template, WebTemplate)]
#[template(path = "console/calls.html")]
pub struct CallsPage {
    chrome: Chrome,
    q: CallQuery,
    list: CallPage,
    query: String,
}

pub async fn calls(
    State(s): S,
    ConsoleAdmin(a): ConsoleAdmin,
    Query(q): Query<CallQuery>,
) -> PageResult<CallsPage> {
    let list = s.ops.calls(q.clone()).await?;
    let query = [("state", &q.state), ("user", &q.user)]
        .iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!("&{k}={}", url_encode(v)))
        })
        .collect();
    Ok(CallsPage {
        chrome: Chrome::new(&a, "calls", "Calls"),
        q,
        list,
        query,
    })
}

/// One participant as the call page shows it.
pub struct PartRow {
    user: String,
    state: String,
    device: String,
    audio_muted: bool,
    video_muted: bool,
}

/// One timeline message as the call page's table shows it.
pub struct MsgRow {
    at: String,
    direction: String,
    client_id: String,
    kind: String,
    message: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "console/call.html")]
pub struct CallView {
    chrome: Chrome,
    row: CallRow,
    created: String,
    ended: String,
    participants: Vec<PartRow>,
    diagram: Diagram,
    messages: Vec<MsgRow>,
    webhooks: Vec<HookRow>,
    path: String,
}

/// One webhook event of the call and its attempts.
pub struct HookRow {
    at: String,
    id: String,
    kind: String,
    state: String,
    attempts: Vec<String>,
}

fn hook_row(d: &crate::store::Delivery) -> HookRow {
    HookRow {
        at: when(d.created_at),
        id: d.id.clone(),
        kind: d.kind.clone(),
        state: d.state.clone(),
        attempts: d
            .attempts
            .iter()
            .map(|a| {
                let status = a
                    .status
                    .map_or("no answer".to_string(), |c| format!("HTTP {c}"));
                let error = a
                    .error
                    .as_deref()
                    .filter(|_| a.status.is_none())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                format!("{} {status}{error} ({} ms)", when(a.at), a.ms)
            })
            .collect(),
    }
}

fn word<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

fn msg_row(e: &TimelineEntry) -> MsgRow {
    MsgRow {
        at: when(e.at),
        direction: e.direction.clone(),
        client_id: e.client_id.clone(),
        kind: e.kind.clone(),
        message: e.message.to_string(),
    }
}

pub async fn call(
    State(s): S,
    ConsoleAdmin(a): ConsoleAdmin,
    Path(id): Path<String>,
) -> PageResult<CallView> {
    let call = s.ops.call(id.clone()).await?;
    let timeline = s.ops.timeline(id.clone()).await?;
    let webhooks = s.ops.call_webhooks(id.clone()).await?;
    let participants = call
        .participants
        .iter()
        .map(|(u, p)| PartRow {
            user: u.clone(),
            state: word(&p.state),
            device: p.device.clone().unwrap_or_default(),
            audio_muted: p.audio_muted,
            video_muted: p.video_muted,
        })
        .collect();
    let row = CallRow::from(call);
    Ok(CallView {
        chrome: Chrome::new(&a, "calls", format!("Call {id}")),
        created: when(row.created_at),
        ended: row.ended_at.map(when).unwrap_or_default(),
        participants,
        diagram: layout(&timeline),
        messages: timeline.iter().map(msg_row).collect(),
        webhooks: webhooks.iter().map(hook_row).collect(),
        path: url_encode(&id),
        row,
    })
}
