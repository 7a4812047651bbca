//! QoS 1 publisher/subscriber pairs: throughput at saturation, and latency
//! at a fixed offered rate. Works against any MQTT 3.1.1 broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};

/// What to connect and publish.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Publisher/subscriber pairs.
    pub pairs: usize,
    /// Payload bytes (at least 16: a timestamp and a sequence number).
    pub payload: usize,
    /// Client id prefix (`{prefix}pub-{i}`, `{prefix}sub-{i}`).
    pub id_prefix: String,
    /// Topic prefix (`{prefix}/{i}`).
    pub topic_prefix: String,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Latency {
    /// Messages measured.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
    /// Messages actually delivered per second during the measurement.
    pub delivered_per_s: f64,
}

struct Pairs {
    publishers: Vec<AsyncClient>,
    received: Arc<AtomicU64>,
    hist: Arc<Mutex<Histogram<u64>>>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
    epoch: Instant,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Pairs {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn options(spec: &LoadSpec, id: String) -> MqttOptions {
    let mut o = MqttOptions::new(id, spec.host.clone(), spec.port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_inflight(100);
    o.set_request_channel_capacity(1000);
    o
}

async fn wait_connack(ev: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        match ev.poll().await.context("connecting")? {
            Event::Incoming(Packet::ConnAck(_)) => return Ok(()),
            _ => continue,
        }
    }
}

async fn wait_suback(ev: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        match ev.poll().await.context("subscribing")? {
            Event::Incoming(Packet::SubAck(s)) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                {
                    bail!("subscription refused");
                }
                return Ok(());
            }
            _ => continue,
        }
    }
}

async fn connect_pairs(spec: &LoadSpec) -> anyhow::Result<Pairs> {
    if spec.payload < 16 {
        bail!("payload must be at least 16 bytes");
    }
    let received = Arc::new(AtomicU64::new(0));
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let epoch = Instant::now();
    let mut tasks = Vec::new();
    let mut publishers = Vec::new();
    for i in 0..spec.pairs {
        let (sub, mut sev) =
            AsyncClient::new(options(spec, format!("{}sub-{i}", spec.id_prefix)), 100);
        wait_connack(&mut sev).await?;
        sub.subscribe(format!("{}/{i}", spec.topic_prefix), QoS::AtLeastOnce)
            .await?;
        wait_suback(&mut sev).await?;
        let (received, hist, measuring) = (received.clone(), hist.clone(), measuring.clone());
        tasks.push(tokio::spawn(async move {
            let _keep = sub;
            while let Ok(ev) = sev.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev {
                    if !measuring.load(Ordering::Relaxed) || p.payload.len() < 8 {
                        continue;
                    }
                    let sent = u64::from_be_bytes(p.payload[..8].try_into().unwrap_or_default());
                    let micros = (epoch.elapsed().as_micros() as u64)
                        .saturating_sub(sent)
                        .max(1);
                    received.fetch_add(1, Ordering::Relaxed);
                    let _ = hist
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .record(micros);
                }
            }
        }));
        let (publ, mut pev) =
            AsyncClient::new(options(spec, format!("{}pub-{i}", spec.id_prefix)), 1000);
        wait_connack(&mut pev).await?;
        tasks.push(tokio::spawn(
            async move { while pev.poll().await.is_ok() {} },
        ));
        publishers.push(publ);
    }
    Ok(Pairs {
        publishers,
        received,
        hist,
        measuring,
        epoch,
        tasks,
    })
}

fn payload(spec: &LoadSpec, epoch: Instant, seq: u64) -> Vec<u8> {
    let mut p = vec![0u8; spec.payload];
    p[..8].copy_from_slice(&(epoch.elapsed().as_micros() as u64).to_be_bytes());
    p[8..16].copy_from_slice(&seq.to_be_bytes());
    p
}

/// Publishes as fast as the broker takes QoS 1 messages for `duration`
/// (after a warm-up); returns messages delivered to subscribers per second.
pub async fn saturation(
    spec: &LoadSpec,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<f64> {
    let pairs = connect_pairs(spec).await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut pubs = Vec::new();
    for (i, c) in pairs.publishers.iter().enumerate() {
        let (c, stop, spec2, epoch) = (c.clone(), stop.clone(), spec.clone(), pairs.epoch);
        let topic = format!("{}/{i}", spec.topic_prefix);
        pubs.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                if c.publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(&spec2, epoch, seq),
                )
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    pairs.measuring.store(true, Ordering::Relaxed);
    let start_count = pairs.received.load(Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    let got = pairs.received.load(Ordering::Relaxed) - start_count;
    let rate = got as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pubs {
        p.abort();
    }
    Ok(rate)
}

/// Offers `rate` messages per second spread over the pairs for `duration`
/// (after a warm-up) and returns the end-to-end latency distribution.
pub async fn latency(
    spec: &LoadSpec,
    rate: u64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let pairs = connect_pairs(spec).await?;
    let per_pub = (rate as f64 / spec.pairs as f64).max(0.001);
    let interval = Duration::from_secs_f64(1.0 / per_pub);
    let mut pubs = Vec::new();
    for (i, c) in pairs.publishers.iter().enumerate() {
        let (c, spec2, epoch) = (c.clone(), spec.clone(), pairs.epoch);
        let topic = format!("{}/{i}", spec.topic_prefix);
        // Spread the publishers' ticks over one interval.
        let offset = interval.mul_f64(i as f64 / spec.pairs as f64);
        pubs.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut seq = 0u64;
            loop {
                tick.tick().await;
                seq += 1;
                if c.publish(
                    topic.as_str(),
                    QoS::AtLeastOnce,
                    false,
                    payload(&spec2, epoch, seq),
                )
                .await
                .is_err()
                {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(warmup).await;
    pairs.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(duration).await;
    pairs.measuring.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed();
    for p in pubs {
        p.abort();
    }
    let got = pairs.received.load(Ordering::Relaxed);
    let h = pairs.hist.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(Latency {
        count: h.len(),
        p50_us: h.value_at_quantile(0.50),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
        delivered_per_s: got as f64 / elapsed.as_secs_f64(),
    })
}
