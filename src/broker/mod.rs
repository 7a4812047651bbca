//! The embedded MQTT broker: rmqtt (pinned, patched in `vendor/rmqtt`)
//! behind a small adapter. Nothing outside `src/broker/` touches rmqtt types.
//!
//! One `Broker` owns the four listeners (MQTT, MQTTS, WS, WSS), the hooks
//! that apply the cloud service's conventions, durable sessions (sled via
//! rmqtt's session-storage plugin) and the bridge the controller uses.

mod activity;
mod bridge;
mod conns;
mod hooks;
mod inspect;
mod limits;
mod retain;
mod sessions;
mod stats;
mod tail;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::hook::Type;
use rmqtt::net::{Builder, Listener};
use rmqtt::server::MqttServer;
use rmqtt::types::{Message, Reason};

pub use activity::ConnEvent;
pub use bridge::{EmbeddedBridge, CONTROLLER_CLIENT_ID};
pub use inspect::{Census, ClientDetail, ClientPage, ClientQuery, ClientSummary, SubscriptionInfo};
pub use stats::{BrokerStats, StatsSnapshot};
pub use tail::{TailWatch, Tapped};

use crate::bridge::MessageBridge;
use crate::certs::TlsFiles;
use crate::config::{Limits, Ports};
use crate::directory::SharedDirectory;
use crate::policy::Rules;

/// How often sled (session storage) writes and fsyncs, in milliseconds: the
/// window in which a `kill -9` can lose PUBACKed offline messages.
pub const SESSION_FLUSH_MS: u64 = 10;

/// Where a newer provisioning snapshot can come from. The broker asks it
/// before refusing a CONNECT for an unknown group or credential, so a
/// credential created a moment ago (by the CLI, in another process) works
/// at once.
#[async_trait::async_trait]
pub trait DirectorySource: Send + Sync {
    /// A new snapshot if provisioning changed since the last call.
    async fn changed(&self) -> Option<crate::directory::Directory>;
}

/// Connection events kept for the console (connects, disconnects, refusals).
const ACTIVITY_EVENTS: usize = 20_000;

/// What the broker needs to start.
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Address all listeners bind to.
    pub bind: IpAddr,
    /// Requested ports (0 = any free port).
    pub ports: Ports,
    /// Certificate and key for MQTTS and WSS.
    pub tls: TlsFiles,
    /// The same, followed on disk: a rotated certificate is used by new
    /// handshakes without restarting the listeners.
    pub certificate: Arc<crate::certs::reload::FollowFiles>,
    /// Limits and queue bounds.
    pub limits: Limits,
    /// Plain MQTT mode (no cloud conventions, anonymous allowed).
    pub standard_mqtt: bool,
    /// Plain MQTT mode's ACL (mosquitto's format), if any.
    pub acl: Option<crate::policy::acl_file::AclFile>,
    /// Directory for durable session state.
    pub state_dir: PathBuf,
}

