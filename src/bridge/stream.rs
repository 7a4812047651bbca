//! What a bridge subscriber receives: uplinks through a bounded queue that
//! never makes the broker wait (a full queue refuses the publish instead),
//! and connect/disconnect changes coalesced per client, so a slow
//! subscriber costs memory per client at most, never a stalled hook.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::{mpsc, Notify};

use super::{BridgeEvent, Uplink};

/// Most clients with a presence change waiting; past it, changes are
/// dropped and the subscriber is told to resync from the broker.
pub const PRESENCE_BACKLOG: usize = 100_000;

#[derive(Debug, Clone)]
struct Change {
    connected: bool,
    reason: String,
    at: SystemTime,
}

#[derive(Default)]
struct Pending {
    changes: HashMap<String, Change>,
    overflowed: bool,
}

/// Presence changes waiting for one subscriber, latest per client.
pub struct PresenceQueue {
    pending: Mutex<Pending>,
    notify: Notify,
    cap: usize,
    dropped: AtomicU64,
}

impl PresenceQueue {
    /// A queue holding changes of at most `cap` clients.
    pub fn new(cap: usize) -> Arc<PresenceQueue> {
        Arc::new(PresenceQueue {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            cap: cap.max(1),
            dropped: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that `client_id` connected or disconnected; never waits.
    pub fn push(&self, client_id: &str, connected: bool, reason: String, at: SystemTime) {
        {
            let mut p = self.lock();
            let change = Change {
                connected,
                reason,
                at,
            };
            if let Some(c) = p.changes.get_mut(client_id) {
                *c = change;
            } else if p.changes.len() < self.cap {
                p.changes.insert(client_id.to_string(), change);
            } else {
                p.overflowed = true;
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.notify.notify_one();
    }

    /// Changes dropped because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn pop(&self) -> Option<BridgeEvent> {
        let mut p = self.lock();
        if p.overflowed {
            p.overflowed = false;
            p.changes.clear();
            return Some(BridgeEvent::Resync);
        }
        let key = p.changes.keys().next()?.clone();
        let c = p.changes.remove(&key)?;
        Some(if c.connected {
            BridgeEvent::Connected {
                client_id: key,
                at: c.at,
            }
        } else {
            BridgeEvent::Disconnected {
                client_id: key,
                reason: c.reason,
                at: c.at,
            }
        })
    }
}

/// One subscriber's stream of bridge events.
pub struct EventStream {
    uplinks: mpsc::Receiver<Uplink>,
    presence: Arc<PresenceQueue>,
}

impl EventStream {
    /// A stream over `uplinks` and `presence` (for bridge implementations).
    pub fn new(uplinks: mpsc::Receiver<Uplink>, presence: Arc<PresenceQueue>) -> EventStream {
        EventStream { uplinks, presence }
    }

    /// The next event; `None` once the bridge is gone. Presence changes
    /// come first: they are state, and cheap.
    pub async fn recv(&mut self) -> Option<BridgeEvent> {
        loop {
            if let Some(ev) = self.presence.pop() {
                return Some(ev);
            }
            tokio::select! {
                biased;
                _ = self.presence.notify.notified() => {}
                up = self.uplinks.recv() => return up.map(BridgeEvent::Uplink),
            }
        }
    }

    /// The next event if one is waiting.
    pub fn try_recv(&mut self) -> Option<BridgeEvent> {
        self.presence
            .pop()
            .or_else(|| self.uplinks.try_recv().ok().map(BridgeEvent::Uplink))
    }

    /// Uplinks waiting in the queue.
    pub fn queued(&self) -> usize {
        self.uplinks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn presence_is_coalesced_and_overflow_asks_for_resync() {
        let q = PresenceQueue::new(2);
        let (_tx, rx) = mpsc::channel(1);
        let mut s = EventStream::new(rx, q.clone());
        let t = SystemTime::now();
        q.push("a", true, String::new(), t);
        q.push("a", false, "gone".into(), t);
        q.push("b", true, String::new(), t);
        let mut seen = [s.recv().await, s.recv().await];
        seen.sort_by_key(|e| format!("{e:?}"));
        assert!(
            matches!(&seen[0], Some(BridgeEvent::Connected { client_id, .. }) if client_id == "b")
        );
        assert!(
            matches!(&seen[1], Some(BridgeEvent::Disconnected { client_id, reason, .. }) if client_id == "a" && reason == "gone")
        );
        assert!(s.try_recv().is_none());
        for c in ["x", "y", "z"] {
            q.push(c, true, String::new(), t);
        }
        assert_eq!(q.dropped(), 1);
        assert_eq!(s.recv().await, Some(BridgeEvent::Resync));
        assert!(s.try_recv().is_none(), "the backlog is cleared by a resync");
    }

    #[tokio::test]
    async fn uplinks_wait_in_a_bounded_queue() {
        let (tx, rx) = mpsc::channel(1);
        let mut s = EventStream::new(rx, PresenceQueue::new(1));
        let up = Uplink {
            sender: "s".into(),
            topic: "t".into(),
            payload: bytes::Bytes::new(),
            qos: 1,
            is_will: false,
            received_at: SystemTime::now(),
            ack: None,
        };
        assert!(tx.try_send(up.clone()).is_ok());
        assert!(tx.try_send(up.clone()).is_err(), "full");
        assert_eq!(s.queued(), 1);
        assert_eq!(s.recv().await, Some(BridgeEvent::Uplink(up)));
        drop(tx);
        assert_eq!(s.recv().await, None);
    }
}
