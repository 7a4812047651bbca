//! `mqrtc bench storm`: the reconnect storm after a crash. Persistent
//! devices (Signature auth, clean session off), each with a message queued
//! while it was offline; the appliance is killed with SIGKILL; the devices
//! (the Rust SDK, with its backoff and jitter) start reconnecting while it
//! is down; it is started again on the same ports. Measured: how long until
//! every device is connected, has synced with the controller, and has its
//! queued message, and whether any message was lost or came twice.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::stream::{self, StreamExt};
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

use crate::client::{Client, ClientId, Credentials, Event, Options};

/// Flags of `mqrtc bench storm`.
#[derive(Debug, Clone, Args)]
pub struct StormArgs {
    /// Persistent devices.
    #[arg(long, default_value_t = 10_000)]
    pub devices: usize,
    /// Seconds the appliance stays down between the kill and the restart.
    #[arg(long, default_value_t = 1)]
    pub down_secs: u64,
    /// Milliseconds between the last PUBACK of the queued messages and the kill.
    #[arg(long, default_value_t = 500)]
    pub settle_ms: u64,
    /// Copy the appliance's log (both runs) here when done.
    #[arg(long)]
    pub keep_log: Option<std::path::PathBuf>,
    /// Copy the data dir as the kill left it here (to replay the restart).
    #[arg(long)]
    pub keep_data: Option<std::path::PathBuf>,
}

/// What one device saw after the restart.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// Why the last attempt failed (a count of the reasons is printed).
    last_error: Option<&'static str>,
    connected: Option<Duration>,
    synced: Option<Duration>,
    queued: Option<Duration>,
    copies: u32,
    /// Connections made after the restart, and how many found no session.
    connects: u32,
    fresh_sessions: u32,
    /// Failed attempts before the first connection, and when the last was.
    failures: u32,
    last_failure: Option<Duration>,
}

pub(super) struct Appliance {
    child: Child,
}

