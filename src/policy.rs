//! The cloud service's wire conventions as pure checks: client ids, parent
//! topics, P2P topics, and who may publish or subscribe where.
//!
//! No broker types here; `broker::hooks` maps the answers to MQTT reason codes.

use crate::directory::{Directory, P2pScope, TopicRole};

/// The limits the checks apply (from `config::Limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Longest client id.
    pub max_client_id_len: usize,
    /// Longest topic, not counting a P2P topic's target client id.
    pub max_topic_len: usize,
    /// Largest message body.
    pub max_payload_bytes: usize,
}

/// The level that marks a P2P topic: `{parent}/p2p/{targetClientId}`.
pub const P2P_LEVEL: &str = "p2p";

/// A client id split into its Group ID and Device ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIdParts<'a> {
    /// `GID_...` or `GID-...`.
    pub group: &'a str,
    /// Chosen by the app, one per user account.
    pub device: &'a str,
}

/// Why a client id does not follow `GroupID@@@DeviceID`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientIdError {
    /// Longer than the limit.
    #[error("client id is {len} characters, the limit is {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No `@@@` separator.
    #[error("client id must be GroupID@@@DeviceID")]
    NoSeparator,
    /// The Group ID part is malformed.
    #[error("Group ID must start with GID_ or GID-, be 7 to 64 characters of [A-Za-z0-9_-]")]
    BadGroup,
    /// The Device ID part is malformed.
    #[error("Device ID must be 1 or more characters of [A-Za-z0-9_.:-]")]
    BadDevice,
}

/// Splits and checks a `GroupID@@@DeviceID` client id.
pub fn parse_client_id(id: &str, max_len: usize) -> Result<ClientIdParts<'_>, ClientIdError> {
    if id.len() > max_len {
        return Err(ClientIdError::TooLong {
            len: id.len(),
            max: max_len,
        });
    }
    let (group, device) = id.split_once("@@@").ok_or(ClientIdError::NoSeparator)?;
    let group_ok = (group.starts_with("GID_") || group.starts_with("GID-"))
        && (7..=64).contains(&group.len())
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !group_ok {
        return Err(ClientIdError::BadGroup);
    }
    let device_ok = !device.is_empty()
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if !device_ok {
        return Err(ClientIdError::BadDevice);
    }
    Ok(ClientIdParts { group, device })
}

/// The shape of a topic name under the conventions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicShape<'a> {
    /// `{parent}/p2p/{target}`: delivered to `target` only.
    P2p {
        /// First level.
        parent: &'a str,
        /// The target client id.
        target: &'a str,
    },
    /// Any other topic under `parent`.
    Plain {
        /// First level.
        parent: &'a str,
    },
    /// `{parent}/p2p` with no target or with levels after it.
    BadP2p,
}

/// Classifies a topic name (or a filter: wildcards are left to the caller).
pub fn shape(topic: &str) -> TopicShape<'_> {
    let mut levels = topic.splitn(3, '/');
    let parent = levels.next().unwrap_or_default();
    match (levels.next(), levels.next()) {
        (Some(P2P_LEVEL), Some(target)) if !target.is_empty() && !target.contains('/') => {
            TopicShape::P2p { parent, target }
        }
        (Some(P2P_LEVEL), _) => TopicShape::BadP2p,
        _ => TopicShape::Plain { parent },
    }
}

/// The target of a P2P topic, if `topic` is one.
pub fn p2p_target(topic: &str) -> Option<&str> {
    match shape(topic) {
        TopicShape::P2p { target, .. } => Some(target),
        _ => None,
    }
}

/// The length the topic limit applies to: a P2P topic's target client id
/// is not counted (it has its own limit).
pub fn counted_topic_len(topic: &str) -> usize {
    match shape(topic) {
        TopicShape::P2p { target, .. } => topic.len() - target.len(),
        _ => topic.len(),
    }
}

/// An authenticated client, as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The full client id.
    pub client_id: String,
    /// Its Group ID.
    pub group: String,
    /// The instance that owns the group.
    pub instance: String,
}

