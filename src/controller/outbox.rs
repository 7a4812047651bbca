//! Hands downlink messages to the broker in order, and reports the ones the
//! broker took (or that expired unsent) so the runtime forgets them in its
//! next transaction.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::now_ms;
use crate::bridge::{BridgeError, Downlink, MessageBridge};
use crate::store::OutboxRow;

/// Runs until the channel or the broker closes.
pub(super) async fn send(
    bridge: Arc<dyn MessageBridge>,
    mut rx: mpsc::UnboundedReceiver<OutboxRow>,
    done_tx: mpsc::UnboundedSender<Vec<i64>>,
) {
    while let Some(first) = rx.recv().await {
        let mut rows = vec![first];
        while rows.len() < 256 {
            match rx.try_recv() {
                Ok(r) => rows.push(r),
                Err(_) => break,
            }
        }
        let mut done = Vec::with_capacity(rows.len());
        for row in rows {
            let left = row.expires_at - now_ms();
            if left > 0 {
                let msg = Downlink {
                    topic: row.topic,
                    payload: Bytes::from(row.payload),
                    expiry: Some(Duration::from_millis(left as u64)),
                };
                match bridge.publish(msg).await {
                    Ok(()) => {}
                    Err(BridgeError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(client_id = %row.client_id, "downlink not published: {e}")
                    }
                }
            } else {
                tracing::debug!(client_id = %row.client_id, "downlink expired before it was sent");
            }
            done.push(row.seq);
        }
        if done_tx.send(done).is_err() {
            return;
        }
    }
}
