//! Instances, access keys, Group IDs (with grants and P2P scope) and parent
//! topics: create, list, delete; and the demo tenant.

use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

use super::db::args;
use super::{unix_now, Store, StoreError};
use crate::directory::{P2pScope, TopicRole};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// An instance, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InstanceRow {
    /// Instance id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its AccessKeyIds (never the secrets).
    pub access_keys: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A Group ID, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GroupRow {
    /// Group ID.
    pub id: String,
    /// Owning instance.
    pub instance: String,
    /// P2P scope.
    pub p2p_scope: P2pScope,
    /// Explicit grants (empty: every parent topic of the instance).
    pub grants: Vec<GrantRow>,
}

/// One explicit grant of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GrantRow {
    /// Parent topic.
    pub topic: String,
    /// May publish.
    pub publish: bool,
    /// May subscribe.
    pub subscribe: bool,
}

/// A parent topic, as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TopicRow {
    /// Name (the first topic level).
    pub name: String,
    /// Owning instance.
    pub instance: String,
    /// Role.
    pub role: TopicRole,
}

pub(super) fn conflict(what: String) -> impl FnOnce(StoreError) -> StoreError {
    move |e| match e {
        StoreError::Constraint(_) => StoreError::Conflict(what),
        e => e,
    }
}

pub(super) fn expect_one(changed: usize, what: String) -> Result<(), StoreError> {
    if changed == 0 {
        Err(StoreError::NotFound(what))
    } else {
        Ok(())
    }
}

pub(super) fn random_id(prefix: &str, len: usize) -> String {
    format!(
        "{prefix}{}",
        Alphanumeric
            .sample_string(&mut rand::rng(), len)
            .to_uppercase()
    )
}

impl Store {
    /// Creates an instance.
    pub fn create_instance(&self, id: &str, name: &str) -> Result<(), StoreError> {
        if id.is_empty() || id.contains(['|', ' ']) {
            return Err(StoreError::Invalid(format!(
                "instance id {id:?} may not be empty or hold '|' or spaces"
            )));
        }
        let sql = "INSERT INTO instances (id, name, created_at) VALUES (?1, ?2, ?3)";
        self.sql(|db| db.execute(sql, args![id, name, unix_now()]))
            .map_err(conflict(format!("instance {id} already exists")))?;
        Ok(())
    }

