//! The appliance's Prometheus instruments. Counters and histograms that
//! parts bump as things happen live here, in one registry for the process
//! (with the process collector); figures read at scrape time (connections,
//! calls, broker counters) are added by `ops::metrics` when `/metrics` is
//! asked for.

use std::sync::OnceLock;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Everything bumped as it happens.
pub struct Metrics {
    registry: Registry,
    /// Controller requests by `type` and `result` (`ok` or an error code).
    pub requests: IntCounterVec,
    /// Calls created.
    pub call_setups: IntCounter,
    /// From the broker receiving a `call.start` to its invitations being
    /// stored and handed to the broker.
    pub setup_seconds: Histogram,
    /// One SQLite transaction of the controller.
    pub commit_seconds: Histogram,
    /// Invitations that stopped ringing unanswered.
    pub ring_timeouts: IntCounter,
    /// Uplinks waiting for the controller.
    pub queue_depth: IntGauge,
    /// Mock RTC joins by `result` (`ok` or the refusal).
    pub rtc_joins: IntCounterVec,
}

/// Latency buckets in seconds: 0.5 ms to 5 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process's instruments.
pub fn get() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric name");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let counters = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name");
            let _ = registry.register(Box::new(c.clone()));
            c
        };
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
            let h = Histogram::with_opts(opts).expect("valid metric name");
            let _ = registry.register(Box::new(h.clone()));
            h
        };
        let queue_depth = IntGauge::new(
            "mqrtc_controller_queue_depth",
            "Uplinks waiting for the controller.",
        )
        .expect("valid metric name");
        let _ = registry.register(Box::new(queue_depth.clone()));
        #[cfg(target_os = "linux")]
        let _ = registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        Metrics {
            requests: counters(
                "mqrtc_controller_requests_total",
                "Controller requests by type and result (ok, or the error code sent back).",
                &["type", "result"],
            ),
            call_setups: counter("mqrtc_call_setups_total", "Calls created."),
            setup_seconds: histogram(
                "mqrtc_call_setup_seconds",
                "From the broker receiving call.start to the invitations stored and sent.",
            ),
            commit_seconds: histogram(
                "mqrtc_controller_commit_seconds",
                "One SQLite transaction of the controller (a group of inputs).",
            ),
            ring_timeouts: counter(
                "mqrtc_ring_timeouts_total",
                "Invitations that stopped ringing unanswered.",
            ),
            rtc_joins: counters(
                "mqrtc_rtc_joins_total",
                "Joins to the mock RTC service by result (ok, or the refusal).",
                &["result"],
            ),
            queue_depth,
            registry,
        }
    }

    /// The families of this registry, for the scrape.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }
}
