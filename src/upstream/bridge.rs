//! [`MessageBridge`] over an external MQTT 5 broker.
//!
//! - Uplinks arrive through a shared subscription `$share/{group}/{parent}/#`
//!   on every uplink parent topic. The sender is the topic's last level
//!   (`rtc_up/call/{clientId}`): a standard broker does not tell a
//!   subscriber who published, so its ACL must allow a client to publish
//!   there only under its own client id (`docs/scale-out.md`).
//! - Each uplink is acknowledged (PUBACK) only once the controller has
//!   stored or answered it; with a persistent session the broker gives the
//!   unacknowledged ones again to the controller that resumes the session.
//! - Downlinks are QoS 1 publishes to the device's inbox topic, with the
//!   message expiry the controller asks for.
//! - Presence: a device is online from its first request on; with
//!   `presence = "emqx"` also from EMQX's client system topics.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rumqttc::v5::mqttbytes::v5::{Filter, Packet, Publish, PublishProperties};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use tokio::sync::{mpsc, watch};

use super::config::{Presence, Upstream};
use crate::bridge::{
    Ack, BridgeError, Downlink, EventStream, MessageBridge, PresenceQueue, Topics, Uplink,
    PRESENCE_BACKLOG,
};
use crate::directory::{SharedDirectory, TopicRole};

/// EMQX's client events: `$SYS/brokers/{node}/clients/{clientid}/{connected|disconnected}`.
const EMQX_CLIENT_EVENTS: &str = "$SYS/brokers/+/clients/+/+";

/// How the controller reaches the external broker.
pub struct Connection {
    /// What the config says.
    pub upstream: Upstream,
    /// The controller's password, read from `password_file`.
    pub password: Option<String>,
    /// TLS client settings for `mqtts://`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

struct Shared {
    client: AsyncClient,
    uplinks: Mutex<Option<mpsc::Receiver<Uplink>>>,
    presence: Arc<PresenceQueue>,
    online: Mutex<HashSet<String>>,
    connected: watch::Sender<bool>,
    default_expiry: Duration,
}

/// The bridge; see the module docs.
pub struct ExternalBridge {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl ExternalBridge {
    /// Connects (in the background, retrying) and subscribes to the uplink
    /// topics `directory` lists, as provisioning changes.
    pub fn start(
        c: Connection,
        directory: Arc<SharedDirectory>,
        queue: usize,
        default_expiry: Duration,
    ) -> Result<ExternalBridge, String> {
        let (tls, host, port) = super::config::parse_url(&c.upstream.url)?;
        let u = &c.upstream;
        let mut mo = MqttOptions::new(u.client_id.clone(), host, port);
        mo.set_clean_start(false)
            .set_session_expiry_interval(Some(u.session_expiry_secs))
            .set_keep_alive(Duration::from_secs(15))
            .set_manual_acks(true)
            .set_max_packet_size(Some(1024 * 1024));
        if !u.username.is_empty() || c.password.is_some() {
            mo.set_credentials(u.username.clone(), c.password.clone().unwrap_or_default());
        }
        if tls {
            let config = c.tls.clone().ok_or("mqtts:// needs TLS settings")?;
            mo.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Rustls(config),
            ));
        }
        let (client, el) = AsyncClient::new(mo, 1024);
        let (tx, rx) = mpsc::channel(queue.max(1));
        let shared = Arc::new(Shared {
            client,
            uplinks: Mutex::new(Some(rx)),
            presence: PresenceQueue::new(PRESENCE_BACKLOG),
            online: Mutex::new(HashSet::new()),
            connected: watch::channel(false).0,
            default_expiry,
        });
        let task = tokio::spawn(run(el, shared.clone(), tx, directory, c.upstream));
        Ok(ExternalBridge { shared, task })
    }

    /// Waits until the broker has accepted the connection.
    pub async fn connected(&self) {
        let _ = self.shared.connected.subscribe().wait_for(|c| *c).await;
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        *self.shared.connected.borrow()
    }