    /// Lists instances with their AccessKeyIds.
    pub fn list_instances(&self) -> Result<Vec<InstanceRow>, StoreError> {
        self.snapshot(|db| {
            let sql = "SELECT id, name, created_at FROM instances ORDER BY id";
            let mut rows = db.query_map(sql, args![], |r| {
                Ok(InstanceRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    access_keys: vec![],
                    created_at: r.get(2)?,
                })
            })?;
            let sql = "SELECT id FROM access_keys WHERE instance_id = ?1 ORDER BY created_at, id";
            for row in &mut rows {
                row.access_keys = db.query_map(sql, args![row.id], |r| r.get(0))?;
            }
            Ok(rows)
        })
    }

    /// Deletes an instance and everything it owns.
    pub fn delete_instance(&self, id: &str) -> Result<(), StoreError> {
        let n = self.sql(|db| db.execute("DELETE FROM instances WHERE id = ?1", args![id]))?;
        expect_one(n, format!("no instance {id}"))
    }

    /// Provisions a Group ID for an instance.
    pub fn create_group(&self, instance: &str, group: &str) -> Result<(), StoreError> {
        crate::policy::parse_client_id(&format!("{group}@@@x"), usize::MAX)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let sql = "INSERT INTO groups (id, instance_id, created_at) VALUES (?1, ?2, ?3)";
        self.sql(|db| db.execute(sql, args![group, instance, unix_now()]))
            .map_err(conflict(format!(
                "Group ID {group} already exists or instance {instance} does not"
            )))?;
        Ok(())
    }

    /// Lists Group IDs (of one instance, or all) with their permissions.
    pub fn list_groups(&self, instance: Option<&str>) -> Result<Vec<GroupRow>, StoreError> {
        self.snapshot(|db| {
            let sql = "SELECT id, instance_id, p2p_scope FROM groups WHERE CAST(?1 AS TEXT) IS NULL OR instance_id = ?1 ORDER BY id";
            let base = db.rows(sql, args![instance])?;
            let sql = "SELECT topic, publish, subscribe FROM grants WHERE group_id = ?1 ORDER BY topic";
            let mut out = Vec::new();
            for r in base {
                let id: String = r.get(0)?;
                let grants = db.query_map(sql, args![id], |r| {
                    Ok(GrantRow {
                        topic: r.get(0)?,
                        publish: r.get(1)?,
                        subscribe: r.get(2)?,
                    })
                })?;
                let scope: String = r.get(2)?;
                out.push(GroupRow {
                    id,
                    instance: r.get(1)?,
                    p2p_scope: P2pScope::parse(&scope).unwrap_or_default(),
                    grants,
                });
            }
            Ok(out)
        })
    }

    /// Deletes a Group ID (the broker then disconnects its clients).
    pub fn delete_group(&self, group: &str) -> Result<(), StoreError> {
        let n = self.sql(|db| db.execute("DELETE FROM groups WHERE id = ?1", args![group]))?;
        expect_one(n, format!("no Group ID {group}"))
    }

    /// Sets where a group's devices may send P2P messages.
    pub fn set_p2p_scope(&self, group: &str, scope: P2pScope) -> Result<(), StoreError> {
        let sql = "UPDATE groups SET p2p_scope = ?1 WHERE id = ?2";
        let n = self.sql(|db| db.execute(sql, args![scope.as_str(), group]))?;
        expect_one(n, format!("no Group ID {group}"))
    }

    /// Grants a group publish and/or subscribe on a parent topic of its
    /// instance; from its first grant on, a group may use only granted topics.
    pub fn grant(
        &self,
        group: &str,
        topic: &str,
        publish: bool,
        subscribe: bool,
    ) -> Result<(), StoreError> {
        self.tx(|db| {
            let sql = "SELECT 1 FROM groups g JOIN topics t ON t.instance_id = g.instance_id WHERE g.id = ?1 AND t.name = ?2";
            if db.rows(sql, args![group, topic])?.is_empty() {
                return Err(StoreError::NotFound(format!(
                    "no Group ID {group} with a parent topic {topic} in the same instance"
                )));
            }
            db.execute(
                "INSERT INTO grants (group_id, topic, publish, subscribe) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (group_id, topic) DO UPDATE SET publish = ?3, subscribe = ?4",
                args![group, topic, publish, subscribe],
            )?;
            Ok(())
        })
    }

    /// Removes a group's grant on a topic.
    pub fn revoke_grant(&self, group: &str, topic: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM grants WHERE group_id = ?1 AND topic = ?2";
        let n = self.sql(|db| db.execute(sql, args![group, topic]))?;
        expect_one(n, format!("Group ID {group} has no grant on {topic}"))
    }

    /// Provisions a parent topic for an instance.
    pub fn create_topic(
        &self,
        instance: &str,
        name: &str,
        role: TopicRole,
    ) -> Result<(), StoreError> {
        if name.is_empty() || name.contains(['/', '+', '#']) || name.starts_with('$') {
            return Err(StoreError::Invalid(format!(
                "parent topic {name:?} must be one non-empty level without wildcards or a leading $"
            )));
        }
        let sql =
            "INSERT INTO topics (name, instance_id, role, created_at) VALUES (?1, ?2, ?3, ?4)";
        self.sql(|db| db.execute(sql, args![name, instance, role.as_str(), unix_now()]))
            .map_err(conflict(format!(
                "parent topic {name} already exists or instance {instance} does not"
            )))?;
        Ok(())
    }

    /// Lists parent topics (of one instance, or all).
    pub fn list_topics(&self, instance: Option<&str>) -> Result<Vec<TopicRow>, StoreError> {
        let sql = "SELECT name, instance_id, role FROM topics WHERE CAST(?1 AS TEXT) IS NULL OR instance_id = ?1 ORDER BY name";
        self.sql(|db| {
            db.query_map(sql, args![instance], |r| {
                let role: String = r.get(2)?;
                Ok(TopicRow {
                    name: r.get(0)?,
                    instance: r.get(1)?,
                    role: TopicRole::parse(&role)
                        .ok_or_else(|| StoreError::Corrupt(format!("role {role}")))?,
                })
            })
        })
    }

    /// Deletes a parent topic.
    pub fn delete_topic(&self, name: &str) -> Result<(), StoreError> {
        let n = self.sql(|db| db.execute("DELETE FROM topics WHERE name = ?1", args![name]))?;
        expect_one(n, format!("no parent topic {name}"))
    }

    /// Creates an access key with a random secret for an instance.
    pub fn create_access_key(&self, instance: &str) -> Result<NewAccessKey, StoreError> {
        let key = NewAccessKey {
            id: random_id("AK", 18),
            secret: Alphanumeric.sample_string(&mut rand::rng(), 30),
            instance: instance.to_string(),
        };
        let sealed = self.key().seal(&key.secret);
        let sql = "INSERT INTO access_keys (id, instance_id, secret, secret_enc, created_at) VALUES (?1, ?2, '', ?3, ?4)";
        self.sql(|db| db.execute(sql, args![key.id, instance, sealed, unix_now()]))
            .map_err(conflict(format!("instance {instance} does not exist")))?;
        Ok(key)
    }

    /// Deletes an access key (clients authenticated with it are disconnected).
    pub fn delete_access_key(&self, id: &str) -> Result<(), StoreError> {
        let n = self.sql(|db| db.execute("DELETE FROM access_keys WHERE id = ?1", args![id]))?;
        expect_one(n, format!("no AccessKeyId {id}"))
    }

    /// Whether nothing at all is provisioned yet (a first start).
    pub fn is_unprovisioned(&self) -> Result<bool, StoreError> {
        let sql = "SELECT 1 FROM instances LIMIT 1";
        Ok(self.sql(|db| db.rows(sql, args![]))?.is_empty())
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
pub(crate) mod tests {
    use super::*;

    pub(crate) fn demo_tenant_is_created_once(s: &Store) {
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

    pub(crate) fn duplicates_and_dangling_references_are_conflicts(s: &Store) {
        s.create_instance("i1", "one").unwrap();
        assert!(matches!(
            s.create_instance("i1", "again"),
            Err(StoreError::Conflict(_))
        ));
        s.create_group("i1", "GID_aaa").unwrap();
        assert!(matches!(
            s.create_group("i1", "GID_aaa"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_group("nope", "GID_bbb"),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_group("i1", "bad"),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.create_topic("nope", "t", TopicRole::Event),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            s.create_topic("i1", "a/b", TopicRole::Event),
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            s.delete_group("GID_none"),
            Err(StoreError::NotFound(_))
        ));
    }

    pub(crate) fn grants_scope_and_cascades(s: &Store) {
        s.provision_demo().unwrap();
        s.grant("GID_web", "rtc_up", true, false).unwrap();
        s.set_p2p_scope("GID_web", P2pScope::Group).unwrap();
        let d = s.directory().unwrap();
        let g = &d.groups["GID_web"];
        assert_eq!(g.p2p_scope, P2pScope::Group);
        assert!(g.grants.as_ref().unwrap()["rtc_up"].publish);
        assert!(
            d.groups["GID_demo"].grants.is_none(),
            "other groups keep defaults"
        );
        s.create_instance("i2", "two").unwrap();
        s.create_topic("i2", "theirs", TopicRole::Event).unwrap();
        assert!(matches!(
            s.grant("GID_web", "theirs", true, true),
            Err(StoreError::NotFound(_))
        ));
        s.delete_topic("rtc_up").unwrap();
        assert!(
            s.directory().unwrap().groups["GID_web"].grants.is_none(),
            "grant went with its topic"
        );
        s.delete_instance(DEMO_INSTANCE).unwrap();
        assert!(s.directory().unwrap().groups.is_empty());
    }

    pub(crate) fn secrets_are_not_stored_in_clear(s: &Store) {
        let t = s.provision_demo().unwrap().unwrap();
        let raw: Vec<u8> = s.one("SELECT secret_enc FROM access_keys");
        let plain: String = s.one("SELECT secret FROM access_keys");
        assert!(plain.is_empty());
        assert!(!raw
            .windows(t.key.secret.len())
            .any(|w| w == t.key.secret.as_bytes()));
    }

    crate::store::on_both!(
        demo_tenant_is_created_once,
        duplicates_and_dangling_references_are_conflicts,
        grants_scope_and_cascades,
        secrets_are_not_stored_in_clear
    );
}
