//! Start-up checks that warn: a clock behind the build, and listeners on
//! a network address.

use crate::config::Config;
use crate::{controller, http};

/// A clock earlier than this binary's build is surely wrong (a board
/// without a battery-backed clock, before NTP): tokens, call times and the
/// time to live of messages all depend on it.
/// Every start on an address other than loopback says what travels in clear
/// and what `--dev` leaves open.
pub(super) fn warn_if_exposed(cfg: &Config, ports: &http::PortsFile) {
    if cfg.bind.is_loopback() {
        return;
    }
    if cfg.dev {
        tracing::warn!(
            bind = %cfg.bind,
            "--dev on a network address: anyone who reaches this machine can connect as a demo \
             device without a password; for demos only"
        );
    }
    tracing::warn!(
        bind = %cfg.bind, mqtt = ports.mqtt, ws = ports.ws,
        "plain MQTT and MQTT over WebSocket listen on a network address: passwords and messages \
         travel in clear there; devices on other machines should use MQTT over TLS (port {}) or \
         secure WebSocket (port {})",
        ports.mqtts, ports.wss
    );
}

pub(super) fn warn_if_clock_is_behind() {
    let built: i64 = env!("BUILT_AT_UNIX_MS").parse().unwrap_or_default();
    let now = controller::now_ms();
    if now < built {
        tracing::warn!(
            now = %http::when(now),
            built = %http::when(built),
            "the system clock is earlier than this build: set it (NTP); until then tokens \
             may look expired and devices may drop messages as stale (docs/operations.md, Time)"
        );
    }
}
