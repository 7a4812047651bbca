//! The appliance: storage, provisioning, certificates, broker and HTTP,
//! started from one `Config` and stopped by one shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::broker::{Broker, BrokerSettings, DirectorySource};
use crate::certs;
use crate::config::Config;
use crate::controller;
use crate::directory::SharedDirectory;
use crate::http::{self, HttpState, PortsFile};
use crate::probe;
use crate::rtc::MockRtc;
use crate::store::{Store, DEMO_INSTANCE};

mod background;
mod checks;
mod notify;

pub(crate) use background::Provisioning;
use background::{follow_provisioning, renew_certificates};
use checks::{warn_if_clock_is_behind, warn_if_exposed};

/// Name of the file, in the data dir, that says where a running appliance listens.
pub const PORTS_FILE: &str = "ports.json";

/// A started appliance.
pub struct Running {
    /// Where it listens.
    pub ports: PortsFile,
    /// The broker (for the controller and for tests).
    pub broker: Arc<Broker>,
    store: Arc<Store>,
    servers: Vec<tokio::task::JoinHandle<()>>,
    http_stop: tokio::sync::watch::Sender<bool>,
    ports_path: PathBuf,
    /// Loops that run until `stop` (provisioning follower, certificate renewal).
    background: Vec<tokio::task::JoinHandle<()>>,
    controller: Option<controller::Controller>,
}

/// Starts everything `cfg` describes and returns once MQTT and HTTP answer.
pub async fn start(cfg: Config) -> anyhow::Result<Running> {
    let began = std::time::Instant::now();
    let ms = |since: std::time::Instant| since.elapsed().as_millis() as u64;
    warn_if_clock_is_behind();
    crate::private::create_dir(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let store = open_store(&cfg).await?;
    let store_ms = ms(began);
    let mut dir = blocking(&store, |s| s.directory()).await?;
    if cfg.dev {
        dir.passwordless_instance = Some(DEMO_INSTANCE.into());
    }
    let directory = Arc::new(SharedDirectory::new(dir));
    let dir_for_broker = directory.clone();
    let version = blocking(&store, |s| s.data_version()).await.ok();
    let source = Arc::new(Provisioning {
        store: store.clone(),
        seen: tokio::sync::Mutex::new(version),
        dev: cfg.dev,
    });
    let public_host = certs::public_host(cfg.bind, &cfg.rtc.public_host);
    let names = certs::names_for(cfg.bind, &public_host);
    let tls = certs::ensure_for(&cfg.data_dir, &cfg.tls, &names)
        .context("while preparing TLS certificates")?;
    let certificate =
        certs::reload::FollowFiles::load(&tls).context("while loading the TLS certificate")?;
    let https_config =
        http::tls::server_config(certificate.clone()).context("while preparing HTTPS")?;

    let settings = BrokerSettings {
        bind: cfg.bind,
        ports: cfg.ports.clone(),
        tls,
        certificate,
        limits: cfg.limits.clone(),
        standard_mqtt: cfg.standard_mqtt,
        acl: match &cfg.acl_file {
            Some(f) => Some(
                crate::policy::acl_file::AclFile::load(f)
                    .map_err(|e| anyhow::anyhow!("while reading the ACL file: {e}"))?,
            ),
            None => None,
        },
        state_dir: cfg.data_dir.clone(),
    };
    let broker = Arc::new(
        Broker::start(
            settings,
            dir_for_broker,
            Some(source as Arc<dyn DirectorySource>),
        )
        .await
        .context("while starting the broker")?,
    );
    let broker_ms = ms(began);
    let bp = broker.ports();
    let mut background = vec![tokio::spawn(follow_provisioning(broker.clone()))];
    if cfg.tls.cert.is_none() {
        background.push(tokio::spawn(renew_certificates(
            cfg.data_dir.clone(),
            names.clone(),
        )));
    }

    let backlog = cfg.limits.listen_backlog;
    let http_listener = http::serve::bind(SocketAddr::new(cfg.bind, cfg.ports.http), backlog)
        .with_context(|| format!("binding HTTP on {}:{}", cfg.bind, cfg.ports.http))?;
    let https_listener = http::serve::bind(SocketAddr::new(cfg.bind, cfg.ports.https), backlog)
        .with_context(|| format!("binding HTTPS on {}:{}", cfg.bind, cfg.ports.https))?;
    let ports = PortsFile {
        mqtt: bp.mqtt,
        mqtts: bp.mqtts,
        ws: bp.ws,
        wss: bp.wss,
        http: http_listener.local_addr()?.port(),
        https: https_listener.local_addr()?.port(),
    };
    let (rtc, rtc_events) = mock_rtc(&cfg, &public_host, ports.http)?;
    let controller = if cfg.controller.enabled && !cfg.standard_mqtt {
        let deps = controller::Deps {
            bridge: broker.bridge(),
            store: store.clone(),
            directory: directory.clone(),
            rtc: rtc.clone(),
            rtc_events,
        };
        Some(controller::start(controller_settings(&cfg), deps).await?)
    } else {
        None
    };
    if controller.is_some() {
        let settings = webhook_settings(&cfg);
        let store = open_dir(&cfg.data_dir, " for webhooks").await?;
        background.push(crate::webhooks::start(store, settings));
    }
    let controller_ms = ms(began);
    if cfg.fault_injection {
        tracing::warn!("fault injection is on (/debug/faults): for tests only");
    }
    let ops = crate::ops::Ops::new(crate::ops::OpsDeps {
        store: open_console_store(&cfg).await?,
        broker: broker.clone(),
        rtc: rtc.clone(),
        ports,
        dev: cfg.dev,
        controller: controller.as_ref().map(|c| c.health()),
        max_client_id_len: cfg.limits.max_client_id_len,
    });
    let router = http::router(Arc::new(HttpState {
        broker: broker.clone(),
        ports,
        rtc,
        store: store.clone(),
        ops,
        ice_servers: cfg.rtc.ice_servers.clone(),
        faults: match &controller {
            Some(c) if cfg.fault_injection => Some(c.faults()),
            _ => None,
        },
    }));
    let (http_stop, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let https = http::tls::serve(
        https_listener,
        https_config,
        router.clone(),
        stopped(stop_rx.clone()),
    );
    let http = http::serve::serve(http_listener, router, stopped(stop_rx));
    let servers = vec![
        tokio::spawn(http),
        tokio::spawn(log_failure("HTTPS", https)),
    ];

    let loopback = if cfg.bind.is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], ports.mqtt))
    } else {
        SocketAddr::new(cfg.bind, ports.mqtt)
    };
    probe::mqtt_connack(loopback, "$mqrtc/readiness", Duration::from_secs(10))
        .await
        .context("the broker bound its port but does not answer CONNECT")?;

    warn_if_exposed(&cfg, &ports);
    let ports_path = cfg.data_dir.join(PORTS_FILE);
    write_ports(&ports_path, &ports)?;
    background.extend(notify::watchdog(loopback));
    notify::ready(&format!("MQTT {} HTTP {}", ports.mqtt, ports.http));
    tracing::info!(
        mqtt = ports.mqtt, mqtts = ports.mqtts, ws = ports.ws, wss = ports.wss, http = ports.http,
        https = ports.https, bind = %cfg.bind, public_host, data_dir = %cfg.data_dir.display(), dev = cfg.dev, standard_mqtt = cfg.standard_mqtt,
        store_ms, broker_ms, controller_ms, ready_ms = ms(began),
        "mqrtc ready"
    );
    if !cfg.dev && !cfg.standard_mqtt && blocking(&store, |s| s.is_unprovisioned()).await? {
        let console = format!("http://{}/console", SocketAddr::new(cfg.bind, ports.http));
        println!("{}", crate::demo::first_start_hint(&cfg.data_dir, &console));
    }
    Ok(Running {
        ports,
        broker,
        store,
        servers,
        http_stop,
        ports_path,
        background,
        controller,
    })
}

