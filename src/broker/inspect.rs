//! Looking at sessions for operators: the connection list with filters and
//! paging, one client's details (subscriptions, queued messages, recent
//! connection events), and kicking a client. Everything is read from
//! rmqtt's own session table when asked, so it costs no memory per
//! connection.

use rmqtt::context::ServerContext;
use rmqtt::session::Session;
use rmqtt::types::{ConnectInfo, Message, Reason};
use serde::{Deserialize, Serialize};

use super::activity::ConnEvent;
use super::TailWatch;

/// One session (online, or offline with its state kept).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientSummary {
    /// `GroupID@@@DeviceID`.
    pub client_id: String,
    /// Remote address (`ip:port`).
    pub address: Option<String>,
    /// `mqtt`, `mqtts`, `ws` or `wss`.
    pub listener: String,
    /// MQTT protocol level: 3 (3.1), 4 (3.1.1) or 5.
    pub protocol: u8,
    /// Clean session (3.1.1) / clean start (5).
    pub clean_session: bool,
    /// Keepalive in seconds (0: none).
    pub keepalive: u16,
    /// Whether a network connection is open now.
    pub online: bool,
    /// Unix milliseconds of the current (or last) connect.
    pub connected_at: i64,
    /// Messages queued for delivery (waiting while offline, or behind the inflight window).
    pub queued: usize,
    /// QoS 1/2 messages sent and not yet acknowledged.
    pub inflight: usize,
}

/// One subscription of a session.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionInfo {
    /// Topic filter.
    pub filter: String,
    /// Granted QoS.
    pub qos: u8,
}

/// Everything the console shows about one client id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientDetail {
    /// The session, if the broker has one for this client id.
    pub session: Option<ClientSummary>,
    /// Its subscriptions (P2P messages need none).
    pub subscriptions: Vec<SubscriptionInfo>,
    /// Recent connects, disconnects and refusals, newest first.
    pub history: Vec<ConnEvent>,
}

/// Which sessions to list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientQuery {
    /// Group ID (exact, or a prefix).
    pub group: Option<String>,
    /// Device ID (substring).
    pub device: Option<String>,
    /// Address (substring of `ip:port`).
    pub address: Option<String>,
    /// Only sessions with an open connection.
    #[serde(default)]
    pub online_only: bool,
    /// Page number, from 1.
    pub page: Option<usize>,
    /// Page size (default 50, at most 500).
    pub per_page: Option<usize>,
}

impl ClientQuery {
    /// Page size, bounded.
    pub fn per_page(&self) -> usize {
        self.per_page.unwrap_or(50).clamp(1, 500)
    }

    /// Page number, from 1.
    pub fn page(&self) -> usize {
        self.page.unwrap_or(1).max(1)
    }

    fn wants(&self, client_id: &str, address: Option<&str>) -> bool {
        let (group, device) = client_id.split_once("@@@").unwrap_or(("", client_id));
        let nonempty =
            |o: &Option<String>| o.as_deref().filter(|s| !s.is_empty()).map(str::to_string);
        nonempty(&self.group).is_none_or(|g| group.starts_with(&g))
            && nonempty(&self.device).is_none_or(|d| device.contains(&d))
            && nonempty(&self.address).is_none_or(|a| address.is_some_and(|x| x.contains(&a)))
    }
}

/// One page of sessions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClientPage {
    /// Sessions matching the query, on all pages.
    pub total: usize,
    /// Page number, from 1.
    pub page: usize,
    /// Page size.
    pub per_page: usize,
    /// This page, by client id.
    pub items: Vec<ClientSummary>,
}

pub(super) fn listener_name(lid: u16) -> &'static str {
    super::LISTENERS
        .iter()
        .find(|(_, id)| *id == lid)
        .map(|(n, _)| *n)
        .unwrap_or("mqtt")
}

async fn summary(s: &Session) -> ClientSummary {
    let (protocol, clean_session, keepalive) = match s.connect_info().await.as_deref() {
        Ok(ConnectInfo::V3(_, c)) => (c.protocol.level(), c.clean_session, c.keep_alive),
        Ok(ConnectInfo::V5(_, c)) => (5, c.clean_start, c.keep_alive),
        Err(_) => (0, true, 0),
    };
    ClientSummary {
        client_id: s.id.client_id.to_string(),
        address: s.id.remote_addr.map(|a| a.to_string()),
        listener: listener_name(s.id.lid).to_string(),
        protocol,
        clean_session,
        keepalive,
        online: s.connected().await.unwrap_or(false),
        connected_at: s.connected_at().await.unwrap_or_default(),
        queued: s.deliver_queue().len(),
        inflight: s.out_inflight().read().await.len(),
    }
}

