//! The live topic tail: every message the broker routes, offered to
//! admins watching it (console "Live tail", `GET /api/v1/tail`). Costs one
//! atomic load per message while nobody watches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::Serialize;
use tokio::sync::broadcast;

/// Bytes of a payload shown in the tail (the rest is counted, not shown).
const PREVIEW_BYTES: usize = 2048;

/// A message as the tail shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tapped {
    /// Unix milliseconds.
    pub at: i64,
    /// Sender's client id (`$mqrtc/controller` for the controller).
    pub from: String,
    /// Topic as published (a P2P topic names its target).
    pub topic: String,
    /// QoS.
    pub qos: u8,
    /// Retain flag.
    pub retain: bool,
    /// The payload as text (lossy UTF-8), at most 2 KB.
    pub payload: String,
    /// The payload's full size.
    pub bytes: usize,
}

impl Tapped {
    /// A tail entry for `payload`, cut to the preview size.
    pub fn new(from: &str, topic: &str, qos: u8, retain: bool, payload: &[u8]) -> Tapped {
        let shown = &payload[..payload.len().min(PREVIEW_BYTES)];
        Tapped {
            at: crate::controller::now_ms(),
            from: from.to_string(),
            topic: topic.to_string(),
            qos,
            retain,
            payload: String::from_utf8_lossy(shown).into_owned(),
            bytes: payload.len(),
        }
    }
}

/// Fans routed messages out to watchers.
pub(crate) struct TailHub {
    watchers: AtomicUsize,
    tx: broadcast::Sender<Arc<Tapped>>,
}

impl TailHub {
    pub fn new() -> Arc<TailHub> {
        let (tx, _) = broadcast::channel(1024);
        Arc::new(TailHub {
            watchers: AtomicUsize::new(0),
            tx,
        })
    }

    /// Offers a message; `make` runs only if someone watches.
    pub fn offer(&self, make: impl FnOnce() -> Tapped) {
        if self.watchers.load(Ordering::Relaxed) > 0 {
            let _ = self.tx.send(Arc::new(make()));
        }
    }

    pub fn watch(self: &Arc<Self>) -> TailWatch {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        TailWatch {
            rx: self.tx.subscribe(),
            hub: self.clone(),
        }
    }
}

/// One watcher of the tail; watching stops when it is dropped.
pub struct TailWatch {
    rx: broadcast::Receiver<Arc<Tapped>>,
    hub: Arc<TailHub>,
}

impl TailWatch {
    /// The next message, or `Err(n)` when this watcher fell behind and
    /// missed `n` messages; `None` when the broker stopped.
    pub async fn next(&mut self) -> Option<Result<Arc<Tapped>, u64>> {
        match self.rx.recv().await {
            Ok(m) => Some(Ok(m)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for TailWatch {
    fn drop(&mut self) {
        self.hub.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn offers_only_while_watched_and_cuts_long_payloads() {
        let hub = TailHub::new();
        let mut made = false;
        hub.offer(|| {
            made = true;
            Tapped::new("a", "t", 0, false, b"x")
        });
        assert!(!made, "nobody watches: nothing is built");
        let mut w = hub.watch();
        hub.offer(|| Tapped::new("a", "t/1", 1, false, &[b'y'; 5000]));
        let m = w.next().await.unwrap().unwrap();
        assert_eq!(
            (m.topic.as_str(), m.bytes, m.payload.len()),
            ("t/1", 5000, 2048)
        );
        drop(w);
        assert_eq!(hub.watchers.load(Ordering::Relaxed), 0);
    }
}
