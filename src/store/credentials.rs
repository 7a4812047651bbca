//! Per-device credentials (DeviceCredential mode) and tokens (Token mode).

use base64::Engine;
use rand::distr::{Alphanumeric, SampleString};
use rand::RngCore;
use serde::Serialize;

use super::db::args;
use super::provision::{conflict, expect_one, random_id};
use super::{token_hash, unix_now, Store, StoreError};
use crate::directory::TokenKind;

/// A device credential just created: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewDeviceCredential {
    /// DeviceAccessKeyId.
    pub id: String,
    /// DeviceAccessKeySecret.
    pub secret: String,
    /// The client id it authenticates.
    pub client_id: String,
    /// The instance.
    pub instance: String,
}

/// A token just issued: the only time the token itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Public id, for listing and revoking.
    pub id: String,
    /// The token, for the CONNECT password (`R|<token>`) or `$SYS/uploadToken`.
    pub token: String,
    /// R, W or RW.
    pub kind: TokenKind,
    /// Topic filters it covers.
    pub resources: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// The instance.
    pub instance: String,
}

/// A device credential, as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DeviceRow {
    /// DeviceAccessKeyId.
    pub id: String,
    /// The instance.
    pub instance: String,
    /// The client id it authenticates.
    pub client_id: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A token, as listed (no token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TokenRow {
    /// Public id.
    pub id: String,
    /// The instance.
    pub instance: String,
    /// R, W or RW.
    pub kind: TokenKind,
    /// Topic filters it covers.
    pub resources: Vec<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Store {
    /// Issues a DeviceCredential key pair for `client_id` in `instance`.
    pub fn create_device(
        &self,
        instance: &str,
        client_id: &str,
    ) -> Result<NewDeviceCredential, StoreError> {
        let parts = crate::policy::parse_client_id(client_id, 64)
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let sql = "SELECT instance_id FROM groups WHERE id = ?1";
        let owner: Option<String> =
            self.sql(|db| db.query_row(sql, args![parts.group], |r| r.get(0)))?;
        if owner.as_deref() != Some(instance) {
            return Err(StoreError::NotFound(format!(
                "Group ID {} is not provisioned in instance {instance}",
                parts.group
            )));
        }
        let cred = NewDeviceCredential {
            id: random_id("DK", 18),
            secret: Alphanumeric.sample_string(&mut rand::rng(), 30),
            client_id: client_id.to_string(),
            instance: instance.to_string(),
        };
        let sealed = self.key().seal(&cred.secret);
        let sql =
            "INSERT INTO device_credentials (id, instance_id, client_id, secret_enc, created_at)
                   VALUES (?1, ?2, ?3, ?4, ?5)";
        self.sql(|db| db.execute(sql, args![cred.id, instance, client_id, sealed, unix_now()]))
            .map_err(conflict(format!("instance {instance} does not exist")))?;
        Ok(cred)
    }

    /// Lists device credentials (of one instance, or all).
    pub fn list_devices(&self, instance: Option<&str>) -> Result<Vec<DeviceRow>, StoreError> {
        let sql = "SELECT id, instance_id, client_id, created_at FROM device_credentials
                   WHERE CAST(?1 AS TEXT) IS NULL OR instance_id = ?1 ORDER BY client_id, id";
        self.sql(|db| {
            db.query_map(sql, args![instance], |r| {
                Ok(DeviceRow {
                    id: r.get(0)?,
                    instance: r.get(1)?,
                    client_id: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })
        })
    }

    /// Deletes a device credential (its client, if connected with it, is disconnected).
    pub fn delete_device(&self, id: &str) -> Result<(), StoreError> {
        let sql = "DELETE FROM device_credentials WHERE id = ?1";
        let n = self.sql(|db| db.execute(sql, args![id]))?;
        expect_one(n, format!("no DeviceAccessKeyId {id}"))
    }

    /// Issues a token of `kind` for `resources` (topic filters of the
    /// instance's parent topics) valid `ttl_secs` from `now`.
    pub fn create_token(
        &self,
        instance: &str,
        kind: TokenKind,
        resources: &[String],
        now: i64,
        ttl_secs: i64,
    ) -> Result<NewToken, StoreError> {
        if resources.is_empty() || ttl_secs <= 0 {
            return Err(StoreError::Invalid(
                "a token needs at least one resource and a positive lifetime".into(),
            ));
        }
        let owned = self.list_topics(Some(instance))?;
        for r in resources {
            let parent = r.split('/').next().unwrap_or_default();
            if r.contains(',') || !(parent == "#" || owned.iter().any(|t| t.name == parent)) {
                return Err(StoreError::Invalid(format!(
                    "resource {r:?} must start with a parent topic of instance {instance}"
                )));
            }
        }
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let new = NewToken {
            id: random_id("TK", 12),
            token,
            kind,
            resources: resources.to_vec(),
            expires_at: now + ttl_secs,
            instance: instance.to_string(),
        };
        let sql = "INSERT INTO tokens (id, token_hash, instance_id, kind, resources, expires_at, created_at)
                   VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
        let (hash, joined) = (token_hash(&new.token), resources.join(","));
        let (kind_s, now_s) = (kind.as_str(), unix_now());
        let a = args![
            new.id,
            hash,
            instance,
            kind_s,
            joined,
            new.expires_at,
            now_s
        ];
        self.sql(|db| db.execute(sql, a))
            .map_err(conflict(format!("instance {instance} does not exist")))?;
        Ok(new)
    }

    /// Lists tokens (of one instance, or all).
    pub fn list_tokens(&self, instance: Option<&str>) -> Result<Vec<TokenRow>, StoreError> {
        let sql = "SELECT id, instance_id, kind, resources, expires_at FROM tokens
                   WHERE CAST(?1 AS TEXT) IS NULL OR instance_id = ?1 ORDER BY expires_at, id";
        self.sql(|db| {
            db.query_map(sql, args![instance], |r| {
                let (kind, resources): (String, String) = (r.get(2)?, r.get(3)?);
                Ok(TokenRow {
                    id: r.get(0)?,
                    instance: r.get(1)?,
                    kind: TokenKind::parse(&kind)
                        .ok_or_else(|| StoreError::Corrupt(format!("token type {kind}")))?,
                    resources: resources.split(',').map(str::to_string).collect(),
                    expires_at: r.get(4)?,
                })
            })
        })
    }

    /// Revokes a token (its clients get `$SYS/tokenInvalidNotice` and are disconnected).
    pub fn delete_token(&self, id: &str) -> Result<(), StoreError> {
        let n = self.sql(|db| db.execute("DELETE FROM tokens WHERE id = ?1", args![id]))?;
        expect_one(n, format!("no token {id}"))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::DEMO_INSTANCE;

    pub(crate) fn devices_are_bound_to_provisioned_client_ids(s: &Store) {
        s.provision_demo().unwrap();
        let d = s.create_device(DEMO_INSTANCE, "GID_demo@@@phone").unwrap();
        let dir = s.directory().unwrap();
        assert_eq!(dir.devices[&d.id].client_id, "GID_demo@@@phone");
        assert_eq!(dir.devices[&d.id].secret, d.secret);
        assert!(matches!(
            s.create_device(DEMO_INSTANCE, "GID_none@@@x"),
            Err(StoreError::NotFound(_))
        ));
        assert!(matches!(
            s.create_device(DEMO_INSTANCE, "nonsense"),
            Err(StoreError::Invalid(_))
        ));
        s.delete_device(&d.id).unwrap();
        assert!(s.list_devices(None).unwrap().is_empty());
    }

    pub(crate) fn tokens_are_stored_as_hashes(s: &Store) {
        s.provision_demo().unwrap();
        let t = s
            .create_token(
                DEMO_INSTANCE,
                TokenKind::RW,
                &["rtc_event/#".into()],
                1000,
                60,
            )
            .unwrap();
        let dir = s.directory().unwrap();
        let g = &dir.tokens[&token_hash(&t.token)];
        assert_eq!((g.kind, g.expires_at), (TokenKind::RW, 1060));
        let stored: String = s.one("SELECT token_hash FROM tokens");
        assert_ne!(stored, t.token);
        assert!(s
            .create_token(DEMO_INSTANCE, TokenKind::R, &["elsewhere/#".into()], 0, 60)
            .is_err());
        assert!(s
            .create_token(DEMO_INSTANCE, TokenKind::R, &["rtc_up".into()], 0, 0)
            .is_err());
        s.delete_token(&t.id).unwrap();
        assert!(s.directory().unwrap().tokens.is_empty());
    }

    crate::store::on_both!(
        devices_are_bound_to_provisioned_client_ids,
        tokens_are_stored_as_hashes
    );
}
