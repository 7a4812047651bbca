//! `mqrtc bench abuse`: how long a well-behaved client takes to connect to
//! each listener (MQTT, MQTT over TLS, WebSocket, secure WebSocket, HTTP,
//! HTTPS), first on a quiet appliance, then while a slowloris holds
//! hundreds of half-open sockets against every listener; then whether the
//! appliance closed all of those sockets by itself, and when.
//!
//! Half of the attack's sockets say nothing after connecting; the others
//! finish what they can (the TLS handshake) and then send a CONNECT, a
//! WebSocket upgrade or HTTP request headers one byte a second.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};

use crate::probe::connect_packet;

/// Flags of `mqrtc bench abuse`.
#[derive(Debug, Clone, Args)]
pub struct AbuseArgs {
    /// Half-open sockets held against each of the six listeners.
    #[arg(long, default_value_t = 300)]
    pub half_open: usize,
    /// Connections a well-behaved client makes to each listener, per phase.
    #[arg(long, default_value_t = 50)]
    pub probes: usize,
    /// How long to wait for the appliance to close the attack's sockets (seconds).
    #[arg(long, default_value_t = 45)]
    pub drain_secs: u64,
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The listeners, as named in `ports.json`.
const LISTENERS: [&str; 6] = ["mqtt", "mqtts", "ws", "wss", "http", "https"];

struct Target {
    ports: Value,
    tls: TlsConnector,
}

impl Target {
    fn addr(&self, listener: &str) -> anyhow::Result<SocketAddr> {
        let port = self.ports[listener].as_u64().context("port missing")?;
        Ok(SocketAddr::from(([127, 0, 0, 1], u16::try_from(port)?)))
    }

    async fn tls(
        &self,
        tcp: TcpStream,
    ) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        Ok(self
            .tls
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?)
    }
}

fn tls_connector(data_dir: &Path) -> anyhow::Result<TlsConnector> {
    let ca = std::fs::read(data_dir.join("certs/ca.pem")).context("reading the appliance's CA")?;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(&ca)?)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A CONNECT accepted, then DISCONNECT.
async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, id: &str) -> anyhow::Result<()> {
    super::idle::mqtt_connect(&mut s, id).await?;
    s.write_all(&[0xe0, 0]).await?;
    Ok(())
}

fn upgrade_request(port: u16) -> String {
    format!(
        "GET /mqtt HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
    )
}

async fn ws_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: S,
    port: u16,
    id: &str,
) -> anyhow::Result<()> {
    let mut req = format!("ws://localhost:{port}/mqtt").into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "mqtt".parse()?);
    let (mut ws, _) = tokio_tungstenite::client_async(req, s).await?;
    ws.send(Message::binary(connect_packet(id, 0))).await?;
    let ack = ws
        .next()
        .await
        .context("closed before CONNACK")??
        .into_data();
    if ack.len() != 4 || ack[0] != 0x20 || ack[3] != 0 {
        bail!("CONNACK {:02x?}", &ack[..]);
    }
    Ok(())
}

async fn http_get<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> anyhow::Result<()> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    if !out.starts_with(b"HTTP/1.1 200") {
        bail!(
            "answer {:?}",
            String::from_utf8_lossy(&out[..out.len().min(40)])
        );
    }
    Ok(())
}

/// One well-behaved connection: the time to its CONNACK (or HTTP answer).
async fn good(t: &Target, listener: &str, n: usize) -> anyhow::Result<Duration> {
    let addr = t.addr(listener)?;
    let id = format!("GID_demo@@@probe-{listener}-{n}");
    let started = Instant::now();
    let tcp = TcpStream::connect(addr).await?;
    match listener {
        "mqtt" => mqtt_connect(tcp, &id).await?,
        "mqtts" => mqtt_connect(t.tls(tcp).await?, &id).await?,
        "ws" => ws_connect(tcp, addr.port(), &id).await?,
        "wss" => ws_connect(t.tls(tcp).await?, addr.port(), &id).await?,
        "http" => http_get(tcp).await?,
        _ => http_get(t.tls(tcp).await?).await?,
    }
    Ok(started.elapsed())
}

/// `probes` connections to each listener, one after another.
async fn probe_all(t: &Target, probes: usize, round: &str) -> Value {
    let mut out = serde_json::Map::new();
    for listener in LISTENERS {
        let mut hist = Histogram::<u64>::new(3).expect("3 significant digits are valid");
        let mut failures = Vec::new();
        for n in 0..probes {
            let one = tokio::time::timeout(Duration::from_secs(10), good(t, listener, n));
            match one.await {
                Ok(Ok(took)) => {
                    let _ = hist.record(took.as_micros() as u64);
                }
                Ok(Err(e)) => failures.push(format!("{e:#}")),
                Err(_) => failures.push("no answer in 10 s".into()),
            }
        }
        let ms = |us: u64| us as f64 / 1000.0;
        out.insert(
            listener.into(),
            json!({
                "round": round, "ok": hist.len(), "failed": failures.len(),
                "first_failures": failures.iter().take(3).collect::<Vec<_>>(),
                "p50_ms": ms(hist.value_at_quantile(0.5)), "p99_ms": ms(hist.value_at_quantile(0.99)),
                "max_ms": ms(hist.max()),
            }),
        );
    }
    Value::Object(out)
}

/// What a slow attacker sends, a byte a second.
fn slow_bytes(listener: &str, port: u16) -> Vec<u8> {
    match listener {
        "mqtt" | "mqtts" => connect_packet("GID_demo@@@slowloris", 0),
        "ws" | "wss" => upgrade_request(port).into_bytes(),
        _ => b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n".to_vec(),
    }
}

