//! Who may use the console and the admin API: sign-in with the argon2id
//! password (failures slowed per address), console sessions, API keys.

use std::net::IpAddr;

use super::{Ops, OpsError};
use crate::store::{unix_now, ApiKeyRow, NewApiKey, SignedIn};

/// How long a console session lasts (seconds).
pub const SESSION_SECS: i64 = 12 * 3600;

/// Why a sign-in failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong name or password (which one is not told).
    #[error("wrong name or password")]
    Wrong,
    /// The appliance failed.
    #[error(transparent)]
    Ops(#[from] OpsError),
}

impl Ops {
    /// Checks a name and password; a failure from `ip` after the first few is
    /// answered ever more slowly. On success, a new session.
    pub async fn sign_in(
        &self,
        name: String,
        password: String,
        ip: IpAddr,
    ) -> Result<SignedIn, SignInError> {
        let who = name.clone();
        let ok = self.db(move |s| s.verify_admin(&who, &password)).await?;
        if !ok {
            let delay = self.tarpit.failure(ip);
            tracing::warn!(%ip, user = %name, ?delay, "console sign-in refused");
            tokio::time::sleep(delay).await;
            return Err(SignInError::Wrong);
        }
        self.tarpit.success(ip);
        tracing::info!(%ip, user = %name, "console sign-in");
        let now = unix_now();
        Ok(self
            .db(move |s| s.create_session(&name, now, SESSION_SECS))
            .await?)
    }

    /// The admin a session cookie belongs to.
    pub async fn session_user(&self, token: String) -> Result<Option<String>, OpsError> {
        let now = unix_now();
        self.db(move |s| s.session_user(&token, now)).await
    }

    /// Ends a session.
    pub async fn sign_out(&self, token: String) -> Result<(), OpsError> {
        self.db(move |s| s.end_session(&token)).await
    }

    /// The admin an API key acts for.
    pub async fn api_key_user(&self, key: String) -> Result<Option<String>, OpsError> {
        let now = unix_now();
        self.db(move |s| s.api_key_user(&key, now)).await
    }

    /// API keys (not the keys).
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyRow>, OpsError> {
        self.db(|s| s.list_api_keys()).await
    }

    /// Creates an API key for admin `by` (shown once).
    pub async fn create_api_key(&self, name: String, by: String) -> Result<NewApiKey, OpsError> {
        let now = unix_now();
        self.db(move |s| s.create_api_key(&name, &by, now)).await
    }

    /// Revokes an API key.
    pub async fn revoke_api_key(&self, id: String) -> Result<(), OpsError> {
        let now = unix_now();
        self.db(move |s| s.revoke_api_key(&id, now)).await
    }
}
