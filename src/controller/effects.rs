//! Turning the state machine's effects into one durable batch: call
//! snapshots, timers, downlink envelopes (with RTC join parameters issued),
//! remembered replies and the call timeline; plus the RTC operations to do
//! once the batch is written.

use serde_json::{json, Value};

use super::new_id;
use super::protocol::{self, WireError};
use super::runtime::Runtime;
use crate::calls::{CallError, Command, Device, Effect, Event, JoinFor, Millis, ReplyBody};
use crate::directory::{SharedDirectory, TopicRole};
use crate::rtc::token::rtc_user_id;
use crate::store::{Batch, TimelineEntry};

/// Time to live of a reply (ms): a device that is offline longer asks again (sync).
pub(super) const REPLY_TTL: Millis = 60_000;

/// An uplink request being processed: sender, type, command and the message as received.
pub(super) type RequestMeta = (Device, String, Command, Value);

/// An RTC operation to do after the batch is written.
pub(super) enum RtcOp {
    Open { channel: String, call_id: String },
    Close { channel: String },
    Revoke { channel: String, user: String },
}

/// The P2P inbox of `client_id` on its instance's downlink topic.
pub(super) fn inbox(directory: &SharedDirectory, client_id: &str) -> Option<String> {
    let parts = crate::policy::parse_client_id(client_id, usize::MAX).ok()?;
    let dir = directory.get();
    let instance = dir.group_instance(parts.group)?;
    let mut downlinks: Vec<&String> = dir
        .topics
        .iter()
        .filter(|(_, t)| t.instance == instance && t.role == TopicRole::Downlink)
        .map(|(n, _)| n)
        .collect();
    downlinks.sort();
    downlinks
        .first()
        .map(|parent| format!("{parent}/p2p/{client_id}"))
}

/// Builds one input's batch.
pub(super) struct Fx<'a> {
    rt: &'a Runtime,
    now: Millis,
    batch: Batch,
    rtc: Vec<RtcOp>,
}

impl<'a> Fx<'a> {
    pub fn new(rt: &'a Runtime, now: Millis) -> Self {
        Fx {
            rt,
            now,
            batch: Batch::default(),
            rtc: Vec::new(),
        }
    }

    pub fn finish(self) -> (Batch, Vec<RtcOp>) {
        (self.batch, self.rtc)
    }

    fn inbox(&self, client_id: &str) -> Option<String> {
        inbox(&self.rt.directory, client_id)
    }

    /// Queues a downlink envelope to `client_id` and logs it on `call_id`'s timeline.
    fn send(
        &mut self,
        client_id: &str,
        kind: &str,
        req: Option<&str>,
        ttl: Millis,
        body: Value,
        call_id: Option<&str>,
    ) {
        let Some(topic) = self.inbox(client_id) else {
            tracing::warn!(
                client_id,
                "no downlink topic for this client's instance: message dropped"
            );
            return;
        };
        let env = protocol::downlink(&new_id(), kind, req, self.now, ttl, body);
        let payload = serde_json::to_string(&env).unwrap_or_default();
        tracing::info!(
            client_id,
            req = req.unwrap_or(""),
            call_id = call_id.unwrap_or(""),
            kind,
            "downlink"
        );
        if let Some(call_id) = call_id {
            self.batch.events.push((
                call_id.to_string(),
                TimelineEntry {
                    at: self.now,
                    direction: "out".into(),
                    client_id: client_id.to_string(),
                    kind: kind.to_string(),
                    message: without_join_tokens(serde_json::to_value(&env).unwrap_or_default()),
                },
            ));
        }
        self.batch
            .outbox
            .push((client_id.to_string(), topic, payload, self.now + ttl));
    }

    /// Answers a message that never reached the state machine.
    pub fn wire_error(&mut self, from: &Device, req: Option<&str>, e: WireError) {
        self.send(
            &from.client_id,
            "error",
            req,
            REPLY_TTL,
            protocol::error_body(e.code(), &e.to_string()),
            None,
        );
    }
}

/// A message as the call's timeline keeps it: RTC join tokens are replaced
/// by `"(removed)"`, so the stored log (and the console's export) cannot
/// be used to join a channel.
pub fn without_join_tokens(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Object(join)) = m.get_mut("join") {
                    for k in ["token", "token_b64"] {
                        if let Some(t) = join.get_mut(k) {
                            *t = Value::String("(removed)".into());
                        }
                    }
                }
                m.values_mut().for_each(walk);
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

