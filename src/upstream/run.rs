//! Starting and stopping `mqrtc controller`: HTTP at once; the broker
//! connection and the state machine once this controller is the active
//! one (at once with SQLite, after taking the lease with PostgreSQL).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::{mpsc, Mutex};

use super::bridge::{Connection, ExternalBridge};
use super::config::Upstream;
use super::http::{router, ControllerState};
use crate::app::{self, blocking, Provisioning};
use crate::bridge::MessageBridge;
use crate::broker::DirectorySource;
use crate::config::Config;
use crate::controller::Controller;
use crate::directory::SharedDirectory;
use crate::http::PortsFile;
use crate::rtc::{MockRtc, RtcEvent};
use crate::store::pg::{lease::Lease, PgStore};
use crate::store::{StateStore, Store};

/// What runs once this controller is the active one.
type Active = (Arc<ExternalBridge>, Controller);

/// A running `mqrtc controller`.
pub struct Started {
    /// Its HTTP port.
    pub http: u16,
    active: Arc<Mutex<Option<Active>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    http_stop: tokio::sync::watch::Sender<bool>,
    ports_path: PathBuf,
    /// Why this controller cannot serve (it could not become active, or
    /// lost the lease); `_failing` keeps the channel open.
    failed: mpsc::UnboundedReceiver<String>,
    _failing: mpsc::UnboundedSender<String>,
}

/// Uplinks waiting for the state machine; past it the bridge stops reading
/// from the broker, which then holds them.
const UPLINK_QUEUE: usize = 4096;

/// Starts HTTP and, in the background, becomes the active controller
/// (`Started::failed` says if that fails or the lease is lost later).
pub async fn start(cfg: Config) -> anyhow::Result<Started> {
    crate::private::create_dir(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    // The data dir's SQLite database, or PostgreSQL with `upstream.store`.
    let postgres = (!cfg.upstream.store.is_empty()).then(|| cfg.upstream.database());
    let dir = cfg.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open_at(&dir, postgres.as_ref()))
        .await?
        .context("while opening the store")?;
    let store = Arc::new(store);
    let directory = Arc::new(SharedDirectory::new(
        blocking(&store, |s| s.directory()).await?,
    ));
    let follow = follow_provisioning(store.clone(), directory.clone()).await;

    let listener = crate::http::serve::bind(
        SocketAddr::new(cfg.bind, cfg.ports.http),
        cfg.limits.listen_backlog,
    )
    .with_context(|| format!("binding HTTP on {}:{}", cfg.bind, cfg.ports.http))?;
    let http = listener.local_addr()?.port();
    let public_host = crate::certs::public_host(cfg.bind, &cfg.rtc.public_host);
    let (rtc, rtc_events) = app::mock_rtc(&cfg, &public_host, http)?;
    let state = Arc::new(ControllerState {
        directory: directory.clone(),
        rules: crate::policy::Rules {
            max_client_id_len: cfg.limits.max_client_id_len,
            max_topic_len: cfg.limits.max_topic_len,
            max_payload_bytes: cfg.limits.max_payload_bytes,
        },
        active: std::sync::OnceLock::new(),
    });
    let (http_stop, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(crate::http::serve::serve(
        listener,
        router(state.clone(), rtc.clone()),
        async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        },
    ));
    let ports_path = cfg.data_dir.join(app::PORTS_FILE);
    let ports = PortsFile {
        mqtt: 0,
        mqtts: 0,
        ws: 0,
        wss: 0,
        http,
        https: 0,
    };
    app::write_ports(&ports_path, &ports)?;
    tracing::info!(http, upstream = cfg.upstream.url, data_dir = %cfg.data_dir.display(), "mqrtc controller listening");

    let active = Arc::new(Mutex::new(None));
    let (failing, failed) = mpsc::unbounded_channel();
    let activation = {
        let (active, failing) = (active.clone(), failing.clone());
        tokio::spawn(async move {
            let mut slot = active.lock().await;
            let deps = (store, directory, rtc, rtc_events);
            match activate(&cfg, deps, &state, failing.clone()).await {
                Ok(a) => *slot = Some(a),
                Err(e) => {
                    let _ = failing.send(format!("the controller cannot become active: {e:#}"));
                }
            }
        })
    };
    Ok(Started {
        http,
        active,
        tasks: vec![follow, server, activation],
        http_stop,
        ports_path,
        failed,
        _failing: failing,
    })
}

type ActivationDeps = (
    Arc<Store>,
    Arc<SharedDirectory>,
    Arc<MockRtc>,
    mpsc::UnboundedReceiver<RtcEvent>,
);

