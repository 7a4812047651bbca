//! Idle connections: how much broker memory each connected, silent MQTT
//! client costs.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Memory figures of one idle-connection run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct IdleMemory {
    /// Connections that got CONNACK 0 and were held open.
    pub connections: usize,
    /// Broker RSS before, in KiB.
    pub rss_before_kib: u64,
    /// Broker RSS with every connection open, in KiB.
    pub rss_after_kib: u64,
    /// (after - before) / connections, in bytes.
    pub bytes_per_connection: u64,
}

/// Resident set size of process `pid` in KiB (Linux `/proc`).
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// One idle connection (keepalive 0), CONNACK checked.
pub(super) async fn open_one(addr: SocketAddr, client_id: String) -> anyhow::Result<TcpStream> {
    let mut s = TcpStream::connect(addr).await?;
    tokio::time::timeout(Duration::from_secs(30), mqtt_connect(&mut s, &client_id)).await??;
    Ok(s)
}

/// Sends a CONNECT with keepalive 0 (no pings needed while idle) on `s`
/// and checks that the CONNACK accepts it.
pub(super) async fn mqtt_connect<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    client_id: &str,
) -> anyhow::Result<()> {
    s.write_all(&crate::probe::connect_packet(client_id, 0))
        .await?;
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).await?;
    if ack[0] != 0x20 || ack[3] != 0 {
        bail!("CONNACK {ack:02x?} for {client_id}");
    }
    Ok(())
}

/// Opens `count` idle connections to `addr` and measures process `pid`.
pub async fn measure(
    addr: SocketAddr,
    pid: u32,
    count: usize,
    id_prefix: &str,
) -> anyhow::Result<IdleMemory> {
    let rss_before_kib = rss_kib(pid)?;
    let ids: Vec<String> = (0..count).map(|i| format!("{id_prefix}{i}")).collect();
    let results: Vec<anyhow::Result<TcpStream>> = stream::iter(ids)
        .map(|id| open_one(addr, id))
        .buffer_unordered(200)
        .collect()
        .await;
    let mut held = Vec::with_capacity(count);
    for r in results {
        held.push(r?);
    }
    // Let the broker finish per-connection set-up before reading its RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_kib = rss_kib(pid)?;
    let bytes = rss_after_kib.saturating_sub(rss_before_kib) * 1024 / held.len().max(1) as u64;
    let m = IdleMemory {
        connections: held.len(),
        rss_before_kib,
        rss_after_kib,
        bytes_per_connection: bytes,
    };
    drop(held);
    Ok(m)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rss_of_self_is_readable() {
        assert!(super::rss_kib(std::process::id()).unwrap() > 0);
    }
}
