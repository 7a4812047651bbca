//! The controller's state in PostgreSQL (`mqrtc controller --store
//! postgres://...`), for several controllers over one database: the same
//! tables as the SQLite migrations, a lease so that one controller is
//! active at a time (`lease`), and fencing: every batch checks, in its own
//! transaction, that the lease's epoch is still the one this controller
//! took over with.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use postgres::{Client, NoTls, Statement};

use super::calls::{corrupt, timer_key};
use super::{Batch, Loaded, OutboxRow, StoreError};
use crate::calls::{Device, Millis, Timer, TimerKind};

pub mod lease;

/// Migrations in order; `mqrtc_schema.version` holds how many ran.
const MIGRATIONS: &[&str] = &[include_str!("0001_controller.sql")];

/// Advisory lock keys ("mqrtc" and a number).
const MIGRATE_LOCK: i64 = 0x6d71_7274_6301;
/// The controller lease.
pub const LEASE_LOCK: i64 = 0x6d71_7274_6302;

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        StoreError::Postgres(e.to_string())
    }
}

struct Statements {
    epoch: Statement,
    call: Statement,
    user: Statement,
    timer: Statement,
    untimer: Statement,
    reply: Statement,
    device: Statement,
    event: Statement,
    sent: Statement,
    outbox: Statement,
}

/// A connection to the database, with its statements prepared.
pub struct PgStore {
    conn: Mutex<(Client, Statements)>,
    /// The lease epoch this controller holds (0: not fenced, for tests).
    epoch: AtomicI64,
}

impl PgStore {
    /// Connects to `url` and brings the schema up to date.
    pub fn connect(url: &str) -> Result<PgStore, StoreError> {
        let mut client = Client::connect(url, NoTls)?;
        migrate(&mut client)?;
        let s = Statements {
            epoch: client.prepare("SELECT epoch FROM controller_lease WHERE id = 1 FOR SHARE")?,
            call: client.prepare(
                "INSERT INTO calls (id, instance_id, state, data, created_at, ended_at) VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET state = $3, data = $4, ended_at = $6",
            )?,
            user: client.prepare(
                "INSERT INTO call_users (user_id, call_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )?,
            timer: client.prepare(
                "INSERT INTO call_timers (call_id, timer, due_at) VALUES ($1, $2, $3)
                 ON CONFLICT (call_id, timer) DO UPDATE SET due_at = $3",
            )?,
            untimer: client.prepare("DELETE FROM call_timers WHERE call_id = $1 AND timer = $2")?,
            reply: client.prepare(
                "INSERT INTO call_replies (client_id, req, result, until) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (client_id, req) DO UPDATE SET result = $3, until = $4",
            )?,
            device: client.prepare(
                "INSERT INTO call_devices (client_id, user_id, instance_id, first_seen) VALUES ($1, $2, $3, $4)
                 ON CONFLICT DO NOTHING",
            )?,
            event: client.prepare(
                "INSERT INTO call_events (call_id, at, direction, client_id, type, message) VALUES ($1, $2, $3, $4, $5, $6)",
            )?,
            sent: client.prepare("DELETE FROM outbox WHERE seq = $1")?,
            outbox: client.prepare(
                "INSERT INTO outbox (client_id, topic, payload, expires_at) VALUES ($1, $2, $3, $4) RETURNING seq",
            )?,
        };
        Ok(PgStore {
            conn: Mutex::new((client, s)),
            epoch: AtomicI64::new(0),
        })
    }

    /// From now on every batch requires the lease to still be at `epoch`.
    pub fn fence(&self, epoch: i64) {
        self.epoch.store(epoch, Ordering::SeqCst);
    }

    fn conn(&self) -> MutexGuard<'_, (Client, Statements)> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.query("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS mqrtc_schema (version BIGINT NOT NULL)")?;
    let found = match tx.query_opt("SELECT version FROM mqrtc_schema", &[])? {
        Some(r) => r.get::<_, i64>(0),
        None => {
            tx.execute("INSERT INTO mqrtc_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::Downgrade {
            found: found as u32,
            known: known as u32,
        });
    }
    for m in &MIGRATIONS[found as usize..] {
        tx.batch_execute(m)?;
    }
    tx.execute("UPDATE mqrtc_schema SET version = $1", &[&known])?;
    tx.commit()?;
    Ok(())
}

impl super::StateStore for PgStore {
    fn load_controller(&self, since: Millis) -> Result<Loaded, StoreError> {
        let mut g = self.conn();
        let c = &mut g.0;
        let mut out = Loaded::default();
        for r in c.query(
            "SELECT data FROM calls WHERE ended_at IS NULL OR ended_at >= $1",
            &[&since],
        )? {
            out.calls
                .push(serde_json::from_str(r.get::<_, &str>(0)).map_err(corrupt)?);
        }
        for r in c.query("SELECT call_id, timer, due_at FROM call_timers", &[])? {
            let kind: TimerKind = serde_json::from_str(r.get::<_, &str>(1)).map_err(corrupt)?;
            out.timers.push((
                Timer {
                    call_id: r.get(0),
                    kind,
                },
                r.get(2),
            ));
        }
        for r in c.query(
            "SELECT client_id, user_id, instance_id FROM call_devices",
            &[],
        )? {
            out.devices.push(Device {
                client_id: r.get(0),
                user: r.get(1),
                instance: r.get(2),
            });
        }
        for r in c.query(
            "SELECT client_id, req, result, until FROM call_replies WHERE until > $1",
            &[&since],
        )? {
            let result = serde_json::from_str(r.get::<_, &str>(2)).map_err(corrupt)?;
            out.replies.push((r.get(0), r.get(1), result, r.get(3)));
        }
        for r in c.query(
            "SELECT seq, client_id, topic, payload, expires_at FROM outbox ORDER BY seq",
            &[],
        )? {
            out.outbox.push(OutboxRow {
                seq: r.get(0),
                client_id: r.get(1),
                topic: r.get(2),
                payload: r.get(3),
                expires_at: r.get(4),
            });
        }
        Ok(out)
    }

