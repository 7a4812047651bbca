//! Admin accounts (argon2id), their console sessions and API keys. Only
//! hashes are stored: a stolen database opens no console and no API.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;

use super::db::args;
use super::provision::random_id;
use super::{token_hash, Store, StoreError};

/// The account a first start creates.
pub const FIRST_ADMIN: &str = "admin";

/// A session cookie value, or an API key, just created (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignedIn {
    /// The cookie value.
    pub token: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// An API key just created: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    /// Public id, for listing and revoking.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The key: send it as `Authorization: Bearer <key>`.
    pub key: String,
}

/// An API key, as listed (no key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ApiKeyRow {
    /// Public id.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The admin who created it.
    pub created_by: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds, if it was ever used.
    pub last_used: Option<i64>,
    /// Unix seconds, if revoked.
    pub revoked_at: Option<i64>,
}

fn random_secret(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::rng(), len)
}

fn hash_password(password: &str) -> Result<String, StoreError> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Invalid(format!("password cannot be hashed: {e}")))
}

impl Store {
    /// Creates the first admin with a random password if there is no admin
    /// yet; returns that password (to be written where only the owner reads it).
    pub fn ensure_admin(&self, now: i64) -> Result<Option<String>, StoreError> {
        let sql = "SELECT 1 FROM admin_users LIMIT 1";
        if !self.sql(|db| db.rows(sql, args![]))?.is_empty() {
            return Ok(None);
        }
        let password = random_secret(24);
        self.set_admin_password(FIRST_ADMIN, &password, now)?;
        Ok(Some(password))
    }