    /// Disconnects cleanly if the broker is reachable (the session stays
    /// for the next controller); never waits for it.
    pub async fn stop(&self) {
        if self.shared.client.try_disconnect().is_ok() && self.is_connected() {
            // Let the event loop send the DISCONNECT (bounded: the broker may be gone).
            let mut c = self.shared.connected.subscribe();
            let _ = tokio::time::timeout(Duration::from_secs(2), c.wait_for(|up| !*up)).await;
        }
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[async_trait]
impl MessageBridge for ExternalBridge {
    fn subscribe(&self, topics: Topics, _capacity: usize) -> Result<EventStream, BridgeError> {
        if topics != Topics::Uplinks {
            return Err(BridgeError::Refused(
                "an external broker bridge serves the uplink topics only".into(),
            ));
        }
        let rx = lock(&self.shared.uplinks)
            .take()
            .ok_or_else(|| BridgeError::Refused("already subscribed".into()))?;
        Ok(EventStream::new(rx, self.shared.presence.clone()))
    }

    async fn connected_clients(&self) -> Result<Vec<String>, BridgeError> {
        Ok(lock(&self.shared.online).iter().cloned().collect())
    }

    async fn publish(&self, msg: Downlink) -> Result<(), BridgeError> {
        if msg.topic.is_empty() || msg.topic.contains(['+', '#']) {
            return Err(BridgeError::Refused(format!("bad topic {:?}", msg.topic)));
        }
        let expiry = msg.expiry.unwrap_or(self.shared.default_expiry);
        let props = PublishProperties {
            message_expiry_interval: Some(
                u32::try_from(expiry.as_secs().max(1)).unwrap_or(u32::MAX),
            ),
            ..Default::default()
        };
        self.shared
            .client
            .publish_with_properties(msg.topic, QoS::AtLeastOnce, false, msg.payload, props)
            .await
            .map_err(|e| BridgeError::Broker(e.to_string()))
    }
}

/// The uplink parent topics of every instance.
fn uplink_parents(directory: &SharedDirectory) -> Vec<String> {
    let dir = directory.get();
    let mut v: Vec<String> = dir
        .topics
        .iter()
        .filter(|(_, t)| t.role == TopicRole::Uplink)
        .map(|(name, _)| name.clone())
        .collect();
    v.sort();
    v
}

fn filters(parents: &[String], u: &Upstream) -> Vec<Filter> {
    let mut f: Vec<Filter> = parents
        .iter()
        .map(|p| Filter::new(format!("$share/{}/{p}/#", u.share_group), QoS::AtLeastOnce))
        .collect();
    if u.presence == Presence::Emqx {
        f.push(Filter::new(EMQX_CLIENT_EVENTS, QoS::AtLeastOnce));
    }
    f
}

async fn run(
    mut el: EventLoop,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Uplink>,
    directory: Arc<SharedDirectory>,
    u: Upstream,
) {
    let subscribed = Arc::new(Mutex::new(Vec::<String>::new()));
    // New uplink topics (provisioning) are subscribed to as they appear.
    let follow = {
        let (shared, subscribed, directory, u) = (
            shared.clone(),
            subscribed.clone(),
            directory.clone(),
            u.clone(),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let now = uplink_parents(&directory);
                let new: Vec<String> = {
                    let mut s = lock(&subscribed);
                    let new = now.iter().filter(|p| !s.contains(p)).cloned().collect();
                    *s = now;
                    new
                };
                if !new.is_empty() && *shared.connected.borrow() {
                    let mut u = u.clone();
                    u.presence = Presence::Requests;
                    let _ = shared.client.subscribe_many(filters(&new, &u)).await;
                }
            }
        })
    };
    let mut failures = 0u32;
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                let parents = uplink_parents(&directory);
                *lock(&subscribed) = parents.clone();
                tracing::info!(
                    url = u.url,
                    session_present = ack.session_present,
                    "connected to the upstream broker"
                );
                let _ = shared.client.subscribe_many(filters(&parents, &u)).await;
                shared.connected.send_replace(true);
            }
            Ok(Event::Incoming(Packet::SubAck(s))) => {
                use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode as R;
                let refused = s
                    .return_codes
                    .iter()
                    .filter(|c| !matches!(c, R::Success(_)))
                    .count();
                if refused > 0 {
                    tracing::error!(refused, "the upstream broker refused uplink subscriptions");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let ack = {
                    let (client, p) = (shared.client.clone(), p.clone());
                    Ack::new(move || {
                        let _ = client.try_ack(&p);
                    })
                };
                if let Some(up) = incoming(&shared, &u, p, ack.clone()) {
                    if tx.send(up).await.is_err() {
                        break;
                    }
                } else {
                    ack.send();
                }
            }
            Ok(Event::Incoming(Packet::Disconnect(d))) => {
                tracing::warn!(reason = ?d.reason_code, "the upstream broker disconnected the controller");
            }
            Ok(_) => {}
            Err(e) => {
                shared.connected.send_replace(false);
                failures += 1;
                let wait = Duration::from_millis(200 * u64::from(failures.min(10)));
                tracing::warn!(url = u.url, "upstream broker: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
            }
        }
    }
    follow.abort();
}

