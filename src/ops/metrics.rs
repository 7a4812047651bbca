//! `/metrics`: the process's live instruments (`crate::metrics`) plus what
//! is read at scrape time (broker counters and connections, calls, RTC
//! channels), in the Prometheus text format.

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use super::{Ops, OpsError};
use crate::controller::now_ms;

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One scrape's registry of figures read now.
struct Now(Registry);

impl Now {
    fn gauge(&self, name: &str, help: &str, v: i64) -> prometheus::Result<()> {
        let g = IntGauge::new(name, help)?;
        g.set(v);
        self.0.register(Box::new(g))
    }

    fn gauges(
        &self,
        name: &str,
        help: &str,
        label: &[&str],
        rows: &[(&[&str], i64)],
    ) -> prometheus::Result<()> {
        let g = IntGaugeVec::new(Opts::new(name, help), label)?;
        for (values, v) in rows {
            g.with_label_values(values).set(*v);
        }
        self.0.register(Box::new(g))
    }

    /// A counter whose running total is kept elsewhere (the broker's atomics).
    fn counters(
        &self,
        name: &str,
        help: &str,
        label: &str,
        rows: &[(&str, u64)],
    ) -> prometheus::Result<()> {
        let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
        for (value, n) in rows {
            c.with_label_values(&[value]).inc_by(*n);
        }
        self.0.register(Box::new(c))
    }

    fn counter(&self, name: &str, help: &str, n: u64) -> prometheus::Result<()> {
        let c = prometheus::IntCounter::new(name, help)?;
        c.inc_by(n);
        self.0.register(Box::new(c))
    }
}

impl Ops {
    /// The whole scrape.
    pub async fn metrics_text(&self) -> Result<String, OpsError> {
        let now = now_ms();
        let calls = self.db(move |s| s.call_counts(now)).await?;
        let census = self.broker.census().await;
        let stats = self.broker.stats();
        let channels = self.rtc.channels();
        let members: usize = channels.iter().map(|c| c.members.len()).sum();
        let internal = |e: prometheus::Error| OpsError::Internal(e.to_string());

        let families = scrape(
            &calls,
            &census,
            &stats,
            channels.len(),
            members,
            self.controller.as_deref(),
        )
        .map_err(internal)?;
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(internal)?;
        String::from_utf8(out).map_err(|e| OpsError::Internal(e.to_string()))
    }
}

/// The protocol level as a label: `3`, `4` (3.1.1) or `5`.
fn protocol_label(level: u8) -> &'static str {
    match level {
        3 => "3",
        4 => "4",
        5 => "5",
        _ => "other",
    }
}

/// The process's instruments and the figures read now, sorted by name.
fn scrape(
    calls: &crate::store::CallCounts,
    census: &crate::broker::Census,
    stats: &crate::broker::StatsSnapshot,
    channels: usize,
    members: usize,
    controller: Option<&crate::controller::Health>,
) -> prometheus::Result<Vec<prometheus::proto::MetricFamily>> {
    let reg = Now(Registry::new());
    // Every transport with 3.1.1 and 5 is listed even at 0, for dashboards.
    let mut open: std::collections::BTreeMap<(&str, &str), i64> = ["mqtt", "mqtts", "ws", "wss"]
        .iter()
        .flat_map(|t| [((*t, "4"), 0), ((*t, "5"), 0)])
        .collect();
    for (transport, protocol, n) in &census.connections {
        open.insert((transport, protocol_label(*protocol)), *n as i64);
    }
    let labels: Vec<[&str; 2]> = open.keys().map(|(t, p)| [*t, *p]).collect();
    let rows: Vec<(&[&str], i64)> = labels
        .iter()
        .zip(open.values())
        .map(|(l, n)| (&l[..], *n))
        .collect();
    reg.gauges(
        "mqrtc_connections",
        "Open MQTT connections by transport (mqtt, mqtts, ws, wss) and protocol level (3, 4 = 3.1.1, 5).",
        &["transport", "protocol"],
        &rows,
    )?;
    reg.gauge(
        "mqrtc_sessions_offline",
        "Sessions kept for devices that are not connected.",
        census.offline_sessions as i64,
    )?;
    reg.gauge(
        "mqrtc_messages_queued_offline",
        "Messages waiting for devices that are not connected.",
        census.queued_offline as i64,
    )?;
    reg.gauge(
        "mqrtc_retained_messages",
        "Retained messages.",
        census.retained as i64,
    )?;
    reg.gauge(
        "mqrtc_session_writes_pending",
        "Messages for offline devices not yet on disk.",
        stats.session_writes_pending as i64,
    )?;
    reg.counter(
        "mqrtc_messages_received_total",
        "Messages published into the broker (clients, wills, the controller).",
        stats.messages_in,
    )?;
    reg.counter(
        "mqrtc_messages_sent_total",
        "Messages delivered to clients.",
        stats.messages_out,
    )?;
    reg.counter(
        "mqrtc_payload_received_bytes_total",
        "Payload bytes of the messages published into the broker.",
        stats.bytes_in,
    )?;
    reg.counter(
        "mqrtc_payload_sent_bytes_total",
        "Payload bytes of the messages delivered to clients.",
        stats.bytes_out,
    )?;
    reg.counter("mqrtc_connects_total", "Accepted CONNECTs.", stats.connects)?;
    reg.counters(
        "mqrtc_refusals_total",
        "What the broker refused, by reason (docs/refusals.md).",
        "reason",
        &[
            ("auth", stats.auth_failures),
            ("connection_limit", stats.connection_limit_refusals),
            ("publish_rate", stats.rate_refusals),
            ("subscribe_acl", stats.subscribe_refusals),
            ("publish_acl", stats.publish_refusals),
            ("will", stats.will_refusals),
            ("controller_busy", stats.uplinks_busy),
            ("revoked", stats.revoked_connections),
        ],
    )?;
    reg.counters(
        "mqrtc_messages_dropped_total",
        "Messages not delivered, by reason.",
        "reason",
        &[
            ("queue_full", stats.queue_full_drops),
            ("expired", stats.expired_drops),
            ("acl", stats.acl_drops),
            ("other", stats.other_drops),
        ],
    )?;
    reg.gauges(
        "mqrtc_calls",
        "Calls now by state (active: two or more people in; ringing: nobody answered yet).",
        &["state"],
        &[(&["active"], calls.active), (&["ringing"], calls.ringing)],
    )?;
    reg.gauge(
        "mqrtc_rtc_channels",
        "Channels of the mock RTC service.",
        channels as i64,
    )?;
    reg.gauge(
        "mqrtc_rtc_members",
        "Members in the mock RTC service's channels.",
        members as i64,
    )?;
    if let Some(h) = controller {
        let up = i64::from(h.state() == "ok");
        reg.gauge(
            "mqrtc_controller_up",
            "1 while the controller runs, 0 while it restarts or is down.",
            up,
        )?;
        reg.counter(
            "mqrtc_controller_restarts_total",
            "Controller restarts after a failed commit or a panic.",
            h.restarts(),
        )?;
    }

    let mut families = crate::metrics::get().gather();
    families.extend(reg.0.gather());
    families.sort_by(|a, b| a.name().cmp(b.name()));
    Ok(families)
}
