//! Webhook events from what the controller did, written in the same
//! transaction as the state that caused them: a call started, was
//! answered, ended (with its reason and duration), was missed by a user;
//! a device connected or disconnected (as the controller saw presence).

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use crate::calls::{Call, CallState, Device, Effect, Event, Millis, PState};
use crate::store::WebhookEvent;

/// Where a call stands, as last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ringing,
    Active,
    Ended,
}

/// The calls' phases, and when each was answered.
#[derive(Debug, Default)]
pub(super) struct Phases(HashMap<String, (Phase, Option<Millis>)>);

fn phase(c: &Call) -> Phase {
    match c.state {
        CallState::Ringing => Phase::Ringing,
        CallState::Active => Phase::Active,
        CallState::Ended(_) => Phase::Ended,
    }
}

/// When the call was first answered, as far as its participants tell.
fn answered_at(c: &Call) -> Option<Millis> {
    c.participants.values().filter_map(|p| p.joined_at).min()
}

fn event(
    instance: &str,
    kind: &str,
    call_id: Option<&str>,
    at: Millis,
    data: Value,
) -> WebhookEvent {
    let timestamp = crate::http::rfc3339(at);
    let body = json!({ "type": kind, "timestamp": timestamp, "data": data });
    WebhookEvent {
        id: format!("msg_{}", super::new_id()),
        instance: instance.to_string(),
        kind: kind.to_string(),
        call_id: call_id.map(str::to_string),
        payload: body.to_string(),
        at,
    }
}

impl Phases {
    /// The phases of the calls a run starts with (no events for them).
    pub(super) fn of<'a>(calls: impl Iterator<Item = &'a Call>) -> Phases {
        Phases(
            calls
                .map(|c| (c.id.clone(), (phase(c), answered_at(c))))
                .collect(),
        )
    }

    /// Events for what `produced` changed; `call` finds a call by id.
    pub(super) fn changed<'a>(
        &mut self,
        produced: &[Effect],
        call: impl Fn(&str) -> Option<&'a Call>,
        now: Millis,
    ) -> Vec<WebhookEvent> {
        let mut out = Vec::new();
        let mut missed = BTreeSet::new();
        for e in produced {
            match e {
                Effect::Saved(id) => {
                    if let Some(c) = call(id) {
                        self.call_changed(c, now, &mut out);
                    }
                }
                Effect::Notify {
                    to,
                    event: Event::Missed { call_id, from, .. },
                    ..
                } => {
                    for client_id in to {
                        let user = client_id
                            .split_once("@@@")
                            .map_or(client_id.as_str(), |(_, d)| d);
                        missed.insert((call_id.clone(), user.to_string(), from.clone()));
                    }
                }
                _ => {}
            }
        }
        for (call_id, user, from) in missed {
            if let Some(c) = call(&call_id) {
                let data =
                    json!({ "call_id": call_id, "user": user, "from": from, "media": c.media });
                out.push(event(&c.instance, "call.missed", Some(&call_id), now, data));
            }
        }
        out
    }

    fn call_changed(&mut self, c: &Call, now: Millis, out: &mut Vec<WebhookEvent>) {
        let new = phase(c);
        let (old, answered) = self
            .0
            .get(&c.id)
            .copied()
            .map_or((None, None), |(p, a)| (Some(p), a));
        if old == Some(new) {
            return;
        }
        let id = Some(c.id.as_str());
        if old.is_none() {
            let to: Vec<&String> = c.participants.keys().filter(|u| **u != c.host).collect();
            let data = json!({ "call_id": c.id, "from": c.host, "to": to, "media": c.media, "kind": c.kind, "title": c.title });
            out.push(event(&c.instance, "call.started", id, c.created_at, data));
        }
        let mut answered = answered;
        if new == Phase::Active && old != Some(Phase::Active) {
            let by: Vec<&String> = c
                .participants
                .iter()
                .filter(|(u, p)| {
                    **u != c.host && matches!(p.state, PState::Accepted | PState::Joined)
                })
                .map(|(u, _)| u)
                .collect();
            answered = Some(now);
            out.push(event(
                &c.instance,
                "call.answered",
                id,
                now,
                json!({ "call_id": c.id, "by": by }),
            ));
        }
        if let CallState::Ended(reason) = c.state {
            let ended = c.ended_at.unwrap_or(now);
            let since = answered.or_else(|| answered_at(c).filter(|_| old == Some(Phase::Active)));
            let duration = since.map_or(0, |a| (ended - a).max(0) / 1000);
            let data = json!({ "call_id": c.id, "reason": reason, "answered": since.is_some(), "duration_secs": duration });
            out.push(event(&c.instance, "call.ended", id, ended, data));
        }
        self.0.insert(c.id.clone(), (new, answered));
    }

    /// Forgets pruned calls.
    pub(super) fn forget(&mut self, ids: &[String]) {
        for id in ids {
            self.0.remove(id);
        }
    }
}

/// `device.connected` or `device.disconnected`.
pub(super) fn presence(
    device: &Device,
    connected: bool,
    reason: &str,
    now: Millis,
) -> WebhookEvent {
    let kind = if connected {
        "device.connected"
    } else {
        "device.disconnected"
    };
    let mut data = json!({ "client_id": device.client_id, "user": device.user });
    if !connected {
        data["reason"] = json!(reason);
    }
    event(&device.instance, kind, None, now, data)
}
