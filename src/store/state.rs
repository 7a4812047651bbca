//! What the controller needs from a store, so its state can live in the
//! appliance's SQLite or in PostgreSQL (`mqrtc controller --store`).

use super::{Batch, Loaded, OutboxRow, Store, StoreError};
use crate::calls::Millis;

/// The controller's durable state. Every call blocks; async callers use
/// `spawn_blocking`.
pub trait StateStore: Send + Sync + 'static {
    /// Loads the state; ended calls older than `since` stay in the store only.
    fn load_controller(&self, since: Millis) -> Result<Loaded, StoreError>;
    /// Writes one batch of changes atomically; returns the new outbox rows.
    fn apply_batch(&self, b: &Batch) -> Result<Vec<OutboxRow>, StoreError>;
    /// Drops remembered replies past their time.
    fn prune_replies(&self, now: Millis) -> Result<(), StoreError>;
    /// Deletes up to `batch` calls that ended before `cutoff`; how many.
    fn prune_calls(&self, cutoff: Millis, batch: usize) -> Result<usize, StoreError>;
}

impl StateStore for Store {
    fn load_controller(&self, since: Millis) -> Result<Loaded, StoreError> {
        Store::load_controller(self, since)
    }
    fn apply_batch(&self, b: &Batch) -> Result<Vec<OutboxRow>, StoreError> {
        Store::apply_batch(self, b)
    }
    fn prune_replies(&self, now: Millis) -> Result<(), StoreError> {
        Store::prune_replies(self, now)
    }
    fn prune_calls(&self, cutoff: Millis, batch: usize) -> Result<usize, StoreError> {
        Store::prune_calls(self, cutoff, batch)
    }
}
