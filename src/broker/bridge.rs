//! The embedded broker's side of [`MessageBridge`]: a tap that hands
//! allowed uplinks and connect events to subscribers without waiting, and in-process QoS 1
//! publishing through rmqtt's routing.

use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use rmqtt::codec::types::Publish as CodecPublish;
use rmqtt::codec::v5::PublishProperties;
use rmqtt::context::ServerContext;
use rmqtt::session::SessionState;
use rmqtt::types::{From, Id, Publish, QoS};
use tokio::sync::mpsc;

use crate::bridge::{
    filter_matches, BridgeError, Downlink, EventStream, MessageBridge, PresenceQueue, Topics,
    Uplink, PRESENCE_BACKLOG,
};
use crate::directory::{SharedDirectory, TopicRole};

/// The client id in-process publishes are sent as (not a valid device id,
/// so no device can ever take it).
pub const CONTROLLER_CLIENT_ID: &str = "$mqrtc/controller";

struct Subscriber {
    topics: Topics,
    uplinks: mpsc::Sender<Uplink>,
    presence: Arc<PresenceQueue>,
}

/// Hands uplinks and presence changes to subscribers without ever waiting.
pub(crate) struct Tap {
    subs: Mutex<Vec<Subscriber>>,
    directory: Arc<SharedDirectory>,
}

impl Tap {
    pub(crate) fn new(directory: Arc<SharedDirectory>) -> Tap {
        Tap {
            subs: Mutex::new(Vec::new()),
            directory,
        }
    }

    fn add(&self, topics: Topics, capacity: usize) -> EventStream {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let presence = PresenceQueue::new(PRESENCE_BACKLOG);
        self.lock().push(Subscriber {
            topics,
            uplinks: tx,
            presence: presence.clone(),
        });
        EventStream::new(rx, presence)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        self.subs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn matches(&self, topics: &Topics, topic: &str) -> bool {
        match topics {
            Topics::Filters(f) => f.iter().any(|f| filter_matches(f, topic)),
            Topics::Uplinks => {
                let parent = topic.split('/').next().unwrap_or_default();
                self.directory
                    .get()
                    .topic(parent)
                    .is_some_and(|t| t.role == TopicRole::Uplink)
            }
        }
    }

    /// Whether anyone wants uplinks on `topic` (so the hook can skip copying).
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.lock().iter().any(|s| self.matches(&s.topics, topic))
    }

    /// Queues `up` for every subscriber that wants it; `Busy` if a queue
    /// was full (the publish is then refused, not waited for).
    pub(crate) fn uplink(&self, up: Uplink) -> Result<(), BridgeError> {
        let mut subs = self.lock();
        let mut busy = false;
        let mut gone = false;
        for s in subs.iter().filter(|s| self.matches(&s.topics, &up.topic)) {
            match s.uplinks.try_send(up.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => busy = true,
                Err(mpsc::error::TrySendError::Closed(_)) => gone = true,
            }
        }
        if gone {
            subs.retain(|s| !s.uplinks.is_closed());
        }
        if busy {
            Err(BridgeError::Busy)
        } else {
            Ok(())
        }
    }

    /// Records a connect or disconnect for every subscriber; never waits.
    /// False if a subscriber's backlog was full (it will resync).
    pub(crate) fn presence(&self, client_id: &str, connected: bool, reason: String) -> bool {
        let at = SystemTime::now();
        let mut kept = true;
        for s in self.lock().iter() {
            let before = s.presence.dropped();
            s.presence.push(client_id, connected, reason.clone(), at);
            kept &= s.presence.dropped() == before;
        }
        kept
    }
}

/// [`MessageBridge`] on the embedded broker.
pub struct EmbeddedBridge {
    pub(crate) scx: ServerContext,
    pub(crate) tap: Arc<Tap>,
    pub(crate) state: Arc<super::conns::BrokerState>,
    pub(crate) default_expiry: Duration,
}

#[async_trait]
impl MessageBridge for EmbeddedBridge {
    fn subscribe(&self, topics: Topics, capacity: usize) -> Result<EventStream, BridgeError> {
        Ok(self.tap.add(topics, capacity))
    }

    async fn connected_clients(&self) -> Result<Vec<String>, BridgeError> {
        Ok(self.state.online.iter().map(|e| e.key().clone()).collect())
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
