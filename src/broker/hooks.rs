//! rmqtt hook handler: authentication, ACL, P2P routing, token upload, the
//! bridge tap and drop accounting. The decisions come from `auth` and
//! `policy`; this file only translates them to and from rmqtt's types.

use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use rmqtt::codec::v3::ConnectAckReason as AckV3;
use rmqtt::codec::v5::{ConnectAckReason as AckV5, PublishAckReason, SubscribeAckReason};
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType};
use rmqtt::session::Session;
use rmqtt::types::{
    AuthResult, ConnectAckReason, ConnectInfo, From, FromType, Id, LastWill, Publish,
    PublishAclResult, PublishResult, QoS, Reason, Subscribe, SubscribeAclResult,
};

use super::activity::{is_v5, note, note_refusal, refusal_code};
use super::conns::{BrokerState, Conn, UploadRefusal};
use super::stats::{add, bump};
use super::tail::Tapped;
use crate::auth::{self, ConnectRefusal, Credentials};
use crate::bridge::Uplink;
use crate::policy::acl_file::Access;
use crate::policy::{self, Refusal, RefusalCode};

/// The client id a refused will (or an uploaded token) is redirected to: no
/// session can have it (it is not a valid client id), so it is dropped.
const VOID_CLIENT_ID: &str = "$mqrtc/void";

/// Client ids of the appliance's own CONNECT probes (never valid client ids).
pub const PROBE_PREFIX: &str = "$mqrtc/";

/// Where a Token-mode client sends a fresh token (the cloud service's topic).
pub(crate) const UPLOAD_TOKEN_TOPIC: &str = "$SYS/uploadToken";

/// The hook handler (cheap to clone: one per hook type).
#[derive(Clone)]
pub(crate) struct Hooks {
    pub state: Arc<BrokerState>,
    pub scx: ServerContext,
}

#[async_trait]
impl Handler for Hooks {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(ci) => (
                false,
                Some(HookResult::AuthResult(self.authenticate(ci).await)),
            ),
            Parameter::ClientConnack(ci, code) => {
                if let Some(c) = self.limit_connack(ci) {
                    return (false, Some(HookResult::ConnectAckReason(c)));
                }
                if !code.success() {
                    self.state.conns.refuse(ci.client_id(), ci.id().create_time);
                }
                match self.refine_connack(ci, code) {
                    Some(c) => (false, Some(HookResult::ConnectAckReason(c))),
                    None => (true, acc),
                }
            }
            Parameter::ClientSubscribeCheckAcl(s, sub) => (
                false,
                Some(HookResult::SubscribeAclResult(self.check_subscribe(s, sub))),
            ),
            Parameter::MessagePublishCheckAcl(s, p) => (
                false,
                Some(HookResult::PublishAclResult(self.check_publish(s, p).await)),
            ),
            Parameter::MessagePublish(_, from, p) => {
                bump(&self.state.stats.messages_in);
                add(&self.state.stats.bytes_in, p.payload.len());
                self.state.tail.offer(|| {
                    Tapped::new(
                        &from.id.client_id,
                        &p.topic,
                        p.qos as u8,
                        p.retain,
                        &p.payload,
                    )
                });
                match self.route(from, p).await {
                    Some(p) => (true, Some(HookResult::Publish(p))),
                    None => (true, acc),
                }
            }
            Parameter::MessageDelivered(_, _, p) => {
                bump(&self.state.stats.messages_out);
                add(&self.state.stats.bytes_out, p.payload.len());
                (true, acc)
            }
            Parameter::ClientConnected(s) => {
                bump(&self.state.stats.connects);
                self.state.conns.accept(&s.id.client_id, s.id.create_time);
                let ip = s.id.remote_addr.map(|a| a.ip());
                self.state.limits.connected(ip);
                let since = s.id.create_time;
                self.state.online.insert(s.id.client_id.to_string(), since);
                note(&self.state.activity, &s.id, "connected", String::new(), s).await;
                self.presence(&s.id.client_id, true, String::new());
                (true, acc)
            }
            Parameter::ClientDisconnected(s, reason) => {
                let will = match s.connect_info().await {
                    Ok(ci) => ci.last_will().is_some(),
                    Err(_) => false,
                };
                let st = &self.state;
                st.conns.remove(&s.id.client_id, s.id.create_time, will);
                let ip = s.id.remote_addr.map(|a| a.ip());
                st.limits.disconnected(ip, &s.id.client_id);
                let id: &str = &s.id.client_id;
                st.online.remove_if(id, |_, t| *t == s.id.create_time);
                note(
                    &self.state.activity,
                    &s.id,
                    "disconnected",
                    reason.to_string(),
                    s,
                )
                .await;
                self.presence(&s.id.client_id, false, reason.to_string());
                (true, acc)
            }
            // rmqtt has no delivery ACL hook: the expiry check is the one
            // hook run for every delivery that can drop the message.
            Parameter::MessageExpiryCheck(s, _, p)
                if !self.acl_allows(&s.id, &p.topic, Access::Read) =>
            {
                (false, Some(HookResult::MessageExpiry))
            }
            Parameter::MessageDropped(to, _from, p, reason) => {
                let acl_denied = matches!(reason, Reason::MessageExpiration)
                    && to
                        .as_ref()
                        .is_some_and(|id| !self.acl_allows(id, &p.topic, Access::Read));
                if acl_denied {
                    bump(&self.state.stats.acl_drops);
                } else {
                    self.count_drop(to.as_ref().map(|t| t.client_id.as_ref()), &p.topic, reason);
                }
                (true, acc)
            }
            _ => (true, acc),
        }
    }
}

