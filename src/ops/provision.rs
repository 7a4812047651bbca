//! Provisioning through the service layer: the same store functions the
//! `mqrtc instance|group|topic|device|token` verbs call, each change applied
//! to the running broker at once.

use serde::{Deserialize, Serialize};

use super::{Ops, OpsError};
use crate::directory::{P2pScope, TokenKind, TopicRole};
use crate::store::{
    DeviceRow, GroupRow, InstanceRow, NewAccessKey, NewDeviceCredential, NewToken, StoreError,
    TokenRow, TopicRow,
};

/// A new instance.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InstanceInput {
    /// Instance id, used in usernames (`Mode|Key|InstanceId`).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
}

/// A new Group ID.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct GroupInput {
    /// `GID_...` or `GID-...`.
    pub id: String,
    /// Owning instance.
    pub instance: String,
    /// Where its devices may send P2P (default: instance).
    #[serde(default)]
    pub p2p: P2pScope,
}

/// A grant on a parent topic.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct GrantInput {
    /// Allow publishing.
    #[serde(default)]
    pub publish: bool,
    /// Allow subscribing.
    #[serde(default)]
    pub subscribe: bool,
}

/// A new parent topic.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TopicInput {
    /// The first topic level.
    pub name: String,
    /// Owning instance.
    pub instance: String,
    /// uplink, downlink or event.
    pub role: TopicRole,
}

/// A new device credential.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct DeviceInput {
    /// `GroupID@@@DeviceID`.
    pub client_id: String,
    /// Instance.
    pub instance: String,
}

/// A new token.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct TokenInput {
    /// Instance.
    pub instance: String,
    /// R, W or RW.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// Topic filters it covers; a bare parent topic covers all of it.
    pub resources: Vec<String>,
    /// Lifetime in seconds (default one day).
    pub ttl: Option<i64>,
}

/// Everything provisioned, for the console's provisioning page.
#[derive(Debug, Clone, Serialize)]
pub struct Provisioned {
    /// Instances with their AccessKeyIds.
    pub instances: Vec<InstanceRow>,
    /// Group IDs with their grants.
    pub groups: Vec<GroupRow>,
    /// Parent topics.
    pub topics: Vec<TopicRow>,
    /// Device credentials.
    pub devices: Vec<DeviceRow>,
    /// Tokens (not the tokens themselves).
    pub tokens: Vec<TokenRow>,
}

impl Ops {
    /// Everything provisioned.
    pub async fn provisioned(&self) -> Result<Provisioned, OpsError> {
        self.db(|s| {
            Ok(Provisioned {
                instances: s.list_instances()?,
                groups: s.list_groups(None)?,
                topics: s.list_topics(None)?,
                devices: s.list_devices(None)?,
                tokens: s.list_tokens(None)?,
            })
        })
        .await
    }

    /// Instances with their AccessKeyIds.
    pub async fn instances(&self) -> Result<Vec<InstanceRow>, OpsError> {
        self.db(|s| s.list_instances()).await
    }

    /// Creates an instance.
    pub async fn create_instance(&self, i: InstanceInput) -> Result<(), OpsError> {
        self.change(move |s| s.create_instance(&i.id, &i.name))
            .await
    }

    /// Deletes an instance and everything it owns.
    pub async fn delete_instance(&self, id: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_instance(&id)).await
    }

    /// Creates an access key for an instance (its secret is shown once).
    pub async fn add_access_key(&self, instance: String) -> Result<NewAccessKey, OpsError> {
        self.change(move |s| s.create_access_key(&instance)).await
    }

    /// Revokes an access key (its clients are disconnected).
    pub async fn delete_access_key(&self, key_id: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_access_key(&key_id)).await
    }

    /// Replaces an access key by a new one of the same instance in one step.
    pub async fn rotate_access_key(&self, key_id: String) -> Result<NewAccessKey, OpsError> {
        self.change(move |s| {
            let instance = s
                .list_instances()?
                .into_iter()
                .find(|i| i.access_keys.contains(&key_id))
                .map(|i| i.id)
                .ok_or_else(|| StoreError::NotFound(format!("no AccessKeyId {key_id}")))?;
            let fresh = s.create_access_key(&instance)?;
            s.delete_access_key(&key_id)?;
            Ok(fresh)
        })
        .await
    }

    /// Group IDs with their grants.
    pub async fn groups(&self) -> Result<Vec<GroupRow>, OpsError> {
        self.db(|s| s.list_groups(None)).await
    }

    /// Provisions a Group ID.
    pub async fn create_group(&self, g: GroupInput) -> Result<(), OpsError> {
        self.change(move |s| {
            s.create_group(&g.instance, &g.id)?;
            s.set_p2p_scope(&g.id, g.p2p)
        })
        .await
    }

    /// Deletes a Group ID (its clients are disconnected).
    pub async fn delete_group(&self, id: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_group(&id)).await
    }

    /// Sets where a group's devices may send P2P.
    pub async fn set_p2p(&self, id: String, scope: P2pScope) -> Result<(), OpsError> {
        self.change(move |s| s.set_p2p_scope(&id, scope)).await
    }

    /// Grants publish and/or subscribe on a parent topic.
    pub async fn grant(&self, id: String, topic: String, g: GrantInput) -> Result<(), OpsError> {
        if !g.publish && !g.subscribe {
            return Err(OpsError::Invalid(
                "grant --publish, --subscribe or both".into(),
            ));
        }
        self.change(move |s| s.grant(&id, &topic, g.publish, g.subscribe))
            .await
    }

    /// Removes a grant.
    pub async fn revoke_grant(&self, id: String, topic: String) -> Result<(), OpsError> {
        self.change(move |s| s.revoke_grant(&id, &topic)).await
    }

    /// Parent topics.
    pub async fn topics(&self) -> Result<Vec<TopicRow>, OpsError> {
        self.db(|s| s.list_topics(None)).await
    }

    /// Provisions a parent topic.
    pub async fn create_topic(&self, t: TopicInput) -> Result<(), OpsError> {
        self.change(move |s| s.create_topic(&t.instance, &t.name, t.role))
            .await
    }

    /// Deletes a parent topic.
    pub async fn delete_topic(&self, name: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_topic(&name)).await
    }

    /// Device credentials.
    pub async fn device_credentials(&self) -> Result<Vec<DeviceRow>, OpsError> {
        self.db(|s| s.list_devices(None)).await
    }

    /// Issues a DeviceCredential key pair (its secret is shown once).
    pub async fn create_device_credential(
        &self,
        d: DeviceInput,
    ) -> Result<NewDeviceCredential, OpsError> {
        self.change(move |s| s.create_device(&d.instance, &d.client_id))
            .await
    }

    /// Deletes a device credential (its client is disconnected).
    pub async fn delete_device_credential(&self, id: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_device(&id)).await
    }

    /// Tokens (not the tokens themselves).
    pub async fn tokens(&self) -> Result<Vec<TokenRow>, OpsError> {
        self.db(|s| s.list_tokens(None)).await
    }

    /// Issues a token (shown once).
    pub async fn create_token(&self, t: TokenInput) -> Result<NewToken, OpsError> {
        let now = crate::store::unix_now();
        self.change(move |s| {
            s.create_token(
                &t.instance,
                t.kind,
                &t.resources,
                now,
                t.ttl.unwrap_or(86_400),
            )
        })
        .await
    }

    /// Revokes a token (its clients are told and disconnected).
    pub async fn delete_token(&self, id: String) -> Result<(), OpsError> {
        self.change(move |s| s.delete_token(&id)).await
    }
}