/// The ports the listeners actually bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoundPorts {
    /// MQTT over TCP.
    pub mqtt: u16,
    /// MQTT over TLS.
    pub mqtts: u16,
    /// MQTT over WebSocket.
    pub ws: u16,
    /// MQTT over secure WebSocket.
    pub wss: u16,
}

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A listener could not be bound or set up.
    #[error("{listener} listener on {addr}: {reason}")]
    Listener {
        /// Which listener.
        listener: &'static str,
        /// Where.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
    /// A plugin failed to start.
    #[error("starting {plugin}: {reason}")]
    Plugin {
        /// Which plugin.
        plugin: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// A running embedded broker.
pub struct Broker {
    scx: ServerContext,
    ports: BoundPorts,
    stats: Arc<BrokerStats>,
    bridge: Arc<EmbeddedBridge>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    state: Arc<conns::BrokerState>,
    state_dir: PathBuf,
}

impl Broker {
    /// Starts the broker: plugins, hooks, listeners. Returns once every
    /// listener is bound; sessions saved by an earlier run are restored
    /// before the first connection is served.
    pub async fn start(
        s: BrokerSettings,
        directory: Arc<SharedDirectory>,
        source: Option<Arc<dyn DirectorySource>>,
    ) -> Result<Broker, BrokerError> {
        let scx = context(&s).await?;
        sessions::open(&scx, &s.state_dir).await?;
        rmqtt_shared_subscription::register(&scx, true, false)
            .await
            .map_err(|e| BrokerError::Plugin {
                plugin: "shared subscriptions",
                reason: e.to_string(),
            })?;
        let retained = retain::MemRetain::new(s.limits.max_retained_messages);
        *scx.extends.retain_mut().await = Box::new(retained.clone());

        let stats = Arc::new(BrokerStats::default());

        let tap = Arc::new(bridge::Tap::new(directory.clone()));
        let state = Arc::new(conns::BrokerState {
            standard: s.standard_mqtt,
            acl: s.acl.clone(),
            rules: Rules {
                max_client_id_len: s.limits.max_client_id_len,
                max_topic_len: s.limits.max_topic_len,
                max_payload_bytes: s.limits.max_payload_bytes,
            },
            directory,
            tap: tap.clone(),
            stats: stats.clone(),
            conns: conns::Conns::default(),
            source,
            reload: tokio::sync::Mutex::new(None),
            activity: activity::Activity::new(ACTIVITY_EVENTS),
            tail: tail::TailHub::new(),
            limits: limits::Limits::new(&s.limits),
            online: dashmap::DashMap::new(),
            tarpit: crate::tarpit::Tarpit::new(
                s.limits.auth_failures_before_delay,
                Duration::from_secs(600),
                Duration::from_millis(s.limits.auth_delay_max_ms),
            ),
        });
        register_hooks(
            &scx,
            hooks::Hooks {
                state: state.clone(),
                scx: scx.clone(),
            },
        )
        .await;

        let (server, ports) = bind_listeners(&scx, &s)?;
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.run().await {
                tracing::error!("broker stopped: {e}");
            }
        })];
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(60)).await;
                retained.purge().await;
            }
        }));
        tasks.push(tokio::spawn(sessions::check_restored(
            scx.clone(),
            s.state_dir.clone(),
            stats.clone(),
        )));
        if !s.standard_mqtt {
            let notice = Duration::from_secs(s.limits.token_expire_notice_secs);
            tasks.push(tokio::spawn(watch::credentials(
                scx.clone(),
                state.clone(),
                notice,
            )));
        }
        let bridge = Arc::new(EmbeddedBridge {
            scx: scx.clone(),
            state: state.clone(),
            tap,
            default_expiry: Duration::from_secs(s.limits.offline_message_ttl_secs),
        });
        Ok(Broker {
            scx,
            ports,
            stats,
            bridge,
            tasks,
            state,
            state_dir: s.state_dir.clone(),
        })
    }

    /// The bound ports.
    pub fn ports(&self) -> BoundPorts {
        self.ports
    }

    /// The refusal and drop counters.
    pub fn stats(&self) -> StatsSnapshot {
        StatsSnapshot {
            session_writes_pending: rmqtt_session_storage::offline_writes_pending(),
            ..self.stats.snapshot()
        }
    }

    /// Connected clients right now.
    pub fn connections(&self) -> isize {
        self.scx.connections.count()
    }

    /// The bridge for the controller.
    pub fn bridge(&self) -> Arc<dyn MessageBridge> {
        self.bridge.clone()
    }

    /// Loads provisioning again if it changed (the `DirectorySource` given
    /// at start) and ends the connections whose group or credential it no
    /// longer has (v5: DISCONNECT 0x87 with why); `Some(how many)` if it
    /// changed.
    pub async fn reload_directory(&self) -> Option<usize> {
        watch::reload_directory(&self.scx, &self.state).await
    }

    /// Ends the connection of every client whose id satisfies `pred`
    /// (v5 clients get DISCONNECT 0x98); returns how many.
    pub async fn disconnect_where(&self, pred: impl Fn(&str) -> bool) -> usize {
        close_sessions(&self.scx, pred, || Reason::ConnectKicked(true)).await
    }

    /// Stops accepting, closes every connection so clean=false sessions
    /// save their queues, waits for session storage to reach disk.
    pub async fn shutdown(&self) {
        for t in &self.tasks {
            t.abort();
        }
        let closed = close_sessions(
            &self.scx,
            |_| true,
            || Reason::from(rmqtt::session::SERVER_SHUTTING_DOWN),
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline
            && (self.scx.connections.count() > 0
                || rmqtt_session_storage::offline_writes_pending() > 0)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(SESSION_FLUSH_MS * 5 + 50)).await;
        sessions::record_saved(&self.state_dir, sessions::persistent(&self.scx).await);
        tracing::info!(closed, "broker stopped; session storage flushed");
    }
}