    /// Sets (creating the account if needed) an admin's password; ends the
    /// account's console sessions.
    pub fn set_admin_password(
        &self,
        name: &str,
        password: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        if password.chars().count() < 12 {
            return Err(StoreError::Invalid(
                "an admin password needs at least 12 characters".into(),
            ));
        }
        if name.is_empty() || name.len() > 64 {
            return Err(StoreError::Invalid(
                "an admin name has 1 to 64 characters".into(),
            ));
        }
        let hash = hash_password(password)?;
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO admin_users (name, hash, created_at, changed_at) VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT(name) DO UPDATE SET hash = excluded.hash, changed_at = excluded.changed_at",
                args![name, hash, now],
            )?;
            tx.execute("DELETE FROM admin_sessions WHERE user_name = ?1", args![name])?;
            Ok(())
        })
    }

    /// Whether `password` is `name`'s (argon2id; takes tens of milliseconds).
    pub fn verify_admin(&self, name: &str, password: &str) -> Result<bool, StoreError> {
        let sql = "SELECT hash FROM admin_users WHERE name = ?1";
        let stored: Option<String> = self.sql(|db| db.query_row(sql, args![name], |r| r.get(0)))?;
        // An unknown name costs a hash too, so timing does not tell names apart.
        let stored = match stored {
            Some(s) => s,
            None => {
                let _ = hash_password(password);
                return Ok(false);
            }
        };
        let parsed = PasswordHash::new(&stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    }

    /// Starts a console session for `name`, valid for `ttl` seconds.
    pub fn create_session(&self, name: &str, now: i64, ttl: i64) -> Result<SignedIn, StoreError> {
        let token = random_secret(43);
        let expires_at = now + ttl;
        let hash = token_hash(&token);
        self.tx(|tx| {
            tx.execute("DELETE FROM admin_sessions WHERE expires_at <= ?1", args![now])?;
            tx.execute(
                "INSERT INTO admin_sessions (id_hash, user_name, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                args![hash, name, now, expires_at],
            )
        })?;
        Ok(SignedIn { token, expires_at })
    }

    /// The admin a session cookie belongs to, if it is valid at `now`.
    pub fn session_user(&self, token: &str, now: i64) -> Result<Option<String>, StoreError> {
        let sql = "SELECT user_name FROM admin_sessions WHERE id_hash = ?1 AND expires_at > ?2";
        let hash = token_hash(token);
        self.sql(|db| db.query_row(sql, args![hash, now], |r| r.get(0)))
    }

    /// Ends a console session (sign-out).
    pub fn end_session(&self, token: &str) -> Result<(), StoreError> {
        let hash = token_hash(token);
        self.sql(|db| db.execute("DELETE FROM admin_sessions WHERE id_hash = ?1", args![hash]))?;
        Ok(())
    }

    /// Creates an API key on behalf of admin `by`.
    pub fn create_api_key(&self, name: &str, by: &str, now: i64) -> Result<NewApiKey, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 {
            return Err(StoreError::Invalid(
                "an API key needs a name of 1 to 64 characters (what it is for)".into(),
            ));
        }
        let id = random_id("KEY", 12);
        let key = format!("mqrtc_{}", random_secret(40));
        let sql = "INSERT INTO api_keys (id, name, hash, created_by, created_at) VALUES (?1, ?2, ?3, ?4, ?5)";
        let hash = token_hash(&key);
        self.sql(|db| db.execute(sql, args![id, name, hash, by, now]))?;
        Ok(NewApiKey {
            id,
            name: name.to_string(),
            key,
        })
    }

    /// Every API key, newest first (revoked ones too).
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        let sql = "SELECT id, name, created_by, created_at, last_used, revoked_at FROM api_keys ORDER BY created_at DESC, id";
        self.sql(|db| {
            db.query_map(sql, args![], |r| {
                Ok(ApiKeyRow {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    created_by: r.get(2)?,
                    created_at: r.get(3)?,
                    last_used: r.get(4)?,
                    revoked_at: r.get(5)?,
                })
            })
        })
    }

    /// Revokes an API key: from now on it is refused.
    pub fn revoke_api_key(&self, id: &str, now: i64) -> Result<(), StoreError> {
        let sql = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL";
        let n = self.sql(|db| db.execute(sql, args![id, now]))?;
        super::provision::expect_one(n, format!("no active API key {id}"))
    }

    /// The admin on whose behalf `key` acts, if it is a live key; notes its use.
    pub fn api_key_user(&self, key: &str, now: i64) -> Result<Option<String>, StoreError> {
        let hash = token_hash(key);
        self.sql(|db| {
            let sql = "SELECT id, created_by FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL";
            let found: Option<(String, String)> =
                db.query_row(sql, args![hash], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if let Some((id, _)) = &found {
                // At most one write a minute per key.
                let sql = "UPDATE api_keys SET last_used = ?2 WHERE id = ?1 AND (last_used IS NULL OR last_used < ?3)";
                db.execute(sql, args![id, now, now - 60])?;
            }
            Ok(found.map(|(_, by)| by))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn first_admin_signs_in_and_a_reset_ends_sessions(s: &Store) {
        let pw = s.ensure_admin(100).unwrap().expect("created");
        assert_eq!(s.ensure_admin(101).unwrap(), None, "only once");
        assert!(s.verify_admin(FIRST_ADMIN, &pw).unwrap());
        assert!(!s.verify_admin(FIRST_ADMIN, "wrong password!").unwrap());
        assert!(!s.verify_admin("nobody", &pw).unwrap());
        let sess = s.create_session(FIRST_ADMIN, 100, 60).unwrap();
        assert_eq!(
            s.session_user(&sess.token, 159).unwrap().as_deref(),
            Some(FIRST_ADMIN)
        );
        assert_eq!(s.session_user(&sess.token, 160).unwrap(), None, "expired");
        let sess = s.create_session(FIRST_ADMIN, 200, 60).unwrap();
        s.set_admin_password(FIRST_ADMIN, "a new long password", 201)
            .unwrap();
        assert_eq!(s.session_user(&sess.token, 202).unwrap(), None);
        assert!(s.set_admin_password(FIRST_ADMIN, "short", 203).is_err());
    }

    pub(crate) fn api_keys_work_until_revoked(s: &Store) {
        let k = s.create_api_key("ci", "admin", 10).unwrap();
        assert_eq!(
            s.api_key_user(&k.key, 11).unwrap().as_deref(),
            Some("admin")
        );
        assert_eq!(s.list_api_keys().unwrap()[0].last_used, Some(11));
        s.revoke_api_key(&k.id, 12).unwrap();
        assert_eq!(s.api_key_user(&k.key, 13).unwrap(), None);
        assert!(matches!(
            s.revoke_api_key(&k.id, 14),
            Err(StoreError::NotFound(_))
        ));
        assert!(s.create_api_key("  ", "admin", 15).is_err());
    }

    crate::store::on_both!(
        first_admin_signs_in_and_a_reset_ends_sessions,
        api_keys_work_until_revoked
    );
}