impl Hooks {
    async fn authenticate(&self, ci: &ConnectInfo) -> AuthResult {
        let st = &self.state;
        // The appliance's own readiness and health probes: an answer is all they want.
        if ci.client_id().starts_with(PROBE_PREFIX) && !st.standard {
            return AuthResult::NotAuthorized;
        }
        let ip = ci.id().remote_addr.map(|a| a.ip());
        let open = usize::try_from(self.scx.connections.count()).unwrap_or_default();
        if let Err(why) = st
            .limits
            .admit(ci.client_id(), ci.id().create_time, ip, open)
        {
            let n = bump(&st.stats.connection_limit_refusals);
            tracing::warn!(client_id = %ci.client_id(), remote = ?ip, total = n, "connect refused: {why}");
            note_refusal(
                &st.activity,
                ci,
                why.into(),
                if is_v5(ci) { 0x97 } else { 3 },
            );
            return AuthResult::NotAuthorized;
        }
        if st.standard {
            return AuthResult::Allow(false, None);
        }
        // An address within its slow-down is refused at once, unchecked:
        // waiting here would hold one of the listener's handshake slots.
        if let Some(ip) = ip.filter(|ip| st.tarpit.cooling(*ip)) {
            bump(&st.stats.auth_failures);
            let n = bump(&st.stats.auth_delays);
            tracing::debug!(client_id = %ci.client_id(), %ip, total = n, "connect refused: repeated failures from this address");
            // Counted, not kept in the connection history: a flood would push out the rest.
            return AuthResult::BadUsernameOrPassword;
        }
        let asked_at = tokio::time::Instant::now();
        let mut dir = st.directory.get();
        let creds = Credentials {
            client_id: ci.client_id(),
            username: ci.username().map(|u| &u[..]),
            password: ci.password().map(|p| &p[..]),
        };
        let mut result =
            auth::authenticate(&dir, st.rules.max_client_id_len, creds, super::unix_now());
        if matches!(
            result,
            Err(ConnectRefusal::BadCredentials(_) | ConnectRefusal::BadClientId(_))
        ) {
            // Perhaps provisioned a moment ago: look again before refusing
            // (after a reload in progress, if any, was applied).
            super::watch::reload_directory_since(&self.scx, st, asked_at).await;
            let fresh = st.directory.get();
            if !Arc::ptr_eq(&fresh, &dir) {
                dir = fresh;
                result =
                    auth::authenticate(&dir, st.rules.max_client_id_len, creds, super::unix_now());
            }
        }
        let authed = match result {
            Ok(a) => a,
            Err(e) => {
                let n = bump(&st.stats.auth_failures);
                tracing::info!(client_id = %ci.client_id(), remote = ?ip, total = n, "connect refused: {e}");
                if let (ConnectRefusal::BadCredentials(_), Some(ip)) = (&e, ip) {
                    let delay = st.tarpit.failure(ip);
                    if !delay.is_zero() {
                        bump(&st.stats.auth_delays);
                        tracing::warn!(%ip, ?delay, "repeated authentication failures: refusing this address unchecked meanwhile");
                    }
                }
                note_refusal(&st.activity, ci, e.to_string(), refusal_code(&e, is_v5(ci)));
                return match e {
                    ConnectRefusal::BadCredentials(_) => AuthResult::BadUsernameOrPassword,
                    ConnectRefusal::BadClientId(_) | ConnectRefusal::NotAuthorized(_) => {
                        AuthResult::NotAuthorized
                    }
                };
            }
        };
        if let Some((topic, len)) = ci.last_will().map(will_topic_and_len) {
            let access = auth::access(&dir, &authed.credential, super::unix_now());
            if let Err(r) =
                policy::check_publish(&dir, &st.rules, &authed.principal, &access, topic, len)
            {
                bump(&st.stats.will_refusals);
                tracing::info!(client_id = %ci.client_id(), will_topic = topic, "connect refused: will not allowed: {}", r.reason);
                let why = format!("will on {topic} not allowed: {}", r.reason);
                let code = if is_v5(ci) { 0x87 } else { 5 };
                note_refusal(&st.activity, ci, why, code);
                return AuthResult::NotAuthorized;
            }
        }
        if let Some(ip) = ip {
            st.tarpit.success(ip);
        }
        st.conns.stage(Conn {
            since: ci.id().create_time,
            principal: authed.principal,
            credential: authed.credential,
            expire_noticed: false,
        });
        AuthResult::Allow(false, None)
    }

