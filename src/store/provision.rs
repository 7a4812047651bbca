//! Creating instances, access keys, Group IDs and parent topics, and the
//! demo tenant of `--dev` and first starts.

use rand::distr::{Alphanumeric, SampleString};
use rusqlite::{params, ErrorCode};

use super::{unix_now, Store, StoreError};
use crate::directory::TopicRole;

/// The demo tenant's instance id.
pub const DEMO_INSTANCE: &str = "mqrtc-demo";

/// The demo tenant's Group IDs (one per platform, as the cloud service advises).
pub const DEMO_GROUPS: [&str; 2] = ["GID_demo", "GID_web"];

/// The demo tenant's parent topics.
pub const DEMO_TOPICS: [(&str, TopicRole); 3] = [
    ("rtc_up", TopicRole::Uplink),
    ("rtc_down", TopicRole::Downlink),
    ("rtc_event", TopicRole::Event),
];

/// An access key just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccessKey {
    /// AccessKeyId.
    pub id: String,
    /// AccessKeySecret.
    pub secret: String,
    /// The instance it belongs to.
    pub instance: String,
}

/// What `provision_demo` created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoTenant {
    /// The demo instance's first access key.
    pub key: NewAccessKey,
}

fn conflict(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(what),
        _ => StoreError::Sqlite(e),
    }
}

impl Store {
    /// Creates an instance.
    pub fn create_instance(&self, id: &str, name: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO instances (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![id, name, unix_now()],
            )
            .map_err(conflict(format!("instance {id} already exists")))?;
        Ok(())
    }

    /// Provisions a Group ID for an instance.
    pub fn create_group(&self, instance: &str, group: &str) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO groups (id, instance_id, created_at) VALUES (?1, ?2, ?3)",
                params![group, instance, unix_now()],
            )
            .map_err(conflict(format!(
                "Group ID {group} already exists or instance {instance} does not"
            )))?;
        Ok(())
    }

    /// Provisions a parent topic for an instance.
    pub fn create_topic(
        &self,
        instance: &str,
        name: &str,
        role: TopicRole,
    ) -> Result<(), StoreError> {
        self.conn()
            .execute(
                "INSERT INTO topics (name, instance_id, role, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![name, instance, role.as_str(), unix_now()],
            )
            .map_err(conflict(format!(
                "parent topic {name} already exists or instance {instance} does not"
            )))?;
        Ok(())
    }

    /// Creates an access key with a random secret for an instance.
    pub fn create_access_key(&self, instance: &str) -> Result<NewAccessKey, StoreError> {
        let mut rng = rand::rng();
        let key = NewAccessKey {
            id: format!(
                "AK{}",
                Alphanumeric.sample_string(&mut rng, 18).to_uppercase()
            ),
            secret: Alphanumeric.sample_string(&mut rng, 30),
            instance: instance.to_string(),
        };
        self.conn()
            .execute(
                "INSERT INTO access_keys (id, instance_id, secret, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![key.id, instance, key.secret, unix_now()],
            )
            .map_err(conflict(format!("instance {instance} does not exist")))?;
        Ok(key)
    }

    /// Whether nothing at all is provisioned yet (a first start).
    pub fn is_unprovisioned(&self) -> Result<bool, StoreError> {
        let n: i64 = self
            .conn()
            .query_row("SELECT COUNT(*) FROM instances", [], |r| r.get(0))?;
        Ok(n == 0)
    }

    /// Creates the demo tenant if it does not exist; returns its first
    /// access key when it was created now.
    pub fn provision_demo(&self) -> Result<Option<DemoTenant>, StoreError> {
        if self.instance_exists(DEMO_INSTANCE)? {
            return Ok(None);
        }
        self.create_instance(DEMO_INSTANCE, "demo tenant")?;
        for g in DEMO_GROUPS {
            self.create_group(DEMO_INSTANCE, g)?;
        }
        for (t, role) in DEMO_TOPICS {
            self.create_topic(DEMO_INSTANCE, t, role)?;
        }
        let key = self.create_access_key(DEMO_INSTANCE)?;
        Ok(Some(DemoTenant { key }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_tenant_is_created_once() {
        let s = Store::open_in_memory().unwrap();
        assert!(s.is_unprovisioned().unwrap());
        let t = s.provision_demo().unwrap().expect("created");
        assert!(
            s.provision_demo().unwrap().is_none(),
            "second call creates nothing"
        );
        let d = s.directory().unwrap();
        assert_eq!(d.group_instance("GID_web"), Some(DEMO_INSTANCE));
        assert_eq!(
            d.topic("rtc_down").map(|t| t.role),
            Some(TopicRole::Downlink)
        );
        assert_eq!(d.access_keys[&t.key.id].secret, t.key.secret);
    }

    #[test]
    fn duplicates_and_dangling_references_are_conflicts() {
        let s = Store::open_in_memory().unwrap();
        s.create_instance("i1", "one").unwrap();
        assert!(matches!(
            s.create_instance("i1", "again"),
            Err(StoreError::Conflict(_))
        ));
        s.create_group("i1", "GID_a").unwrap();
        assert!(matches!(
            s.create_group("i1", "GID_a"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_group("nope", "GID_b"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_topic("nope", "t", TopicRole::Event),
            Err(StoreError::Conflict(_))
        ));
    }
}
