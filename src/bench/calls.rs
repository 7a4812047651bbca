//! `mqrtc bench calls`: call setups per second and setup latency (the
//! caller's `call.start` published to the callee's `call.invite` received)
//! with simulated devices, durable controller state on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Flags of `mqrtc bench calls`.
#[derive(Debug, Clone, Args)]
pub struct CallArgs {
    /// A running `mqrtc serve --dev` to measure; none starts one in a temp dir.
    #[arg(long)]
    pub port: Option<u16>,
    /// Simulated devices (half call, half are called).
    #[arg(long, default_value_t = 1000)]
    pub devices: usize,
    /// Offered call setups per second for the latency run.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// Seconds measured per run (after a 2 s warm-up).
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Also find the highest rate sustained (achieved within 5 % of offered, p99 under 100 ms).
    #[arg(long)]
    pub find_max: bool,
    /// `--port` is a standard broker with `mqrtc controller` behind it:
    /// devices name themselves in the uplink topic, subscribe to their
    /// inbox and sync before the run (`docs/scale-out.md`).
    #[arg(long, requires = "port")]
    pub standard_broker: bool,
}

/// Figures of one run.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SetupFigures {
    /// Offered setups per second.
    pub offered_per_s: u64,
    /// Setups completed (invite received) per second.
    pub achieved_per_s: f64,
    /// Setups measured.
    pub count: u64,
    /// Setup latency p50, ms.
    pub p50_ms: f64,
    /// p99, ms.
    pub p99_ms: f64,
    /// Largest, ms.
    pub max_ms: f64,
    /// Ticks with no idle pair to start a call on.
    pub skipped: u64,
}

/// A caller; its callee runs in its own task.
struct Pair {
    caller: AsyncClient,
    /// Where the caller's requests go.
    uplink: String,
}

fn options(id: String, port: u16) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(60));
    o.set_clean_session(false);
    o
}

async fn connected(ev: &mut EventLoop) -> anyhow::Result<()> {
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) =
            ev.poll().await.context("connecting a simulated device")?
        {
            return Ok(());
        }
    }
}

fn envelope(kind: &str, body: Value) -> Vec<u8> {
    let now = crate::controller::now_ms();
    let id = crate::controller::new_id();
    serde_json::to_vec(
        &json!({"v": 1, "id": id, "req": id, "type": kind, "ts": now, "ttl": 30000, "body": body}),
    )
    .unwrap_or_default()
}

