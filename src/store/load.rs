//! Loading the whole provisioning state into a [`Directory`].

use std::collections::HashMap;

use super::db::args;
use super::{Store, StoreError};
use crate::directory::{
    AccessKey, DeviceCredential, Directory, Grant, Group, P2pScope, ParentTopic, TokenGrant,
    TokenKind, TopicRole,
};

impl Store {
    /// Everything provisioned, secrets decrypted, as the broker's checks want
    /// it; read in one transaction, so it is one consistent picture.
    pub fn directory(&self) -> Result<Directory, StoreError> {
        self.snapshot(|db| {
            let sql = "SELECT id FROM instances ORDER BY id";
            let mut d = Directory {
                instances: db.query_map(sql, args![], |r| r.get(0))?,
                ..Directory::default()
            };
            let sql = "SELECT id, instance_id, p2p_scope FROM groups";
            for r in db.rows(sql, args![])? {
                let (id, scope): (String, String) = (r.get(0)?, r.get(2)?);
                let p2p_scope = P2pScope::parse(&scope).ok_or_else(|| {
                    StoreError::Corrupt(format!("group {id} has P2P scope {scope}"))
                })?;
                let instance = r.get(1)?;
                let grants = None;
                d.groups.insert(
                    id,
                    Group {
                        instance,
                        p2p_scope,
                        grants,
                    },
                );
            }
            let sql = "SELECT group_id, topic, publish, subscribe FROM grants";
            for r in db.rows(sql, args![])? {
                let group: String = r.get(0)?;
                let grant = Grant {
                    publish: r.get(2)?,
                    subscribe: r.get(3)?,
                };
                if let Some(g) = d.groups.get_mut(&group) {
                    g.grants
                        .get_or_insert_with(HashMap::new)
                        .insert(r.get(1)?, grant);
                }
            }
            for r in db.rows("SELECT name, instance_id, role FROM topics", args![])? {
                let (name, role): (String, String) = (r.get(0)?, r.get(2)?);
                let role = TopicRole::parse(&role)
                    .ok_or_else(|| StoreError::Corrupt(format!("topic {name} has role {role}")))?;
                let instance = r.get(1)?;
                d.topics.insert(name, ParentTopic { instance, role });
            }
            let sql = "SELECT id, instance_id, secret_enc FROM access_keys";
            for r in db.rows(sql, args![])? {
                let secret = self.key().open(&r.get::<Vec<u8>>(2)?)?;
                let key = AccessKey {
                    instance: r.get(1)?,
                    secret,
                };
                d.access_keys.insert(r.get(0)?, key);
            }
            let sql = "SELECT id, instance_id, client_id, secret_enc FROM device_credentials";
            for r in db.rows(sql, args![])? {
                let device = DeviceCredential {
                    instance: r.get(1)?,
                    client_id: r.get(2)?,
                    secret: self.key().open(&r.get::<Vec<u8>>(3)?)?,
                };
                d.devices.insert(r.get(0)?, device);
            }
            let sql = "SELECT id, token_hash, instance_id, kind, resources, expires_at FROM tokens";
            for r in db.rows(sql, args![])? {
                let (id, kind): (String, String) = (r.get(0)?, r.get(3)?);
                let kind = TokenKind::parse(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("token {id} has type {kind}")))?;
                let resources: String = r.get(4)?;
                let grant = TokenGrant {
                    id,
                    instance: r.get(2)?,
                    kind,
                    resources: resources.split(',').map(str::to_string).collect(),
                    expires_at: r.get(5)?,
                };
                d.tokens.insert(r.get(1)?, grant);
            }
            Ok(d)
        })
    }
}