    /// A CONNECT refused by a connection limit: CONNACK 0x97 / 3.
    fn limit_connack(&self, ci: &ConnectInfo) -> Option<ConnectAckReason> {
        self.state
            .limits
            .take_refusal(ci.client_id(), ci.id().create_time)?;
        Some(if is_v5(ci) {
            ConnectAckReason::V5(AckV5::QuotaExceeded)
        } else {
            ConnectAckReason::V3(AckV3::ServiceUnavailable)
        })
    }

    /// Turns a refusal caused by the client id into CONNACK 2 / 0x85.
    fn refine_connack(
        &self,
        ci: &ConnectInfo,
        code: &ConnectAckReason,
    ) -> Option<ConnectAckReason> {
        if self.state.standard || code.success() {
            return None;
        }
        let dir = self.state.directory.get();
        let bad_id =
            match policy::parse_client_id(ci.client_id(), self.state.rules.max_client_id_len) {
                Err(_) => true,
                Ok(parts) => dir.group_instance(parts.group).is_none(),
            };
        bad_id.then_some(match code {
            ConnectAckReason::V3(_) => ConnectAckReason::V3(AckV3::IdentifierRejected),
            ConnectAckReason::V5(_) => ConnectAckReason::V5(AckV5::ClientIdentifierNotValid),
        })
    }

    /// Plain MQTT mode: what `--acl-file` says (everything without one).
    fn acl_allows(&self, id: &Id, topic: &str, access: Access) -> bool {
        self.state.acl.as_ref().is_none_or(|acl| {
            let user = id.username.as_ref().map(|u| &u[..]);
            acl.allows(user, &id.client_id, topic, access)
        })
    }

