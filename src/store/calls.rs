//! The controller's durable state: call snapshots, timers, the outbox,
//! remembered replies, known devices and the call timeline. Each input's
//! changes are written in one transaction (`apply_batch`).

use serde::{Deserialize, Serialize};

use super::db::{args, Sql};
use super::{Store, StoreError};
use crate::calls::{Call, CallError, Device, Millis, ReplyBody, Timer, TimerKind};

/// A downlink message waiting to be handed to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Order of insertion (and key).
    pub seq: i64,
    /// Recipient.
    pub client_id: String,
    /// Topic (its P2P inbox).
    pub topic: String,
    /// The envelope, as JSON.
    pub payload: String,
    /// Not sent after this (ms).
    pub expires_at: Millis,
}

/// One message of a call's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When (ms).
    pub at: Millis,
    /// `in` (from a device) or `out` (to a device).
    pub direction: String,
    /// The device.
    pub client_id: String,
    /// Message type.
    #[serde(rename = "type")]
    pub kind: String,
    /// The message itself.
    pub message: serde_json::Value,
}

/// Everything the controller restores at start.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Calls (live ones and recently ended ones).
    pub calls: Vec<Call>,
    /// Pending timers and when they are due.
    pub timers: Vec<(Timer, Millis)>,
    /// Devices seen.
    pub devices: Vec<Device>,
    /// Remembered replies: client id, request id, result, remembered until.
    pub replies: Vec<(String, String, Result<ReplyBody, CallError>, Millis)>,
    /// Downlinks not yet handed to the broker.
    pub outbox: Vec<OutboxRow>,
}

/// The changes one input caused.
#[derive(Debug, Default)]
pub struct Batch {
    /// Calls to save.
    pub calls: Vec<Call>,
    /// Timer changes in order: `Some(due)` sets, `None` forgets.
    pub timers: Vec<(Timer, Option<Millis>)>,
    /// Downlinks: client id, topic, payload, expires at.
    pub outbox: Vec<(String, String, String, Millis)>,
    /// Replies to remember: client id, request id, result, until.
    pub replies: Vec<(String, String, Result<ReplyBody, CallError>, Millis)>,
    /// Devices seen for the first time (and when).
    pub devices: Vec<(Device, Millis)>,
    /// Timeline entries: call id and entry.
    pub events: Vec<(String, TimelineEntry)>,
    /// Outbox rows the broker has taken, to forget.
    pub outbox_done: Vec<i64>,
    /// Webhook events (kept for instances with an endpoint).
    pub webhooks: Vec<super::WebhookEvent>,
}

impl Batch {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
            && self.timers.is_empty()
            && self.outbox.is_empty()
            && self.replies.is_empty()
            && self.devices.is_empty()
            && self.events.is_empty()
            && self.outbox_done.is_empty()
            && self.webhooks.is_empty()
    }
}

impl OutboxRow {
    /// The row a batch's downlink became, under `seq`.
    pub(super) fn stored(
        seq: i64,
        (client_id, topic, payload, expires_at): &Downlink,
    ) -> OutboxRow {
        OutboxRow {
            seq,
            client_id: client_id.clone(),
            topic: topic.clone(),
            payload: payload.clone(),
            expires_at: *expires_at,
        }
    }
}

/// A downlink of a batch: client id, topic, payload, expires at.
pub(super) type Downlink = (String, String, String, Millis);

pub(super) fn timer_key(kind: &TimerKind) -> String {
    serde_json::to_string(kind).unwrap_or_default()
}

pub(super) fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

