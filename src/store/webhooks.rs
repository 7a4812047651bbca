//! Webhooks: each instance's endpoint and secret, the durable outbox of
//! events (written in the controller's transactions) and every delivery
//! attempt.

use base64::Engine;
use rand::RngCore;
use serde::Serialize;

use super::db::{args, Sql};
use super::{Store, StoreError};

/// An event to deliver.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// `webhook-id`: the same on every attempt.
    pub id: String,
    /// Whose endpoint gets it.
    pub instance: String,
    /// `call.started`, ...
    pub kind: String,
    /// The call it is about, if any (for the call's page).
    pub call_id: Option<String>,
    /// The body, as sent.
    pub payload: String,
    /// Unix milliseconds.
    pub at: i64,
}

/// An event due for an attempt, with where it goes.
#[derive(Debug, Clone)]
pub struct DueEvent {
    /// The event.
    pub event: WebhookEvent,
    /// Attempts so far.
    pub attempts: u32,
    /// Endpoint.
    pub url: String,
    /// `whsec_...`.
    pub secret: String,
}

/// One attempt, as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    /// Unix milliseconds.
    pub at: i64,
    /// HTTP status; none when nothing answered.
    pub status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// How long it took.
    pub ms: i64,
}

/// An event with its delivery so far.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// `webhook-id`.
    pub id: String,
    /// Instance.
    pub instance: String,
    /// Event type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The call, if any.
    pub call_id: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// `delivered`, `pending` or `failed` (gave up).
    pub state: String,
    /// Every attempt, oldest first.
    pub attempts: Vec<Attempt>,
}

/// Writes `events` for the instances that have an endpoint.
pub(super) fn insert(tx: &mut dyn Sql, events: &[WebhookEvent]) -> Result<(), StoreError> {
    for e in events {
        tx.execute(
            "INSERT INTO webhook_events (id, instance_id, type, call_id, payload, created_at, next_attempt_at)
             SELECT CAST(?1 AS TEXT), CAST(?2 AS TEXT), CAST(?3 AS TEXT), CAST(?4 AS TEXT), CAST(?5 AS TEXT),
                    CAST(?6 AS BIGINT), CAST(?6 AS BIGINT)
             WHERE EXISTS (SELECT 1 FROM webhooks WHERE instance_id = ?2)
             ON CONFLICT DO NOTHING",
            args![e.id, e.instance, e.kind, e.call_id, e.payload, e.at],
        )?;
    }
    Ok(())
}