/// Connects the devices; invites reach `tx` as (pair index, call id).
async fn connect(
    args: &CallArgs,
    port: u16,
    tx: mpsc::UnboundedSender<(usize, String)>,
) -> anyhow::Result<Vec<Pair>> {
    let pairs = args.devices / 2;
    let mut out = Vec::with_capacity(pairs);
    for i in 0..pairs {
        let callee_id = format!("GID_demo@@@bench-callee-{i}");
        let (callee, mut cev) = AsyncClient::new(options(callee_id.clone(), port), 64);
        connected(&mut cev).await?;
        let tx = tx.clone();
        let (synced_tx, synced) = tokio::sync::oneshot::channel();
        let mut synced_tx = Some(synced_tx);
        if args.standard_broker {
            // A standard broker delivers only what a device subscribed to,
            // and the controller knows a device once it sent a request.
            callee
                .subscribe(format!("rtc_down/p2p/{callee_id}"), QoS::AtLeastOnce)
                .await?;
            let uplink = format!("rtc_up/call/{callee_id}");
            callee
                .publish(uplink, QoS::AtLeastOnce, false, envelope("sync", json!({})))
                .await?;
        }
        tokio::spawn(async move {
            let _keep = callee;
            while let Ok(ev) = cev.poll().await {
                if let Event::Incoming(Packet::Publish(p)) = ev {
                    let Ok(v) = serde_json::from_slice::<Value>(&p.payload) else {
                        continue;
                    };
                    if v["type"] == "result" {
                        if let Some(t) = synced_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    if v["type"] == "call.invite" {
                        let id = v["body"]["call"]["call_id"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string();
                        let _ = tx.send((i, id));
                    }
                }
            }
        });
        if args.standard_broker {
            tokio::time::timeout(Duration::from_secs(30), synced)
                .await
                .context("a simulated device's sync was not answered")?
                .ok();
        }
        let caller_id = format!("GID_demo@@@bench-caller-{i}");
        let (caller, mut rev) = AsyncClient::new(options(caller_id.clone(), port), 64);
        connected(&mut rev).await?;
        tokio::spawn(async move { while rev.poll().await.is_ok() {} });
        let uplink = if args.standard_broker {
            format!("rtc_up/call/{caller_id}")
        } else {
            "rtc_up/call".to_string()
        };
        out.push(Pair { caller, uplink });
    }
    Ok(out)
}

/// Offers `rate` setups per second for `duration` after `warmup`.
async fn run_rate(
    pairs: &[Pair],
    invites: &mut mpsc::UnboundedReceiver<(usize, String)>,
    rate: u64,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<SetupFigures> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let skipped = AtomicU64::new(0);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + duration;
    let mut next = 0usize;
    let mut count = 0u64;
    let mut pending: HashMap<usize, Instant> = HashMap::new();
    while Instant::now() < end {
        tokio::select! {
            _ = tick.tick() => {
                let i = (0..pairs.len()).map(|k| (next + k) % pairs.len()).find(|k| !pending.contains_key(k));
                let Some(i) = i else { skipped.fetch_add(1, Ordering::Relaxed); continue };
                next = i + 1;
                pending.insert(i, Instant::now());
                let body = json!({ "to": format!("bench-callee-{i}") });
                pairs[i].caller.publish(pairs[i].uplink.clone(), QoS::AtLeastOnce, false, envelope("call.start", body)).await?;
            }
            Some((i, call_id)) = invites.recv() => {
                if let Some(sent) = pending.remove(&i) {
                    if sent >= measure_from {
                        let _ = hist.record(sent.elapsed().as_micros().max(1) as u64);
                        count += 1;
                    }
                }
                // Free the pair: the caller cancels (the callee's devices stop ringing).
                let body = json!({ "call_id": call_id });
                pairs[i].caller.publish(pairs[i].uplink.clone(), QoS::AtLeastOnce, false, envelope("call.cancel", body)).await?;
            }
        }
    }
    let ms = |v: u64| v as f64 / 1000.0;
    Ok(SetupFigures {
        offered_per_s: rate,
        achieved_per_s: count as f64 / duration.as_secs_f64(),
        count,
        p50_ms: ms(hist.value_at_quantile(0.5)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
        skipped: skipped.load(Ordering::Relaxed),
    })
}

/// Runs the call-setup benchmark and prints its figures as JSON lines.
pub async fn run(args: CallArgs) -> anyhow::Result<()> {
    let (_appliance, port) = match args.port {
        Some(p) => (None, p),
        None => {
            let a = super::compare::start_mqrtc().await?;
            let p = a.addr.port();
            (Some(a), p)
        }
    };
    if args.devices < 2 {
        bail!("--devices must be at least 2");
    }
    let (tx, mut invites) = mpsc::unbounded_channel();
    eprintln!("connecting {} simulated devices", args.devices);
    let pairs = connect(&args, port, tx).await?;
    let warmup = Duration::from_secs(2);
    let duration = Duration::from_secs(args.duration);
    let f = run_rate(&pairs, &mut invites, args.rate, warmup, duration).await?;
    println!("{}", serde_json::to_string(&f)?);
    if args.find_max {
        let mut best = None;
        for rate in [250u64, 500, 750, 1000, 1500, 2000, 3000, 4000] {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let f = run_rate(&pairs, &mut invites, rate, warmup, duration).await?;
            println!("{}", serde_json::to_string(&f)?);
            if f.achieved_per_s < rate as f64 * 0.95 || f.p99_ms > 100.0 {
                break;
            }
            best = Some(f);
        }
        println!(
            "{}",
            json!({ "max_sustained_per_s": best.map(|b| b.offered_per_s) })
        );
    }
    Ok(())
}