/// The broker-neutral reason for refusing a SUBSCRIBE or PUBLISH; each maps
/// to one MQTT 5 reason code (and to SUBACK 0x80 or a disconnect in 3.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCode {
    /// 0x87 Not authorized.
    NotAuthorized,
    /// 0x90 Topic Name invalid (PUBACK) / 0x8F Topic Filter invalid (SUBACK).
    TopicInvalid,
    /// 0x97 Quota exceeded: the body is over the limit.
    PayloadTooLarge,
    /// 0x97 Quota exceeded: the controller's queue is full; try again.
    Busy,
    /// 0x97 Quota exceeded: the client publishes faster than allowed.
    TooFast,
}

/// A refusal with a human-readable reason (sent as the v5 reason string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal.
    pub code: RefusalCode,
    /// Why, for the client and the log.
    pub reason: String,
}

fn refuse(code: RefusalCode, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

/// Where an allowed publish goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// To subscribers of the topic.
    Topic,
    /// To one client, with no subscription needed.
    P2p(&'a str),
}

/// What a connection's credentials allow, on top of its group's permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Signature, DeviceCredential or `--dev`: the group's permissions apply.
    Full,
    /// Token mode: also only topics a valid token of the right type covers.
    Tokens {
        /// Resources of the R and RW tokens.
        read: Vec<String>,
        /// Resources of the W and RW tokens.
        write: Vec<String>,
    },
}

/// Whether token resource `resource` covers every topic `filter` can match.
/// A bare parent topic (`rtc_up`) stands for all of it (`rtc_up/#`).
pub fn covers(resource: &str, filter: &str) -> bool {
    let owned;
    let resource = if resource.contains('/') || resource == "#" {
        resource
    } else {
        owned = format!("{resource}/#");
        &owned
    };
    let mut r = resource.split('/');
    let mut f = filter.split('/');
    loop {
        match (r.next(), f.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(l)) if l != "#" => {}
            (Some(a), Some(b)) if a == b && b != "+" && b != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn token_allows(access: &Access, topic: &str, write: bool) -> Result<(), Refusal> {
    let Access::Tokens {
        read,
        write: writes,
    } = access
    else {
        return Ok(());
    };
    let (list, what) = if write {
        (writes, "publish on")
    } else {
        (read, "subscribe to")
    };
    if list.iter().any(|r| covers(r, topic)) {
        Ok(())
    } else {
        Err(refuse(
            RefusalCode::NotAuthorized,
            format!("no valid token allows it to {what} {topic}"),
        ))
    }
}

fn group_allows(
    dir: &Directory,
    who: &Principal,
    parent: &str,
    publish: bool,
) -> Result<(), Refusal> {
    let grants = dir.groups.get(&who.group).and_then(|g| g.grants.as_ref());
    let Some(grants) = grants else { return Ok(()) };
    match grants.get(parent) {
        Some(g) if (publish && g.publish) || (!publish && g.subscribe) => Ok(()),
        _ => Err(refuse(
            RefusalCode::NotAuthorized,
            format!(
                "Group ID {} is not granted {} {parent}",
                who.group,
                if publish {
                    "publishing on"
                } else {
                    "subscribing to"
                }
            ),
        )),
    }
}

/// May `who`, holding `access`, publish `payload_len` bytes on `topic`?
pub fn check_publish<'t>(
    dir: &Directory,
    rules: &Rules,
    who: &Principal,
    access: &Access,
    topic: &'t str,
    payload_len: usize,
) -> Result<Route<'t>, Refusal> {
    if payload_len > rules.max_payload_bytes {
        return Err(refuse(
            RefusalCode::PayloadTooLarge,
            format!(
                "message body is {payload_len} bytes, the limit is {}",
                rules.max_payload_bytes
            ),
        ));
    }
    check_topic_len(rules, topic)?;
    if topic.starts_with('$') || topic.contains(['+', '#']) {
        return Err(refuse(
            RefusalCode::TopicInvalid,
            "topic may not start with $ or hold wildcards",
        ));
    }
    let (parent, target) = match shape(topic) {
        TopicShape::BadP2p => {
            return Err(refuse(
                RefusalCode::TopicInvalid,
                "P2P topics are {parent}/p2p/{clientId}",
            ))
        }
        TopicShape::P2p { parent, target } => (parent, Some(target)),
        TopicShape::Plain { parent } => (parent, None),
    };
    let role = owned_role(dir, who, parent)?;
    group_allows(dir, who, parent, true)?;
    token_allows(access, topic, true)?;
    match (role, target) {
        (TopicRole::Downlink, _) => Err(refuse(
            RefusalCode::NotAuthorized,
            format!("only the controller publishes on downlink topic {parent}"),
        )),
        (TopicRole::Uplink, None) | (TopicRole::Event, None) => Ok(Route::Topic),
        (TopicRole::Uplink, Some(_)) => Err(refuse(
            RefusalCode::NotAuthorized,
            format!("P2P is not allowed on uplink topic {parent}; use an event topic"),
        )),
        (TopicRole::Event, Some(target)) => {
            check_p2p_target(dir, rules, who, target)?;
            Ok(Route::P2p(target))
        }
    }
}

