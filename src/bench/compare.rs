//! `mqrtc bench compare`: this appliance and Debian's mosquitto, started on
//! free ports on the same machine and measured in the same run, with ratios.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;

use super::{idle, load, LoadSpec, WARMUP};

/// Flags of `mqrtc bench compare`.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// The mosquitto broker binary.
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    pub mosquitto: PathBuf,
    /// Publisher/subscriber pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Offered rate for the latency run, messages per second.
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Idle connections for the memory run (0 skips it).
    #[arg(long, default_value_t = 10_000)]
    pub idle: usize,
    /// Rounds; each starts both brokers afresh and measures them one after the other.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

/// A broker process started for a benchmark.
pub(super) struct Broker {
    name: &'static str,
    child: Child,
    pub(super) addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

async fn wait_ready(addr: SocketAddr, client_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if crate::probe::mqtt_connack(addr, client_id, Duration::from_secs(2))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("broker on {addr} not ready in 60 s")
}

/// Starts `mqrtc serve --dev` on free ports in a temp dir.
pub(super) async fn start_mqrtc() -> anyhow::Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let log = std::fs::File::create(dir.path().join("mqrtc.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--dev", "--data-dir"])
        .arg(dir.path())
        .args(["--mqtt-port", &port.to_string()])
        .args([
            "--mqtts-port",
            "0",
            "--ws-port",
            "0",
            "--wss-port",
            "0",
            "--http-port",
            "0",
            "--https-port",
            "0",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting mqrtc serve")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let b = Broker {
        name: "mqrtc",
        child,
        addr,
        _dir: dir,
    };
    wait_ready(addr, "GID_demo@@@bench-ready").await?;
    Ok(b)
}

async fn start_mosquitto(bin: &PathBuf) -> anyhow::Result<Broker> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )?;
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {} (apt-get install mosquitto)", bin.display()))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let b = Broker {
        name: "mosquitto",
        child,
        addr,
        _dir: dir,
    };
    wait_ready(addr, "bench-ready").await?;
    Ok(b)
}

/// One broker's figures in one round.
#[derive(Debug, Clone, serde::Serialize)]
struct Figures {
    broker: &'static str,
    round: usize,
    throughput: f64,
    latency: load::Latency,
    idle: Option<idle::IdleMemory>,
}

/// Measures a freshly started broker: idle memory first (so the allocator
/// has nothing to reuse), then throughput, then latency.
async fn measure(b: &Broker, a: &CompareArgs, round: usize) -> anyhow::Result<Figures> {
    let idle = if a.idle > 0 {
        let prefix = format!("GID_demo@@@r{round}i-");
        Some(idle::measure(b.addr, b.child.id(), a.idle, &prefix).await?)
    } else {
        None
    };
    let spec = LoadSpec {
        host: b.addr.ip().to_string(),
        port: b.addr.port(),
        pairs: a.pairs,
        payload: a.payload,
        id_prefix: format!("GID_demo@@@r{round}-"),
        topic_prefix: format!("rtc_event/bench{round}"),
    };
    let duration = Duration::from_secs(a.duration);
    let throughput = load::saturation(&spec, WARMUP, duration).await?;
    let lat_spec = LoadSpec {
        id_prefix: format!("GID_demo@@@r{round}l-"),
        ..spec
    };
    let latency = load::latency(&lat_spec, a.rate, WARMUP, duration).await?;
    Ok(Figures {
        broker: b.name,
        round,
        throughput,
        latency,
        idle,
    })
}

/// Runs the comparison and prints a Markdown table and the raw figures as JSON.
pub async fn run(a: CompareArgs) -> anyhow::Result<()> {
    let mut all = Vec::new();
    for round in 0..a.rounds.max(1) {
        // Fresh processes every round, one broker running at a time.
        for name in ["mqrtc", "mosquitto"] {
            let b = match name {
                "mqrtc" => start_mqrtc().await?,
                _ => start_mosquitto(&a.mosquitto).await?,
            };
            eprintln!("round {round}: measuring {}", b.name);
            all.push(measure(&b, &a, round).await?);
        }
    }
    print_table(&a, &all);
    println!("\n```json\n{}\n```", serde_json::to_string_pretty(&all)?);
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn print_table(a: &CompareArgs, all: &[Figures]) {
    print_rounds(a, all);
    type Metric = fn(&Figures) -> Option<f64>;
    let metrics: [(&str, Metric); 6] = [
        ("throughput (msg/s)", |f| Some(f.throughput)),
        ("delivered at offered rate (msg/s)", |f| {
            Some(f.latency.delivered_per_s)
        }),
        ("latency p50 (µs)", |f| Some(f.latency.p50_us as f64)),
        ("latency p99 (µs)", |f| Some(f.latency.p99_us as f64)),
        ("latency p99.9 (µs)", |f| Some(f.latency.p999_us as f64)),
        ("bytes per idle connection", |f| {
            f.idle.map(|i| i.bytes_per_connection as f64)
        }),
    ];
    println!("\nMedian of {} rounds:\n", all.len() / 2);
    println!("| metric | mqrtc | mosquitto | mqrtc / mosquitto |");
    println!("|---|---|---|---|");
    for (name, get) in metrics {
        let of = |broker: &str| {
            median(
                all.iter()
                    .filter(|f| f.broker == broker)
                    .filter_map(get)
                    .collect(),
            )
        };
        let (m, q) = (of("mqrtc"), of("mosquitto"));
        println!("| {name} | {m:.0} | {q:.0} | {:.2} |", m / q);
    }
}

fn print_rounds(a: &CompareArgs, all: &[Figures]) {
    println!(
        "QoS 1, {} pairs, {}-byte payloads; latency at {} msg/s offered; {} idle connections.\n",
        a.pairs, a.payload, a.rate, a.idle
    );
    println!("| round | metric | mqrtc | mosquitto | mqrtc / mosquitto |");
    println!("|---|---|---|---|---|");
    for pair in all.chunks(2) {
        let [m, q] = pair else { continue };
        let row = |name: &str, x: f64, y: f64| {
            let ratio = if y > 0.0 { x / y } else { f64::NAN };
            println!("| {} | {name} | {x:.0} | {y:.0} | {ratio:.2} |", m.round);
        };
        row("throughput (msg/s)", m.throughput, q.throughput);
        row(
            "delivered at offered rate (msg/s)",
            m.latency.delivered_per_s,
            q.latency.delivered_per_s,
        );
        row(
            "latency p50 (µs)",
            m.latency.p50_us as f64,
            q.latency.p50_us as f64,
        );
        row(
            "latency p99 (µs)",
            m.latency.p99_us as f64,
            q.latency.p99_us as f64,
        );
        row(
            "latency p99.9 (µs)",
            m.latency.p999_us as f64,
            q.latency.p999_us as f64,
        );
        if let (Some(mi), Some(qi)) = (m.idle, q.idle) {
            row(
                "bytes per idle connection",
                mi.bytes_per_connection as f64,
                qi.bytes_per_connection as f64,
            );
        }
    }
}
