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

/// Milliseconds since the Unix epoch (the appliance's one clock).
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// A new unique, time-ordered id.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}