/// Sends `bytes` a byte a second until the peer closes; returns when it did.
async fn trickle<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    bytes: &[u8],
    since: Instant,
) -> Option<Duration> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut next = 0;
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => return Some(since.elapsed()),
                Ok(_) => {}
            },
            _ = tick.tick(), if next < bytes.len() => {
                if s.write_all(&bytes[next..next + 1]).await.is_err() {
                    return Some(since.elapsed());
                }
                next += 1;
            }
        }
    }
}

/// One attacking socket; `opened` counts it once it is in place. Returns
/// when the appliance closed it (time since the attack began).
async fn attacker(
    t: Arc<Target>,
    listener: &'static str,
    slow: bool,
    opened: Arc<AtomicUsize>,
    since: Instant,
) -> Option<Duration> {
    let addr = t.addr(listener).ok()?;
    let tcp = TcpStream::connect(addr).await.ok()?;
    let bytes = if slow {
        slow_bytes(listener, addr.port())
    } else {
        Vec::new()
    };
    if slow && matches!(listener, "mqtts" | "wss" | "https") {
        let tls = t.tls(tcp).await.ok()?;
        opened.fetch_add(1, Ordering::Relaxed);
        return trickle(tls, &bytes, since).await;
    }
    opened.fetch_add(1, Ordering::Relaxed);
    trickle(tcp, &bytes, since).await
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs the measurement against a fresh appliance.
pub async fn run(a: AbuseArgs) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir()?;
    let mut app = super::storm::serve(dir.path(), 0, &["--dev"])?;
    super::storm::ready(dir.path(), &mut app).await?;
    let ports: Value = serde_json::from_slice(&std::fs::read(dir.path().join("ports.json"))?)?;
    let t = Arc::new(Target {
        ports,
        tls: tls_connector(dir.path())?,
    });
    let pid = app.pid();
    let fds_before = open_fds(pid);

    let quiet = probe_all(&t, a.probes, "quiet").await;

    let since = Instant::now();
    let opened = Arc::new(AtomicUsize::new(0));
    let mut attackers = Vec::new();
    for listener in LISTENERS {
        for i in 0..a.half_open {
            let task = attacker(t.clone(), listener, i % 2 == 1, opened.clone(), since);
            attackers.push((listener, tokio::spawn(task)));
        }
    }
    let all = a.half_open * LISTENERS.len();
    while opened.load(Ordering::Relaxed) < all && since.elapsed() < Duration::from_secs(8) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_place = opened.load(Ordering::Relaxed);
    let opened_after = since.elapsed();
    let fds_during = open_fds(pid);
    let attacked = probe_all(&t, a.probes, "under attack").await;
    let probes_done = since.elapsed();

    let mut closed = serde_json::Map::new();
    let deadline = since + Duration::from_secs(a.drain_secs);
    for (listener, task) in attackers {
        let left = deadline.saturating_duration_since(Instant::now());
        let when = tokio::time::timeout(left, task)
            .await
            .ok()
            .and_then(|r| r.ok())
            .flatten();
        let e = closed
            .entry(listener)
            .or_insert_with(|| json!({"closed": 0, "still_open": 0, "last_closed_s": 0.0}));
        match when {
            Some(d) => {
                e["closed"] = json!(e["closed"].as_u64().unwrap_or(0) + 1);
                let last = e["last_closed_s"]
                    .as_f64()
                    .unwrap_or(0.0)
                    .max(d.as_secs_f64());
                e["last_closed_s"] = json!((last * 10.0).round() / 10.0);
            }
            None => e["still_open"] = json!(e["still_open"].as_u64().unwrap_or(0) + 1),
        }
    }
    let report = json!({
        "half_open_per_listener": a.half_open, "probes": a.probes,
        "attack_in_place": in_place, "attack_opened_in_s": opened_after.as_secs_f64(),
        "probes_done_at_s": probes_done.as_secs_f64(),
        "quiet": quiet, "under_attack": attacked, "attack_sockets": closed,
        "appliance_fds": {"before": fds_before, "during": fds_during, "after": open_fds(pid)},
        "appliance_panics": std::fs::read_to_string(dir.path().join("mqrtc.log"))
            .unwrap_or_default().matches("panicked").count(),
    });
    if a.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Value) {
    println!(
        "{} half-open sockets per listener ({} in place after {:.1} s); {} connections per listener and round",
        r["half_open_per_listener"], r["attack_in_place"], r["attack_opened_in_s"].as_f64().unwrap_or(0.0), r["probes"]
    );
    println!("listener  quiet p50/p99 ms (failed)   under attack p50/p99 ms (failed)   attack sockets closed by the appliance");
    for l in LISTENERS {
        let (q, u, c) = (
            &r["quiet"][l],
            &r["under_attack"][l],
            &r["attack_sockets"][l],
        );
        println!(
            "{l:8}  {:7.2} / {:7.2} ({})        {:7.2} / {:7.2} ({})             {} (last after {} s), {} still open",
            q["p50_ms"].as_f64().unwrap_or(0.0), q["p99_ms"].as_f64().unwrap_or(0.0), q["failed"],
            u["p50_ms"].as_f64().unwrap_or(0.0), u["p99_ms"].as_f64().unwrap_or(0.0), u["failed"],
            c["closed"], c["last_closed_s"], c["still_open"]
        );
    }
    println!(
        "appliance open files: {}; panics in its log: {}",
        r["appliance_fds"], r["appliance_panics"]
    );
}
