//! CONNECT authentication in the cloud service's three modes, and what the
//! connection's credentials allow afterwards.
//!
//! - Signature: username `Signature|AccessKeyId|InstanceId`, password
//!   `Base64(HMAC-SHA1(AccessKeySecret, ClientId))`.
//! - Token: username `Token|AccessKeyId|InstanceId`, password typed tokens
//!   `R|<token>|W|<token>` (types R, W, RW); every token must be valid.
//! - DeviceCredential: username `DeviceCredential|DeviceAccessKeyId|InstanceId`,
//!   password `Base64(HMAC-SHA1(DeviceAccessKeySecret, ClientId))`; the
//!   credential is bound to one client id.
//!
//! In `--dev` the demo instance's devices may also connect with no username.

use crate::directory::{Directory, TokenKind};
use crate::policy::{parse_client_id, Access, ClientIdError, Principal};
use crate::store::token_hash;

/// What a CONNECT carried that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// The username, if any.
    pub username: Option<&'a str>,
    /// The password, if any.
    pub password: Option<&'a [u8]>,
}

/// Why a CONNECT was refused; each maps to one CONNACK code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefusal {
    /// The client id is malformed or its Group ID is not provisioned
    /// (CONNACK 2 in 3.1.1, 0x85 in 5).
    #[error("client id rejected: {0}")]
    BadClientId(String),
    /// Username or password wrong (CONNACK 4 / 0x86).
    #[error("bad username or password: {0}")]
    BadCredentials(String),
    /// Credentials fine but not for this client (CONNACK 5 / 0x87).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
}

/// The credential a connection authenticated with (what revoking it ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// `--dev`, no username.
    Passwordless,
    /// Signature mode with this AccessKeyId.
    Signature(String),
    /// DeviceCredential mode with this DeviceAccessKeyId.
    Device(String),
    /// Token mode: the AccessKeyId and the tokens (type, SHA-256), at most one per type.
    Tokens(String, Vec<(TokenKind, String)>),
}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    /// Who the client is.
    pub principal: Principal,
    /// How it proved it.
    pub credential: Credential,
}

/// Why a connection's tokens no longer hold (sent as `$SYS/tokenInvalidNotice`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenProblem {
    /// The token type concerned.
    pub kind: TokenKind,
    /// 1 expired, 2 unknown or revoked, 3 issued for another instance or type.
    pub code: u8,
}

/// Authenticates a CONNECT at `now` (Unix seconds), returning who the client is.
pub fn authenticate(
    dir: &Directory,
    max_client_id_len: usize,
    c: Credentials<'_>,
    now: i64,
) -> Result<Authenticated, ConnectRefusal> {
    let parts = parse_client_id(c.client_id, max_client_id_len)
        .map_err(|e: ClientIdError| ConnectRefusal::BadClientId(e.to_string()))?;
    let instance = dir.group_instance(parts.group).ok_or_else(|| {
        ConnectRefusal::BadClientId(format!("Group ID {} is not provisioned", parts.group))
    })?;
    let principal = Principal {
        client_id: c.client_id.to_string(),
        group: parts.group.to_string(),
        instance: instance.to_string(),
    };
    let Some(username) = c.username else {
        if dir.passwordless_instance.as_deref() == Some(instance) {
            return Ok(Authenticated {
                principal,
                credential: Credential::Passwordless,
            });
        }
        return Err(bad("a username is required: Signature|AccessKeyId|InstanceId (or Token|…, DeviceCredential|…)"));
    };
    let mut fields = username.split('|');
    let (mode, key_id, inst) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(m), Some(k), Some(i), None) => (m, k, i),
        _ => return Err(bad("username must be Mode|KeyId|InstanceId")),
    };
    if !dir.instances.iter().any(|i| i == inst) {
        return Err(bad(&format!("unknown instance {inst}")));
    }
    let password = c.password.unwrap_or_default();
    let credential = match mode {
        "Signature" => {
            let key = dir
                .access_keys
                .get(key_id)
                .filter(|k| k.instance == inst)
                .ok_or_else(|| bad(&format!("unknown AccessKeyId {key_id} for instance {inst}")))?;
            if !signature_matches(&key.secret, c.client_id, password) {
                return Err(bad("signature does not match"));
            }
            Credential::Signature(key_id.to_string())
        }
        "DeviceCredential" => {
            let dev = dir
                .devices
                .get(key_id)
                .filter(|d| d.instance == inst)
                .ok_or_else(|| {
                    bad(&format!(
                        "unknown DeviceAccessKeyId {key_id} for instance {inst}"
                    ))
                })?;
            if !signature_matches(&dev.secret, c.client_id, password) {
                return Err(bad("signature does not match"));
            }
            if dev.client_id != c.client_id {
                return Err(ConnectRefusal::NotAuthorized(format!(
                    "device credential {key_id} is for client id {}",
                    dev.client_id
                )));
            }
            Credential::Device(key_id.to_string())
        }
        "Token" => {
            if dir
                .access_keys
                .get(key_id)
                .is_none_or(|k| k.instance != inst)
            {
                return Err(bad(&format!(
                    "unknown AccessKeyId {key_id} for instance {inst}"
                )));
            }
            let tokens = parse_tokens(password)?;
            if let Some(p) = token_problem(dir, inst, &tokens, now) {
                return Err(bad(&format!(
                    "{} token {}",
                    p.kind.as_str(),
                    problem_text(p.code)
                )));
            }
            Credential::Tokens(key_id.to_string(), tokens)
        }
        other => return Err(bad(&format!("auth mode {other} is not supported"))),
    };
    if inst != instance {
        return Err(ConnectRefusal::NotAuthorized(format!(
            "client id's Group ID {} belongs to another instance",
            parts.group
        )));
    }
    Ok(Authenticated {
        principal,
        credential,
    })
}

