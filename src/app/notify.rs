//! systemd's notify protocol, for `Type=notify` units: READY=1 once every
//! listener answers, WATCHDOG=1 while the broker still answers a CONNECT
//! with a CONNACK
//! (so a hung appliance is restarted after `WatchdogSec`), STOPPING=1 on
//! shutdown. Without systemd (no `NOTIFY_SOCKET`) all of this does nothing.

use std::net::SocketAddr;
use std::time::Duration;

use sd_notify::NotifyState;

/// Tells systemd the appliance is ready.
pub(super) fn ready(status: &str) {
    if let Err(e) = sd_notify::notify(false, &[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!("systemd notify READY=1: {e}");
    }
}

/// Tells systemd the appliance is stopping.
pub(super) fn stopping() {
    let _ = sd_notify::notify(false, &[NotifyState::Stopping]);
}

/// If the unit has `WatchdogSec`, pings systemd at half that interval as
/// long as the broker answers a loopback CONNECT within the interval.
pub(super) fn watchdog(mqtt: SocketAddr) -> Option<tokio::task::JoinHandle<()>> {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return None;
    }
    let every = Duration::from_micros(usec / 2);
    tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog on");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match crate::probe::mqtt_connack(mqtt, "$mqrtc/watchdog", every).await {
                // Any CONNACK will do: probes are answered, never admitted.
                Ok(_) => {
                    let _ = sd_notify::notify(false, &[NotifyState::Watchdog]);
                }
                Err(e) => tracing::warn!("watchdog: the broker does not answer: {e}"),
            }
        }
    }))
}