/// Device sessions matching `q` (the appliance's own clients left out), one page.
pub(crate) async fn list(scx: &ServerContext, q: &ClientQuery) -> ClientPage {
    let mut found: Vec<(String, Session)> = {
        let shared = scx.extends.shared().await;
        shared
            .iter()
            .filter_map(|e| {
                let id = e.id();
                if id.client_id.starts_with(super::hooks::PROBE_PREFIX) {
                    return None;
                }
                let addr = id.remote_addr.map(|a| a.to_string());
                if !q.wants(&id.client_id, addr.as_deref()) {
                    return None;
                }
                e.session().map(|s| (id.client_id.to_string(), s))
            })
            .collect()
    };
    if q.online_only {
        let mut online = Vec::with_capacity(found.len());
        for (id, s) in found {
            if s.connected().await.unwrap_or(false) {
                online.push((id, s));
            }
        }
        found = online;
    }
    found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let (page, per_page) = (q.page(), q.per_page());
    let mut items = Vec::new();
    for (_, s) in found.iter().skip((page - 1) * per_page).take(per_page) {
        items.push(summary(s).await);
    }
    ClientPage {
        total: found.len(),
        page,
        per_page,
        items,
    }
}

/// The session of one client id, with its subscriptions.
pub(crate) async fn detail(
    scx: &ServerContext,
    client_id: &str,
) -> (Option<ClientSummary>, Vec<SubscriptionInfo>) {
    let id = rmqtt::types::Id::new(scx.node.id(), 0, None, None, client_id.into(), None);
    let Some(s) = scx.extends.shared().await.entry(id).session() else {
        return (None, Vec::new());
    };
    let mut subs = Vec::new();
    if let Ok(all) = s.subscriptions().await {
        for (filter, opts) in all.read().await.iter() {
            subs.push(SubscriptionInfo {
                filter: filter.to_string(),
                qos: opts.qos_value(),
            });
        }
    }
    subs.sort_by(|a, b| a.filter.cmp(&b.filter));
    (Some(summary(&s).await), subs)
}

/// Ends one client's connection as an admin kick (v5: DISCONNECT 0x98);
/// false if it has no open connection.
pub(crate) async fn kick(scx: &ServerContext, client_id: &str) -> bool {
    let id = rmqtt::types::Id::new(scx.node.id(), 0, None, None, client_id.into(), None);
    let entry = scx.extends.shared().await.entry(id);
    if !entry.is_connected().await {
        return false;
    }
    match entry.tx() {
        Some(tx) => tx
            .unbounded_send(Message::Closed(Reason::ConnectKicked(true)))
            .is_ok(),
        None => false,
    }
}

impl super::Broker {
    /// Connections, offline sessions and retained messages counted now.
    pub async fn census(&self) -> Census {
        census(&self.scx).await
    }

    /// Sessions (online, or offline and kept) matching `q`, one page.
    pub async fn clients(&self, q: &ClientQuery) -> ClientPage {
        list(&self.scx, q).await
    }

    /// One client id's session, subscriptions and recent connection events.
    pub async fn client(&self, client_id: &str) -> ClientDetail {
        let (session, subscriptions) = detail(&self.scx, client_id).await;
        ClientDetail {
            session,
            subscriptions,
            history: self.state.activity.of(client_id, 50),
        }
    }

    /// The newest refused CONNECTs, newest first.
    pub fn refusals(&self, limit: usize) -> Vec<ConnEvent> {
        self.state.activity.refusals(limit)
    }

    /// Disconnects a client (an admin's kick; MQTT 5 clients get DISCONNECT
    /// 0x98); false if it had no open connection.
    pub async fn kick(&self, client_id: &str) -> bool {
        kick(&self.scx, client_id).await
    }

    /// Starts watching every message the broker routes.
    pub fn tail(&self) -> TailWatch {
        self.state.tail.watch()
    }
}

/// Counts over every session at one moment, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct Census {
    /// Open connections by listener (`mqtt`, `mqtts`, `ws`, `wss`) and
    /// MQTT protocol level (3, 4 or 5).
    pub connections: Vec<(&'static str, u8, u64)>,
    /// Sessions without a connection, kept for their devices.
    pub offline_sessions: u64,
    /// Messages waiting in the queues of offline sessions.
    pub queued_offline: u64,
    /// Retained messages.
    pub retained: u64,
}

pub(crate) async fn census(scx: &ServerContext) -> Census {
    let sessions: Vec<Session> = {
        let shared = scx.extends.shared().await;
        shared
            .iter()
            .filter(|e| !e.id().client_id.starts_with(super::hooks::PROBE_PREFIX))
            .filter_map(|e| e.session())
            .collect()
    };
    let mut by: std::collections::BTreeMap<(&'static str, u8), u64> = Default::default();
    let mut c = Census::default();
    for s in sessions {
        if s.connected().await.unwrap_or(false) {
            let protocol = super::activity::protocol_level(&s).await;
            *by.entry((listener_name(s.id.lid), protocol)).or_default() += 1;
        } else {
            c.offline_sessions += 1;
            c.queued_offline += s.deliver_queue().len() as u64;
        }
    }
    c.connections = by.into_iter().map(|((l, p), n)| (l, p, n)).collect();
    c.retained = scx.extends.retain().await.count().await.max(0) as u64;
    c
}
