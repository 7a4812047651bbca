//! The signaling protocol on the wire (`docs/protocol.md`): the JSON
//! envelope, decoding uplinks into typed commands, encoding downlinks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::schema::bodies::{
    CallIdBody, InviteBody, MuteBody, RemoveBody, RequestType, StartBody, TransferHostBody,
};
use crate::calls::{CallError, Command, Kind, Media};

/// Protocol version carried in every envelope.
pub const VERSION: u32 = 1;

/// Default time to live of a request that names none (ms).
pub const DEFAULT_TTL: i64 = 30_000;

/// Longest time to live a message may ask for (ms).
pub const MAX_TTL: i64 = 24 * 3600 * 1000;

/// The envelope of every message, both directions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope {
    /// Protocol version: 1 (another number is answered `unsupported_version`).
    #[schemars(extend("const" = 1))]
    pub v: u32,
    /// Message id, unique per sender, at most 128 bytes. Every downlink has a
    /// fresh one; devices drop a downlink whose id they have seen.
    #[schemars(length(min = 1, max = 128))]
    pub id: String,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Request id (at most 128 bytes): set by the requester (default: `id`),
    /// kept by its retries, carried by its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub req: Option<String>,
    /// Sender's send time, ms since the Unix epoch.
    pub ts: i64,
    /// Time to live in ms, counted from `ts` (requests: default 30000,
    /// clamped to 0..=86400000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
    /// Optional claimed sender; must equal the authenticated client id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Type-specific content.
    #[serde(default)]
    pub body: Value,
}

/// Why an uplink could not be turned into a command (before the state
/// machine). Its serde name is its code.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, thiserror::Error, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WireError {
    /// Not JSON.
    #[error("the message is not valid JSON")]
    BadJson,
    /// JSON, but not an envelope (missing or mistyped `v`, `id`, `type`, `ts`).
    #[error("the message is not a valid envelope")]
    BadEnvelope,
    /// `v` is not 1.
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    /// `type` is not a request type.
    #[error("unknown message type")]
    UnknownType,
    /// The body lacks or mistypes a field.
    #[error("the body does not fit the message type")]
    BadBody,
    /// Larger than the controller accepts.
    #[error("the message is too large")]
    TooLarge,
    /// `from` names someone else.
    #[error("the message claims another sender")]
    ForgedSender,
    /// A call id or user id is longer than 128 characters, or `to` names more than 64 users.
    #[error("a field is longer than allowed")]
    TooLong,
}

impl WireError {
    /// The error code on the wire.
    pub fn code(self) -> &'static str {
        match self {
            WireError::BadJson => "bad_json",
            WireError::BadEnvelope => "bad_envelope",
            WireError::UnsupportedVersion => "unsupported_version",
            WireError::UnknownType => "unknown_type",
            WireError::BadBody => "bad_body",
            WireError::TooLarge => "too_large",
            WireError::ForgedSender => "forged_sender",
            WireError::TooLong => "too_long",
        }
    }
}

/// The error code of a request the controller could not store (its disk or
/// database failed): retry it with the same `req`.
pub const UNAVAILABLE: &str = "unavailable";

/// The error code on the wire of a state machine error.
pub fn call_error_code(e: CallError) -> &'static str {
    match e {
        CallError::NotFound => "not_found",
        CallError::Ended => "call_ended",
        CallError::NotParticipant => "not_participant",
        CallError::NotHost => "not_host",
        CallError::InvalidState => "invalid_state",
        CallError::AnsweredElsewhere => "answered_elsewhere",
        CallError::Busy => "busy",
        CallError::UnknownUser => "unknown_user",
        CallError::BadRequest => "bad_request",
        CallError::Stale => "stale",
    }
}

/// A decoded uplink.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The envelope as received.
    pub envelope: Envelope,
    /// Request id (the envelope's `req`, or its `id`).
    pub req: String,
    /// The command.
    pub cmd: Command,
}