impl Running {
    /// Stops HTTP and the broker (saving sessions) and checkpoints SQLite last.
    ///
    /// The broker's session storage keeps a blocking thread that never
    /// ends: afterwards shut the runtime down with `shutdown_background` (or
    /// exit the process), do not wait for it.
    pub async fn stop(self) {
        notify::stopping();
        self.background.iter().for_each(|t| t.abort());
        let _ = std::fs::remove_file(&self.ports_path);
        let _ = self.http_stop.send(true);
        for server in self.servers {
            let _ = server.await;
        }
        // Uplinks already accepted are processed while the broker still runs.
        if let Some(c) = self.controller {
            c.stop().await;
        }
        self.broker.shutdown().await;
        if let Err(e) = blocking(&self.store, |s| s.checkpoint()).await {
            tracing::warn!("SQLite checkpoint on shutdown: {e}");
        }
    }
}

/// Runs a server until it ends, logging why if it failed.
async fn log_failure(name: &'static str, server: impl Future<Output = std::io::Result<()>>) {
    if let Err(e) = server.await {
        tracing::error!("{name} server stopped: {e}");
    }
}

/// Runs the appliance until `shutdown` resolves.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let running = start(cfg).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// A connection of its own to the data dir's database; `what` (such as
/// `" for webhooks"`) ends the error's "while opening the database".
pub(crate) async fn open_dir(dir: &Path, what: &str) -> anyhow::Result<Arc<Store>> {
    let d = dir.to_path_buf();
    let store = tokio::task::spawn_blocking(move || Store::open_dir(&d))
        .await?
        .with_context(|| format!("while opening the database{what}"))?;
    Ok(Arc::new(store))
}