/// An uplink from `p`, or `None` after recording a presence event.
fn incoming(shared: &Shared, u: &Upstream, p: Publish, ack: Ack) -> Option<Uplink> {
    let topic = String::from_utf8(p.topic.to_vec()).ok()?;
    if topic.starts_with('$') {
        if u.presence == Presence::Emqx {
            emqx_event(shared, &topic, &p.payload);
        }
        return None;
    }
    let sender = topic.rsplit('/').next().unwrap_or_default().to_string();
    if sender.is_empty() || !topic.contains('/') {
        return None;
    }
    if lock(&shared.online).insert(sender.clone()) {
        shared
            .presence
            .push(&sender, true, String::new(), SystemTime::now());
    }
    Some(Uplink {
        sender,
        topic,
        payload: p.payload,
        qos: p.qos as u8,
        is_will: false,
        received_at: SystemTime::now(),
        ack: Some(ack),
    })
}

/// Applies an EMQX client event to the presence the controller sees.
fn emqx_event(shared: &Shared, topic: &str, payload: &[u8]) {
    let Some((client_id, connected, reason)) = emqx_presence(topic, payload) else {
        return;
    };
    let mut online = lock(&shared.online);
    if connected {
        online.insert(client_id.clone());
    } else {
        online.remove(&client_id);
    }
    shared
        .presence
        .push(&client_id, connected, reason, SystemTime::now());
}

/// `$SYS/brokers/{node}/clients/{clientid}/connected|disconnected` as
/// (client id, connected, reason from the JSON payload).
fn emqx_presence(topic: &str, payload: &[u8]) -> Option<(String, bool, String)> {
    let levels: Vec<&str> = topic.split('/').collect();
    let ["$SYS", "brokers", _, "clients", client_id, what] = levels.as_slice() else {
        return None;
    };
    let connected = match *what {
        "connected" => true,
        "disconnected" => false,
        _ => return None,
    };
    let reason = serde_json::from_slice::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_string))
        .unwrap_or_default();
    Some((client_id.to_string(), connected, reason))
}

#[cfg(test)]
mod tests {
    use super::emqx_presence;

    #[test]
    fn emqx_client_events() {
        let t = "$SYS/brokers/emqx@10.0.0.1/clients/GID_demo@@@bob/disconnected";
        let body = br#"{"clientid":"GID_demo@@@bob","reason":"keepalive_timeout","ts":1}"#;
        assert_eq!(
            emqx_presence(t, body),
            Some(("GID_demo@@@bob".into(), false, "keepalive_timeout".into()))
        );
        let t = "$SYS/brokers/n1/clients/GID_demo@@@bob/connected";
        assert_eq!(
            emqx_presence(t, b"not json"),
            Some(("GID_demo@@@bob".into(), true, String::new()))
        );
        assert_eq!(
            emqx_presence("$SYS/brokers/n1/clients/x/subscribed", b"{}"),
            None
        );
        assert_eq!(emqx_presence("$SYS/brokers/n1/uptime", b"{}"), None);
        assert_eq!(emqx_presence("rtc_up/call/x", b"{}"), None);
    }
}
