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

/// Connections by client id; plus those authenticated but not yet
/// accepted (rmqtt may still refuse the CONNECT: a refused duplicate must
/// not replace the live connection's record), and those gone with a will
/// still to fire (a delayed will is checked with its owner's credential).
#[derive(Default)]
pub(crate) struct Conns {
    live: DashMap<String, Conn>,
    pending: DashMap<(String, i64), Conn>,
    departed: DashMap<String, Conn>,
}

/// Authenticated CONNECTs not answered within this long are forgotten.
const PENDING_MS: i64 = 60_000;

impl Conns {
    /// Remembers an authenticated CONNECT until rmqtt accepts it.
    pub fn stage(&self, conn: Conn) {
        let now = crate::controller::now_ms();
        if self.pending.len() > 1000 {
            self.pending
                .retain(|(_, since), _| now - *since < PENDING_MS);
        }
        self.pending
            .insert((conn.principal.client_id.clone(), conn.since), conn);
    }

    /// The CONNECT created at `since` was accepted: its record becomes live.
    pub fn accept(&self, client_id: &str, since: i64) {
        if let Some((_, conn)) = self.pending.remove(&(client_id.to_string(), since)) {
            self.departed.remove(client_id);
            self.live.insert(client_id.to_string(), conn);
        }
    }

    /// The CONNECT created at `since` was refused.
    pub fn refuse(&self, client_id: &str, since: i64) {
        self.pending.remove(&(client_id.to_string(), since));
    }

    /// Forgets `client_id` if its entry is the connection created at `since`;
    /// with `will`, keeps it until the will is published.
    pub fn remove(&self, client_id: &str, since: i64, will: bool) {
        if let Some((id, conn)) = self.live.remove_if(client_id, |_, c| c.since == since) {
            if will {
                self.departed.insert(id, conn);
            }
        }
    }

    /// Who the connection is and what its credential allows now.
    pub fn access(&self, client_id: &str, dir: &Directory) -> Option<(Principal, Access)> {
        let c = self.live.get(client_id)?;
        Some((
            c.principal.clone(),
            auth::access(dir, &c.credential, super::unix_now()),
        ))
    }

    /// Who may publish `client_id`'s will: the live or departed connection;
    /// after a restart, when neither is known, the device's group (its
    /// topic was checked at CONNECT; only the group's permissions apply).
    pub fn will_access(
        &self,
        client_id: &str,
        dir: &Directory,
        max_client_id_len: usize,
    ) -> Option<(Principal, Access)> {
        if let Some(found) = self.access(client_id, dir) {
            return Some(found);
        }
        if let Some((_, c)) = self.departed.remove(client_id) {
            let access = auth::access(dir, &c.credential, super::unix_now());
            return Some((c.principal, access));
        }
        let parts = crate::policy::parse_client_id(client_id, max_client_id_len).ok()?;
        let instance = dir.group_instance(parts.group)?.to_string();
        let principal = Principal {
            client_id: client_id.to_string(),
            group: parts.group.to_string(),
            instance,
        };
        Some((principal, Access::Full))
    }

    /// Copies of the connections `wanted` picks (for the periodic checks,
    /// which run every second: copying every connection each time held
    /// megabytes at 10,000 connections).
    pub fn matching(&self, wanted: impl Fn(&Conn) -> bool) -> Vec<Conn> {
        self.live
            .iter()
            .filter(|e| wanted(e.value()))
            .map(|e| e.value().clone())
            .collect()
    }

    pub fn mark_expire_noticed(&self, client_id: &str, since: i64) {
        if let Some(mut c) = self.live.get_mut(client_id) {
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
            .live
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
    /// `--acl-file` in plain MQTT mode.
    pub acl: Option<crate::policy::acl_file::AclFile>,
    pub rules: crate::policy::Rules,
    pub directory: Arc<SharedDirectory>,
    pub tap: Arc<super::bridge::Tap>,
    pub stats: Arc<super::stats::BrokerStats>,
    pub conns: Conns,
    pub tarpit: crate::tarpit::Tarpit,
    /// Connection and publish-rate limits.
    pub limits: super::limits::Limits,
    /// Client ids with an open connection, and since when (kept by the
    /// connect hooks, so listing them awaits no session).
    pub online: DashMap<String, i64>,
    /// Recent connection events.
    pub activity: super::activity::Activity,
    /// The live topic tail.
    pub tail: std::sync::Arc<super::tail::TailHub>,
    pub source: Option<Arc<dyn super::DirectorySource>>,
    /// One provisioning reload at a time, and when the last one began
    /// (see `watch::reload_directory`).
    pub reload: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(since: i64, key: &str) -> Conn {
        Conn {
            since,
            principal: Principal {
                client_id: "GID_demo@@@a".into(),
                group: "GID_demo".into(),
                instance: "demo".into(),
            },
            credential: Credential::Signature(key.into()),
            expire_noticed: false,
        }
    }

    fn key_of(c: &Conns) -> Option<String> {
        c.live.get("GID_demo@@@a").map(|c| match &c.credential {
            Credential::Signature(k) => k.clone(),
            _ => String::new(),
        })
    }

    #[test]
    fn a_refused_connect_does_not_replace_the_live_record() {
        let c = Conns::default();
        c.stage(conn(1, "first"));
        assert_eq!(key_of(&c), None, "not live before rmqtt accepts it");
        c.accept("GID_demo@@@a", 1);
        c.stage(conn(2, "second"));
        c.refuse("GID_demo@@@a", 2);
        assert_eq!(key_of(&c).as_deref(), Some("first"));
        c.stage(conn(3, "third"));
        c.accept("GID_demo@@@a", 3);
        assert_eq!(
            key_of(&c).as_deref(),
            Some("third"),
            "a takeover replaces it"
        );
        c.remove("GID_demo@@@a", 1, false);
        assert_eq!(
            key_of(&c).as_deref(),
            Some("third"),
            "the old connection's end keeps the new record"
        );
    }

    #[test]
    fn a_will_is_judged_after_its_connection_ended_and_after_a_restart() {
        let mut d = Directory::default();
        d.instances.push("demo".into());
        d.add_group("GID_demo", "demo");
        let c = Conns::default();
        c.stage(conn(1, "k"));
        c.accept("GID_demo@@@a", 1);
        c.remove("GID_demo@@@a", 1, true);
        assert!(c.access("GID_demo@@@a", &d).is_none(), "gone for publishes");
        let (who, _) = c
            .will_access("GID_demo@@@a", &d, 64)
            .expect("kept for its will");
        assert_eq!(who.instance, "demo");
        assert!(c.departed.is_empty(), "forgotten once the will was judged");
        // After a restart nothing is known but the directory.
        let (who, access) = c
            .will_access("GID_demo@@@a", &d, 64)
            .expect("from the group");
        assert_eq!((who.group.as_str(), access), ("GID_demo", Access::Full));
        assert!(
            c.will_access("GID_gone@@@a", &d, 64).is_none(),
            "an unprovisioned group has no will"
        );
    }
}
