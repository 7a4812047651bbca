//! `mqrtc bench`: load generator for any MQTT broker.

use clap::Args;

/// Flags of `mqrtc bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Broker host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
}

/// Runs the benchmark described by `a`.
pub async fn run(a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench against {}:{} is not built yet", a.host, a.port)
}