/// Takes the lease (PostgreSQL), connects to the broker and starts the state machine.
async fn activate(
    cfg: &Config,
    (store, directory, rtc, rtc_events): ActivationDeps,
    state: &ControllerState,
    failing: mpsc::UnboundedSender<String>,
) -> anyhow::Result<Active> {
    let durable: Arc<dyn StateStore> = if cfg.upstream.store.is_empty() {
        store.clone()
    } else {
        Arc::new(take_lease(&cfg.upstream, failing).await?)
    };
    let bridge = Arc::new(
        ExternalBridge::start(
            connection(&cfg.upstream)?,
            directory.clone(),
            UPLINK_QUEUE,
            Duration::from_secs(cfg.limits.offline_message_ttl_secs),
        )
        .map_err(anyhow::Error::msg)?,
    );
    tokio::time::timeout(Duration::from_secs(30), bridge.connected())
        .await
        .with_context(|| {
            format!(
                "the broker at {} did not accept the controller",
                cfg.upstream.url
            )
        })?;
    let deps = crate::controller::Deps {
        bridge: bridge.clone() as Arc<dyn MessageBridge>,
        store: durable,
        directory,
        rtc,
        rtc_events,
    };
    let controller = crate::controller::start(app::controller_settings(cfg), deps).await?;
    // The active controller delivers webhooks (SQLite or PostgreSQL alike).
    crate::webhooks::start(store, app::webhook_settings(cfg));
    let _ = state.active.set((bridge.clone(), controller.health()));
    tracing::info!(upstream = cfg.upstream.url, "mqrtc controller active");
    Ok((bridge, controller))
}

/// Waits until this process holds the lease, then keeps checking it: a
/// controller that lost it says so on `failing` (its writes are fenced anyway).
async fn take_lease(
    u: &Upstream,
    failing: mpsc::UnboundedSender<String>,
) -> anyhow::Result<PgStore> {
    let db = u.database();
    let pg = tokio::task::spawn_blocking(move || PgStore::connect(&db))
        .await?
        .context("while connecting to PostgreSQL")?;
    tracing::info!("standing by until this controller holds the lease");
    let (db, poll) = (u.database(), Duration::from_millis(u.lease_poll_ms.max(10)));
    let holder = format!(
        "{}:{}",
        hostname::get().unwrap_or_default().to_string_lossy(),
        std::process::id()
    );
    let mut lease = tokio::task::spawn_blocking(move || {
        Lease::acquire(&db, &holder, poll, crate::controller::now_ms)
    })
    .await?
    .context("while waiting for the controller lease")?;
    pg.fence(lease.epoch);
    tracing::info!(epoch = lease.epoch, "took over the controller lease");
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        if let Err(e) = lease.check() {
            let _ = failing.send(format!("lost the controller lease: {e}"));
            return;
        }
        if failing.is_closed() {
            return;
        }
    });
    Ok(pg)
}

/// Follows provisioning changes made with the CLI (in the data dir, or in
/// PostgreSQL by any host).
async fn follow_provisioning(
    store: Arc<Store>,
    directory: Arc<SharedDirectory>,
) -> tokio::task::JoinHandle<()> {
    let version = blocking(&store, |s| s.data_version()).await.ok();
    let source = Provisioning {
        store,
        seen: tokio::sync::Mutex::new(version),
        dev: false,
    };
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            if let Some(d) = source.changed().await {
                directory.set(d);
            }
        }
    })
}

impl Started {
    /// Processes what is queued, then disconnects (the broker keeps the
    /// session for the next controller).
    pub async fn stop(self) {
        let _ = self.http_stop.send(true);
        let _ = std::fs::remove_file(&self.ports_path);
        self.tasks.iter().for_each(|t| t.abort());
        if let Some((bridge, controller)) = self.active.lock().await.take() {
            controller.stop().await;
            bridge.stop().await;
        }
    }
}

/// Runs the controller until `shutdown` resolves, or until it cannot serve:
/// then it returns the reason at once, without a graceful stop (a
/// controller that lost its lease must not write any more).
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut started = start(cfg).await?;
    tokio::select! {
        () = shutdown => {}
        Some(why) = started.failed.recv() => {
            let _ = std::fs::remove_file(&started.ports_path);
            anyhow::bail!(why);
        }
    }
    tracing::info!("shutting down");
    started.stop().await;
    Ok(())
}
fn connection(u: &Upstream) -> anyhow::Result<Connection> {
    let password = match &u.password_file {
        Some(p) => Some(
            crate::private::read_key(p, crate::private::Readers::Owner)
                .with_context(|| format!("reading upstream.password_file {}", p.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
        ),
        None => None,
    };
    let (tls, _, _) = super::config::parse_url(&u.url).map_err(anyhow::Error::msg)?;
    let tls = if tls {
        Some(crate::certs::client_config(u.ca_file.as_deref()).map_err(anyhow::Error::msg)?)
    } else {
        None
    };
    Ok(Connection {
        upstream: u.clone(),
        password,
        tls,
    })
}
