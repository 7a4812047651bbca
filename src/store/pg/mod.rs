//! The controller's state in PostgreSQL (`mqrtc controller --store
//! postgres://...`), for several controllers over one database: the same
//! tables as the SQLite migrations, a lease so that one controller is
//! active at a time (`lease`), and fencing: every batch checks, in its own
//! transaction, that the lease's epoch is still the one this controller
//! took over with.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::path::PathBuf;

use postgres::config::SslMode;
use postgres::{Client, NoTls, Statement};

use super::calls::{corrupt, timer_key};
use super::{Batch, Loaded, OutboxRow, StoreError};
use crate::calls::Millis;

pub mod lease;
#[cfg(test)]
pub(crate) mod testing;

/// The controller lease's advisory lock key ("mqrtc" and a number).
pub const LEASE_LOCK: i64 = 0x6d71_7274_6302;

impl From<postgres::Error> for StoreError {
    /// The error and its causes ("error performing TLS handshake" alone
    /// does not say that the certificate is not trusted).
    fn from(e: postgres::Error) -> StoreError {
        let constraint = e.code().is_some_and(|c| c.code().starts_with("23"));
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            text = format!("{text}: {c}");
            cause = c.source();
        }
        if constraint {
            StoreError::Constraint(text)
        } else {
            StoreError::Postgres(text)
        }
    }
}

/// One statement per table and batch: the batch's rows go in as arrays
/// (`UNNEST`), so a batch costs a handful of round trips, not one per row.
struct Statements {
    epoch: Statement,
    calls: Statement,
    users: Statement,
    timers: Statement,
    untimers: Statement,
    replies: Statement,
    devices: Statement,
    events: Statement,
    sent: Statement,
    outbox: Statement,
    webhooks: Statement,
}

/// Where the database is, and whom to trust for TLS.
#[derive(Debug, Clone)]
pub struct Database {
    /// `postgres://user@host:port/db?sslmode=require`, or key=value pairs.
    pub url: String,
    /// CA certificates (PEM) for the server's certificate; the system's
    /// roots when there is none.
    pub ca_file: Option<PathBuf>,
}

impl Database {
    /// The database at `url`, with the system's roots for TLS.
    pub fn new(url: &str) -> Database {
        Database {
            url: url.to_string(),
            ca_file: None,
        }
    }

    /// A new connection. `sslmode=require` means TLS with the server's
    /// certificate and name verified (libpq's `verify-full`); otherwise the
    /// connection is plain (as `disable`: mqrtc never falls back silently).
    pub fn connect(&self) -> Result<Client, StoreError> {
        let config: postgres::Config = self.url.parse()?;
        if config.get_ssl_mode() != SslMode::Require {
            return Ok(config.connect(NoTls)?);
        }
        let tls =
            crate::certs::client_config(self.ca_file.as_deref()).map_err(StoreError::Postgres)?;
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(Arc::unwrap_or_clone(tls));
        Ok(config.connect(tls)?)
    }
}

/// A connection to the database, with its statements prepared.
pub struct PgStore {
    conn: Mutex<(Client, Statements)>,
    /// The lease epoch this controller holds (0: not fenced, for tests).
    epoch: AtomicI64,
}