async fn close_sessions(
    scx: &ServerContext,
    pred: impl Fn(&str) -> bool,
    reason: impl Fn() -> Reason,
) -> usize {
    let shared = scx.extends.shared().await;
    let mut n = 0;
    for entry in shared.iter() {
        if !pred(&entry.id().client_id) {
            continue;
        }
        if let Some(tx) = entry.tx() {
            if tx.unbounded_send(Message::Closed(reason())).is_ok() {
                n += 1;
            }
        }
    }
    n
}

async fn context(s: &BrokerSettings) -> Result<ServerContext, BrokerError> {
    let sessions_dir = s.state_dir.join("sessions");
    let mut sled = toml::Table::new();
    sled.insert("path".into(), sessions_dir.display().to_string().into());
    sled.insert("cache_capacity".into(), "64M".into());
    sled.insert(
        "flush_every_ms".into(),
        toml::Value::Integer(SESSION_FLUSH_MS as i64),
    );
    let mut storage = toml::Table::new();
    storage.insert("type".into(), "sled".into());
    storage.insert("sled".into(), sled.into());
    let mut session_cfg = toml::Table::new();
    session_cfg.insert("storage".into(), storage.into());
    Ok(ServerContext::new()
        .node_id(1)
        // The CPU-load "busy" check refuses CONNECTs on a loaded box; an
        // appliance on a small machine must not do that.
        .busy_check_enable(false)
        .plugins_config_map_add("rmqtt-session-storage", session_cfg.to_string())
        .plugins_config_map_add("rmqtt-shared-subscription", "strategy = \"round_robin\"\n")
        .build()
        .await)
}

async fn register_hooks(scx: &ServerContext, hooks: hooks::Hooks) {
    let reg = scx.extends.hook_mgr().register();
    for t in [
        Type::ClientAuthenticate,
        Type::ClientConnack,
        Type::ClientSubscribeCheckAcl,
        Type::MessagePublishCheckAcl,
        Type::MessagePublish,
        Type::ClientConnected,
        Type::ClientDisconnected,
        Type::MessageDropped,
        Type::MessageDelivered,
        Type::MessageExpiryCheck,
    ] {
        reg.add_priority(t, 100, Box::new(hooks.clone())).await;
    }
    reg.start().await;
}

/// The largest packet accepted: the body limit plus room for topic and
/// properties, and never under 1 MiB so a slightly oversize body still
/// reaches the ACL and gets a reason code instead of a closed socket.
fn packet_limit(l: &Limits) -> u32 {
    let want = l
        .max_payload_bytes
        .saturating_add(64 * 1024)
        .max(1024 * 1024);
    u32::try_from(want).unwrap_or(u32::MAX)
}

