//! The seam between the broker and the controller: the in-process stand-in
//! for the cloud solution's RocketMQ bridge.
//!
//! The embedded broker implements [`MessageBridge`] in `broker::bridge`;
//! `upstream::bridge` implements it over an MQTT 5 connection to an external
//! broker (uplinks from a shared subscription, the sender from the topic,
//! presence from requests or the broker's client events), so nothing that
//! uses it depends on being in-process.

mod stream;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

pub use stream::{EventStream, PresenceQueue, PRESENCE_BACKLOG};

/// Something that happened on the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeEvent {
    /// A client finished connecting.
    Connected {
        /// Its client id.
        client_id: String,
        /// When.
        at: SystemTime,
    },
    /// A client's connection ended.
    Disconnected {
        /// Its client id.
        client_id: String,
        /// Why, as the broker tells it.
        reason: String,
        /// When.
        at: SystemTime,
    },
    /// A client published a message the ACL allowed, on a topic the
    /// subscriber asked for.
    Uplink(Uplink),
    /// Presence changes were dropped (too many waiting): ask the broker who
    /// is connected ([`MessageBridge::connected_clients`]).
    Resync,
}

/// Which uplinks a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// The uplink parent topics of every provisioned instance, as
    /// provisioning changes (what the controller reads).
    Uplinks,
    /// Topics matching these MQTT filters.
    Filters(Vec<String>),
}

/// An allowed publish from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The sender's client id, as authenticated by the broker (never taken
    /// from the payload).
    pub sender: String,
    /// The topic it was published on.
    pub topic: String,
    /// The body.
    pub payload: Bytes,
    /// QoS it was published with (0, 1 or 2).
    pub qos: u8,
    /// True for a will message published on the sender's behalf.
    pub is_will: bool,
    /// When the broker received it.
    pub received_at: SystemTime,
    /// Tells an external broker the uplink may be forgotten; called once
    /// the controller has stored (or answered) it. `None` in process.
    pub ack: Option<Ack>,
}

/// Acknowledges an uplink to the broker that delivered it (a PUBACK sent
/// only after the controller's commit, so a controller that dies first
/// gets the message again from the broker session it resumes).
#[derive(Clone)]
pub struct Ack(std::sync::Arc<dyn Fn() + Send + Sync>);

impl Ack {
    /// An acknowledgement that runs `f`.
    pub fn new(f: impl Fn() + Send + Sync + 'static) -> Ack {
        Ack(std::sync::Arc::new(f))
    }

    /// Sends it.
    pub fn send(&self) {
        (self.0)()
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

/// Acks do not take part in comparing uplinks.
impl PartialEq for Ack {
    fn eq(&self, _: &Ack) -> bool {
        true
    }
}

impl Eq for Ack {}

/// A QoS 1 message published from inside the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downlink {
    /// A topic, or a P2P inbox `{parent}/p2p/{clientId}`.
    pub topic: String,
    /// The body.
    pub payload: Bytes,
    /// How long it may wait for an offline receiver (default: the broker's
    /// offline message TTL).
    pub expiry: Option<Duration>,
}

/// Errors of the bridge.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BridgeError {
    /// The broker is shutting down.
    #[error("the broker is not running")]
    Closed,
    /// The subscriber's uplink queue is full: the publish was refused
    /// (MQTT 5 reason 0x97), not queued.
    #[error("the controller is busy")]
    Busy,
    /// The message is not acceptable (bad topic, too large).
    #[error("refused: {0}")]
    Refused(String),
    /// The broker failed to route it.
    #[error("broker: {0}")]
    Broker(String),
}

/// The bridge between a broker and the controller.
#[async_trait]
pub trait MessageBridge: Send + Sync + 'static {
    /// Starts a stream of every connect and disconnect (coalesced per
    /// client), and of the allowed publishes on `topics`. At most
    /// `capacity` uplinks wait; while the queue is full, the broker refuses
    /// such publishes instead of waiting (MQTT 5: 0x97 quota exceeded;
    /// 3.1.1: the connection is closed, and the client sends its QoS 1
    /// message again when it reconnects).
    fn subscribe(&self, topics: Topics, capacity: usize) -> Result<EventStream, BridgeError>;

    /// The client ids connected now (after [`BridgeEvent::Resync`]).
    async fn connected_clients(&self) -> Result<Vec<String>, BridgeError>;

    /// Publishes `msg` with QoS 1. A P2P topic reaches its target only, and
    /// waits for it while it is offline with a clean=false session.
    async fn publish(&self, msg: Downlink) -> Result<(), BridgeError>;
}

/// Whether MQTT topic `filter` matches topic name `topic` (`+`, `#`; a
/// leading wildcard does not match `$` topics).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filter_matches;

    #[test]
    fn filters() {
        assert!(filter_matches("rtc_up/#", "rtc_up/call"));
        assert!(filter_matches("rtc_up/#", "rtc_up"));
        assert!(filter_matches("rtc_up/+", "rtc_up/call"));
        assert!(!filter_matches("rtc_up/+", "rtc_up/call/x"));
        assert!(filter_matches("a/+/c", "a/b/c"));
        assert!(!filter_matches("a/b", "a/b/c"));
        assert!(!filter_matches("a/b/c", "a/b"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
    }
}