/// Decodes an uplink from `sender` (the authenticated client id). An error
/// comes with the request id to answer, when one could be read.
pub fn decode(
    payload: &[u8],
    sender: &str,
    max_bytes: usize,
) -> Result<Request, (WireError, Option<String>)> {
    // An oversize message is read only to find its request id (so the
    // error carries it) when that costs at most four times the limit; the
    // broker caps bodies at 64 KiB anyway.
    if payload.len() > max_bytes.saturating_mul(4) {
        return Err((WireError::TooLarge, None));
    }
    let raw: Value = serde_json::from_slice(payload).map_err(|_| {
        let e = if payload.len() > max_bytes {
            WireError::TooLarge
        } else {
            WireError::BadJson
        };
        (e, None)
    })?;
    let req_hint = raw
        .get("req")
        .or_else(|| raw.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if payload.len() > max_bytes {
        return Err((WireError::TooLarge, req_hint));
    }
    let env: Envelope =
        serde_json::from_value(raw).map_err(|_| (WireError::BadEnvelope, req_hint.clone()))?;
    let req = env.req.clone().unwrap_or_else(|| env.id.clone());
    let fail = |e: WireError| (e, Some(req.clone()));
    if env.v != VERSION {
        return Err(fail(WireError::UnsupportedVersion));
    }
    if env.id.is_empty() || env.id.len() > 128 || req.len() > 128 {
        return Err(fail(WireError::BadEnvelope));
    }
    if env.from.as_deref().is_some_and(|f| f != sender) {
        return Err(fail(WireError::ForgedSender));
    }
    let cmd = command(&env.kind, &env.body).map_err(fail)?;
    bounded(&cmd).map_err(fail)?;
    Ok(Request {
        envelope: env,
        req,
        cmd,
    })
}

/// Most users one request may name.
pub const MAX_USERS: usize = 64;
/// Longest call id or user id.
pub const MAX_ID_LEN: usize = 128;

/// Refuses ids and user lists longer than the protocol allows.
fn bounded(cmd: &Command) -> Result<(), WireError> {
    let (call_id, users): (Option<&String>, Vec<&String>) = match cmd {
        Command::Start { to, .. } => (None, to.iter().collect()),
        Command::Invite { call_id, to } => (Some(call_id), to.iter().collect()),
        Command::Mute {
            call_id, target, ..
        } => (Some(call_id), target.iter().collect()),
        Command::Remove { call_id, target } => (Some(call_id), vec![target]),
        Command::TransferHost { call_id, to } => (Some(call_id), vec![to]),
        Command::Ringing { call_id }
        | Command::Accept { call_id }
        | Command::Decline { call_id }
        | Command::Cancel { call_id }
        | Command::Leave { call_id }
        | Command::End { call_id } => (Some(call_id), vec![]),
        Command::Sync | Command::Contacts => (None, vec![]),
    };
    let too_long = |s: &&String| s.len() > MAX_ID_LEN;
    if users.len() > MAX_USERS
        || users.iter().any(too_long)
        || call_id.is_some_and(|c| too_long(&c))
    {
        return Err(WireError::TooLong);
    }
    Ok(())
}

/// Parses a request body with its type (a mistyped or missing field is `bad_body`).
fn body<'a, T: Deserialize<'a>>(body: &'a Value) -> Result<T, WireError> {
    T::deserialize(body).map_err(|_| WireError::BadBody)
}

fn command(kind: &str, b: &Value) -> Result<Command, WireError> {
    let t = RequestType::deserialize(Value::String(kind.to_string()))
        .map_err(|_| WireError::UnknownType)?;
    let call_id = || body::<CallIdBody>(b).map(|b| b.call_id);
    Ok(match t {
        RequestType::Start => {
            let StartBody {
                to,
                kind,
                media,
                title,
            } = body(b)?;
            let to: Vec<String> = to.into();
            let kind = kind.unwrap_or(if to.len() == 1 {
                Kind::Call
            } else {
                Kind::Meeting
            });
            Command::Start {
                to,
                kind,
                media: media.unwrap_or(Media::Video),
                title: title.map(|t| t.chars().take(200).collect()),
            }
        }
        RequestType::Ringing => Command::Ringing {
            call_id: call_id()?,
        },
        RequestType::Accept => Command::Accept {
            call_id: call_id()?,
        },
        RequestType::Decline => Command::Decline {
            call_id: call_id()?,
        },
        RequestType::Cancel => Command::Cancel {
            call_id: call_id()?,
        },
        RequestType::Invite => {
            let InviteBody { call_id, to } = body(b)?;
            Command::Invite {
                call_id,
                to: to.into(),
            }
        }
        RequestType::Leave | RequestType::Hangup => Command::Leave {
            call_id: call_id()?,
        },
        RequestType::End => Command::End {
            call_id: call_id()?,
        },
        RequestType::Mute => {
            let MuteBody {
                call_id,
                muted,
                media,
                target,
            } = body(b)?;
            Command::Mute {
                call_id,
                target,
                media: media.unwrap_or(Media::Audio),
                muted,
            }
        }
        RequestType::Remove => {
            let RemoveBody { call_id, target } = body(b)?;
            Command::Remove { call_id, target }
        }
        RequestType::TransferHost => {
            let TransferHostBody { call_id, to } = body(b)?;
            Command::TransferHost { call_id, to }
        }
        // The body of `sync` is not read.
        RequestType::Sync => Command::Sync,
        RequestType::Contacts => Command::Contacts,
    })
}

/// A downlink message.
pub fn downlink(
    id: &str,
    kind: &str,
    req: Option<&str>,
    now: i64,
    ttl: i64,
    body: Value,
) -> Envelope {
    Envelope {
        v: VERSION,
        id: id.to_string(),
        kind: kind.to_string(),
        req: req.map(str::to_string),
        ts: now,
        ttl: Some(ttl),
        from: None,
        body,
    }
}

/// The body of an `error` downlink.
pub fn error_body(code: &str, message: &str) -> Value {
    json!({ "code": code, "message": message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(kind: &str, body: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({"v": 1, "id": "m1", "type": kind, "ts": 1, "body": body}))
            .unwrap()
    }

    #[test]
    fn decodes_requests() {
        let r = decode(
            &env("call.start", json!({"to": "bob"})),
            "GID_a@@@alice",
            1000,
        )
        .unwrap();
        assert_eq!(r.req, "m1", "req defaults to the message id");
        assert_eq!(
            r.cmd,
            Command::Start {
                to: vec!["bob".into()],
                kind: Kind::Call,
                media: Media::Video,
                title: None
            }
        );
        let r = decode(
            &env("call.start", json!({"to": ["b", "c"], "media": "audio"})),
            "x",
            1000,
        )
        .unwrap();
        assert!(matches!(
            r.cmd,
            Command::Start {
                kind: Kind::Meeting,
                media: Media::Audio,
                ..
            }
        ));
        let r = decode(
            &env("call.mute", json!({"call_id": "c", "muted": true})),
            "x",
            1000,
        )
        .unwrap();
        assert_eq!(
            r.cmd,
            Command::Mute {
                call_id: "c".into(),
                target: None,
                media: Media::Audio,
                muted: true
            }
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let code = |p: &[u8]| decode(p, "GID_a@@@alice", 200).unwrap_err().0;
        assert_eq!(code(b"{not json"), WireError::BadJson);
        assert_eq!(code(br#"{"v":1,"type":"sync"}"#), WireError::BadEnvelope);
        assert_eq!(code(&env("call.fly", json!({}))), WireError::UnknownType);
        assert_eq!(code(&env("call.accept", json!({}))), WireError::BadBody);
        assert_eq!(code(&[b' '; 201]), WireError::TooLarge);
        let big = serde_json::to_vec(&json!({"v": 1, "id": "m", "req": "r9", "type": "sync", "ts": 1, "body": {"pad": "x".repeat(300)}})).unwrap();
        assert_eq!(
            decode(&big, "x", 200).unwrap_err(),
            (WireError::TooLarge, Some("r9".into())),
            "the error carries the request id"
        );
        let v2 = serde_json::to_vec(&json!({"v": 2, "id": "m", "type": "sync", "ts": 1})).unwrap();
        assert_eq!(code(&v2), WireError::UnsupportedVersion);
        let forged = serde_json::to_vec(
            &json!({"v": 1, "id": "m", "type": "sync", "ts": 1, "from": "GID_a@@@bob"}),
        )
        .unwrap();
        let (e, req) = decode(&forged, "GID_a@@@alice", 200).unwrap_err();
        assert_eq!((e, req.as_deref()), (WireError::ForgedSender, Some("m")));
        let huge = serde_json::to_vec(&json!({"v": 1, "id": "m", "req": "r9", "type": "sync", "ts": 1, "body": {"pad": "x".repeat(900)}})).unwrap();
        assert_eq!(
            decode(&huge, "x", 200).unwrap_err(),
            (WireError::TooLarge, None),
            "past four times the limit it is not read at all"
        );
    }

    #[test]
    fn refuses_ids_and_lists_past_their_limits() {
        let code = |p: &[u8]| decode(p, "GID_a@@@alice", 64 * 1024).unwrap_err().0;
        let many: Vec<String> = (0..=MAX_USERS).map(|i| format!("u{i}")).collect();
        assert_eq!(
            code(&env("call.start", json!({"to": many}))),
            WireError::TooLong
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            code(&env("call.start", json!({"to": [long.clone()]}))),
            WireError::TooLong
        );
        assert_eq!(
            code(&env("call.accept", json!({"call_id": long.clone()}))),
            WireError::TooLong
        );
        assert_eq!(
            code(&env("call.remove", json!({"call_id": "c", "target": long}))),
            WireError::TooLong
        );
        let fine: Vec<String> = (0..MAX_USERS).map(|i| format!("u{i}")).collect();
        assert!(decode(
            &env("call.start", json!({"to": fine})),
            "GID_a@@@alice",
            64 * 1024
        )
        .is_ok());
    }
}
