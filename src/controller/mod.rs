//! The call controller: its wire protocol and schema (shared with the client
//! SDK) and, with the `server` feature, its runtime: uplinks from the
//! bridge, timers and RTC callbacks go into the state machine one at a time;
//! each input's state, timers and downlink messages are written in one
//! SQLite transaction, then the downlinks are handed to the broker and the
//! RTC operations done.

pub mod protocol;
pub mod schema;

#[cfg(feature = "server")]
mod commit;
#[cfg(feature = "server")]
mod effects;
#[cfg(feature = "server")]
mod events;
#[cfg(feature = "server")]
mod outbox;
#[cfg(feature = "server")]
mod runtime;
#[cfg(feature = "server")]
mod supervise;

#[cfg(feature = "server")]
pub use runtime::{Deps, Settings};
#[cfg(feature = "server")]
pub use supervise::{start, Controller, Faults, Health};

use crate::calls::Millis;

/// Milliseconds since the Unix epoch (the appliance's one wall clock;
/// timers run on the monotonic clock, see `runtime`).
pub fn now_ms() -> Millis {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default();
    wall + CLOCK_SHIFT_MS.load(std::sync::atomic::Ordering::Relaxed)
}

/// A jump of the wall clock, set by fault injection in tests (0 otherwise).
static CLOCK_SHIFT_MS: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// Moves the wall clock [`now_ms`] reads by `ms` (fault injection for tests).
pub fn shift_clock(ms: Millis) {
    CLOCK_SHIFT_MS.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
}

/// A new unique, time-ordered id.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}