/// The controller's state as it restarts (both databases).
pub(super) fn load(db: &mut dyn Sql, since: Millis) -> Result<Loaded, StoreError> {
    let mut out = Loaded::default();
    let sql = "SELECT data FROM calls WHERE ended_at IS NULL OR ended_at >= ?1";
    for r in db.rows(sql, args![since])? {
        out.calls
            .push(serde_json::from_str(&r.get::<String>(0)?).map_err(corrupt)?);
    }
    for r in db.rows("SELECT call_id, timer, due_at FROM call_timers", args![])? {
        let kind: TimerKind = serde_json::from_str(&r.get::<String>(1)?).map_err(corrupt)?;
        out.timers.push((
            Timer {
                call_id: r.get(0)?,
                kind,
            },
            r.get(2)?,
        ));
    }
    let sql = "SELECT client_id, user_id, instance_id FROM call_devices";
    out.devices = db.query_map(sql, args![], |r| {
        Ok(Device {
            client_id: r.get(0)?,
            user: r.get(1)?,
            instance: r.get(2)?,
        })
    })?;
    let sql = "SELECT client_id, req, result, until FROM call_replies WHERE until > ?1";
    for r in db.rows(sql, args![since])? {
        let result = serde_json::from_str(&r.get::<String>(2)?).map_err(corrupt)?;
        out.replies.push((r.get(0)?, r.get(1)?, result, r.get(3)?));
    }
    let sql = "SELECT seq, client_id, topic, payload, expires_at FROM outbox ORDER BY seq";
    out.outbox = db.query_map(sql, args![], |r| {
        Ok(OutboxRow {
            seq: r.get(0)?,
            client_id: r.get(1)?,
            topic: r.get(2)?,
            payload: r.get(3)?,
            expires_at: r.get(4)?,
        })
    })?;
    Ok(out)
}

impl Store {
    /// Loads the controller's state; ended calls older than `since` stay in the database only.
    pub fn load_controller(&self, since: Millis) -> Result<Loaded, StoreError> {
        self.snapshot(|db| load(db, since))
    }

    /// Writes one input's changes atomically; returns the new outbox rows.
    pub fn apply_batch(&self, b: &Batch) -> Result<Vec<OutboxRow>, StoreError> {
        self.tx(|tx| {
            for c in &b.calls {
                let state = serde_json::to_value(c.state).map_err(corrupt)?;
                let state = state["state"].as_str().unwrap_or("").to_string();
                let data = serde_json::to_string(c).map_err(corrupt)?;
                tx.execute(
                    "INSERT INTO calls (id, instance_id, state, data, created_at, ended_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET state = ?3, data = ?4, ended_at = ?6",
                    args![c.id, c.instance, state, data, c.created_at, c.ended_at],
                )?;
                for user in c.participants.keys() {
                    tx.execute(
                        "INSERT INTO call_users (user_id, call_id, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                        args![user, c.id, c.created_at],
                    )?;
                }
            }
            for (t, due) in &b.timers {
                let key = timer_key(&t.kind);
                match due {
                    Some(due) => tx.execute(
                        "INSERT INTO call_timers (call_id, timer, due_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (call_id, timer) DO UPDATE SET due_at = ?3",
                        args![t.call_id, key, due],
                    )?,
                    None => tx.execute(
                        "DELETE FROM call_timers WHERE call_id = ?1 AND timer = ?2",
                        args![t.call_id, key],
                    )?,
                };
            }
            for (c, q, result, until) in &b.replies {
                let result = serde_json::to_string(result).map_err(corrupt)?;
                tx.execute(
                    "INSERT INTO call_replies (client_id, req, result, until) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (client_id, req) DO UPDATE SET result = ?3, until = ?4",
                    args![c, q, result, until],
                )?;
            }
            super::webhooks::insert(tx, &b.webhooks)?;
            for (d, at) in &b.devices {
                tx.execute(
                    "INSERT INTO call_devices (client_id, user_id, instance_id, first_seen) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT DO NOTHING",
                    args![d.client_id, d.user, d.instance, at],
                )?;
            }
            for (call_id, e) in &b.events {
                let message = e.message.to_string();
                tx.execute(
                    "INSERT INTO call_events (call_id, at, direction, client_id, type, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    args![call_id, e.at, e.direction, e.client_id, e.kind, message],
                )?;
            }
            for seq in &b.outbox_done {
                tx.execute("DELETE FROM outbox WHERE seq = ?1", args![seq])?;
            }
            let mut rows = Vec::with_capacity(b.outbox.len());
            for d in &b.outbox {
                let (client_id, topic, payload, expires_at) = d;
                let seq = tx.query_row(
                    "INSERT INTO outbox (client_id, topic, payload, expires_at) VALUES (?1, ?2, ?3, ?4) RETURNING seq",
                    args![client_id, topic, payload, expires_at],
                    |r| r.get(0),
                )?;
                let seq = seq.ok_or_else(|| StoreError::Corrupt("outbox insert returned no seq".into()))?;
                rows.push(OutboxRow::stored(seq, d));
            }
            Ok(rows)
        })
    }