    fn apply_batch(&self, b: &Batch) -> Result<Vec<OutboxRow>, StoreError> {
        let mine = self.epoch.load(Ordering::SeqCst);
        let mut g = self.conn();
        let (c, s) = &mut *g;
        let mut tx = c.transaction()?;
        if mine != 0 {
            let now: i64 = tx.query_one(&s.epoch, &[])?.get(0);
            if now != mine {
                return Err(StoreError::Fenced(format!(
                    "another controller took over (lease epoch {now}, this one holds {mine})"
                )));
            }
        }
        for call in &b.calls {
            let state = serde_json::to_value(call.state).map_err(corrupt)?;
            let data = serde_json::to_string(call).map_err(corrupt)?;
            let state = state["state"].as_str().unwrap_or("");
            tx.execute(
                &s.call,
                &[
                    &call.id,
                    &call.instance,
                    &state,
                    &data,
                    &call.created_at,
                    &call.ended_at,
                ],
            )?;
            for user in call.participants.keys() {
                tx.execute(&s.user, &[user, &call.id, &call.created_at])?;
            }
        }
        for (t, due) in &b.timers {
            let key = timer_key(&t.kind);
            match due {
                Some(due) => tx.execute(&s.timer, &[&t.call_id, &key, due])?,
                None => tx.execute(&s.untimer, &[&t.call_id, &key])?,
            };
        }
        for (client, req, result, until) in &b.replies {
            let result = serde_json::to_string(result).map_err(corrupt)?;
            tx.execute(&s.reply, &[client, req, &result, until])?;
        }
        for (d, at) in &b.devices {
            tx.execute(&s.device, &[&d.client_id, &d.user, &d.instance, at])?;
        }
        for (call_id, e) in &b.events {
            let message = e.message.to_string();
            tx.execute(
                &s.event,
                &[
                    call_id,
                    &e.at,
                    &e.direction,
                    &e.client_id,
                    &e.kind,
                    &message,
                ],
            )?;
        }
        for seq in &b.outbox_done {
            tx.execute(&s.sent, &[seq])?;
        }
        let mut rows = Vec::with_capacity(b.outbox.len());
        for (client_id, topic, payload, expires_at) in &b.outbox {
            let seq: i64 = tx
                .query_one(&s.outbox, &[client_id, topic, payload, expires_at])?
                .get(0);
            rows.push(OutboxRow {
                seq,
                client_id: client_id.clone(),
                topic: topic.clone(),
                payload: payload.clone(),
                expires_at: *expires_at,
            });
        }
        tx.commit()?;
        Ok(rows)
    }

    fn prune_replies(&self, now: Millis) -> Result<(), StoreError> {
        self.conn()
            .0
            .execute("DELETE FROM call_replies WHERE until <= $1", &[&now])?;
        Ok(())
    }

    fn prune_calls(&self, cutoff: Millis, batch: usize) -> Result<usize, StoreError> {
        let mut g = self.conn();
        let mut tx = g.0.transaction()?;
        let ids: Vec<String> = tx
            .query(
                "SELECT id FROM calls WHERE ended_at IS NOT NULL AND ended_at < $1 ORDER BY ended_at LIMIT $2",
                &[&cutoff, &(batch as i64)],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for table in ["call_events", "call_users", "call_timers"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE call_id = ANY($1)"),
                &[&ids],
            )?;
        }
        tx.execute("DELETE FROM calls WHERE id = ANY($1)", &[&ids])?;
        tx.commit()?;
        Ok(ids.len())
    }
}
