//! Committing a staged batch. The new state counts only once SQLite has
//! it: then the RTC operations run and the downlinks go to the sender. If
//! the commit fails, the requests of the batch are answered `unavailable`
//! (retry with the same `req`), its RTC callbacks are kept to be fed again,
//! and the run ends so the supervisor reloads the last committed state.

use bytes::Bytes;

use super::effects::{self, REPLY_TTL};
use super::protocol::{self, UNAVAILABLE};
use super::runtime::{Runtime, Staged};
use super::supervise::{Exit, Inputs};
use super::{new_id, now_ms};
use crate::bridge::Downlink;
use crate::metrics;
use crate::rtc::token::rtc_user_id;

impl Runtime {
    /// Writes `staged`; `Some(exit)` if it could not be written.
    pub(super) async fn commit(&mut self, staged: Staged, inputs: &mut Inputs) -> Option<Exit> {
        let Staged {
            batch,
            rtc,
            requests,
            rtc_events,
            setups,
            acks,
        } = staged;
        // Stored, or answered `unavailable` below: the broker may forget them.
        let ack = || acks.iter().for_each(|a| a.send());
        let rows = if batch.is_empty() {
            Vec::new()
        } else {
            let store = self.store.clone();
            let done = batch.outbox_done.clone();
            let timer = metrics::get().commit_seconds.start_timer();
            let written = tokio::task::spawn_blocking(move || store.apply_batch(&batch)).await;
            timer.observe_duration();
            let error = match written {
                Ok(Ok(rows)) => Ok(rows),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match error {
                Ok(rows) => rows,
                Err(e) => {
                    inputs.retry_rtc.extend(rtc_events);
                    inputs.retry_done.extend(done);
                    let exit = self.not_stored(&requests, e).await;
                    ack();
                    return Some(exit);
                }
            }
        };
        ack();
        // RTC first: a reply with join parameters must find its channel open.
        let now = now_ms();
        for op in rtc {
            match op {
                effects::RtcOp::Open { channel, call_id } => {
                    self.rtc.open_channel(&channel, &call_id)
                }
                effects::RtcOp::Close { channel } => self.rtc.close_channel(&channel),
                effects::RtcOp::Revoke { channel, user } => {
                    self.rtc.revoke(&channel, &rtc_user_id(&user), now)
                }
            }
        }
        for row in rows {
            let _ = self.out.send(row);
        }
        let m = metrics::get();
        for received in setups {
            m.call_setups.inc();
            let took = received.elapsed().unwrap_or_default();
            m.setup_seconds.observe(took.as_secs_f64());
        }
        None
    }

    /// Answers the batch's requests `unavailable`, straight through the
    /// broker (nothing can be stored), and ends the run.
    async fn not_stored(&self, requests: &[(String, Option<String>)], error: String) -> Exit {
        tracing::error!(
            requests = requests.len(),
            "controller state not saved: {error}"
        );
        let now = now_ms();
        let body = protocol::error_body(
            UNAVAILABLE,
            "the controller could not store this request: send it again with the same req",
        );
        for (client_id, req) in requests {
            let Some(topic) = effects::inbox(&self.directory, client_id) else {
                continue;
            };
            let env = protocol::downlink(
                &new_id(),
                "error",
                req.as_deref(),
                now,
                REPLY_TTL,
                body.clone(),
            );
            let msg = Downlink {
                topic,
                payload: Bytes::from(serde_json::to_vec(&env).unwrap_or_default()),
                expiry: Some(std::time::Duration::from_millis(REPLY_TTL as u64)),
            };
            if let Err(e) = self.bridge.publish(msg).await {
                tracing::warn!(client_id, "`unavailable` not sent: {e}");
            }
        }
        Exit::StoreFailed(error)
    }
}