    fn check_subscribe(&self, s: &Session, sub: &Subscribe) -> SubscribeAclResult {
        let st = &self.state;
        let qos = sub.opts.qos();
        if st.standard {
            if !self.acl_allows(&s.id, &sub.topic_filter, Access::Read) {
                let n = bump(&st.stats.subscribe_refusals);
                tracing::info!(client_id = %s.id.client_id, filter = %sub.topic_filter, total = n, "subscribe refused by the ACL file");
                return SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized);
            }
            return SubscribeAclResult::new_success(qos, None);
        }
        let dir = st.directory.get();
        let verdict = match st.conns.access(&s.id.client_id, &dir) {
            None => Err(no_principal()),
            Some((who, access)) => {
                policy::check_subscribe(&dir, &st.rules, &who, &access, &sub.topic_filter)
            }
        };
        match verdict {
            // The cloud service does not offer QoS 2 to clean=false sessions;
            // granting QoS 1 is how MQTT says so.
            Ok(()) => SubscribeAclResult::new_success(qos.min(QoS::AtLeastOnce), None),
            Err(r) => {
                let n = bump(&st.stats.subscribe_refusals);
                tracing::info!(client_id = %s.id.client_id, filter = %sub.topic_filter, total = n, "subscribe refused: {}", r.reason);
                SubscribeAclResult::new_failure(match r.code {
                    RefusalCode::TopicInvalid => SubscribeAckReason::TopicFilterInvalid,
                    RefusalCode::PayloadTooLarge | RefusalCode::Busy | RefusalCode::TooFast => {
                        SubscribeAckReason::UnspecifiedError
                    }
                    RefusalCode::NotAuthorized => SubscribeAckReason::NotAuthorized,
                })
            }
        }
    }

    /// The publish ACL for connected client `client_id`.
    fn may_publish(&self, client_id: &str, p: &Publish) -> Result<(), Refusal> {
        let st = &self.state;
        let dir = st.directory.get();
        let (who, access) = st.conns.access(client_id, &dir).ok_or_else(no_principal)?;
        policy::check_publish(&dir, &st.rules, &who, &access, &p.topic, p.payload.len()).map(|_| ())
    }

    /// The publish ACL for a will, which may fire after its connection
    /// ended (a delay) or after a restart.
    fn may_publish_will(&self, client_id: &str, p: &Publish) -> Result<(), Refusal> {
        let st = &self.state;
        let dir = st.directory.get();
        let (who, access) = st
            .conns
            .will_access(client_id, &dir, st.rules.max_client_id_len)
            .ok_or_else(no_principal)?;
        policy::check_publish(&dir, &st.rules, &who, &access, &p.topic, p.payload.len()).map(|_| ())
    }

    async fn check_publish(&self, s: &Session, p: &Publish) -> PublishAclResult {
        let st = &self.state;
        let ip = s.id.remote_addr.map(|a| a.ip());
        let verdict = if !st.limits.publish(&s.id.client_id, ip) {
            Err(Refusal {
                code: RefusalCode::TooFast,
                reason: "publishing faster than limits.max_publish_rate".into(),
            })
        } else if st.standard {
            if self.acl_allows(&s.id, &p.topic, Access::Write) {
                Ok(())
            } else {
                Err(Refusal {
                    code: RefusalCode::NotAuthorized,
                    reason: "not allowed by the ACL file".into(),
                })
            }
        } else if p.topic == UPLOAD_TOKEN_TOPIC {
            self.upload_token(s, p).await
        } else {
            self.may_publish(&s.id.client_id, p)
        };
        // Handed to the controller last, so a refused publish never reaches it.
        let verdict = verdict.and_then(|()| {
            if p.topic == UPLOAD_TOKEN_TOPIC {
                return Ok(());
            }
            self.tap_uplink(&s.id.client_id, p, false)
                .map_err(|()| Refusal {
                    code: RefusalCode::Busy,
                    reason: "the controller is busy: try again".into(),
                })
        });
        if let Err(r) = verdict {
            let n = bump(match r.code {
                RefusalCode::Busy => &st.stats.uplinks_busy,
                RefusalCode::TooFast => &st.stats.rate_refusals,
                _ => &st.stats.publish_refusals,
            });
            tracing::info!(client_id = %s.id.client_id, topic = %p.topic, total = n, "publish refused: {}", r.reason);
            // 3.1.1 has no way to refuse but closing the connection; a v5
            // QoS 0 publish has no PUBACK, so it gets a DISCONNECT.
            let v3 = s
                .connect_info()
                .await
                .map(|c| c.proto_ver() < 5)
                .unwrap_or(true);
            // Plain MQTT mode answers an ACL denial as mosquitto does: 3.1.1
            // acknowledges and drops (MQTT-3.3.5-2 allows either), 5 says
            // 0x87 in the PUBACK (QoS 0: dropped). No reason strings there:
            // standard clients and test suites do not all parse them.
            let acl_denial = st.standard && r.code == RefusalCode::NotAuthorized;
            let disconnect = !acl_denial && (v3 || p.qos == QoS::AtMostOnce);
            let code = match r.code {
                RefusalCode::NotAuthorized => PublishAckReason::NotAuthorized,
                RefusalCode::TopicInvalid => PublishAckReason::TopicNameInvalid,
                RefusalCode::PayloadTooLarge | RefusalCode::Busy | RefusalCode::TooFast => {
                    PublishAckReason::QuotaExceeded
                }
            };
            return PublishAclResult(PublishResult::reason_code(
                code,
                (!st.standard).then(|| r.reason.into()),
                disconnect,
            ));
        }
        PublishAclResult::allow()
    }

    /// `$SYS/uploadToken`: swaps a Token-mode connection's token of one type.
    /// A refused token also gets `$SYS/tokenInvalidNotice`, as in the cloud.
    async fn upload_token(&self, s: &Session, p: &Publish) -> Result<(), Refusal> {
        let dir = self.state.directory.get();
        match self
            .state
            .conns
            .upload_token(&s.id.client_id, &p.payload, &dir, super::unix_now())
        {
            Ok(()) => {
                tracing::info!(client_id = %s.id.client_id, "token updated");
                Ok(())
            }
            Err(e) => {
                if let UploadRefusal::Invalid(problem) = &e {
                    super::notify_token_invalid(&self.scx, &s.id.client_id, *problem).await;
                }
                Err(Refusal {
                    code: RefusalCode::NotAuthorized,
                    reason: e.to_string(),
                })
            }
        }
    }

    /// Connect and disconnect, for the controller: never waits.
    fn presence(&self, client_id: &str, connected: bool, reason: String) {
        if !self.state.tap.presence(client_id, connected, reason) {
            let n = bump(&self.state.stats.presence_dropped);
            tracing::warn!(
                client_id,
                total = n,
                "presence change not queued: the controller will resync"
            );
        }
    }

    /// Hands an allowed publish to the bridge's subscribers; `Err` if one
    /// of their queues is full.
    fn tap_uplink(&self, sender: &str, p: &Publish, is_will: bool) -> Result<(), ()> {
        bump(&self.state.stats.uplinks);
        if !self.state.tap.wants(&p.topic) {
            return Ok(());
        }
        let up = Uplink {
            sender: sender.to_string(),
            topic: p.topic.to_string(),
            payload: p.payload.clone(),
            qos: p.qos as u8,
            is_will,
            received_at: SystemTime::now(),
            ack: None,
        };
        self.state.tap.uplink(up).map_err(|_| ())
    }

    /// P2P routing for every publish (clients, wills, in-process), and the
    /// publish ACL for wills, whose path skips `MessagePublishCheckAcl`.
    async fn route(&self, from: &From, p: &Publish) -> Option<Publish> {
        if self.state.standard {
            return None;
        }
        if p.topic == UPLOAD_TOKEN_TOPIC {
            return Some(void(p));
        }
        if matches!(from.typ(), FromType::LastWill) {
            let sender = from.id.client_id.to_string();
            if let Err(r) = self.may_publish_will(&sender, p) {
                bump(&self.state.stats.will_refusals);
                tracing::warn!(client_id = %sender, topic = %p.topic, "will dropped: {}", r.reason);
                return Some(void(p));
            }
            if self.tap_uplink(&sender, p, true).is_err() {
                bump(&self.state.stats.uplinks_busy);
                tracing::warn!(client_id = %sender, topic = %p.topic, "will not handed to the controller: it is busy");
            }
        }
        let target = policy::p2p_target(&p.topic)?;
        let mut direct = p.clone();
        // A P2P message is for one client now; it is never retained.
        direct.retain = false;
        direct.target_clientid = Some(target.into());
        Some(direct)
    }

    fn count_drop(&self, to: Option<&str>, topic: &str, reason: &Reason) {
        let stats = &self.state.stats;
        match reason {
            Reason::MessageQueueFull => {
                let n = bump(&stats.queue_full_drops);
                tracing::warn!(
                    client_id = to.unwrap_or("-"),
                    topic,
                    total = n,
                    "queue full: message dropped"
                );
            }
            Reason::MessageExpiration => {
                bump(&stats.expired_drops);
                tracing::debug!(
                    client_id = to.unwrap_or("-"),
                    topic,
                    "expired message dropped"
                );
            }
            // Refused publishes were counted where they were refused.
            Reason::PublishResult(_) => {}
            _ if to == Some(VOID_CLIENT_ID) => {}
            other => {
                bump(&stats.other_drops);
                tracing::debug!(client_id = to.unwrap_or("-"), topic, reason = %other, "message dropped");
            }
        }
    }
}

/// A copy of `p` that goes nowhere.
fn void(p: &Publish) -> Publish {
    let mut v = p.clone();
    v.retain = false;
    v.target_clientid = Some(VOID_CLIENT_ID.into());
    v
}

fn no_principal() -> Refusal {
    Refusal {
        code: RefusalCode::NotAuthorized,
        reason: "the connection's credentials are no longer valid".into(),
    }
}

fn will_topic_and_len<'a>(lw: LastWill<'a>) -> (&'a str, usize) {
    match lw {
        LastWill::V3(w) => (&w.topic, w.message.len()),
        LastWill::V5(w) => (&w.topic, w.message.len()),
    }
}
