//! What happened to connections lately: connects, disconnects with their
//! reasons, and refused CONNECTs with their CONNACK codes, in a bounded
//! ring (the console's "why can't it call?" and the overview's refusals).

use std::collections::VecDeque;
use std::sync::Mutex;

use rmqtt::session::Session;
use rmqtt::types::{ConnectInfo, Id};
use serde::Serialize;

use crate::auth::ConnectRefusal;

/// One connection event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConnEvent {
    /// Unix milliseconds.
    pub at: i64,
    /// The client id the CONNECT named.
    pub client_id: String,
    /// `connected`, `disconnected` or `refused`.
    pub kind: &'static str,
    /// Why (the disconnect reason or the refusal), empty for a connect.
    pub reason: String,
    /// The CONNACK return code / reason code sent, for a refusal.
    pub code: Option<u8>,
    /// The client's address.
    #[schema(value_type = Option<String>)]
    pub address: Option<std::net::SocketAddr>,
    /// MQTT protocol level (4 = 3.1.1, 5 = 5.0).
    pub protocol: u8,
}

/// The last `cap` connection events.
pub(crate) struct Activity {
    ring: Mutex<VecDeque<ConnEvent>>,
    cap: usize,
}

impl Activity {
    pub fn new(cap: usize) -> Activity {
        Activity {
            ring: Mutex::new(VecDeque::with_capacity(cap.min(1024))),
            cap,
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, VecDeque<ConnEvent>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn record(&self, ev: ConnEvent) {
        let mut r = self.ring();
        if r.len() >= self.cap {
            r.pop_front();
        }
        r.push_back(ev);
    }

    /// The newest `limit` events of one client id, newest first.
    pub fn of(&self, client_id: &str, limit: usize) -> Vec<ConnEvent> {
        self.ring()
            .iter()
            .rev()
            .filter(|e| e.client_id == client_id)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The newest `limit` refusals, newest first.
    pub fn refusals(&self, limit: usize) -> Vec<ConnEvent> {
        self.ring()
            .iter()
            .rev()
            .filter(|e| e.kind == "refused")
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Whether a CONNECT is MQTT 5.
pub(crate) fn is_v5(ci: &ConnectInfo) -> bool {
    matches!(ci, ConnectInfo::V5(..))
}

/// The MQTT protocol level a session connected with (3, 4 = 3.1.1 or 5;
/// 0 if unknown).
pub(crate) async fn protocol_level(s: &Session) -> u8 {
    match s.connect_info().await.as_deref() {
        Ok(ConnectInfo::V3(_, c)) => c.protocol.level(),
        Ok(ConnectInfo::V5(..)) => 5,
        Err(_) => 0,
    }
}

/// The CONNACK code a refusal is answered with (after the hooks' refinement).
pub(crate) fn refusal_code(e: &ConnectRefusal, v5: bool) -> u8 {
    match (e, v5) {
        (ConnectRefusal::BadCredentials(_), false) => 4,
        (ConnectRefusal::BadCredentials(_), true) => 0x86,
        (ConnectRefusal::BadClientId(_), false) => 2,
        (ConnectRefusal::BadClientId(_), true) => 0x85,
        (ConnectRefusal::NotAuthorized(_), false) => 5,
        (ConnectRefusal::NotAuthorized(_), true) => 0x87,
    }
}

fn event(
    id: &Id,
    kind: &'static str,
    reason: String,
    code: Option<u8>,
    protocol: u8,
) -> Option<ConnEvent> {
    (!id.client_id.starts_with(super::hooks::PROBE_PREFIX)).then(|| ConnEvent {
        at: crate::controller::now_ms(),
        client_id: id.client_id.to_string(),
        kind,
        reason,
        code,
        address: id.remote_addr,
        protocol,
    })
}

/// Notes a refused CONNECT (the appliance's own probes are left out).
pub(crate) fn note_refusal(a: &Activity, ci: &ConnectInfo, reason: String, code: u8) {
    let protocol = if is_v5(ci) { 5 } else { 4 };
    if let Some(e) = event(ci.id(), "refused", reason, Some(code), protocol) {
        a.record(e);
    }
}

/// Notes a connect or disconnect of session `s`.
pub(crate) async fn note(a: &Activity, id: &Id, kind: &'static str, reason: String, s: &Session) {
    let protocol = protocol_level(s).await;
    if let Some(e) = event(id, kind, reason, None, protocol) {
        let transport = super::inspect::listener_name(id.lid);
        let remote = e.address.map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(client_id = %e.client_id, remote, transport, protocol, reason = %e.reason, "{kind}");
        a.record(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(id: &str, kind: &'static str, at: i64) -> ConnEvent {
        ConnEvent {
            at,
            client_id: id.into(),
            kind,
            reason: String::new(),
            code: None,
            address: None,
            protocol: 4,
        }
    }

    #[test]
    fn keeps_the_newest_and_answers_per_client() {
        let a = Activity::new(3);
        a.record(ev("a", "connected", 1));
        a.record(ev("b", "refused", 2));
        a.record(ev("a", "disconnected", 3));
        a.record(ev("a", "connected", 4));
        let of_a: Vec<i64> = a.of("a", 10).iter().map(|e| e.at).collect();
        assert_eq!(of_a, vec![4, 3], "the oldest fell out of the ring");
        assert_eq!(a.of("a", 1).len(), 1);
        assert_eq!(a.refusals(10).len(), 1);
    }
}