fn builder(name: &str, addr: SocketAddr, s: &BrokerSettings) -> Builder {
    let l = &s.limits;
    let offline_ttl = Duration::from_secs(l.offline_message_ttl_secs);
    let session_expiry = Duration::from_secs(l.session_expiry_secs);
    Builder::new()
        .name(name)
        .laddr(addr)
        .reuseaddr(Some(true))
        .nodelay(true)
        .allow_anonymous(s.standard_mqtt)
        .max_clientid_len(if s.standard_mqtt {
            65535
        } else {
            l.max_client_id_len
        })
        .max_packet_size(packet_limit(l))
        .min_keepalive(0)
        .max_keepalive(l.max_keepalive_secs)
        .allow_zero_keepalive(true)
        .max_inflight(NonZeroU16::new(l.max_inflight).unwrap_or(NonZeroU16::MIN))
        .max_mqueue_len(l.max_queue_len)
        .session_expiry_interval(session_expiry)
        .max_session_expiry_interval(session_expiry)
        // Cloud conventions: offline messages live at most the offline TTL.
        // Plain MQTT: a message without an expiry never expires.
        .message_expiry_interval(if s.standard_mqtt {
            Duration::ZERO
        } else {
            offline_ttl
        })
        .max_topic_aliases(16)
        .max_subscriptions(l.max_subscriptions)
        .handshake_timeout(Duration::from_secs(15))
        .backlog(i32::try_from(l.listen_backlog).unwrap_or(i32::MAX))
        .tls_cert(Some(s.tls.cert.display().to_string()))
        .tls_key(Some(s.tls.key.display().to_string()))
        .tls_cert_resolver(Some(s.certificate.clone()))
}

/// Listener ids are fixed (not the port), so sessions saved by a run on
/// other ports are restored too.
const LISTENERS: [(&str, u16); 4] = [("mqtt", 1), ("mqtts", 2), ("ws", 3), ("wss", 4)];

fn bind_listeners(
    scx: &ServerContext,
    s: &BrokerSettings,
) -> Result<(MqttServer, BoundPorts), BrokerError> {
    let requested = [s.ports.mqtt, s.ports.mqtts, s.ports.ws, s.ports.wss];
    let mut server = MqttServer::new(scx.clone());
    let mut bound = [0u16; 4];
    for (i, ((name, id), port)) in LISTENERS.iter().zip(requested).enumerate() {
        let addr = SocketAddr::new(s.bind, port);
        let fail = |e: rmqtt::Error| BrokerError::Listener {
            listener: name,
            addr,
            reason: e.to_string(),
        };
        let l: Listener = builder(name, addr, s).bind().map_err(fail)?;
        let l = match *name {
            "mqtt" => l.tcp(),
            "mqtts" => l.tls(),
            "ws" => l.ws(),
            _ => l.wss(),
        }
        .map_err(fail)?;
        bound[i] = l.local_addr().map_err(fail)?.port();
        server = server.listener_by_id(l, *id);
    }
    let ports = BoundPorts {
        mqtt: bound[0],
        mqtts: bound[1],
        ws: bound[2],
        wss: bound[3],
    };
    Ok((server.build(), ports))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Ends one client's connection with `reason` (no-op if it is not connected).
pub(crate) async fn close_client(scx: &ServerContext, client_id: &str, reason: Reason) -> bool {
    let id = rmqtt::types::Id::new(scx.node.id(), 0, None, None, client_id.into(), None);
    let entry = scx.extends.shared().await.entry(id);
    match entry.tx() {
        Some(tx) => tx.unbounded_send(Message::Closed(reason)).is_ok(),
        None => false,
    }
}

/// `$SYS/tokenInvalidNotice` to one client, as the cloud service sends it.
pub(crate) async fn notify_token_invalid(
    scx: &ServerContext,
    client_id: &str,
    p: crate::auth::TokenProblem,
) {
    let body = serde_json::json!({ "code": p.code, "type": p.kind.as_str() }).to_string();
    bridge::notify(scx, client_id, "$SYS/tokenInvalidNotice", body.into()).await;
}
