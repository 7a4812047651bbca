//! What the broker remembers about each authenticated connection: who it
//! is and which credential it used, so that ACL checks can apply token
//! scopes, `$SYS/uploadToken` can swap tokens, and revoking a credential
//! ends exactly the connections that used it. Also the slow-down of
//! repeated authentication failures from one address.

use std::sync::Arc;

use dashmap::DashMap;
use serde::Deserialize;

use crate::auth::{self, Credential, TokenProblem};
use crate::directory::{Directory, SharedDirectory, TokenKind};
use crate::policy::{Access, Principal};
use crate::store::token_hash;

/// One authenticated connection.
#[derive(Debug, Clone)]
pub(crate) struct Conn {
    /// rmqtt's creation time of the connection (tells a takeover's new
    /// connection from the old one).
    pub since: i64,
    pub principal: Principal,
    pub credential: Credential,
    /// `$SYS/tokenExpireNotice` already sent for the current tokens.
    pub expire_noticed: bool,
}

/// Connections by client id.
#[derive(Default)]
pub(crate) struct Conns(DashMap<String, Conn>);

impl Conns {
    pub fn insert(&self, conn: Conn) {
        self.0.insert(conn.principal.client_id.clone(), conn);
    }

    /// Forgets `client_id` if its entry is the connection created at `since`.
    pub fn remove(&self, client_id: &str, since: i64) {
        self.0.remove_if(client_id, |_, c| c.since == since);
    }

    /// Who the connection is and what its credential allows now.
    pub fn access(&self, client_id: &str, dir: &Directory) -> Option<(Principal, Access)> {
        let c = self.0.get(client_id)?;
        Some((
            c.principal.clone(),
            auth::access(dir, &c.credential, super::unix_now()),
        ))
    }

    /// Copies of the connections `wanted` picks (for the periodic checks,
    /// which run every second: copying every connection each time held
    /// megabytes at 10,000 connections).
    pub fn matching(&self, wanted: impl Fn(&Conn) -> bool) -> Vec<Conn> {
        self.0
            .iter()
            .filter(|e| wanted(e.value()))
            .map(|e| e.value().clone())
            .collect()
    }

    pub fn mark_expire_noticed(&self, client_id: &str, since: i64) {
        if let Some(mut c) = self.0.get_mut(client_id) {
            if c.since == since {
                c.expire_noticed = true;
            }
        }
    }

    /// Handles a `$SYS/uploadToken` payload from `client_id`: replaces the
    /// connection's token of that type. Err: why the token was refused.
    pub fn upload_token(
        &self,
        client_id: &str,
        payload: &[u8],
        dir: &Directory,
        now: i64,
    ) -> Result<(), UploadRefusal> {
        let up: UploadToken =
            serde_json::from_slice(payload).map_err(|e| UploadRefusal::Malformed(e.to_string()))?;
        let kind = TokenKind::parse(&up.kind)
            .ok_or_else(|| UploadRefusal::Malformed(format!("type {}", up.kind)))?;
        let mut c = self
            .0
            .get_mut(client_id)
            .ok_or(UploadRefusal::NotTokenMode)?;
        let instance = c.principal.instance.clone();
        let Credential::Tokens(_, tokens) = &mut c.credential else {
            return Err(UploadRefusal::NotTokenMode);
        };
        let candidate = vec![(kind, token_hash(&up.token))];
        if let Some(p) = auth::token_problem(dir, &instance, &candidate, now) {
            return Err(UploadRefusal::Invalid(p));
        }
        tokens.retain(|(k, _)| *k != kind);
        tokens.extend(candidate);
        c.expire_noticed = false;
        Ok(())
    }
}

#[derive(Deserialize)]
struct UploadToken {
    token: String,
    #[serde(rename = "type")]
    kind: String,
}

/// Why a `$SYS/uploadToken` was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UploadRefusal {
    /// Not `{"token": "...", "type": "R|W|RW"}`.
    Malformed(String),
    /// The connection did not authenticate in Token mode.
    NotTokenMode,
    /// The token is not valid for this connection.
    Invalid(TokenProblem),
}

impl std::fmt::Display for UploadRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadRefusal::Malformed(e) => write!(
                f,
                "uploadToken payload must be {{\"token\":…,\"type\":\"R|W|RW\"}}: {e}"
            ),
            UploadRefusal::NotTokenMode => {
                f.write_str("uploadToken needs a connection made in Token mode")
            }
            UploadRefusal::Invalid(p) => write!(
                f,
                "uploaded {} token {}",
                p.kind.as_str(),
                auth::problem_text(p.code)
            ),
        }
    }
}

/// Why a live connection must end now, given the current directory, or `None`.
pub(crate) fn revoked(
    dir: &Directory,
    c: &Conn,
    now: i64,
) -> Option<(String, Option<TokenProblem>)> {
    let group = dir.groups.get(&c.principal.group);
    if group.is_none_or(|g| g.instance != c.principal.instance) {
        return Some((format!("Group ID {} was deleted", c.principal.group), None));
    }
    match &c.credential {
        Credential::Passwordless => (dir.passwordless_instance.as_deref()
            != Some(&c.principal.instance))
        .then(|| ("passwordless access ended".to_string(), None)),
        Credential::Signature(ak) => (!dir.access_keys.contains_key(ak))
            .then(|| (format!("AccessKeyId {ak} was deleted"), None)),
        Credential::Device(dk) => (!dir.devices.contains_key(dk))
            .then(|| (format!("device credential {dk} was deleted"), None)),
        Credential::Tokens(ak, tokens) => {
            if !dir.access_keys.contains_key(ak) {
                return Some((format!("AccessKeyId {ak} was deleted"), None));
            }
            auth::token_problem(dir, &c.principal.instance, tokens, now).map(|p| {
                (
                    format!("{} token {}", p.kind.as_str(), auth::problem_text(p.code)),
                    Some(p),
                )
            })
        }
    }
}

/// The earliest expiry among a connection's tokens (Unix seconds).
pub(crate) fn token_expiry(dir: &Directory, c: &Conn) -> Option<(i64, TokenKind)> {
    let Credential::Tokens(_, tokens) = &c.credential else {
        return None;
    };
    tokens
        .iter()
        .filter_map(|(k, h)| dir.tokens.get(h).map(|t| (t.expires_at, *k)))
        .min_by_key(|(exp, _)| *exp)
}

/// Everything the hooks and the broker's periodic checks share.
pub(crate) struct BrokerState {
    pub standard: bool,
    pub rules: crate::policy::Rules,
    pub directory: Arc<SharedDirectory>,
    pub tap: Arc<super::bridge::Tap>,
    pub stats: Arc<super::stats::BrokerStats>,
    pub conns: Conns,
    pub tarpit: crate::tarpit::Tarpit,
    /// Recent connection events.
    pub activity: super::activity::Activity,
    /// The live topic tail.
    pub tail: std::sync::Arc<super::tail::TailHub>,
    pub source: Option<Arc<dyn super::DirectorySource>>,
    /// One provisioning reload at a time (see `watch::reload_directory`).
    pub reload: tokio::sync::Mutex<()>,
}