/// May `who`, holding `access`, subscribe to `filter`?
pub fn check_subscribe(
    dir: &Directory,
    rules: &Rules,
    who: &Principal,
    access: &Access,
    filter: &str,
) -> Result<(), Refusal> {
    check_topic_len(rules, filter)?;
    let parent = filter.split('/').next().unwrap_or_default();
    if parent.starts_with('$') || parent.contains(['+', '#']) {
        return Err(refuse(
            RefusalCode::NotAuthorized,
            "the first level of a filter must be a provisioned parent topic",
        ));
    }
    let role = owned_role(dir, who, parent)?;
    match shape(filter) {
        // Its own inbox is always fine: it can only receive what is sent to it.
        TopicShape::P2p { target, .. } if target == who.client_id => Ok(()),
        TopicShape::P2p { .. } | TopicShape::BadP2p => Err(refuse(
            RefusalCode::NotAuthorized,
            "a client may subscribe only to its own P2P inbox",
        )),
        // `{parent}/#` matches P2P topic names too, but P2P messages never
        // reach wildcard subscribers, so it is allowed where plain
        // subscriptions are.
        TopicShape::Plain { .. } => {
            plain_subscribe_allowed(role, parent)?;
            group_allows(dir, who, parent, false)?;
            token_allows(access, filter, false)
        }
    }
}

fn plain_subscribe_allowed(role: TopicRole, parent: &str) -> Result<(), Refusal> {
    match role {
        TopicRole::Event => Ok(()),
        TopicRole::Uplink | TopicRole::Downlink => Err(refuse(
            RefusalCode::NotAuthorized,
            format!(
                "{parent} is an {} topic: devices receive on it only as P2P",
                role.as_str()
            ),
        )),
    }
}

fn check_topic_len(rules: &Rules, topic: &str) -> Result<(), Refusal> {
    let len = counted_topic_len(topic);
    if len > rules.max_topic_len {
        return Err(refuse(
            RefusalCode::TopicInvalid,
            format!(
                "topic is {len} characters, the limit is {}",
                rules.max_topic_len
            ),
        ));
    }
    Ok(())
}

fn owned_role(dir: &Directory, who: &Principal, parent: &str) -> Result<TopicRole, Refusal> {
    match dir.topic(parent) {
        Some(t) if t.instance == who.instance => Ok(t.role),
        _ => Err(refuse(
            RefusalCode::NotAuthorized,
            format!("parent topic {parent} is not provisioned for this instance"),
        )),
    }
}

fn check_p2p_target(
    dir: &Directory,
    rules: &Rules,
    who: &Principal,
    target: &str,
) -> Result<(), Refusal> {
    let parts = parse_client_id(target, rules.max_client_id_len)
        .map_err(|e| refuse(RefusalCode::TopicInvalid, format!("P2P target: {e}")))?;
    if dir.group_instance(parts.group) != Some(who.instance.as_str()) {
        return Err(refuse(
            RefusalCode::NotAuthorized,
            format!("P2P target {target} is not a device of this instance"),
        ));
    }
    let scope = dir
        .groups
        .get(&who.group)
        .map(|g| g.p2p_scope)
        .unwrap_or_default();
    match scope {
        P2pScope::Instance => Ok(()),
        P2pScope::Group if parts.group == who.group => Ok(()),
        P2pScope::Group => Err(refuse(
            RefusalCode::NotAuthorized,
            format!("Group ID {} may send P2P only within its group", who.group),
        )),
        P2pScope::None => Err(refuse(
            RefusalCode::NotAuthorized,
            format!("Group ID {} may not send P2P messages", who.group),
        )),
    }
}

#[cfg(test)]
mod tests;

pub mod acl_file;
