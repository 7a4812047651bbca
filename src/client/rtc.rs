//! Entering and leaving an RTC channel of the appliance's mock RTC service
//! with the join parameters the controller gave (`docs/protocol.md`,
//! "Joining the RTC channel"). A real RTC SDK takes this place in an app.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};

use super::Join;

/// A place in an RTC channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcSession {
    /// The call.
    pub call_id: String,
    /// Channel id.
    pub channel: String,
    /// RTC user id.
    pub userid: String,
    /// Session id the service gave.
    pub session: String,
    /// Who was in the channel right after joining.
    pub members: Vec<String>,
}

/// Why the RTC service did not let us in (or out).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcError {
    /// An HTTP error answer (`invalid_token`, `token_expired`, `revoked`, `no_channel` …).
    #[error("{code} (HTTP {status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Explanation.
        message: String,
    },
    /// No answer.
    #[error("the RTC service did not answer: {0}")]
    Unreachable(String),
}

/// Joins with the single-parameter token at `base` (e.g.
/// `http://127.0.0.1:8080/rtc/v1`, the first `gslb` entry).
pub async fn join(base: &str, j: &Join) -> Result<RtcSession, RtcError> {
    let v = post(base, "/join", &json!({ "token": j.params.token_b64 })).await?;
    Ok(RtcSession {
        call_id: j.call_id.clone(),
        channel: j.params.channel.clone(),
        userid: j.params.userid.clone(),
        session: v["session"].as_str().unwrap_or_default().to_string(),
        members: v["members"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|m| m.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    })
}

/// Leaves the channel.
pub async fn leave(base: &str, s: &RtcSession) -> Result<(), RtcError> {
    post(
        base,
        "/leave",
        &json!({ "channel": s.channel, "userid": s.userid, "session": s.session }),
    )
    .await
    .map(|_| ())
}

/// `POST {base}{path}` with a JSON body over plain HTTP/1.1.
async fn post(base: &str, path: &str, body: &Value) -> Result<Value, RtcError> {
    let down = |e: &dyn std::fmt::Display| RtcError::Unreachable(e.to_string());
    let rest = base
        .strip_prefix("http://")
        .ok_or_else(|| down(&format!("only http:// RTC URLs are supported (got {base})")))?;
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await
        .map_err(|e| down(&e))?
        .next()
        .ok_or_else(|| down(&format!("cannot resolve {authority}")))?;
    let (status, bytes) = crate::probe::http_request(
        addr,
        hyper::Method::POST,
        &format!("{prefix}{path}"),
        Some(body.to_string()),
        Duration::from_secs(10),
    )
    .await
    .map_err(|e| down(&e))?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if status == 200 {
        Ok(v)
    } else {
        Err(RtcError::Refused {
            status,
            code: v["error"].as_str().unwrap_or("http_error").to_string(),
            message: v["message"].as_str().unwrap_or_default().to_string(),
        })
    }
}
