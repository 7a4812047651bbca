//! One active controller at a time: the active one holds a session-level
//! advisory lock on its own connection. PostgreSQL releases it when that
//! connection ends (the process died, or the network to it is gone long
//! enough for TCP keepalive to notice), and a standby polling for it takes
//! over: it bumps the lease's epoch, which fences the old one's writes.

use std::time::Duration;

use postgres::Client;

use super::{Database, LEASE_LOCK};
use crate::store::StoreError;

/// The lease, held while this value (and its connection) lives.
pub struct Lease {
    client: Client,
    /// The epoch this controller took over with.
    pub epoch: i64,
}

impl Lease {
    /// Waits (polling every `poll`) until this process holds the lease,
    /// then takes it over as `holder` at `now_ms`.
    pub fn acquire(
        db: &Database,
        holder: &str,
        poll: Duration,
        now_ms: impl Fn() -> i64,
    ) -> Result<Lease, StoreError> {
        let mut client = db.connect()?;
        loop {
            let got: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LEASE_LOCK])?
                .get(0);
            if got {
                break;
            }
            std::thread::sleep(poll);
        }
        let epoch: i64 = client
            .query_one(
                "UPDATE controller_lease SET epoch = epoch + 1, holder = $1, since = $2 WHERE id = 1 RETURNING epoch",
                &[&holder, &now_ms()],
            )?
            .get(0);
        Ok(Lease { client, epoch })
    }

    /// Checks that the lease is still held: its connection answers and the
    /// epoch is still ours.
    pub fn check(&mut self) -> Result<(), StoreError> {
        let now: i64 = self
            .client
            .query_one("SELECT epoch FROM controller_lease WHERE id = 1", &[])?
            .get(0);
        if now == self.epoch {
            Ok(())
        } else {
            Err(StoreError::Fenced(format!(
                "the lease moved to epoch {now} (this controller holds {})",
                self.epoch
            )))
        }
    }
}