    /// Forgets outbox rows the broker took (or that expired).
    pub fn outbox_done(&self, seqs: &[i64]) -> Result<(), StoreError> {
        self.tx(|tx| {
            for s in seqs {
                tx.execute("DELETE FROM outbox WHERE seq = ?1", args![s])?;
            }
            Ok(())
        })
    }

    /// Drops remembered replies past their time.
    pub fn prune_replies(&self, now: Millis) -> Result<(), StoreError> {
        self.sql(|db| db.execute("DELETE FROM call_replies WHERE until <= ?1", args![now]))?;
        Ok(())
    }

    /// Deletes up to `batch` calls that ended before `cutoff`, with their
    /// timelines and user index; returns how many.
    pub fn prune_calls(&self, cutoff: Millis, batch: usize) -> Result<usize, StoreError> {
        let batch = batch as i64;
        self.tx(|tx| {
            let sql = "SELECT id FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?1 ORDER BY ended_at LIMIT ?2";
            let ids: Vec<String> = tx.query_map(sql, args![cutoff, batch], |r| r.get(0))?;
            for id in &ids {
                tx.execute("DELETE FROM call_events WHERE call_id = ?1", args![id])?;
                tx.execute("DELETE FROM call_users WHERE call_id = ?1", args![id])?;
                tx.execute("DELETE FROM call_timers WHERE call_id = ?1", args![id])?;
                tx.execute("DELETE FROM calls WHERE id = ?1", args![id])?;
            }
            Ok(ids.len())
        })
    }

    /// Every signaling message of a call, in order.
    pub fn timeline(&self, call_id: &str) -> Result<Vec<TimelineEntry>, StoreError> {
        let sql = "SELECT at, direction, client_id, type, message FROM call_events WHERE call_id = ?1 ORDER BY seq";
        self.sql(|db| {
            db.query_map(sql, args![call_id], |r| {
                let message: String = r.get(4)?;
                Ok(TimelineEntry {
                    at: r.get(0)?,
                    direction: r.get(1)?,
                    client_id: r.get(2)?,
                    kind: r.get(3)?,
                    message: serde_json::from_str(&message)
                        .unwrap_or(serde_json::Value::String(message)),
                })
            })
        })
    }

    /// The stored snapshot of a call (live or ended).
    pub fn stored_call(&self, call_id: &str) -> Result<Option<Call>, StoreError> {
        let sql = "SELECT data FROM calls WHERE id = ?1";
        let data: Option<String> =
            self.sql(|db| db.query_row(sql, args![call_id], |r| r.get(0)))?;
        data.map(|d| serde_json::from_str(&d).map_err(corrupt))
            .transpose()
    }
}

#[cfg(test)]
pub(crate) mod retention_tests {
    use super::*;

    pub(crate) fn old_ended_calls_go_with_their_timelines_live_and_recent_ones_stay(s: &Store) {
        for (id, ended) in [("old", "1000"), ("recent", "9000"), ("live", "NULL")] {
            for sql in [
                format!("INSERT INTO calls (id, instance_id, state, data, created_at, ended_at) VALUES ('{id}', 'i', 's', '{{}}', 0, {ended})"),
                format!("INSERT INTO call_events (call_id, at, direction, client_id, type, message) VALUES ('{id}', 0, 'in', 'c', 't', '{{}}')"),
                format!("INSERT INTO call_users (user_id, call_id, created_at) VALUES ('u', '{id}', 0)"),
            ] {
                s.run(&sql).unwrap();
            }
        }
        assert_eq!(s.prune_calls(5_000, 200).unwrap(), 1);
        assert_eq!(s.prune_calls(5_000, 200).unwrap(), 0);
        let ids: Vec<String> = s
            .sql(|db| db.query_map("SELECT id FROM calls ORDER BY id", args![], |r| r.get(0)))
            .unwrap();
        assert_eq!(ids, ["live", "recent"]);
        for table in ["call_events", "call_users"] {
            let n: i64 = s.one(&format!(
                "SELECT count(*) FROM {table} WHERE call_id = 'old'"
            ));
            assert_eq!(n, 0, "{table}");
        }
    }

    crate::store::on_both!(old_ended_calls_go_with_their_timelines_live_and_recent_ones_stay);
}
