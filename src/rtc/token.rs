//! The ARTC join token of the cloud RTC service:
//! `hex(sha256(AppID + AppKey + ChannelID + UserID + Nonce + Timestamp))`,
//! and its single-parameter form `Base64(JSON{appid, channelid, userid,
//! nonce, timestamp, token})`.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The token for one user in one channel, expiring at `timestamp` (Unix seconds).
pub fn token(
    app_id: &str,
    app_key: &str,
    channel: &str,
    user: &str,
    nonce: &str,
    timestamp: i64,
) -> String {
    let mut h = Sha256::new();
    for part in [
        app_id,
        app_key,
        channel,
        user,
        nonce,
        &timestamp.to_string(),
    ] {
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a channel or user id is valid for ARTC: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether an id ends like a mapped one: `-` and ten lowercase hex digits.
fn looks_mapped(id: &str) -> bool {
    let b = id.as_bytes();
    b.len() > 11
        && b[b.len() - 11] == b'-'
        && b[b.len() - 10..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// An RTC user id for a Device ID (which may hold `.` and `:`): invalid
/// characters become `_` and a short hash of the whole id is added. A valid
/// id that ends like such a hash is hashed too, so no two Device IDs share
/// an RTC user id (`a.b` and a user literally called `a_b-<its hash>`).
pub fn rtc_user_id(device_id: &str) -> String {
    if valid_id(device_id) && !looks_mapped(device_id) {
        return device_id.to_string();
    }
    let mapped: String = device_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(52)
        .collect();
    let h = Sha256::digest(device_id.as_bytes());
    format!(
        "{mapped}-{:02x}{:02x}{:02x}{:02x}{:02x}",
        h[0], h[1], h[2], h[3], h[4]
    )
}

/// Everything a client needs to join an RTC channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct JoinParams {
    /// AppID (`rtc.app_id`).
    pub appid: String,
    /// RTC channel id.
    pub channel: String,
    /// RTC user id: the Device ID, made valid for ARTC.
    pub userid: String,
    /// Nonce (part of the token).
    pub nonce: String,
    /// Expiry of the token, Unix seconds.
    pub timestamp: i64,
    /// `hex(sha256(appid + appkey + channel + userid + nonce + timestamp))`.
    pub token: String,
    /// The single-parameter form: `Base64(JSON{appid, channelid, userid, nonce, timestamp, token})`.
    pub token_b64: String,
    /// GSLB addresses (the mock RTC service's base URL unless `rtc.gslb` is set).
    pub gslb: Vec<String>,
}

/// The JSON inside the single-parameter form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SingleParam {
    /// AppID.
    pub appid: String,
    /// Channel id.
    pub channelid: String,
    /// RTC user id.
    pub userid: String,
    /// Nonce.
    pub nonce: String,
    /// Expiry, Unix seconds.
    pub timestamp: i64,
    /// The token.
    pub token: String,
}

impl JoinParams {
    /// Issues join parameters.
    pub fn issue(
        app_id: &str,
        app_key: &str,
        channel: &str,
        user: &str,
        nonce: &str,
        timestamp: i64,
        gslb: Vec<String>,
    ) -> Self {
        let token = token(app_id, app_key, channel, user, nonce, timestamp);
        let single = SingleParam {
            appid: app_id.into(),
            channelid: channel.into(),
            userid: user.into(),
            nonce: nonce.into(),
            timestamp,
            token: token.clone(),
        };
        let json = serde_json::to_vec(&single).unwrap_or_default();
        JoinParams {
            appid: app_id.into(),
            channel: channel.into(),
            userid: user.into(),
            nonce: nonce.into(),
            timestamp,
            token,
            token_b64: base64::engine::general_purpose::STANDARD.encode(json),
            gslb,
        }
    }
}

/// Decodes the single-parameter form.
pub fn decode_single(b64: &str) -> Option<SingleParam> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    serde_json::from_slice(&raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_known_value() {
        assert_eq!(
            token("abc", "abckey", "abcChannel", "abcUser", "", 1699423634),
            "3c9ee8d9f8734f0b7560ed8022a0590659113955819724fc9345ab8eedf84f31"
        );
    }

    #[test]
    fn single_parameter_form_round_trips() {
        let p = JoinParams::issue(
            "abc",
            "abckey",
            "abcChannel",
            "abcUser",
            "",
            1699423634,
            vec![],
        );
        let s = decode_single(&p.token_b64).unwrap();
        assert_eq!(
            s.token,
            "3c9ee8d9f8734f0b7560ed8022a0590659113955819724fc9345ab8eedf84f31"
        );
        assert_eq!(
            (s.appid.as_str(), s.channelid.as_str(), s.userid.as_str()),
            ("abc", "abcChannel", "abcUser")
        );
    }

    #[test]
    fn user_ids_are_made_valid() {
        assert_eq!(rtc_user_id("alice"), "alice");
        let odd = rtc_user_id("a.b:c");
        assert!(valid_id(&odd) && odd.starts_with("a_b_c-"));
        assert_ne!(rtc_user_id("a.b"), rtc_user_id("a:b"), "no collision");
        let spelled = rtc_user_id("a.b");
        assert!(valid_id(&spelled));
        assert_ne!(
            rtc_user_id(&spelled),
            spelled,
            "a valid id that spells a mapped one is mapped too"
        );
        assert_eq!(rtc_user_id("bob-1234"), "bob-1234", "ordinary ids stay");
        assert!(valid_id(&rtc_user_id(&"x.".repeat(40))));
    }
}
