//! `mqrtc healthcheck`: asks a running appliance over HTTP and MQTT.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::HealthArgs;
use crate::http::Health;
use crate::probe;

/// Checks the appliance `a` points at; returns a one-line report or why it is unhealthy.
pub async fn check(a: &HealthArgs) -> anyhow::Result<String> {
    let timeout = Duration::from_secs(a.timeout);
    let http_port = match a.http_port {
        Some(p) => p,
        None => crate::app::read_ports(&a.data_dir)?.http,
    };
    let addr = resolve(&a.host, http_port)?;
    let (status, body) = probe::http_get(addr, "/healthz", timeout)
        .await
        .with_context(|| format!("no HTTP answer from {addr}"))?;
    if status != 200 {
        bail!("{addr}/healthz answered {status}: {body}");
    }
    let health: Health = serde_json::from_str(&body).context("unexpected /healthz body")?;
    let mqtt = resolve(&a.host, health.ports.mqtt)?;
    let code = probe::mqtt_connack(mqtt, "$mqrtc/healthcheck", timeout)
        .await
        .with_context(|| format!("no CONNACK from {mqtt}"))?;
    Ok(format!(
        "healthy: http {addr} ok, mqtt {mqtt} answers CONNECT (code {code}), {} connections",
        health.connections
    ))
}

fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()?
        .next()
        .with_context(|| format!("cannot resolve {host}"))
}
