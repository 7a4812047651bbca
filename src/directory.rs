//! The provisioning snapshot the broker consults on every CONNECT, SUBSCRIBE
//! and PUBLISH: instances, access keys, Group IDs with their permissions,
//! parent topics, device credentials and tokens.
//!
//! Plain data, loaded from SQLite by the store and swapped in whole when
//! provisioning changes, so checks never touch the database.

use std::collections::HashMap;

/// What a parent topic is for (the cloud service's advice: uplink and
/// downlink on different parent topics, high-volume traffic on its own).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum TopicRole {
    /// Devices publish, the controller consumes.
    Uplink,
    /// Only the controller publishes (as P2P messages to devices).
    Downlink,
    /// Devices publish and subscribe; device-to-device P2P allowed.
    Event,
}

impl TopicRole {
    /// The name stored in SQLite and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicRole::Uplink => "uplink",
            TopicRole::Downlink => "downlink",
            TopicRole::Event => "event",
        }
    }

    /// Parses a stored or user-given role name.
    pub fn parse(s: &str) -> Option<TopicRole> {
        match s {
            "uplink" => Some(TopicRole::Uplink),
            "downlink" => Some(TopicRole::Downlink),
            "event" => Some(TopicRole::Event),
            _ => None,
        }
    }
}

/// Which devices a group's devices may send P2P messages to.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum P2pScope {
    /// Any device of the same instance (the default).
    #[default]
    Instance,
    /// Only devices of the same Group ID.
    Group,
    /// No device-to-device P2P at all.
    None,
}

impl P2pScope {
    /// The name stored in SQLite and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            P2pScope::Instance => "instance",
            P2pScope::Group => "group",
            P2pScope::None => "none",
        }
    }

    /// Parses a stored or user-given scope name.
    pub fn parse(s: &str) -> Option<P2pScope> {
        match s {
            "instance" => Some(P2pScope::Instance),
            "group" => Some(P2pScope::Group),
            "none" => Some(P2pScope::None),
            _ => None,
        }
    }
}

/// What a group may do on one parent topic, when its grants are explicit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Grant {
    /// May publish (within what the topic's role allows).
    pub publish: bool,
    /// May subscribe (within what the topic's role allows).
    pub subscribe: bool,
}

/// A provisioned Group ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The instance that owns it.
    pub instance: String,
    /// Where its devices may send P2P messages.
    pub p2p_scope: P2pScope,
    /// `None`: every parent topic of the instance, as its role allows.
    /// `Some`: only these parent topics, in these directions.
    pub grants: Option<HashMap<String, Grant>>,
}

/// A provisioned parent topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentTopic {
    /// The instance that owns it.
    pub instance: String,
    /// What it is for.
    pub role: TopicRole,
}

/// An access key (AccessKeyId and its secret) of an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKey {
    /// The instance the key belongs to.
    pub instance: String,
    /// The AccessKeySecret used in the Signature formula.
    pub secret: String,
}

/// A per-device credential (DeviceAccessKeyId and secret), bound to one client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCredential {
    /// The instance it belongs to.
    pub instance: String,
    /// The only client id it authenticates.
    pub client_id: String,
    /// The DeviceAccessKeySecret.
    pub secret: String,
}

/// The three token types of the cloud service.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum TokenKind {
    /// Read: subscribe.
    R,
    /// Write: publish.
    W,
    /// Read and write.
    RW,
}

impl TokenKind {
    /// `R`, `W` or `RW`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::R => "R",
            TokenKind::W => "W",
            TokenKind::RW => "RW",
        }
    }

    /// Parses `R`, `W` or `RW`.
    pub fn parse(s: &str) -> Option<TokenKind> {
        match s {
            "R" => Some(TokenKind::R),
            "W" => Some(TokenKind::W),
            "RW" => Some(TokenKind::RW),
            _ => None,
        }
    }

    /// Whether it grants reading (subscribing).
    pub fn reads(self) -> bool {
        matches!(self, TokenKind::R | TokenKind::RW)
    }

    /// Whether it grants writing (publishing).
    pub fn writes(self) -> bool {
        matches!(self, TokenKind::W | TokenKind::RW)
    }
}

/// An issued token (only its hash is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenGrant {
    /// Public id, for listing and revoking.
    pub id: String,
    /// The instance it was issued for.
    pub instance: String,
    /// R, W or RW.
    pub kind: TokenKind,
    /// Topic filters it covers; a bare parent topic covers all of it.
    pub resources: Vec<String>,
    /// Unix seconds after which it is no longer valid.
    pub expires_at: i64,
}

/// Everything provisioned, indexed for the checks the broker makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Instance ids.
    pub instances: Vec<String>,
    /// Group ID to group.
    pub groups: HashMap<String, Group>,
    /// Parent topic name to its owner and role.
    pub topics: HashMap<String, ParentTopic>,
    /// AccessKeyId to key.
    pub access_keys: HashMap<String, AccessKey>,
    /// DeviceAccessKeyId to credential.
    pub devices: HashMap<String, DeviceCredential>,
    /// SHA-256 (hex) of a token to its grant.
    pub tokens: HashMap<String, TokenGrant>,
    /// The instance whose devices may connect without a password (`--dev`).
    pub passwordless_instance: Option<String>,
}

impl Directory {
    /// The instance that owns `group`, if the group is provisioned.
    pub fn group_instance(&self, group: &str) -> Option<&str> {
        self.groups.get(group).map(|g| g.instance.as_str())
    }

    /// The parent topic `name`, if provisioned.
    pub fn topic(&self, name: &str) -> Option<&ParentTopic> {
        self.topics.get(name)
    }

    /// Adds a group with default permissions (tests and the demo tenant).
    pub fn add_group(&mut self, group: &str, instance: &str) {
        self.groups.insert(
            group.to_string(),
            Group {
                instance: instance.to_string(),
                p2p_scope: P2pScope::default(),
                grants: None,
            },
        );
    }
}

/// The current directory, shared by the broker's checks and replaced whole
/// when provisioning changes.
#[derive(Debug, Default)]
pub struct SharedDirectory(std::sync::RwLock<std::sync::Arc<Directory>>);

impl SharedDirectory {
    /// Wraps a first snapshot.
    pub fn new(d: Directory) -> Self {
        Self(std::sync::RwLock::new(std::sync::Arc::new(d)))
    }

    /// The current snapshot (cheap: an `Arc` clone).
    pub fn get(&self) -> std::sync::Arc<Directory> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the snapshot; returns the previous one.
    pub fn set(&self, d: Directory) -> std::sync::Arc<Directory> {
        std::mem::replace(
            &mut *self.0.write().unwrap_or_else(|p| p.into_inner()),
            std::sync::Arc::new(d),
        )
    }
}
