//! The call and meeting state machine: pure, no I/O, time passed in.
//!
//! `Engine::apply(input, now)` returns the effects to carry out (replies,
//! notifications, RTC channel operations, timers). The controller runtime
//! persists state and effects and performs them; tests drive it directly.

mod engine;
mod meeting;
mod ringing;
mod types;

pub use engine::{BusyPolicy, Engine, Rules};
pub use types::*;

#[cfg(test)]
mod tests;