fn bad(why: &str) -> ConnectRefusal {
    ConnectRefusal::BadCredentials(why.to_string())
}

/// Parses `R|tok|W|tok|RW|tok` into (type, SHA-256) pairs, one per type.
pub fn parse_tokens(password: &[u8]) -> Result<Vec<(TokenKind, String)>, ConnectRefusal> {
    let text = std::str::from_utf8(password).map_err(|_| bad("tokens must be UTF-8"))?;
    let fields: Vec<&str> = text.split('|').collect();
    if fields.len() < 2 || !fields.len().is_multiple_of(2) {
        return Err(bad(
            "password must be Type|Token pairs, e.g. R|<token>|W|<token>",
        ));
    }
    let mut out: Vec<(TokenKind, String)> = Vec::new();
    for pair in fields.chunks(2) {
        let kind = TokenKind::parse(pair[0])
            .ok_or_else(|| bad(&format!("unknown token type {}", pair[0])))?;
        if out.iter().any(|(k, _)| *k == kind) {
            return Err(bad(&format!("two {} tokens", kind.as_str())));
        }
        out.push((kind, token_hash(pair[1])));
    }
    Ok(out)
}

/// The first problem with a connection's tokens at `now`, if any.
pub fn token_problem(
    dir: &Directory,
    instance: &str,
    tokens: &[(TokenKind, String)],
    now: i64,
) -> Option<TokenProblem> {
    tokens.iter().find_map(|(kind, hash)| {
        let code = match dir.tokens.get(hash) {
            None => 2,
            Some(t) if t.instance != instance || t.kind != *kind => 3,
            Some(t) if t.expires_at <= now => 1,
            Some(_) => return None,
        };
        Some(TokenProblem { kind: *kind, code })
    })
}

/// Human text for a [`TokenProblem`] code.
pub fn problem_text(code: u8) -> &'static str {
    match code {
        1 => "has expired",
        2 => "is unknown or revoked",
        _ => "was issued for another instance or type",
    }
}

/// What a credential allows at `now`, given the current directory (tokens
/// resolved; expired or revoked ones allow nothing).
pub fn access(dir: &Directory, credential: &Credential, now: i64) -> Access {
    let Credential::Tokens(_, tokens) = credential else {
        return Access::Full;
    };
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for (_, hash) in tokens {
        if let Some(t) = dir.tokens.get(hash).filter(|t| t.expires_at > now) {
            if t.kind.reads() {
                read.extend(t.resources.iter().cloned());
            }
            if t.kind.writes() {
                write.extend(t.resources.iter().cloned());
            }
        }
    }
    Access::Tokens { read, write }
}

pub use crate::signature::signature;
use crate::signature::signature_matches;

#[cfg(test)]
mod tests;