impl Fx<'_> {
    /// Logs a request on its call's timeline (the call id from the command or its reply).
    /// Returns the call id it names or was answered with, if any.
    pub fn log_request(&mut self, meta: &RequestMeta, produced: &[Effect]) -> Option<String> {
        let (from, kind, cmd, message) = meta;
        let call_id = command_call_id(cmd).or_else(|| {
            produced.iter().find_map(|e| match e {
                Effect::Reply {
                    result: Ok(ReplyBody::Joined { call, .. }),
                    ..
                } => Some(call.call_id.clone()),
                _ => None,
            })
        });
        let named = call_id.clone();
        // Only a participant's requests go on a call's timeline: anyone can
        // name a call id, and the log must not grow from outsiders' requests.
        let call_id = call_id.filter(|id| {
            self.rt
                .engine
                .call(id)
                .is_some_and(|c| c.participants.contains_key(&from.user))
        });
        if let Some(call_id) = call_id {
            let entry = TimelineEntry {
                at: self.now,
                direction: "in".into(),
                client_id: from.client_id.clone(),
                kind: kind.clone(),
                message: message.clone(),
            };
            self.batch.events.push((call_id, entry));
        }
        named
    }

    fn join(&self, j: &JoinFor) -> Value {
        let p = self
            .rt
            .rtc
            .join_params(&j.channel, &rtc_user_id(&j.user), j.issued_at);
        let mut v = serde_json::to_value(p).unwrap_or_default();
        v["call_id"] = json!(j.call_id);
        v
    }

    fn reply_body(&self, body: &ReplyBody) -> Value {
        match body {
            ReplyBody::Done { call_id } => json!({ "call_id": call_id }),
            ReplyBody::Joined {
                call,
                join,
                unreachable,
            } => {
                json!({ "call": call, "join": self.join(join), "unreachable": unreachable })
            }
            ReplyBody::Snapshot {
                calls,
                invites,
                joins,
            } => json!({
                "calls": calls,
                "invites": invites,
                "joins": joins.iter().map(|j| self.join(j)).collect::<Vec<_>>(),
            }),
            ReplyBody::Contacts { users } => json!({ "users": users }),
        }
    }

    /// Adds one effect.
    pub fn effect(&mut self, e: Effect) {
        match e {
            Effect::Reply { to, req, result } => {
                let until = self.now + self.rt.settings.rules.reply_memory;
                let call_id = match &result {
                    Ok(ReplyBody::Done { call_id }) => Some(call_id.clone()),
                    Ok(ReplyBody::Joined { call, .. }) => Some(call.call_id.clone()),
                    _ => None,
                };
                let (kind, body) = match &result {
                    Ok(b) => ("result", self.reply_body(b)),
                    Err(e) => ("error", error_body(*e)),
                };
                self.send(&to, kind, Some(&req), REPLY_TTL, body, call_id.as_deref());
                if !matches!(result, Ok(ReplyBody::Contacts { .. })) {
                    self.batch.replies.push((to, req, result, until));
                }
            }
            Effect::Notify { to, event, ttl } => {
                let v = serde_json::to_value(&event).unwrap_or_default();
                let kind = v["type"].as_str().unwrap_or_default().to_string();
                let call_id = event_call_id(&event);
                for client in to {
                    self.send(&client, &kind, None, ttl, v["body"].clone(), Some(&call_id));
                }
            }
            Effect::OpenChannel { channel, call_id } => {
                self.rtc.push(RtcOp::Open { channel, call_id })
            }
            Effect::CloseChannel { channel } => self.rtc.push(RtcOp::Close { channel }),
            Effect::RevokeRtc { channel, user } => self.rtc.push(RtcOp::Revoke { channel, user }),
            Effect::SetTimer { timer, at } => self.batch.timers.push((timer, Some(at))),
            Effect::CancelTimer(t) => self.batch.timers.push((t, None)),
            Effect::Saved(id) => {
                if let Some(c) = self.rt.engine.call(&id) {
                    self.batch.calls.retain(|x| x.id != id);
                    self.batch.calls.push(c.clone());
                }
            }
        }
    }
}

fn error_body(e: CallError) -> Value {
    protocol::error_body(protocol::call_error_code(e), &e.to_string())
}

fn command_call_id(cmd: &Command) -> Option<String> {
    match cmd {
        Command::Ringing { call_id }
        | Command::Accept { call_id }
        | Command::Decline { call_id }
        | Command::Cancel { call_id }
        | Command::Invite { call_id, .. }
        | Command::Leave { call_id }
        | Command::End { call_id }
        | Command::Mute { call_id, .. }
        | Command::Remove { call_id, .. }
        | Command::TransferHost { call_id, .. } => Some(call_id.clone()),
        Command::Start { .. } | Command::Sync | Command::Contacts => None,
    }
}

fn event_call_id(e: &Event) -> String {
    match e {
        Event::Invite { call, .. } => call.call_id.clone(),
        Event::Participant { call_id, .. }
        | Event::AnsweredElsewhere { call_id, .. }
        | Event::Ended { call_id, .. }
        | Event::Cancelled { call_id, .. }
        | Event::Missed { call_id, .. }
        | Event::Muted { call_id, .. }
        | Event::Removed { call_id, .. }
        | Event::Host { call_id, .. } => call_id.clone(),
    }
}
