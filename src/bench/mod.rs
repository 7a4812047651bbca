//! `mqrtc bench`: load generator for any MQTT broker, and a side-by-side
//! run of this appliance and Debian's mosquitto on the same machine.

mod abuse;
mod calls;
mod compare;
mod console;
mod idle;
mod load;
mod storm;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

pub use idle::{rss_kib, IdleMemory};
pub use load::{Latency, LoadSpec};

/// Flags of `mqrtc bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// The measurements.
#[derive(Debug, Clone, Subcommand)]
pub enum BenchWhat {
    /// QoS 1 messages delivered per second at saturation.
    Throughput {
        /// Broker and workload.
        #[command(flatten)]
        target: Target,
        /// Seconds measured (after a 2 s warm-up).
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// End-to-end QoS 1 latency at a fixed offered rate.
    Latency {
        /// Broker and workload.
        #[command(flatten)]
        target: Target,
        /// Messages per second offered, spread over the pairs.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        /// Seconds measured (after a 2 s warm-up).
        #[arg(long, default_value_t = 10)]
        duration: u64,
    },
    /// Broker memory per idle connection (reads the broker's RSS from /proc).
    Idle {
        /// Broker and workload (only host, port and id prefix are used).
        #[command(flatten)]
        target: Target,
        /// Connections to open and hold.
        #[arg(long, default_value_t = 10_000)]
        count: usize,
        /// The broker's process id.
        #[arg(long)]
        pid: u32,
    },
    /// Start this appliance and mosquitto on free ports and measure both.
    Compare(compare::CompareArgs),
    /// Call setups per second and setup latency through the controller.
    Calls(calls::CallArgs),
    /// Server time of console pages with many connected devices and a long call history.
    Console(console::ConsoleArgs),
    /// The reconnect storm after a kill -9: persistent devices reconnect, sync and get their queued messages.
    Storm(storm::StormArgs),
    /// Connect times on every listener, quiet and under a slowloris, and whether the appliance closes the attack's sockets.
    Abuse(abuse::AbuseArgs),
}

/// A broker to measure and the workload's shape.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// Publisher/subscriber pairs.
    #[arg(long, default_value_t = 100)]
    pub pairs: usize,
    /// Payload bytes.
    #[arg(long, default_value_t = 64)]
    pub payload: usize,
    /// Client id prefix (valid in mqrtc's demo tenant).
    #[arg(long, default_value = "GID_demo@@@bench-")]
    pub id_prefix: String,
    /// Topic prefix (an event topic in mqrtc's demo tenant).
    #[arg(long, default_value = "rtc_event/bench")]
    pub topic_prefix: String,
}

impl Target {
    fn spec(&self) -> LoadSpec {
        LoadSpec {
            host: self.host.clone(),
            port: self.port,
            pairs: self.pairs,
            payload: self.payload,
            id_prefix: self.id_prefix.clone(),
            topic_prefix: self.topic_prefix.clone(),
        }
    }

    fn addr(&self) -> anyhow::Result<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()?
            .next()
            .with_context(|| format!("cannot resolve {}", self.host))
    }
}

const WARMUP: Duration = Duration::from_secs(2);

/// Runs the measurement `a` asks for and prints its figures as JSON.
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Throughput { target, duration } => {
            let rate =
                load::saturation(&target.spec(), WARMUP, Duration::from_secs(duration)).await?;
            println!(
                "{}",
                serde_json::json!({ "throughput_msgs_per_s": rate.round() })
            );
        }
        BenchWhat::Latency {
            target,
            rate,
            duration,
        } => {
            let l =
                load::latency(&target.spec(), rate, WARMUP, Duration::from_secs(duration)).await?;
            println!("{}", serde_json::to_string(&l)?);
        }
        BenchWhat::Idle { target, count, pid } => {
            let m = idle::measure(target.addr()?, pid, count, &target.id_prefix).await?;
            println!("{}", serde_json::to_string(&m)?);
        }
        BenchWhat::Compare(args) => compare::run(args).await?,
        BenchWhat::Calls(args) => calls::run(args).await?,
        BenchWhat::Console(args) => console::run(args).await?,
        BenchWhat::Storm(args) => storm::run(args).await?,
        BenchWhat::Abuse(args) => abuse::run(args).await?,
    }
    Ok(())
}
