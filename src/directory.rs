//! The provisioning snapshot the broker consults on every CONNECT, SUBSCRIBE
//! and PUBLISH: instances, their access keys, Group IDs and parent topics.
//!
//! Plain data, loaded from SQLite by the store and swapped in whole when
//! provisioning changes, so checks never touch the database.

use std::collections::HashMap;

/// What a parent topic is for (the cloud service's advice: uplink and
/// downlink on different parent topics, high-volume traffic on its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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

/// Everything provisioned, indexed for the checks the broker makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Instance ids.
    pub instances: Vec<String>,
    /// Group ID to owning instance.
    pub groups: HashMap<String, String>,
    /// Parent topic name to its owner and role.
    pub topics: HashMap<String, ParentTopic>,
    /// AccessKeyId to key.
    pub access_keys: HashMap<String, AccessKey>,
    /// The instance whose devices may connect without a password (`--dev`).
    pub passwordless_instance: Option<String>,
}

impl Directory {
    /// The instance that owns `group`, if the group is provisioned.
    pub fn group_instance(&self, group: &str) -> Option<&str> {
        self.groups.get(group).map(String::as_str)
    }

    /// The parent topic `name`, if provisioned.
    pub fn topic(&self, name: &str) -> Option<&ParentTopic> {
        self.topics.get(name)
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

    /// Replaces the snapshot.
    pub fn set(&self, d: Directory) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(d);
    }
}