async fn open_store(cfg: &Config) -> anyhow::Result<Arc<Store>> {
    let store = open_dir(&cfg.data_dir, "").await?;
    let dev = cfg.dev;
    let created = blocking(
        &store,
        move |s| {
            if dev {
                s.provision_demo()
            } else {
                Ok(None)
            }
        },
    )
    .await
    .context("while provisioning the demo tenant")?;
    if let Some(t) = created {
        let path = crate::demo::save(&cfg.data_dir, &t)
            .with_context(|| format!("writing {}", crate::demo::DEMO_TENANT_FILE))?;
        // Printed, not logged, and without the secret (stdout may be kept
        // in a journal).
        println!("{}", crate::demo::created(&path, dev));
    }
    Ok(store)
}

/// Name of the file, in the data dir, that holds the first admin's password.
pub const ADMIN_PASSWORD_FILE: &str = "admin-password.txt";

/// The console's own SQLite connection; creates the first admin (password
/// in a file only the owner can read, never in the log) if there is none.
async fn open_console_store(cfg: &Config) -> anyhow::Result<Arc<Store>> {
    let store = open_dir(&cfg.data_dir, " for the console").await?;
    let now = crate::store::unix_now();
    if let Some(password) = blocking(&store, move |s| s.ensure_admin(now)).await? {
        let path = cfg.data_dir.join(ADMIN_PASSWORD_FILE);
        crate::private::write(&path, format!("{password}\n").as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        tracing::warn!(
            file = %path.display(),
            "created the console admin account 'admin'; its password is in this file (owner-only); \
             `mqrtc admin reset-password` sets a new one"
        );
    }
    Ok(store)
}

/// The mock RTC service, with the AppKey from the config or generated once,
/// at `http://{public_host}:{http_port}/rtc/v1` unless `rtc.gslb` says otherwise.
pub(crate) fn mock_rtc(
    cfg: &Config,
    public_host: &str,
    http_port: u16,
) -> anyhow::Result<(
    Arc<MockRtc>,
    tokio::sync::mpsc::UnboundedReceiver<crate::rtc::RtcEvent>,
)> {
    let app_key = if cfg.rtc.app_key.is_empty() {
        let path = cfg.data_dir.join("rtc-app.key");
        if path.exists() {
            crate::private::read_key(&path, crate::private::Readers::Owner)?
                .trim()
                .to_string()
        } else {
            use rand::distr::{Alphanumeric, SampleString};
            let k = Alphanumeric.sample_string(&mut rand::rng(), 32);
            crate::private::create_new(&path, k.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            k
        }
    } else {
        cfg.rtc.app_key.clone()
    };
    let gslb = if cfg.rtc.gslb.is_empty() {
        let host = if public_host.contains(':') {
            format!("[{public_host}]")
        } else {
            public_host.to_string()
        };
        vec![format!("http://{host}:{http_port}/rtc/v1")]
    } else {
        cfg.rtc.gslb.clone()
    };
    let (rtc, events) = MockRtc::new(&cfg.rtc.app_id, &app_key, cfg.rtc.token_ttl_secs, gslb);
    Ok((Arc::new(rtc), events))
}

pub(crate) fn webhook_settings(cfg: &Config) -> crate::webhooks::Settings {
    let w = &cfg.webhooks;
    crate::webhooks::Settings {
        retry_base: Duration::from_millis(w.retry_base_ms),
        retry_max: Duration::from_secs(w.retry_max_secs),
        give_up_after: Duration::from_secs(w.give_up_after_hours * 3600),
        timeout: Duration::from_secs(w.timeout_secs),
    }
}

pub(crate) fn controller_settings(cfg: &Config) -> controller::Settings {
    let c = &cfg.controller;
    controller::Settings {
        rules: crate::calls::Rules {
            ring_timeout: c.ring_timeout_secs as i64 * 1000,
            max_duration: c.max_duration_secs as i64 * 1000,
            busy: c.busy,
            ..crate::calls::Rules::default()
        },
        max_message_bytes: c.max_message_bytes,
        clock_skew_ms: c.clock_skew_ms,
        retention_ms: (c.retention_days as i64).saturating_mul(86_400_000),
    }
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> anyhow::Result<T> {
    let s = store.clone();
    Ok(tokio::task::spawn_blocking(move || f(&s)).await??)
}

pub(crate) fn write_ports(path: &Path, ports: &PortsFile) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(ports)?)?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Reads the ports a running appliance wrote into `data_dir`.
pub fn read_ports(data_dir: &Path) -> anyhow::Result<PortsFile> {
    let path = data_dir.join(PORTS_FILE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {} (is mqrtc running with this data dir?)",
            path.display()
        )
    })?;
    Ok(serde_json::from_slice(&text)?)
}