impl Store {
    /// Sets (or replaces) an instance's endpoint with a new secret, returned once.
    pub fn set_webhook(&self, instance: &str, url: &str) -> Result<String, StoreError> {
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| StoreError::Invalid(format!("not a URL: {url}: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(StoreError::Invalid(format!(
                "not an http:// or https:// URL: {url}"
            )));
        }
        if !self.instance_exists(instance)? {
            return Err(StoreError::NotFound(format!(
                "instance {instance} does not exist"
            )));
        }
        let mut raw = [0u8; 24];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        );
        let (sealed, now) = (self.key().seal(&secret), super::unix_now());
        self.sql(|db| {
            db.execute(
                "INSERT INTO webhooks (instance_id, url, secret, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (instance_id) DO UPDATE SET url = ?2, secret = ?3, created_at = ?4",
                args![instance, url, sealed, now],
            )
        })?;
        Ok(secret)
    }

    /// Every endpoint: (instance, URL).
    pub fn webhooks(&self) -> Result<Vec<(String, String)>, StoreError> {
        let sql = "SELECT instance_id, url FROM webhooks ORDER BY instance_id";
        self.sql(|db| db.query_map(sql, args![], |r| Ok((r.get(0)?, r.get(1)?))))
    }

    /// Removes an instance's endpoint; its events not yet delivered are
    /// marked failed (they are kept, with their attempts).
    pub fn delete_webhook(&self, instance: &str) -> Result<(), StoreError> {
        let now = crate::controller::now_ms();
        self.tx(|tx| {
            let n = tx.execute(
                "DELETE FROM webhooks WHERE instance_id = ?1",
                args![instance],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "instance {instance} has no webhook"
                )));
            }
            tx.execute(
                "UPDATE webhook_events SET failed_at = ?2
                 WHERE instance_id = ?1 AND delivered_at IS NULL AND failed_at IS NULL",
                args![instance, now],
            )?;
            Ok(())
        })
    }

    /// Up to `limit` events due at `now`, oldest first.
    pub fn due_webhook_events(&self, now: i64, limit: usize) -> Result<Vec<DueEvent>, StoreError> {
        let limit = limit as i64;
        let rows: Vec<(WebhookEvent, u32, String, Vec<u8>)> = self.sql(|db| {
            let sql = "SELECT e.id, e.instance_id, e.type, e.call_id, e.payload, e.created_at, e.attempts, w.url, w.secret
                 FROM webhook_events e JOIN webhooks w ON w.instance_id = e.instance_id
                 WHERE e.delivered_at IS NULL AND e.failed_at IS NULL AND e.next_attempt_at <= ?1
                 ORDER BY e.created_at, e.id LIMIT ?2";
            db.query_map(sql, args![now, limit], |r| {
                Ok((
                    WebhookEvent {
                        id: r.get(0)?,
                        instance: r.get(1)?,
                        kind: r.get(2)?,
                        call_id: r.get(3)?,
                        payload: r.get(4)?,
                        at: r.get(5)?,
                    },
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                ))
            })
        })?;
        rows.into_iter()
            .map(|(event, attempts, url, sealed)| {
                Ok(DueEvent {
                    event,
                    attempts,
                    url,
                    secret: self.key().open(&sealed)?,
                })
            })
            .collect()
    }

    /// Records an attempt: delivered, or the next try at `retry_at`
    /// (`None`: given up).
    pub fn record_attempt(
        &self,
        id: &str,
        a: &Attempt,
        delivered: bool,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        let given_up = !delivered && retry_at.is_none();
        self.tx(|tx| {
            tx.execute(
                "INSERT INTO webhook_attempts (event_id, at, status, error, ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                args![id, a.at, a.status, a.error, a.ms],
            )?;
            tx.execute(
                "UPDATE webhook_events SET attempts = attempts + 1,
                    delivered_at = CASE WHEN ?2 = 1 THEN CAST(?3 AS BIGINT) END,
                    next_attempt_at = COALESCE(?4, next_attempt_at),
                    failed_at = CASE WHEN ?5 = 1 THEN CAST(?3 AS BIGINT) END
                 WHERE id = ?1",
                args![id, delivered, a.at, retry_at, given_up],
            )?;
            Ok(())
        })
    }

    /// Events with their attempts, newest first: of one call, or of one
    /// instance, or all.
    pub fn webhook_deliveries(
        &self,
        instance: Option<&str>,
        call_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let limit = limit as i64;
        self.snapshot(|db| {
        let sql = "SELECT id, instance_id, type, call_id, created_at, delivered_at, failed_at FROM webhook_events
             WHERE (CAST(?1 AS TEXT) IS NULL OR instance_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR call_id = ?2)
             ORDER BY created_at DESC, id DESC LIMIT ?3";
        let mut out: Vec<Delivery> = db
            .query_map(sql, args![instance, call_id, limit], |r| {
                let delivered: Option<i64> = r.get(5)?;
                let failed: Option<i64> = r.get(6)?;
                Ok(Delivery {
                    id: r.get(0)?,
                    instance: r.get(1)?,
                    kind: r.get(2)?,
                    call_id: r.get(3)?,
                    created_at: r.get(4)?,
                    state: match (delivered, failed) {
                        (Some(_), _) => "delivered",
                        (None, Some(_)) => "failed",
                        _ => "pending",
                    }
                    .into(),
                    attempts: Vec::new(),
                })
            })?;
        // Attempts of one event are sequential: `at` orders them.
        let sql = "SELECT at, status, error, ms FROM webhook_attempts WHERE event_id = ?1 ORDER BY at";
        for d in &mut out {
            d.attempts = db.query_map(sql, args![d.id], |r| {
                Ok(Attempt {
                    at: r.get(0)?,
                    status: r.get(1)?,
                    error: r.get(2)?,
                    ms: r.get(3)?,
                })
            })?;
        }
        Ok(out)
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn event(id: &str, at: i64) -> WebhookEvent {
        WebhookEvent {
            id: id.into(),
            instance: "acme".into(),
            kind: "call.started".into(),
            call_id: Some("c1".into()),
            payload: "{}".into(),
            at,
        }
    }

    pub(crate) fn outbox_keeps_events_of_endpoints_only_and_records_each_attempt(s: &Store) {
        s.create_instance("acme", "").unwrap();
        let write = |e: WebhookEvent| s.tx(|tx| insert(tx, &[e])).unwrap();
        write(event("msg_before", 1));
        assert!(
            s.due_webhook_events(10, 10).unwrap().is_empty(),
            "no endpoint: not kept"
        );
        let secret = s.set_webhook("acme", "http://127.0.0.1:9/hooks").unwrap();
        assert!(secret.starts_with("whsec_"));
        assert!(s.set_webhook("acme", "ftp://x/").is_err());
        assert!(s.set_webhook("nobody", "http://x/").is_err());
        write(event("msg_1", 2));
        write(event("msg_1", 2)); // a repeat of the same id is one event
        let due = s.due_webhook_events(10, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].secret, secret);
        let failed = Attempt {
            at: 3,
            status: Some(500),
            error: Some("HTTP 500".into()),
            ms: 1,
        };
        s.record_attempt("msg_1", &failed, false, Some(100))
            .unwrap();
        assert!(
            s.due_webhook_events(99, 10).unwrap().is_empty(),
            "waits for its retry"
        );
        assert_eq!(s.due_webhook_events(100, 10).unwrap()[0].attempts, 1);
        write(event("msg_2", 4));
        s.delete_webhook("acme").unwrap();
        let all = s.webhook_deliveries(Some("acme"), None, 10).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.iter().all(|d| d.state == "failed"), "{all:?}");
        assert_eq!(
            all.iter().find(|d| d.id == "msg_1").unwrap().attempts.len(),
            1
        );
    }

    crate::store::on_both!(outbox_keeps_events_of_endpoints_only_and_records_each_attempt);
}
