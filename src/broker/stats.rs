//! Counters of what the broker refused and dropped, for logs, tests and
//! the HTTP status endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters (cheap to bump from hooks).
#[derive(Debug, Default)]
pub struct BrokerStats {
    pub(crate) connects: AtomicU64,
    pub(crate) auth_failures: AtomicU64,
    pub(crate) auth_delays: AtomicU64,
    pub(crate) revoked_connections: AtomicU64,
    pub(crate) directory_reloads: AtomicU64,
    pub(crate) subscribe_refusals: AtomicU64,
    pub(crate) publish_refusals: AtomicU64,
    pub(crate) will_refusals: AtomicU64,
    pub(crate) queue_full_drops: AtomicU64,
    pub(crate) expired_drops: AtomicU64,
    pub(crate) acl_drops: AtomicU64,
    pub(crate) other_drops: AtomicU64,
    pub(crate) uplinks: AtomicU64,
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) uplinks_busy: AtomicU64,
    pub(crate) presence_dropped: AtomicU64,
    pub(crate) sessions_lost: AtomicU64,
    pub(crate) connection_limit_refusals: AtomicU64,
    pub(crate) rate_refusals: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatsSnapshot {
    /// Successful CONNECTs.
    pub connects: u64,
    /// CONNECTs refused by authentication.
    pub auth_failures: u64,
    /// Refusals answered slowly because of repeated failures from one address.
    pub auth_delays: u64,
    /// Connections ended because their group or credential was revoked or expired.
    pub revoked_connections: u64,
    /// Provisioning snapshots loaded after start-up.
    pub directory_reloads: u64,
    /// Topic filters refused by the ACL.
    pub subscribe_refusals: u64,
    /// PUBLISHes refused by the ACL or limits.
    pub publish_refusals: u64,
    /// Will messages refused (at CONNECT or when published).
    pub will_refusals: u64,
    /// Messages dropped because a client's queue was full.
    pub queue_full_drops: u64,
    /// Messages dropped because they expired before delivery.
    pub expired_drops: u64,
    /// Messages not delivered because `--acl-file` denies the subscriber `read`.
    #[serde(default)]
    pub acl_drops: u64,
    /// Messages dropped for any other reason.
    pub other_drops: u64,
    /// Allowed client publishes seen by the bridge tap.
    pub uplinks: u64,
    /// Messages published into the broker (clients, wills, the controller).
    #[serde(default)]
    pub messages_in: u64,
    /// Messages delivered to clients.
    #[serde(default)]
    pub messages_out: u64,
    /// Payload bytes of the messages published into the broker.
    #[serde(default)]
    pub bytes_in: u64,
    /// Payload bytes of the messages delivered to clients.
    #[serde(default)]
    pub bytes_out: u64,
    /// Uplinks refused because the controller's queue was full (0x97).
    #[serde(default)]
    pub uplinks_busy: u64,
    /// Connect/disconnect changes the controller missed (it resynced).
    #[serde(default)]
    pub presence_dropped: u64,
    /// Persistent sessions a damaged session store did not give back at start.
    #[serde(default)]
    pub sessions_lost: u64,
    /// CONNECTs refused by `max_connections` or `max_connections_per_address`.
    #[serde(default)]
    pub connection_limit_refusals: u64,
    /// PUBLISHes refused by `max_publish_rate`.
    #[serde(default)]
    pub rate_refusals: u64,
    /// Messages for offline devices not yet written to the session store
    /// (a gauge: what a `kill -9` now would lose).
    #[serde(default)]
    pub session_writes_pending: u64,
}

pub(crate) fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

pub(crate) fn bump(c: &AtomicU64) -> u64 {
    c.fetch_add(1, Ordering::Relaxed) + 1
}

impl BrokerStats {
    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            connects: r(&self.connects),
            auth_failures: r(&self.auth_failures),
            auth_delays: r(&self.auth_delays),
            revoked_connections: r(&self.revoked_connections),
            directory_reloads: r(&self.directory_reloads),
            subscribe_refusals: r(&self.subscribe_refusals),
            publish_refusals: r(&self.publish_refusals),
            will_refusals: r(&self.will_refusals),
            queue_full_drops: r(&self.queue_full_drops),
            expired_drops: r(&self.expired_drops),
            acl_drops: r(&self.acl_drops),
            other_drops: r(&self.other_drops),
            uplinks: r(&self.uplinks),
            messages_in: r(&self.messages_in),
            messages_out: r(&self.messages_out),
            bytes_in: r(&self.bytes_in),
            bytes_out: r(&self.bytes_out),
            uplinks_busy: r(&self.uplinks_busy),
            presence_dropped: r(&self.presence_dropped),
            sessions_lost: r(&self.sessions_lost),
            connection_limit_refusals: r(&self.connection_limit_refusals),
            rate_refusals: r(&self.rate_refusals),
            session_writes_pending: 0,
        }
    }
}