impl PgStore {
    /// Connects to `db` and brings the schema up to date.
    pub fn connect(db: &Database) -> Result<PgStore, StoreError> {
        let mut client = db.connect()?;
        super::migrate::postgres(&mut client)?;
        let s = Statements {
            epoch: client.prepare("SELECT epoch FROM controller_lease WHERE id = 1 FOR SHARE")?,
            calls: client.prepare(
                "INSERT INTO calls (id, instance_id, state, data, created_at, ended_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
                 ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state, data = EXCLUDED.data, ended_at = EXCLUDED.ended_at",
            )?,
            users: client.prepare(
                "INSERT INTO call_users (user_id, call_id, created_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
            )?,
            timers: client.prepare(
                "INSERT INTO call_timers (call_id, timer, due_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[])
                 ON CONFLICT (call_id, timer) DO UPDATE SET due_at = EXCLUDED.due_at",
            )?,
            untimers: client.prepare(
                "DELETE FROM call_timers WHERE (call_id, timer) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))",
            )?,
            replies: client.prepare(
                "INSERT INTO call_replies (client_id, req, result, until)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
                 ON CONFLICT (client_id, req) DO UPDATE SET result = EXCLUDED.result, until = EXCLUDED.until",
            )?,
            devices: client.prepare(
                "INSERT INTO call_devices (client_id, user_id, instance_id, first_seen)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[]) ON CONFLICT DO NOTHING",
            )?,
            // In the batch's order: the timeline is read by `seq`.
            events: client.prepare(
                "INSERT INTO call_events (call_id, at, direction, client_id, type, message)
                 SELECT c, a, d, cl, t, m FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                 WITH ORDINALITY AS u(c, a, d, cl, t, m, n) ORDER BY n",
            )?,
            sent: client.prepare("DELETE FROM outbox WHERE seq = ANY($1)")?,
            outbox: client.prepare(
                "INSERT INTO outbox (client_id, topic, payload, expires_at)
                 SELECT c, t, p, e FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[])
                 WITH ORDINALITY AS u(c, t, p, e, n) ORDER BY n
                 RETURNING seq, client_id, topic, payload, expires_at",
            )?,
            // Kept only for instances with an endpoint, as on SQLite.
            webhooks: client.prepare(
                "INSERT INTO webhook_events (id, instance_id, type, call_id, payload, created_at, next_attempt_at)
                 SELECT e.id, e.i, e.t, e.c, e.p, e.at, e.at
                 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[]) AS e(id, i, t, c, p, at)
                 WHERE EXISTS (SELECT 1 FROM webhooks w WHERE w.instance_id = e.i)
                 ON CONFLICT DO NOTHING",
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

/// The last value per key, in the order keys first appeared (a batch may
/// change one row twice; one statement may not).
fn last_per_key<K: Eq + std::hash::Hash + Clone, V>(
    items: impl Iterator<Item = (K, V)>,
) -> Vec<(K, V)> {
    let mut at: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    let mut out: Vec<(K, V)> = Vec::new();
    for (k, v) in items {
        match at.get(&k) {
            Some(&i) => out[i].1 = v,
            None => {
                at.insert(k.clone(), out.len());
                out.push((k, v));
            }
        }
    }
    out
}

impl super::StateStore for PgStore {
    fn load_controller(&self, since: Millis) -> Result<Loaded, StoreError> {
        let mut g = self.conn();
        let mut tx = super::db::pg_transaction(&mut g.0, true)?;
        let out = super::calls::load(&mut super::db::PgSql(&mut tx), since)?;
        tx.commit()?;
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
        let calls = last_per_key(b.calls.iter().map(|c| (c.id.clone(), c)));
        if !calls.is_empty() {
            let (mut ids, mut instances, mut states, mut data, mut created, mut ended) =
                (vec![], vec![], vec![], vec![], vec![], vec![]);
            let (mut users, mut user_calls, mut user_created) = (vec![], vec![], vec![]);
            for (_, c) in calls {
                let state = serde_json::to_value(c.state).map_err(corrupt)?;
                ids.push(c.id.as_str());
                instances.push(c.instance.as_str());
                states.push(state["state"].as_str().unwrap_or("").to_string());
                data.push(serde_json::to_string(c).map_err(corrupt)?);
                created.push(c.created_at);
                ended.push(c.ended_at);
                for user in c.participants.keys() {
                    users.push(user.as_str());
                    user_calls.push(c.id.as_str());
                    user_created.push(c.created_at);
                }
            }
            tx.execute(
                &s.calls,
                &[&ids, &instances, &states, &data, &created, &ended],
            )?;
            tx.execute(&s.users, &[&users, &user_calls, &user_created])?;
        }
        let timers = last_per_key(
            b.timers
                .iter()
                .map(|(t, due)| ((t.call_id.clone(), timer_key(&t.kind)), due)),
        );
        let (mut set, mut gone) = ((vec![], vec![], vec![]), (vec![], vec![]));
        for ((call_id, key), due) in timers {
            match due {
                Some(due) => {
                    set.0.push(call_id);
                    set.1.push(key);
                    set.2.push(*due);
                }
                None => {
                    gone.0.push(call_id);
                    gone.1.push(key);
                }
            }
        }
        if !set.0.is_empty() {
            tx.execute(&s.timers, &[&set.0, &set.1, &set.2])?;
        }
        if !gone.0.is_empty() {
            tx.execute(&s.untimers, &[&gone.0, &gone.1])?;
        }
        let replies = last_per_key(b.replies.iter().map(|r| ((r.0.clone(), r.1.clone()), r)));
        if !replies.is_empty() {
            let (mut clients, mut reqs, mut results, mut untils) = (vec![], vec![], vec![], vec![]);
            for (_, (client, req, result, until)) in replies {
                clients.push(client.as_str());
                reqs.push(req.as_str());
                results.push(serde_json::to_string(result).map_err(corrupt)?);
                untils.push(*until);
            }
            tx.execute(&s.replies, &[&clients, &reqs, &results, &untils])?;
        }
        if !b.devices.is_empty() {
            let ids: Vec<&str> = b
                .devices
                .iter()
                .map(|(d, _)| d.client_id.as_str())
                .collect();
            let users: Vec<&str> = b.devices.iter().map(|(d, _)| d.user.as_str()).collect();
            let instances: Vec<&str> = b.devices.iter().map(|(d, _)| d.instance.as_str()).collect();
            let seen: Vec<i64> = b.devices.iter().map(|(_, at)| *at).collect();
            tx.execute(&s.devices, &[&ids, &users, &instances, &seen])?;
        }
        if !b.events.is_empty() {
            let e = &b.events;
            let calls: Vec<&str> = e.iter().map(|(c, _)| c.as_str()).collect();
            let at: Vec<i64> = e.iter().map(|(_, e)| e.at).collect();
            let dir: Vec<&str> = e.iter().map(|(_, e)| e.direction.as_str()).collect();
            let client: Vec<&str> = e.iter().map(|(_, e)| e.client_id.as_str()).collect();
            let kind: Vec<&str> = e.iter().map(|(_, e)| e.kind.as_str()).collect();
            let msg: Vec<String> = e.iter().map(|(_, e)| e.message.to_string()).collect();
            tx.execute(&s.events, &[&calls, &at, &dir, &client, &kind, &msg])?;
        }
        if !b.outbox_done.is_empty() {
            tx.execute(&s.sent, &[&b.outbox_done])?;
        }
        let mut rows = Vec::with_capacity(b.outbox.len());
        if !b.outbox.is_empty() {
            let o = &b.outbox;
            let clients: Vec<&str> = o.iter().map(|r| r.0.as_str()).collect();
            let topics: Vec<&str> = o.iter().map(|r| r.1.as_str()).collect();
            let payloads: Vec<&str> = o.iter().map(|r| r.2.as_str()).collect();
            let expires: Vec<i64> = o.iter().map(|r| r.3).collect();
            // Each row comes back with its identity, so nothing rests on
            // the order identities are handed out in; sent in that order.
            for r in tx.query(&s.outbox, &[&clients, &topics, &payloads, &expires])? {
                rows.push(OutboxRow {
                    seq: r.get(0),
                    client_id: r.get(1),
                    topic: r.get(2),
                    payload: r.get(3),
                    expires_at: r.get(4),
                });
            }
            rows.sort_by_key(|r| r.seq);
        }
        if !b.webhooks.is_empty() {
            let w = &b.webhooks;
            let ids: Vec<&str> = w.iter().map(|e| e.id.as_str()).collect();
            let instances: Vec<&str> = w.iter().map(|e| e.instance.as_str()).collect();
            let kinds: Vec<&str> = w.iter().map(|e| e.kind.as_str()).collect();
            let calls: Vec<Option<&str>> = w.iter().map(|e| e.call_id.as_deref()).collect();
            let payloads: Vec<&str> = w.iter().map(|e| e.payload.as_str()).collect();
            let at: Vec<i64> = w.iter().map(|e| e.at).collect();
            let args: [&(dyn postgres::types::ToSql + Sync); 6] =
                [&ids, &instances, &kinds, &calls, &payloads, &at];
            tx.execute(&s.webhooks, &args)?;
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

#[cfg(test)]
mod tests;
