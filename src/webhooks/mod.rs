//! Delivery of the controller's webhook events: a loop takes the events due
//! from the SQLite outbox, POSTs each (signed, Standard Webhooks headers)
//! and records the attempt; a failed one is tried again later with
//! exponential backoff, until it is older than the give-up age. Events
//! are written with the state that caused them, so a crash loses none:
//! they are delivered at least once, and a repeat has the same id.

pub mod cli;
mod post;
pub mod sign;

use std::sync::Arc;
use std::time::Duration;

use crate::store::{Attempt, DueEvent, Store};

/// How deliveries are tried.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The first retry's wait; each next one doubles it.
    pub retry_base: Duration,
    /// The longest wait between two attempts.
    pub retry_max: Duration,
    /// Events not delivered after this long are given up.
    pub give_up_after: Duration,
    /// One attempt's time limit.
    pub timeout: Duration,
}

/// How often the outbox is looked at when nothing is due.
const POLL: Duration = Duration::from_millis(250);

/// The wait after `attempts` failed attempts.
fn backoff(s: &Settings, attempts: u32) -> Duration {
    let wait = s
        .retry_base
        .saturating_mul(1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX));
    wait.min(s.retry_max)
}

/// Delivers until the task is aborted.
pub fn start(store: Arc<Store>, settings: Settings) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let s = store.clone();
            let now = crate::controller::now_ms();
            let due = match tokio::task::spawn_blocking(move || s.due_webhook_events(now, 32)).await
            {
                Ok(Ok(due)) => due,
                Ok(Err(e)) => {
                    tracing::warn!("webhook outbox: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!("webhook outbox: {e}");
                    Vec::new()
                }
            };
            if due.is_empty() {
                tokio::time::sleep(POLL).await;
                continue;
            }
            for d in due {
                deliver(&store, &settings, d).await;
            }
        }
    })
}

async fn deliver(store: &Arc<Store>, s: &Settings, d: DueEvent) {
    let started = std::time::Instant::now();
    let at = crate::controller::now_ms();
    let timestamp = at / 1000;
    let e = &d.event;
    let result = match sign::signature(&d.secret, &e.id, timestamp, &e.payload) {
        Ok(sig) => {
            let headers = [
                ("webhook-id", e.id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", sig),
            ];
            post::post(&d.url, &headers, e.payload.clone(), s.timeout).await
        }
        Err(err) => Err(err),
    };
    let (status, error) = match &result {
        Ok(code) if (200..300).contains(code) => (Some(*code), None),
        Ok(code) => (Some(*code), Some(format!("HTTP {code}"))),
        Err(err) => (None, Some(err.clone())),
    };
    let delivered = error.is_none();
    let give_up = at - e.at > s.give_up_after.as_millis() as i64;
    let retry_at = (!delivered && !give_up).then(|| at + backoff(s, d.attempts).as_millis() as i64);
    let attempt = Attempt {
        at,
        status,
        error,
        ms: started.elapsed().as_millis() as i64,
    };
    match (&attempt.error, retry_at) {
        (None, _) => tracing::info!(
            id = e.id,
            kind = e.kind,
            call_id = e.call_id.as_deref().unwrap_or(""),
            "webhook delivered"
        ),
        (Some(err), Some(_)) => tracing::info!(
            id = e.id,
            kind = e.kind,
            attempts = d.attempts + 1,
            "webhook not delivered, will retry: {err}"
        ),
        (Some(err), None) => tracing::warn!(
            id = e.id,
            kind = e.kind,
            attempts = d.attempts + 1,
            "webhook given up: {err}"
        ),
    }
    let (store, id) = (store.clone(), e.id.clone());
    let saved = tokio::task::spawn_blocking(move || {
        store.record_attempt(&id, &attempt, delivered, retry_at)
    })
    .await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!(id = e.id, "webhook attempt not recorded");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum() {
        let s = Settings {
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(600),
            give_up_after: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
        };
        let waits: Vec<u64> = (0..12).map(|n| backoff(&s, n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        assert_eq!(backoff(&s, 1000).as_secs(), 600);
    }
}
