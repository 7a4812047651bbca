//! EMQX 5's HTTP authentication and authorization, answered from the same
//! provisioning data and rules as the appliance's own broker, so an EMQX
//! cluster enforces the Signature, Token and DeviceCredential logins and the
//! appliance's topic rules (`docs/scale-out.md` has the EMQX settings).
//!
//! - Authentication (`POST /emqx/v5/authn`, body
//!   `{"clientid", "username", "password"}`): `allow` or `deny`. A Token
//!   login also gets `client_attrs.mqrtc_tokens` (its tokens' types and
//!   hashes, never the tokens) and `expire_at` (its earliest token expiry).
//! - Authorization (`POST /emqx/v5/authz`, body `{"clientid", "username",
//!   "topic", "action", "tokens": "${client_attrs.mqrtc_tokens}"}`): the
//!   appliance's publish and subscribe checks, plus what a standard broker
//!   needs on top: an uplink names its sender as its last level, and no
//!   wildcard subscription may reach into P2P inboxes.

use serde::{Deserialize, Serialize};

use crate::auth::{self, Credential, Credentials};
use crate::directory::{Directory, TokenKind, TopicRole};
use crate::policy::{self, Principal, Rules};

/// The client attribute that carries a Token login's tokens.
pub const TOKENS_ATTR: &str = "mqrtc_tokens";

/// EMQX's authentication request, as the documented body template sends it.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthnRequest {
    /// `${clientid}`.
    pub clientid: String,
    /// `${username}` (EMQX sends an empty string for none).
    #[serde(default)]
    pub username: String,
    /// `${password}`.
    #[serde(default)]
    pub password: String,
}

/// The answer EMQX reads: `result` is `allow` or `deny`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthnResponse {
    /// `allow` or `deny`.
    pub result: String,
    /// Never a superuser: every device is checked.
    pub is_superuser: bool,
    /// Attributes EMQX keeps for the session (Token logins).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub client_attrs: std::collections::BTreeMap<String, String>,
    /// Unix seconds at which EMQX ends the session (a token's expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<i64>,
    /// Why (for the operator; EMQX ignores it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// EMQX's authorization request.
#[derive(Debug, Clone, Deserialize)]
pub struct AuthzRequest {
    /// `${clientid}`.
    pub clientid: String,
    /// `${username}`.
    #[serde(default)]
    pub username: String,
    /// `${topic}`.
    pub topic: String,
    /// `${action}`: `publish` or `subscribe`.
    pub action: String,
    /// `${client_attrs.mqrtc_tokens}` (empty unless a Token login).
    #[serde(default)]
    pub tokens: String,
}

/// `allow` or `deny`, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzResponse {
    /// `allow` or `deny`.
    pub result: String,
    /// Why (for the operator; EMQX ignores it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// Answers an authentication request at `now` (Unix seconds).
pub fn authenticate(dir: &Directory, rules: &Rules, req: &AuthnRequest, now: i64) -> AuthnResponse {
    let creds = Credentials {
        client_id: &req.clientid,
        username: Some(req.username.as_str()).filter(|u| !u.is_empty()),
        password: Some(req.password.as_bytes()),
    };
    match auth::authenticate(dir, rules.max_client_id_len, creds, now) {
        Err(e) => AuthnResponse {
            result: "deny".into(),
            is_superuser: false,
            client_attrs: Default::default(),
            expire_at: None,
            reason: e.to_string(),
        },
        Ok(a) => {
            let mut r = AuthnResponse {
                result: "allow".into(),
                is_superuser: false,
                client_attrs: Default::default(),
                expire_at: None,
                reason: String::new(),
            };
            if let Credential::Tokens(_, tokens) = &a.credential {
                let attr = tokens
                    .iter()
                    .map(|(k, h)| format!("{}:{h}", k.as_str()))
                    .collect::<Vec<_>>()
                    .join(",");
                r.client_attrs.insert(TOKENS_ATTR.into(), attr);
                r.expire_at = tokens
                    .iter()
                    .filter_map(|(_, h)| dir.tokens.get(h).map(|t| t.expires_at))
                    .min();
            }
            r
        }
    }
}

/// Answers an authorization request at `now` (Unix seconds).
pub fn authorize(dir: &Directory, rules: &Rules, req: &AuthzRequest, now: i64) -> AuthzResponse {
    match decide(dir, rules, req, now) {
        Ok(()) => AuthzResponse {
            result: "allow".into(),
            reason: String::new(),
        },
        Err(reason) => AuthzResponse {
            result: "deny".into(),
            reason,
        },
    }
}

fn decide(dir: &Directory, rules: &Rules, req: &AuthzRequest, now: i64) -> Result<(), String> {
    let parts = policy::parse_client_id(&req.clientid, rules.max_client_id_len)
        .map_err(|e| e.to_string())?;
    let instance = dir
        .group_instance(parts.group)
        .ok_or_else(|| format!("Group ID {} is not provisioned", parts.group))?;
    let who = Principal {
        client_id: req.clientid.clone(),
        group: parts.group.to_string(),
        instance: instance.to_string(),
    };
    let credential = if req.username.starts_with("Token|") {
        Credential::Tokens(String::new(), parse_attr(&req.tokens)?)
    } else {
        Credential::Signature(String::new())
    };
    let access = auth::access(dir, &credential, now);
    let parent = req.topic.split('/').next().unwrap_or_default();
    let role = dir
        .topic(parent)
        .filter(|t| t.instance == who.instance)
        .map(|t| t.role);
    match req.action.as_str() {
        "publish" => {
            policy::check_publish(dir, rules, &who, &access, &req.topic, 0)
                .map_err(|r| r.reason)?;
            if role == Some(TopicRole::Uplink)
                && req.topic.rsplit('/').next() != Some(req.clientid.as_str())
            {
                return Err(format!(
                    "uplinks name their sender as the last level: {parent}/…/{}",
                    req.clientid
                ));
            }
            Ok(())
        }
        "subscribe" => {
            policy::check_subscribe(dir, rules, &who, &access, &req.topic).map_err(|r| r.reason)?;
            // The appliance never delivers P2P messages to wildcards; a
            // standard broker would.
            if matches!(req.topic.split('/').nth(1), Some("+") | Some("#")) {
                return Err(format!(
                    "on a standard broker a filter's second level must name a subtopic: \
                     {} would reach other devices' P2P inboxes",
                    req.topic
                ));
            }
            Ok(())
        }
        other => Err(format!("unknown action {other:?}")),
    }
}

/// `R:hash,W:hash` as the (type, hash) pairs of a Token login.
fn parse_attr(attr: &str) -> Result<Vec<(TokenKind, String)>, String> {
    attr.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (k, h) = s.split_once(':').ok_or("malformed token attribute")?;
            let kind = TokenKind::parse(k).ok_or("malformed token attribute")?;
            Ok((kind, h.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests;
