//! Client ids of the cloud conventions: `GroupID@@@DeviceID`.

use std::fmt;
use std::str::FromStr;

/// Why a client id is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// No `@@@` separator.
    #[error("a client id is GroupID@@@DeviceID (no @@@ in {0:?})")]
    NoSeparator(String),
    /// The Group ID breaks the rules.
    #[error("the Group ID must start with GID_ or GID- and be 7 to 64 characters (got {0:?})")]
    BadGroup(String),
    /// The Device ID is empty or has characters the broker refuses.
    #[error("the Device ID must be non-empty, without '/', '+', '#', '@' or spaces (got {0:?})")]
    BadDevice(String),
    /// The whole id is too long.
    #[error("a client id is at most 64 characters (got {0})")]
    TooLong(usize),
}

/// A valid `GroupID@@@DeviceID`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId {
    group: String,
    device: String,
}

impl ClientId {
    /// Builds and validates a client id from its parts.
    pub fn new(group: &str, device: &str) -> Result<ClientId, IdError> {
        let len = group.chars().count();
        if !(group.starts_with("GID_") || group.starts_with("GID-")) || !(7..=64).contains(&len) {
            return Err(IdError::BadGroup(group.to_string()));
        }
        if group.contains('@') || group.contains(['/', '+', '#']) {
            return Err(IdError::BadGroup(group.to_string()));
        }
        if device.is_empty()
            || device
                .chars()
                .any(|c| matches!(c, '/' | '+' | '#' | '@') || c.is_whitespace() || c.is_control())
        {
            return Err(IdError::BadDevice(device.to_string()));
        }
        let total = len + 3 + device.chars().count();
        if total > 64 {
            return Err(IdError::TooLong(total));
        }
        Ok(ClientId {
            group: group.to_string(),
            device: device.to_string(),
        })
    }

    /// The Group ID.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The Device ID: the user, in the call protocol.
    pub fn device(&self) -> &str {
        &self.device
    }
}

impl FromStr for ClientId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<ClientId, IdError> {
        let (g, d) = s
            .split_once("@@@")
            .ok_or_else(|| IdError::NoSeparator(s.to_string()))?;
        ClientId::new(g, d)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@@@{}", self.group, self.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_and_validates() {
        let id: ClientId = "GID_demo@@@alice".parse().unwrap();
        assert_eq!((id.group(), id.device()), ("GID_demo", "alice"));
        assert_eq!(id.to_string(), "GID_demo@@@alice");
        assert_eq!(
            ClientId::new("GID-web", "bob").unwrap().to_string(),
            "GID-web@@@bob"
        );
        assert!(matches!(
            "alice".parse::<ClientId>(),
            Err(IdError::NoSeparator(_))
        ));
        assert!(matches!(
            ClientId::new("demo", "a"),
            Err(IdError::BadGroup(_))
        ));
        assert!(matches!(
            ClientId::new("GID_", "a"),
            Err(IdError::BadGroup(_))
        ));
        assert!(matches!(
            ClientId::new("GID_demo", ""),
            Err(IdError::BadDevice(_))
        ));
        assert!(matches!(
            ClientId::new("GID_demo", "a/b"),
            Err(IdError::BadDevice(_))
        ));
        assert!(matches!(
            ClientId::new("GID_demo", &"x".repeat(60)),
            Err(IdError::TooLong(71))
        ));
    }
}
