//! Slows down repeated authentication failures from one address: MQTT
//! CONNECTs in the broker and console sign-ins share this rule. A console
//! sign-in waits out the delay; the broker instead refuses every CONNECT
//! from that address until the delay has passed, at once and without
//! checking it, so that no handshake slot waits.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Repeated authentication failures from one address are answered ever
/// more slowly (after `free` failures within the window: 250 ms, doubling,
/// at most `max`).
pub struct Tarpit {
    /// Failures, first failure of the window, slowed down until.
    seen: DashMap<IpAddr, (u32, Instant, Instant)>,
    free: u32,
    window: Duration,
    max: Duration,
}

impl Tarpit {
    /// `free` failures are answered at once; then 250 ms, doubling, at most `max`.
    pub fn new(free: u32, window: Duration, max: Duration) -> Self {
        Tarpit {
            seen: DashMap::new(),
            free,
            window,
            max,
        }
    }

    /// Records a failure from `ip`; returns how long to wait before answering.
    pub fn failure(&self, ip: IpAddr) -> Duration {
        let now = Instant::now();
        let mut e = self.seen.entry(ip).or_insert((0, now, now));
        if now.duration_since(e.1) > self.window {
            *e = (0, now, now);
        }
        e.0 += 1;
        let delay = match e.0.checked_sub(self.free + 1) {
            None => Duration::ZERO,
            Some(extra) => {
                (Duration::from_millis(250) * 2u32.saturating_pow(extra.min(16))).min(self.max)
            }
        };
        e.2 = now + delay;
        delay
    }

    /// Whether `ip` is still within the delay of its last failure.
    pub fn cooling(&self, ip: IpAddr) -> bool {
        self.seen.get(&ip).is_some_and(|e| Instant::now() < e.2)
    }

    /// A success from `ip` clears its record.
    pub fn success(&self, ip: IpAddr) {
        self.seen.remove(&ip);
    }

    /// Drops records older than the window.
    pub fn prune(&self) {
        let now = Instant::now();
        self.seen
            .retain(|_, (_, first, _)| now.duration_since(*first) <= self.window);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarpit_grows_then_caps_and_forgets_on_success() {
        let t = Tarpit::new(2, Duration::from_secs(60), Duration::from_secs(1));
        let ip: IpAddr = [10, 0, 0, 1].into();
        let delays: Vec<u128> = (0..7).map(|_| t.failure(ip).as_millis()).collect();
        assert_eq!(delays, vec![0, 0, 250, 500, 1000, 1000, 1000]);
        assert!(t.cooling(ip), "within the last delay");
        t.success(ip);
        assert!(!t.cooling(ip));
        assert_eq!(t.failure(ip), Duration::ZERO);
        assert_eq!(
            t.failure([10, 0, 0, 2].into()),
            Duration::ZERO,
            "per address"
        );
    }
}
