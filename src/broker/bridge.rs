//! The embedded broker's side of [`MessageBridge`]: a tap that hands
//! allowed uplinks and connect events to subscribers, and in-process QoS 1
//! publishing through rmqtt's routing.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{From, Id, Publish, QoS};
use tokio::sync::mpsc;

use crate::bridge::{
    filter_matches, BridgeError, BridgeEvent, Downlink, EventStream, MessageBridge,
};

/// The client id in-process publishes are sent as (not a valid device id,
/// so no device can ever take it).
pub const CONTROLLER_CLIENT_ID: &str = "$mqrtc/controller";

struct Subscriber {
    filters: Vec<String>,
    tx: mpsc::Sender<BridgeEvent>,
}

/// Fans bridge events out to subscribers.
#[derive(Default)]
pub(crate) struct Tap {
    subs: Mutex<Vec<Subscriber>>,
}

impl Tap {
    fn add(&self, filters: &[&str], capacity: usize) -> EventStream {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let filters = filters.iter().map(|f| f.to_string()).collect();
        self.lock().push(Subscriber { filters, tx });
        rx
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anyone wants uplinks on `topic` (so the hook can skip copying).
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.lock()
            .iter()
            .any(|s| s.filters.iter().any(|f| filter_matches(f, topic)))
    }

    /// Delivers `ev` to every subscriber it concerns, waiting while a
    /// subscriber's queue is full.
    pub(crate) async fn send(&self, ev: BridgeEvent) {
        let targets: Vec<mpsc::Sender<BridgeEvent>> = {
            let subs = self.lock();
            subs.iter()
                .filter(|s| match &ev {
                    BridgeEvent::Uplink(u) => s.filters.iter().any(|f| filter_matches(f, &u.topic)),
                    _ => true,
                })
                .map(|s| s.tx.clone())
                .collect()
        };
        let mut gone = false;
        for tx in targets {
            gone |= tx.send(ev.clone()).await.is_err();
        }
        if gone {
            self.lock().retain(|s| !s.tx.is_closed());
        }
    }
}

/// [`MessageBridge`] on the embedded broker.
pub struct EmbeddedBridge {
    pub(crate) scx: ServerContext,
    pub(crate) tap: std::sync::Arc<Tap>,
    pub(crate) default_expiry: Duration,
}

#[async_trait]
impl MessageBridge for EmbeddedBridge {
    fn subscribe(&self, filters: &[&str], capacity: usize) -> Result<EventStream, BridgeError> {
        Ok(self.tap.add(filters, capacity))
    }

    async fn publish(&self, msg: Downlink) -> Result<(), BridgeError> {
        if msg.topic.is_empty() || msg.topic.contains(['+', '#']) {
            return Err(BridgeError::Refused(format!("bad topic {:?}", msg.topic)));
        }
        let expiry = msg.expiry.unwrap_or(self.default_expiry);
        send(&self.scx, msg.topic, msg.payload, expiry, None).await
    }
}

/// Publishes QoS 1 from inside the process; `target` sends it to that one
/// client whatever the topic (P2P topics get their target from the hooks).
async fn send(
    scx: &ServerContext,
    topic: String,
    payload: bytes::Bytes,
    expiry: Duration,
    target: Option<&str>,
) -> Result<(), BridgeError> {
    let secs = u32::try_from(expiry.as_secs().max(1)).unwrap_or(u32::MAX);
    let props = PublishProperties {
        message_expiry_interval: NonZeroU32::new(secs),
        ..Default::default()
    };
    let p = CodecPublish {
        dup: false,
        retain: false,
        qos: QoS::AtLeastOnce,
        topic: topic.into(),
        packet_id: None,
        payload,
        properties: Some(props),
    };
    let mut p: Publish = Publish::from(p).create_time(rmqtt::utils::timestamp_millis());
    let id = Id::new(
        scx.node.id(),
        0,
        None,
        None,
        CONTROLLER_CLIENT_ID.into(),
        None,
    );
    let from = From::from_system(id);
    let hooks = scx.extends.hook_mgr();
    p = hooks
        .message_publish(None, from.clone(), &p)
        .await
        .unwrap_or(p);
    if let Some(t) = target {
        p.target_clientid = Some(t.into());
    }
    SessionState::forwards(scx, from, p, false, None)
        .await
        .map_err(|e| BridgeError::Broker(e.to_string()))
}

/// A broker notice (such as `$SYS/tokenExpireNotice`) to one client; it
/// needs no subscription. Failures are logged: a notice is best effort.
pub(crate) async fn notify(
    scx: &ServerContext,
    client_id: &str,
    topic: &str,
    payload: bytes::Bytes,
) {
    if let Err(e) = send(
        scx,
        topic.to_string(),
        payload,
        Duration::from_secs(600),
        Some(client_id),
    )
    .await
    {
        tracing::warn!(client_id, topic, "notice not sent: {e}");
    }
}
