//! Loading the whole provisioning state into a [`Directory`].

use std::collections::HashMap;

use super::{Store, StoreError};
use crate::directory::{
    AccessKey, DeviceCredential, Directory, Grant, Group, P2pScope, ParentTopic, TokenGrant,
    TokenKind, TopicRole,
};

impl Store {
    /// Everything provisioned, secrets decrypted, as the broker's checks want it.
    pub fn directory(&self) -> Result<Directory, StoreError> {
        let conn = self.conn();
        let mut d = Directory::default();
        let mut st = conn.prepare("SELECT id FROM instances ORDER BY id")?;
        d.instances = st.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;

        let mut st = conn.prepare("SELECT id, instance_id, p2p_scope FROM groups")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (id, instance, scope): (String, String, String) = row?;
            let p2p_scope = P2pScope::parse(&scope)
                .ok_or_else(|| StoreError::Corrupt(format!("group {id} has P2P scope {scope}")))?;
            d.groups.insert(
                id,
                Group {
                    instance,
                    p2p_scope,
                    grants: None,
                },
            );
        }
        let mut st = conn.prepare("SELECT group_id, topic, publish, subscribe FROM grants")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))? {
            let (group, topic, publish, subscribe): (String, String, bool, bool) = row?;
            if let Some(g) = d.groups.get_mut(&group) {
                g.grants
                    .get_or_insert_with(HashMap::new)
                    .insert(topic, Grant { publish, subscribe });
            }
        }

        let mut st = conn.prepare("SELECT name, instance_id, role FROM topics")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (name, instance, role): (String, String, String) = row?;
            let role = TopicRole::parse(&role)
                .ok_or_else(|| StoreError::Corrupt(format!("topic {name} has role {role}")))?;
            d.topics.insert(name, ParentTopic { instance, role });
        }

        let mut st = conn.prepare("SELECT id, instance_id, secret_enc FROM access_keys")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))? {
            let (id, instance, sealed): (String, String, Vec<u8>) = row?;
            let secret = self.key().open(&sealed)?;
            d.access_keys.insert(id, AccessKey { instance, secret });
        }

        let mut st =
            conn.prepare("SELECT id, instance_id, client_id, secret_enc FROM device_credentials")?;
        for row in st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))? {
            let (id, instance, client_id, sealed): (String, String, String, Vec<u8>) = row?;
            let secret = self.key().open(&sealed)?;
            d.devices.insert(
                id,
                DeviceCredential {
                    instance,
                    client_id,
                    secret,
                },
            );
        }

        let mut st = conn.prepare(
            "SELECT id, token_hash, instance_id, kind, resources, expires_at FROM tokens",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })?;
        for row in rows {
            let (id, hash, instance, kind, resources, expires_at): (
                String,
                String,
                String,
                String,
                String,
                i64,
            ) = row?;
            let kind = TokenKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("token {id} has type {kind}")))?;
            let resources = resources.split(',').map(str::to_string).collect();
            d.tokens.insert(
                hash,
                TokenGrant {
                    id,
                    instance,
                    kind,
                    resources,
                    expires_at,
                },
            );
        }
        Ok(d)
    }
}