impl Appliance {
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mqrtc serve` on `mqtt_port` (the other ports free ones), logging to `dir`.
pub(super) fn serve(dir: &Path, mqtt_port: u16, extra: &[&str]) -> anyhow::Result<Appliance> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("mqrtc.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--mqtt-port", &mqtt_port.to_string()])
        .args(["--mqtts-port", "0", "--ws-port", "0", "--wss-port", "0"])
        .args(["--http-port", "0", "--https-port", "0"])
        .args(extra)
        .env(
            "RUST_LOG",
            "info,rmqtt=warn,sled=warn,rmqtt_session_storage=info,rmqtt_storage=info",
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting mqrtc serve")?;
    Ok(Appliance { child })
}

/// Waits for `ports.json` (written once MQTT and HTTP answer).
pub(super) async fn ready(dir: &Path, a: &mut Appliance) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if crate::app::read_ports(dir).is_ok() {
            return Ok(());
        }
        if let Some(status) = a.child.try_wait()? {
            bail!("mqrtc serve exited ({status}) before it was ready");
        }
        if Instant::now() > deadline {
            bail!("mqrtc serve not ready in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id(n: usize) -> ClientId {
    ClientId::new("GID_demo", &format!("storm{n}")).expect("a valid client id")
}

fn options(n: usize, port: u16, creds: &Credentials) -> Options {
    let mut o = Options::new(id(n), "127.0.0.1", port);
    o.credentials = creds.clone();
    o.dedup_capacity = 64;
    o
}

/// Connects device `n` once (its persistent session is created) and leaves.
async fn register(n: usize, port: u16, creds: Credentials) -> anyhow::Result<()> {
    let (c, mut events) = Client::connect(options(n, port, &creds))?;
    let deadline = tokio::time::sleep(Duration::from_secs(60));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            e = events.recv() => match e {
                Some(Event::Synced(_)) => break,
                Some(_) => {}
                None => bail!("device {n} stopped"),
            },
            _ = &mut deadline => bail!("device {n} did not sync in 60 s"),
        }
    }
    c.close().await;
    Ok(())
}

/// Queues one QoS 1 message for each device (P2P on the event topic) and
/// waits for every PUBACK.
async fn queue_messages(devices: usize, port: u16, creds: &Credentials) -> anyhow::Result<()> {
    let publisher = id(devices + 1);
    let mut mo = MqttOptions::new(publisher.to_string(), "127.0.0.1", port);
    if let Some((u, p)) = creds.login(&publisher) {
        mo.set_credentials(u, p);
    }
    mo.set_inflight(100);
    let (c, mut el) = AsyncClient::new(mo, 1000);
    tokio::spawn(async move {
        for n in 0..devices {
            let topic = format!("rtc_event/p2p/{}", id(n));
            if c.publish(topic, QoS::AtLeastOnce, false, format!("queued-{n}"))
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut acked = 0;
    while acked < devices {
        match el.poll().await.context("queueing messages")? {
            MqttEvent::Incoming(Packet::PubAck(_)) => acked += 1,
            MqttEvent::Incoming(Packet::ConnAck(a))
                if a.code != rumqttc::ConnectReturnCode::Success =>
            {
                bail!("publisher refused: {:?}", a.code)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Milliseconds until the appliance reports no message for an offline
/// device waiting to be written to its session store.
async fn store_drained(dir: &Path) -> anyhow::Result<u128> {
    let started = Instant::now();
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], crate::app::read_ports(dir)?.http));
    loop {
        let (_, body) = crate::probe::http_get(http, "/healthz", Duration::from_secs(5)).await?;
        let health: crate::http::Health = serde_json::from_str(&body)?;
        if health.broker.session_writes_pending == 0 {
            return Ok(started.elapsed().as_millis());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!(
                "{} session writes still pending after 120 s",
                health.broker.session_writes_pending
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Device `n` from its first reconnect attempt on: reports what it saw.
async fn storm_device(
    n: usize,
    port: u16,
    creds: Credentials,
    t0: Instant,
    done: mpsc::UnboundedSender<(usize, Seen)>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let Ok((c, mut events)) = Client::connect(options(n, port, &creds)) else {
        let _ = done.send((n, Seen::default()));
        return;
    };
    let mut seen = Seen::default();
    let mut stop = stop;
    let mut reported = false;
    loop {
        tokio::select! {
            e = events.recv() => {
                let at = t0.elapsed();
                match e {
                    Some(Event::Connected { session_present }) => {
                        seen.connected.get_or_insert(at);
                        seen.connects += 1;
                        seen.fresh_sessions += u32::from(!session_present);
                    }
                    Some(Event::Disconnected { reason, .. }) => {
                        seen.last_error = Some(classify(&reason));
                        if seen.connected.is_none() {
                            seen.failures += 1;
                            seen.last_failure = Some(at);
                        }
                    }
                    Some(Event::Synced(_)) => { seen.synced.get_or_insert(at); }
                    Some(Event::Message { payload, .. }) if payload.starts_with(b"queued-") => {
                        seen.copies += 1;
                        seen.queued.get_or_insert(at);
                    }
                    Some(_) => {}
                    None => break,
                }
                if !reported && seen.synced.is_some() && seen.queued.is_some() {
                    reported = true;
                    let _ = done.send((n, seen));
                }
            }
            _ = stop.changed() => break,
        }
    }
    if !reported {
        let _ = done.send((n, seen));
    } else if seen.copies > 1 {
        // A duplicate after the report: report again with the count.
        let _ = done.send((n, seen));
    }
    c.close().await;
}

/// A short name for a connection error (for the summary).
fn classify(reason: &str) -> &'static str {
    let r = reason.to_ascii_lowercase();
    if r.contains("return code") {
        "refused in CONNACK"
    } else if r.contains("refused") {
        "connection refused"
    } else if r.contains("timeout") || r.contains("timed out") {
        "timeout"
    } else if r.contains("reset") {
        "connection reset"
    } else if r.contains("too many open files") {
        "too many open files"
    } else if r.contains("connack") || r.contains("connection") {
        "connection error"
    } else {
        "other"
    }
}

/// Runs the storm and prints its figures as JSON.
pub async fn run(args: StormArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = super::compare::free_port()?;
    // A tenant with an access key, made with the CLI's own provisioning.
    let store = crate::store::Store::open_dir(dir.path())?;
    let key = store
        .provision_demo()?
        .context("a fresh data dir has no demo tenant yet")?
        .key;
    drop(store);
    let creds = Credentials::Signature {
        instance: crate::store::DEMO_INSTANCE.into(),
        key_id: key.id,
        secret: key.secret,
    };
    let mut a = serve(dir.path(), port, &[])?;
    ready(dir.path(), &mut a).await?;
    let devices = args.devices;
    let started = Instant::now();
    let registered: Vec<anyhow::Result<()>> = stream::iter(0..devices)
        .map(|n| register(n, port, creds.clone()))
        .buffer_unordered(200)
        .collect()
        .await;
    registered.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let register_s = started.elapsed().as_secs_f64();
    let queueing = Instant::now();
    queue_messages(devices, port, &creds).await?;
    let queue_s = queueing.elapsed().as_secs_f64();
    let acked = Instant::now();
    let drained_ms = store_drained(dir.path()).await?;
    // Session storage writes every 10 ms once a message reached it.
    tokio::time::sleep(Duration::from_millis(args.settle_ms)).await;
    let kill_after_ack_ms = acked.elapsed().as_millis();

    a.child.kill().context("kill -9")?;
    let _ = a.child.wait();
    let _ = std::fs::remove_file(dir.path().join("ports.json"));
    if let Some(to) = &args.keep_data {
        let status = Command::new("cp")
            .arg("-a")
            .arg(dir.path())
            .arg(to)
            .status()?;
        anyhow::ensure!(
            status.success(),
            "cp -a {} {}: {status}",
            dir.path().display(),
            to.display()
        );
    }
    let t0 = Instant::now();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    for n in 0..devices {
        tokio::spawn(storm_device(
            n,
            port,
            creds.clone(),
            t0,
            done_tx.clone(),
            stop_rx.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.down_secs)).await;
    let restart_at = t0.elapsed();
    let mut a = serve(dir.path(), port, &[])?;
    ready(dir.path(), &mut a).await?;
    let ready_at = t0.elapsed();

    let mut seen = vec![Seen::default(); devices];
    let mut complete = 0;
    let deadline = tokio::time::sleep(Duration::from_secs(120));
    tokio::pin!(deadline);
    while complete < devices {
        tokio::select! {
            Some((n, s)) = done.recv() => {
                if seen[n].synced.is_none() || seen[n].queued.is_none() {
                    complete += usize::from(s.synced.is_some() && s.queued.is_some());
                }
                seen[n] = s;
            }
            _ = &mut deadline => break,
        }
    }
    // Late duplicates have a moment to show up; then every device stops
    // and reports (the incomplete ones with why they last failed).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_tx.send(true);
    drop(done_tx);
    while let Ok(Some((n, s))) = tokio::time::timeout(Duration::from_secs(10), done.recv()).await {
        seen[n] = s;
    }
    let from_restart =
        |d: Option<Duration>| d.map(|d| (d.saturating_sub(restart_at)).as_secs_f64());
    let last = |f: fn(&Seen) -> Option<Duration>| {
        seen.iter()
            .map(|s| from_restart(f(s)).unwrap_or(f64::INFINITY))
            .fold(0.0, f64::max)
    };
    let mut synced: Vec<f64> = seen.iter().filter_map(|s| from_restart(s.synced)).collect();
    synced.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        synced
            .get(((synced.len() as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
    };
    let mut errors = std::collections::BTreeMap::new();
    for s in seen
        .iter()
        .filter(|s| s.synced.is_none() || s.queued.is_none())
    {
        *errors
            .entry(s.last_error.unwrap_or("none"))
            .or_insert(0usize) += 1;
    }
    let tail = slowest(&seen, restart_at, ready_at);
    let figures = serde_json::json!({
        "devices": devices,
        "register_s": register_s,
        "queue_s": queue_s,
        "store_drained_after_last_puback_ms": drained_ms,
        "killed_after_last_puback_ms": kill_after_ack_ms,
        "down_s": restart_at.as_secs_f64(),
        "ready_after_restart_s": (ready_at - restart_at).as_secs_f64(),
        "all_connected_after_restart_s": last(|s| s.connected),
        "all_synced_after_restart_s": last(|s| s.synced),
        "synced_p50_after_restart_s": pct(0.50),
        "synced_p99_after_restart_s": pct(0.99),
        "all_queued_delivered_after_restart_s": last(|s| s.queued),
        "complete": complete,
        "connected": seen.iter().filter(|s| s.connected.is_some()).count(),
        "synced": seen.iter().filter(|s| s.synced.is_some()).count(),
        "with_queued_message": seen.iter().filter(|s| s.queued.is_some()).count(),
        "queued_missing": seen.iter().filter(|s| s.copies == 0).count(),
        "queued_duplicates": seen.iter().filter(|s| s.copies > 1).count(),
        "appliance_rss_kib": super::rss_kib(a.child.id()).unwrap_or_default(),
        "last_errors_of_incomplete": errors,
        "incomplete_connects": seen.iter().filter(|s| s.queued.is_none()).map(|s| s.connects).sum::<u32>(),
        "incomplete_fresh_sessions": seen.iter().filter(|s| s.queued.is_none()).map(|s| s.fresh_sessions).sum::<u32>(),
        "fresh_sessions": seen.iter().map(|s| s.fresh_sessions).sum::<u32>(),
        "connects": seen.iter().map(|s| s.connects).sum::<u32>(),
        "slowest_1pct": tail,
    });
    println!("{figures}");
    if let Some(to) = &args.keep_log {
        std::fs::copy(dir.path().join("mqrtc.log"), to).context("copying the log")?;
    }
    if complete < devices {
        let log = std::fs::read_to_string(dir.path().join("mqrtc.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        eprintln!("incomplete; the appliance's log ends:");
        for l in tail.iter().rev() {
            eprintln!("{l}");
        }
    }
    Ok(())
}

/// What the slowest 1% of devices went through before their first
/// connection: failed attempts, why the last failed, and whether it failed
/// after the appliance was ready (then the backoff is not the only cause).
fn slowest(seen: &[Seen], restart_at: Duration, ready_at: Duration) -> serde_json::Value {
    let mut order: Vec<&Seen> = seen.iter().collect();
    order.sort_by_key(|s| std::cmp::Reverse(s.synced.unwrap_or(Duration::MAX)));
    let tail = &order[..seen.len().div_ceil(100)];
    let mut reasons = std::collections::BTreeMap::new();
    for s in tail {
        *reasons
            .entry(s.last_error.unwrap_or("none"))
            .or_insert(0usize) += 1;
    }
    let secs = |d: Duration| d.saturating_sub(restart_at).as_secs_f64();
    serde_json::json!({
        "devices": tail.len(),
        "mean_failures_before_connect": tail.iter().map(|s| f64::from(s.failures)).sum::<f64>() / tail.len().max(1) as f64,
        "failed_after_ready": tail.iter().filter(|s| s.last_failure.is_some_and(|t| t > ready_at)).count(),
        "last_failure_after_restart_s_max": tail.iter().filter_map(|s| s.last_failure).map(secs).fold(0.0, f64::max),
        "first_connect_after_restart_s_min": tail.iter().filter_map(|s| s.connected).map(secs).fold(f64::INFINITY, f64::min),
        "last_error": reasons,
    })
}
