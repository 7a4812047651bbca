//! rmqtt hook handler: authentication, ACL, P2P routing, the bridge tap and
//! drop accounting. The decisions come from `auth` and `policy`; this file
//! only translates them to and from rmqtt's types.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use rmqtt::codec::v3::ConnectAckReason as AckV3;
use rmqtt::codec::v5::{ConnectAckReason as AckV5, PublishAckReason, SubscribeAckReason};
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectAckReason, ConnectInfo, From, FromType, LastWill, Publish, PublishAclResult,
    PublishResult, QoS, Reason, Subscribe, SubscribeAclResult,
};

use super::bridge::Tap;
use super::stats::{bump, BrokerStats};
use crate::auth::{self, ConnectRefusal, Credentials};
use crate::bridge::{BridgeEvent, Uplink};
use crate::directory::SharedDirectory;
use crate::policy::{self, Principal, Refusal, RefusalCode, Rules};

/// The client id a refused will is redirected to: no session can have it
/// (it is not a valid client id under the conventions), so it is dropped.
const VOID_CLIENT_ID: &str = "$mqrtc/void";

/// Everything the hooks consult (cheap to clone: one per hook type).
#[derive(Clone)]
pub(crate) struct Hooks {
    pub standard: bool,
    pub rules: Rules,
    pub directory: Arc<SharedDirectory>,
    pub tap: Arc<Tap>,
    pub stats: Arc<BrokerStats>,
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => {
                (false, Some(HookResult::AuthResult(self.authenticate(ci))))
            }
            Parameter::ClientConnack(ci, code) => match self.refine_connack(ci, code) {
                Some(c) => (false, Some(HookResult::ConnectAckReason(c))),
                None => (true, acc),
            },
            Parameter::ClientSubscribeCheckAcl(s, sub) => (
                false,
                Some(HookResult::SubscribeAclResult(
                    self.check_subscribe(s, sub).await,
                )),
            ),
            Parameter::MessagePublishCheckAcl(s, p) => (
                false,
                Some(HookResult::PublishAclResult(self.check_publish(s, p).await)),
            ),
            Parameter::MessagePublish(_, from, p) => match self.route(from, p).await {
                Some(p) => (true, Some(HookResult::Publish(p))),
                None => (true, acc),
            },
            Parameter::ClientConnected(s) => {
                bump(&self.stats.connects);
                let client_id = s.id.client_id.to_string();
                self.tap
                    .send(BridgeEvent::Connected {
                        client_id,
                        at: SystemTime::now(),
                    })
                    .await;
                (true, acc)
            }
            Parameter::ClientDisconnected(s, reason) => {
                let client_id = s.id.client_id.to_string();
                let ev = BridgeEvent::Disconnected {
                    client_id,
                    reason: reason.to_string(),
                    at: SystemTime::now(),
                };
                self.tap.send(ev).await;
                (true, acc)
            }
            Parameter::MessageDropped(to, _from, p, reason) => {
                self.count_drop(to.as_ref().map(|t| t.client_id.as_ref()), &p.topic, reason);
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

impl Hooks {
    fn authenticate(&self, ci: &ConnectInfo) -> AuthResult {
        if self.standard {
            return AuthResult::Allow(false, None);
        }
        let dir = self.directory.get();
        let creds = Credentials {
            client_id: ci.client_id(),
            username: ci.username().map(|u| &u[..]),
            password: ci.password().map(|p| &p[..]),
        };
        let principal = match auth::authenticate(&dir, self.rules.max_client_id_len, creds) {
            Ok(p) => p,
            Err(e) => {
                let n = bump(&self.stats.auth_failures);
                tracing::info!(client_id = %ci.client_id(), remote = ?ci.id().remote_addr, total = n, "connect refused: {e}");
                return match e {
                    ConnectRefusal::BadCredentials(_) => AuthResult::BadUsernameOrPassword,
                    ConnectRefusal::BadClientId(_) | ConnectRefusal::NotAuthorized(_) => {
                        AuthResult::NotAuthorized
                    }
                };
            }
        };
        if let Some((topic, len)) = ci.last_will().map(will_topic_and_len) {
            if let Err(r) = policy::check_publish(&dir, &self.rules, &principal, topic, len) {
                bump(&self.stats.will_refusals);
                tracing::info!(client_id = %ci.client_id(), will_topic = topic, "connect refused: will not allowed: {}", r.reason);
                return AuthResult::NotAuthorized;
            }
        }
        AuthResult::Allow(false, None)
    }

    /// Turns a refusal caused by the client id into CONNACK 2 / 0x85.
    fn refine_connack(
        &self,
        ci: &ConnectInfo,
        code: &ConnectAckReason,
    ) -> Option<ConnectAckReason> {
        if self.standard || code.success() {
            return None;
        }
        let dir = self.directory.get();
        let bad_id = match policy::parse_client_id(ci.client_id(), self.rules.max_client_id_len) {
            Err(_) => true,
            Ok(parts) => dir.group_instance(parts.group).is_none(),
        };
        if !bad_id {
            return None;
        }
        Some(match code {
            ConnectAckReason::V3(_) => ConnectAckReason::V3(AckV3::IdentifierRejected),
            ConnectAckReason::V5(_) => ConnectAckReason::V5(AckV5::ClientIdentifierNotValid),
        })
    }

    fn principal(&self, client_id: &str) -> Option<Principal> {
        let parts = policy::parse_client_id(client_id, self.rules.max_client_id_len).ok()?;
        let instance = self
            .directory
            .get()
            .group_instance(parts.group)?
            .to_string();
        Some(Principal {
            client_id: client_id.into(),
            group: parts.group.into(),
            instance,
        })
    }

    async fn check_subscribe(&self, s: &Session, sub: &Subscribe) -> SubscribeAclResult {
        let qos = sub.opts.qos();
        if self.standard {
            return SubscribeAclResult::new_success(qos, None);
        }
        let verdict = match self.principal(&s.id.client_id) {
            None => Err(no_principal()),
            Some(who) => {
                policy::check_subscribe(&self.directory.get(), &self.rules, &who, &sub.topic_filter)
            }
        };
        match verdict {
            // The cloud service does not offer QoS 2 to clean=false sessions;
            // granting QoS 1 is how MQTT says so.
            Ok(()) => SubscribeAclResult::new_success(qos.min(QoS::AtLeastOnce), None),
            Err(r) => {
                let n = bump(&self.stats.subscribe_refusals);
                tracing::info!(client_id = %s.id.client_id, filter = %sub.topic_filter, total = n, "subscribe refused: {}", r.reason);
                SubscribeAclResult::new_failure(match r.code {
                    RefusalCode::TopicInvalid => SubscribeAckReason::TopicFilterInvalid,
                    RefusalCode::PayloadTooLarge => SubscribeAckReason::UnspecifiedError,
                    RefusalCode::NotAuthorized => SubscribeAckReason::NotAuthorized,
                })
            }
        }
    }

    /// The publish ACL for `client_id` (a client or the owner of a will).
    fn may_publish(&self, client_id: &str, p: &Publish) -> Result<(), Refusal> {
        let who = self.principal(client_id).ok_or_else(no_principal)?;
        let dir = self.directory.get();
        policy::check_publish(&dir, &self.rules, &who, &p.topic, p.payload.len()).map(|_| ())
    }

    async fn check_publish(&self, s: &Session, p: &Publish) -> PublishAclResult {
        if !self.standard {
            if let Err(r) = self.may_publish(&s.id.client_id, p) {
                let n = bump(&self.stats.publish_refusals);
                tracing::info!(client_id = %s.id.client_id, topic = %p.topic, total = n, "publish refused: {}", r.reason);
                // 3.1.1 has no way to refuse but closing the connection; a
                // v5 QoS 0 publish has no PUBACK, so it gets a DISCONNECT.
                let v3 = s
                    .connect_info()
                    .await
                    .map(|c| c.proto_ver() < 5)
                    .unwrap_or(true);
                let disconnect = v3 || p.qos == QoS::AtMostOnce;
                let code = match r.code {
                    RefusalCode::NotAuthorized => PublishAckReason::NotAuthorized,
                    RefusalCode::TopicInvalid => PublishAckReason::TopicNameInvalid,
                    RefusalCode::PayloadTooLarge => PublishAckReason::QuotaExceeded,
                };
                return PublishAclResult(PublishResult::reason_code(
                    code,
                    Some(r.reason.into()),
                    disconnect,
                ));
            }
        }
        self.tap_uplink(&s.id.client_id, p, false).await;
        PublishAclResult::allow()
    }

    async fn tap_uplink(&self, sender: &str, p: &Publish, is_will: bool) {
        bump(&self.stats.uplinks);
        if !self.tap.wants(&p.topic) {
            return;
        }
        let up = Uplink {
            sender: sender.to_string(),
            topic: p.topic.to_string(),
            payload: p.payload.clone(),
            qos: p.qos as u8,
            is_will,
            received_at: SystemTime::now(),
        };
        self.tap.send(BridgeEvent::Uplink(up)).await;
    }

    /// P2P routing for every publish (clients, wills, in-process), and the
    /// publish ACL for wills, whose path skips `MessagePublishCheckAcl`.
    async fn route(&self, from: &From, p: &Publish) -> Option<Publish> {
        if self.standard {
            return None;
        }
        if matches!(from.typ(), FromType::LastWill) {
            let sender = from.id.client_id.to_string();
            if let Err(r) = self.may_publish(&sender, p) {
                bump(&self.stats.will_refusals);
                tracing::warn!(client_id = %sender, topic = %p.topic, "will dropped: {}", r.reason);
                let mut void = p.clone();
                void.retain = false;
                void.target_clientid = Some(VOID_CLIENT_ID.into());
                return Some(void);
            }
            self.tap_uplink(&sender, p, true).await;
        }
        let target = policy::p2p_target(&p.topic)?;
        let mut direct = p.clone();
        // A P2P message is for one client now; it is never retained.
        direct.retain = false;
        direct.target_clientid = Some(target.into());
        Some(direct)
    }

    fn count_drop(&self, to: Option<&str>, topic: &str, reason: &Reason) {
        match reason {
            Reason::MessageQueueFull => {
                let n = bump(&self.stats.queue_full_drops);
                tracing::warn!(
                    client_id = to.unwrap_or("-"),
                    topic,
                    total = n,
                    "queue full: message dropped"
                );
            }
            Reason::MessageExpiration => {
                bump(&self.stats.expired_drops);
                tracing::debug!(
                    client_id = to.unwrap_or("-"),
                    topic,
                    "expired message dropped"
                );
            }
            // Refused publishes were counted where they were refused.
            Reason::PublishResult(_) => {}
            other => {
                bump(&self.stats.other_drops);
                tracing::debug!(client_id = to.unwrap_or("-"), topic, reason = %other, "message dropped");
            }
        }
    }
}

fn no_principal() -> Refusal {
    Refusal {
        code: RefusalCode::NotAuthorized,
        reason: "the client's Group ID is no longer provisioned".into(),
    }
}

fn will_topic_and_len<'a>(lw: LastWill<'a>) -> (&'a str, usize) {
    match lw {
        LastWill::V3(w) => (&w.topic, w.message.len()),
        LastWill::V5(w) => (&w.topic, w.message.len()),
    }
}
