//! Limits per client and per address, each a `[limits]` key: connections
//! in all and from one address, and a client's publish rate (a token
//! bucket). Loopback clients (the box's own processes, benchmarks) are
//! exempt from the last two. Refusals are counted and logged by the hooks.

use std::net::IpAddr;
use std::time::Instant;

use dashmap::DashMap;

/// The connection and rate limits.
pub(crate) struct Limits {
    max_connections: usize,
    per_address: usize,
    /// Messages a second a client may publish, and the burst allowed.
    rate: (f64, f64),
    by_address: DashMap<IpAddr, usize>,
    buckets: DashMap<String, (f64, Instant)>,
    /// CONNECTs refused here, by (client id, creation time), with why
    /// (the CONNACK hook turns them into 0x97 / 3).
    refused: DashMap<(String, i64), &'static str>,
}

impl Limits {
    pub(crate) fn new(l: &crate::config::Limits) -> Limits {
        Limits {
            max_connections: l.max_connections,
            per_address: l.max_connections_per_address,
            rate: (
                l.max_publish_rate as f64,
                (l.max_publish_rate as f64 * 2.0).max(1.0),
            ),
            by_address: DashMap::new(),
            buckets: DashMap::new(),
            refused: DashMap::new(),
        }
    }

    /// Whether a new connection from `ip` fits, with `open` connections now.
    pub(crate) fn admit(
        &self,
        client_id: &str,
        since: i64,
        ip: Option<IpAddr>,
        open: usize,
    ) -> Result<(), &'static str> {
        let why = if self.max_connections > 0 && open >= self.max_connections {
            Some("the appliance has its maximum number of connections (limits.max_connections)")
        } else {
            ip.filter(|ip| !ip.is_loopback() && self.per_address > 0)
                .filter(|ip| {
                    self.by_address
                        .get(ip)
                        .is_some_and(|n| *n >= self.per_address)
                })
                .map(|_| {
                    "too many connections from this address (limits.max_connections_per_address)"
                })
        };
        match why {
            None => Ok(()),
            Some(why) => {
                self.refused.insert((client_id.to_string(), since), why);
                Err(why)
            }
        }
    }

    /// Why `admit` refused this CONNECT, once.
    pub(crate) fn take_refusal(&self, client_id: &str, since: i64) -> Option<&'static str> {
        self.refused
            .remove(&(client_id.to_string(), since))
            .map(|(_, why)| why)
    }

    pub(crate) fn connected(&self, ip: Option<IpAddr>) {
        if let Some(ip) = ip {
            *self.by_address.entry(ip).or_insert(0) += 1;
        }
    }

    pub(crate) fn disconnected(&self, ip: Option<IpAddr>, client_id: &str) {
        if let Some(ip) = ip {
            self.by_address.remove_if_mut(&ip, |_, n| {
                *n = n.saturating_sub(1);
                *n == 0
            });
        }
        self.buckets.remove(client_id);
    }

    /// Takes one message from `client_id`'s bucket; false if it is empty.
    pub(crate) fn publish(&self, client_id: &str, ip: Option<IpAddr>) -> bool {
        let (rate, burst) = self.rate;
        if rate <= 0.0 || ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        let now = Instant::now();
        let mut b = self
            .buckets
            .entry(client_id.to_string())
            .or_insert((burst, now));
        let (tokens, at) = *b;
        let tokens = (tokens + now.duration_since(at).as_secs_f64() * rate).min(burst);
        if tokens >= 1.0 {
            *b = (tokens - 1.0, now);
            true
        } else {
            *b = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(conns: usize, per_address: usize, rate: u32) -> Limits {
        Limits::new(&crate::config::Limits {
            max_connections: conns,
            max_connections_per_address: per_address,
            max_publish_rate: rate,
            ..Default::default()
        })
    }

    #[test]
    fn connections_in_all_and_per_address_loopback_exempt() {
        let l = limits(3, 1, 0);
        let lan: IpAddr = [10, 0, 0, 7].into();
        assert!(l.admit("a", 1, Some(lan), 0).is_ok());
        l.connected(Some(lan));
        assert!(l.admit("b", 2, Some(lan), 1).is_err());
        assert!(l.take_refusal("b", 2).is_some());
        assert!(l.take_refusal("b", 2).is_none(), "once");
        let lo: IpAddr = [127, 0, 0, 1].into();
        l.connected(Some(lo));
        assert!(l.admit("c", 3, Some(lo), 2).is_ok(), "loopback is exempt");
        assert!(
            l.admit("d", 4, Some(lo), 3).is_err(),
            "but not from the total"
        );
        l.disconnected(Some(lan), "a");
        assert!(l.admit("e", 5, Some(lan), 2).is_ok());
    }

    #[test]
    fn the_publish_rate_allows_a_burst_then_refills() {
        let l = limits(0, 0, 5);
        let lan = Some(IpAddr::from([10, 0, 0, 7]));
        let taken = (0..20).filter(|_| l.publish("x", lan)).count();
        assert_eq!(taken, 10, "a burst of twice the rate");
        assert!(l.publish("y", lan), "per client");
        assert!(
            l.publish("x", Some([127, 0, 0, 1].into())),
            "loopback is exempt"
        );
        l.disconnected(None, "x");
        assert!(l.publish("x", lan), "forgotten with the connection");
    }
}
