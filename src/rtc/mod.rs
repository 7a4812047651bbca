//! The RTC side: join tokens in the ARTC format, a provider trait for the
//! controller, and a mock RTC channel service that verifies tokens, tracks
//! who is in each channel and reports joins and leaves like a real
//! service's callbacks would.

#[cfg(feature = "server")]
pub mod join;
#[cfg(feature = "server")]
pub mod mock;
pub mod token;

#[cfg(feature = "server")]
pub use mock::{MockRtc, RtcError};
pub use token::JoinParams;

/// A join or leave reported by the RTC service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcEvent {
    /// A user entered a channel.
    Joined {
        /// Channel id.
        channel: String,
        /// RTC user id.
        user: String,
    },
    /// A user left a channel (or was dropped from it).
    Left {
        /// Channel id.
        channel: String,
        /// RTC user id.
        user: String,
    },
}

/// What the controller needs from an RTC service; the mock implements it,
/// a real provider can replace it.
pub trait RtcProvider: Send + Sync {
    /// Registers a channel for a call.
    fn open_channel(&self, channel: &str, call_id: &str);
    /// Closes a channel: every member is dropped, every token refused.
    fn close_channel(&self, channel: &str);
    /// Stops a user's access to a channel (tokens issued so far) and drops them.
    fn revoke(&self, channel: &str, user: &str, now_ms: i64);
    /// Join parameters for a user, issued at `issued_ms` (the same inputs give the same parameters).
    fn join_params(&self, channel: &str, user: &str, issued_ms: i64) -> JoinParams;
}
