//! `mqrtc bench console`: time to answer console pages with many connected
//! devices and a long call history. Seeds a temp data dir with calls, starts
//! `mqrtc serve --dev` on it as a child process (its own open-file budget),
//! holds idle MQTT connections to it, and times each page over HTTP/1.1 on
//! loopback (`--dev` opens the console without sign-in for loopback peers).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;

use hyper::Method;

use super::idle::rss_kib;
use crate::calls::{Call, CallState, EndReason, Kind, Media, Millis, PState, Participant};
use crate::controller::protocol::Envelope;
use crate::probe;
use crate::store::{Batch, Store, TimelineEntry, DEMO_INSTANCE};

/// Flags of `mqrtc bench console`.
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Idle MQTT connections held open while the pages are timed.
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// Calls written into the history before the appliance starts.
    #[arg(long, default_value_t = 100_000)]
    pub calls: usize,
    /// Timed requests per page.
    #[arg(long, default_value_t = 50)]
    pub runs: usize,
    /// Untimed requests per page before those.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
}

/// Timing of one page: path, sorted milliseconds, page size.
struct PageFigures(String, Vec<f64>, usize);

impl PageFigures {
    /// The `q` quantile (nearest rank), ms.
    fn at(&self, q: f64) -> f64 {
        let rank = (q * self.1.len() as f64).ceil() as usize;
        self.1
            .get(rank.saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    }
}

const USERS: u64 = 1000;
const LIVE: usize = 10;
const HISTORY_DAYS: i64 = 7;
const BATCH: usize = 5000;
const DAY: Millis = 24 * 3600 * 1000;
const WAIT: Duration = Duration::from_secs(60);

/// splitmix64: a fixed pseudo-random value per index, so reruns see the same history.
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn device(user: &str) -> String {
    format!("GID_demo@@@{user}")
}

/// A timeline entry carrying an envelope as the controller logs it.
fn entry(at: Millis, dir: &str, user: &str, kind: &str, body: Value) -> TimelineEntry {
    let id = ulid::Ulid::from_parts(at as u64, rand::random()).to_string();
    let env = Envelope {
        v: 1,
        req: (dir == "in").then(|| id.clone()),
        id,
        kind: kind.into(),
        ts: at,
        ttl: Some(30_000),
        from: None,
        body,
    };
    let message = serde_json::to_value(env).unwrap_or_default();
    let (direction, client_id, kind) = (dir.into(), device(user), kind.into());
    TimelineEntry {
        at,
        direction,
        client_id,
        kind,
        message,
    }
}

/// Call number `i` of `total` (the last `LIVE` ringing or active), and its timeline;
/// `rich` makes it a meeting with every message a real one logs.
fn seed_call(i: usize, total: usize, now: Millis, rich: bool) -> (Call, Vec<TimelineEntry>) {
    let r = mix(i as u64);
    let live = i + LIVE >= total;
    let span = HISTORY_DAYS * DAY;
    let t = match live {
        true => now - (total - i) as i64 * 10_000,
        false => now - span + span / total as i64 * i as i64,
    };
    let h = r % USERS;
    let o1 = (h + 1 + (r >> 20) % (USERS / 2)) % USERS;
    let o2 = (o1 + 1 + (r >> 40) % (USERS / 2 - 1)) % USERS;
    let meeting = rich || r.is_multiple_of(4);
    let host = format!("u{h}");
    let others: Vec<String> = [o1, o2][..1 + usize::from(meeting)]
        .iter()
        .map(|o| format!("u{o}"))
        .collect();
    let id = ulid::Ulid::from_parts(t as u64, u128::from(r)).to_string();
    let outcome = if rich { 0 } else { (r >> 8) % 20 };
    let state = match (live, outcome) {
        (true, _) if i.is_multiple_of(2) => CallState::Ringing,
        (true, _) => CallState::Active,
        (false, 0..=13) if meeting && outcome.is_multiple_of(3) => {
            CallState::Ended(EndReason::EndedByHost)
        }
        (false, 0..=13) => CallState::Ended(EndReason::Hangup),
        (false, 14 | 15) => CallState::Ended(EndReason::Cancelled),
        (false, 16 | 17) => CallState::Ended(EndReason::NoAnswer),
        (false, 18) => CallState::Ended(EndReason::Declined),
        (false, _) => CallState::Ended(EndReason::Busy),
    };
    let answered = matches!(
        state,
        CallState::Active | CallState::Ended(EndReason::Hangup | EndReason::EndedByHost)
    );
    let long = 5_000 + (r >> 12) % if answered { 1_200_000 } else { 25_000 };
    let ended_at = (!live).then(|| (t + long as i64).min(now - 1000));
    let joined = answered.then_some(t + 3000);
    let part = |state, device, ring_until| Participant {
        state,
        invited_at: t,
        ring_until,
        device,
        joined_at: joined,
        audio_muted: false,
        video_muted: false,
    };
    let host_state = match (live, answered) {
        (false, _) => PState::Left,
        (true, true) => PState::Joined,
        (true, false) => PState::Accepted,
    };
    let invitee_state = match state {
        CallState::Ringing => PState::Ringing,
        CallState::Active => PState::Joined,
        CallState::Ended(EndReason::NoAnswer | EndReason::Cancelled) => PState::NoAnswer,
        CallState::Ended(EndReason::Declined) => PState::Declined,
        CallState::Ended(EndReason::Busy) => PState::Busy,
        CallState::Ended(_) => PState::Left,
    };
    let mut participants = BTreeMap::new();
    participants.insert(host.clone(), part(host_state, Some(device(&host)), None));
    for o in &others {
        let d = answered.then(|| device(o));
        participants.insert(o.clone(), part(invitee_state, d, Some(t + 30_000)));
    }
    let call = Call {
        channel: format!("ch{id}"),
        id,
        instance: DEMO_INSTANCE.into(),
        kind: if meeting { Kind::Meeting } else { Kind::Call },
        media: [Media::Audio, Media::Video][usize::from(r & 2 == 0)],
        title: meeting.then(|| format!("Meeting {i}")),
        host,
        state,
        participants,
        created_at: t,
        ended_at,
        max_end_at: t + 4 * 3600 * 1000,
    };
    let tl = timeline(&call, &others, rich);
    (call, tl)
}

/// About four messages per call; every message of a meeting if `rich`.
fn timeline(c: &Call, others: &[String], rich: bool) -> Vec<TimelineEntry> {
    let (t, id, host) = (c.created_at, json!({ "call_id": c.id }), c.host.as_str());
    let mut tl = Vec::new();
    let mut ev = |at: Millis, dir: &str, who: &str, kind: &str, body: Value| {
        tl.push(entry(at, dir, who, kind, body))
    };
    let start = json!({ "to": others, "kind": c.kind, "media": c.media });
    ev(t, "in", host, "call.start", start);
    let invited = if rich { others.len() } else { 1 };
    for (k, o) in others.iter().enumerate().take(invited) {
        let invite = json!({ "call": id, "from": host });
        ev(t + 5 + k as i64, "out", o, "call.invite", invite);
    }
    if rich {
        for (k, o) in others.iter().enumerate() {
            ev(t + 400 + k as i64, "in", o, "call.ringing", id.clone());
        }
        for (k, u) in std::iter::once(host)
            .chain(others.iter().map(|o| o.as_str()))
            .enumerate()
        {
            let at = t + 3000 + k as i64 * 700;
            let rtc = json!({ "channel": c.channel, "user": u });
            ev(at, "in", u, "call.accept", id.clone());
            ev(at + 500, "rtc", u, "rtc.joined", rtc);
            ev(at + 600, "out", host, "call.joined", json!({ "user": u }));
        }
    }
    let end = c.ended_at.unwrap_or(t + 3000);
    match c.state {
        CallState::Ringing => {}
        CallState::Active => ev(end, "in", &others[0], "call.accept", id.clone()),
        CallState::Ended(EndReason::Hangup | EndReason::EndedByHost) => {
            ev(end, "in", host, "call.leave", id.clone())
        }
        CallState::Ended(EndReason::Cancelled) => ev(end, "in", host, "call.cancel", id.clone()),
        CallState::Ended(EndReason::Declined) => {
            ev(end, "in", &others[0], "call.decline", id.clone())
        }
        CallState::Ended(_) => ev(end, "out", host, "call.ended", id.clone()),
    }
    if let Some(at) = c.ended_at {
        let ended = json!({ "call_id": c.id, "state": c.state });
        ev(at + 5, "out", &others[0], "call.ended", ended);
    }
    tl
}

/// Writes `total` calls into the data dir's database; returns the id of
/// the call with the full timeline (the one whose page is timed).
fn seed(dir: &Path, total: usize) -> anyhow::Result<String> {
    let store = Store::open_dir(dir)?;
    let now = crate::controller::now_ms();
    let rich = total / 2;
    let mut rich_id = String::new();
    let mut start = 0;
    while start < total {
        let mut b = Batch::default();
        for i in start..(start + BATCH).min(total) {
            let (call, tl) = seed_call(i, total, now, i == rich);
            if i == rich {
                rich_id = call.id.clone();
            }
            b.events
                .extend(tl.into_iter().map(|e| (call.id.clone(), e)));
            b.calls.push(call);
        }
        store.apply_batch(&b)?;
        start += BATCH;
    }
    store.checkpoint()?;
    Ok(rich_id)
}

/// The appliance under test: killed, and its data dir removed, on drop.
struct Appliance {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mqrtc serve --dev` on the seeded dir with every port 0 and waits
/// for `ports.json` (written once MQTT and HTTP answer).
async fn start(dir: tempfile::TempDir) -> anyhow::Result<(Appliance, crate::http::PortsFile)> {
    let log = std::fs::File::create(dir.path().join("mqrtc.log"))?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--dev", "--data-dir"])
        .arg(dir.path())
        .args(["--mqtt-port", "0", "--mqtts-port", "0", "--ws-port", "0"])
        .args(["--wss-port", "0", "--http-port", "0", "--https-port", "0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting mqrtc serve")?;
    let mut a = Appliance { child, dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(p) = crate::app::read_ports(a.dir.path()) {
            return Ok((a, p));
        }
        if let Some(status) = a.child.try_wait()? {
            let log = std::fs::read_to_string(a.dir.path().join("mqrtc.log")).unwrap_or_default();
            bail!("mqrtc serve exited ({status}) before it was ready:\n{log}");
        }
        if Instant::now() > deadline {
            bail!("mqrtc serve wrote no ports.json in 120 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens `count` connections `GID_demo@@@dev{n}` and waits until `/healthz` counts them.
async fn hold(mqtt: SocketAddr, http: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let opened: Vec<anyhow::Result<TcpStream>> = stream::iter(0..count)
        .map(|n| super::idle::open_one(mqtt, format!("GID_demo@@@dev{n}")))
        .buffer_unordered(200)
        .collect()
        .await;
    let held = opened.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = probe::http_get(http, "/healthz", WAIT).await?;
        let seen = serde_json::from_str::<crate::http::Health>(&body)
            .map(|h| h.connections)
            .unwrap_or(-1);
        if status == 200 && seen >= count as i64 {
            return Ok(held);
        }
        if Instant::now() > deadline {
            bail!("the appliance counts {seen} connections of {count} after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Requests `path` `warmup + runs` times; `expect` must be in the page.
async fn time_page(
    http: SocketAddr,
    path: &str,
    expect: &str,
    a: &ConsoleArgs,
) -> anyhow::Result<PageFigures> {
    let mut ms = Vec::with_capacity(a.runs);
    let mut bytes = 0;
    for k in 0..a.warmup + a.runs {
        let t = Instant::now();
        let got = probe::http_request(http, Method::GET, path, None, WAIT).await;
        let (status, body) = got.with_context(|| format!("GET {path}"))?;
        let took = t.elapsed().as_secs_f64() * 1000.0;
        if status != 200 {
            bail!("GET {path}: status {status}");
        }
        if k == 0 && !String::from_utf8_lossy(&body).contains(expect) {
            bail!("GET {path}: the page does not show {expect:?}");
        }
        bytes = body.len();
        if k >= a.warmup {
            ms.push(took);
        }
    }
    ms.sort_by(|x, y| x.total_cmp(y));
    Ok(PageFigures(path.into(), ms, bytes))
}

/// Runs the console benchmark and prints a Markdown table and the figures as JSON.
pub async fn run(a: ConsoleArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let t = Instant::now();
    let path = dir.path().to_path_buf();
    let total = a.calls.max(LIVE + 1);
    let call_id = tokio::task::spawn_blocking(move || seed(&path, total)).await??;
    eprintln!("seeded {total} calls in {:.1} s", t.elapsed().as_secs_f64());
    let (app, ports) = start(dir).await?;
    let pid = app.child.id();
    let mqtt = SocketAddr::from(([127, 0, 0, 1], ports.mqtt));
    let http = SocketAddr::from(([127, 0, 0, 1], ports.http));
    let rss_started = rss_kib(pid)?;
    let t = Instant::now();
    let held = hold(mqtt, http, a.connections).await?;
    eprintln!(
        "{} connections held after {:.1} s",
        held.len(),
        t.elapsed().as_secs_f64()
    );
    let rss_connected = rss_kib(pid)?;
    let last = a.connections.saturating_sub(1);
    let dev = |d: &str| {
        if a.connections == 0 {
            String::new()
        } else {
            format!("GID_demo@@@{d}")
        }
    };
    let pages = [
        (
            "/console".to_string(),
            format!("id=\"v-ringing\">{}<", LIVE / 2),
        ),
        ("/console/devices".into(), dev("dev0")),
        (
            format!("/console/devices?device=dev{last}"),
            dev(&format!("dev{last}")),
        ),
        ("/console/calls".into(), "<a href=\"/console/calls/".into()),
        ("/console/calls?user=u123".into(), "u123".into()),
        ("/console/calls?user=nobody".into(), "nobody".into()),
        (format!("/console/calls/{call_id}"), "rtc.joined".into()),
    ];
    let mut figures = Vec::new();
    for (path, expect) in &pages {
        figures.push(time_page(http, path, expect, &a).await?);
    }
    let rss_after = rss_kib(pid)?;
    drop(held);
    drop(app);
    println!(
        "{} idle connections, {total} calls; {} timed GETs per page after {} warm-ups, \
         each on a new loopback TCP connection.\n",
        a.connections, a.runs, a.warmup
    );
    println!("| page | p50 ms | p95 ms | max ms | bytes |\n|---|---|---|---|---|");
    for f in &figures {
        let (p50, p95, max) = (f.at(0.5), f.at(0.95), f.at(1.0));
        println!("| `{}` | {p50:.1} | {p95:.1} | {max:.1} | {} |", f.0, f.2);
    }
    let mib = |k: u64| k as f64 / 1024.0;
    println!(
        "\nAppliance RSS: {:.0} MiB started, {:.0} MiB with the connections, {:.0} MiB after the pages.",
        mib(rss_started),
        mib(rss_connected),
        mib(rss_after)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn seeds_calls_with_users_and_timelines() {
        let now = crate::controller::now_ms();
        for i in 0..200 {
            let (c, tl) = super::seed_call(i, 200, now, false);
            assert!((2..=3).contains(&c.participants.len()) && tl.len() >= 2);
            assert_eq!(c.ended_at.is_none(), i + super::LIVE >= 200);
        }
        let dir = tempfile::tempdir().unwrap();
        let id = super::seed(dir.path(), 300).unwrap();
        let s = crate::store::Store::open_dir(dir.path()).unwrap();
        assert!(s.stored_call(&id).unwrap().is_some());
        assert!(s.timeline(&id).unwrap().len() > 10);
        assert_eq!(s.call_counts(now).unwrap().total, 300);
    }
}
