//! `/metrics`: the text passes Debian's `promtool check metrics`, a real
//! Prometheus server (Debian's `prometheus`, installed by the README's
//! install step) scrapes a running appliance and answers a query on a
//! counter and on a histogram, and a scrape from another address needs an
//! API key.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqrtc::calls::Media;
use serde_json::Value;

use crate::common::http::{request, request_at};
use crate::common::sdk::{device, invited};
use crate::common::{run, text, Appliance};

/// Readiness bound for the scrapes and the Prometheus server.
const WAIT: Duration = Duration::from_secs(60);

/// The value of the first sample line of `text` that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

struct Prometheus(Child, tempfile::TempDir, u16);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Prometheus {
    fn scraping(target: u16) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = crate::common::free_port();
        let conf = dir.path().join("prometheus.yml");
        std::fs::write(
            &conf,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mqrtc\n    static_configs:\n      - targets: ['127.0.0.1:{target}']\n"
            ),
        )
        .expect("prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("prometheus.log")).expect("log file"),
            ))
            .spawn()
            .expect("prometheus (scripts/install-test-deps.sh installs Debian's package)");
        Prometheus(child, dir, port)
    }

    /// The first result of an instant query, once it has one.
    fn value_of(&self, query: &str) -> f64 {
        let deadline = Instant::now() + WAIT;
        let path = format!("/api/v1/query?query={}", url_encode(query));
        loop {
            let (status, body) = if std::net::TcpStream::connect(("127.0.0.1", self.2)).is_ok() {
                request(self.2, "GET", &path, &[], None)
            } else {
                (0, String::new())
            };
            let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let found = v["data"]["result"][0]["value"][1]
                .as_str()
                .and_then(|s| s.parse::<f64>().ok());
            if let (200, Some(x)) = (status, found) {
                return x;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus had no value for {query} within {WAIT:?}: {status} {body}\nlog: {}",
                std::fs::read_to_string(self.1.path().join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_calls_connections_and_the_process() {
    let a = Appliance::start(&["--dev"]);
    let (alice, _alice_ev) = device(a.ports.mqtt, "GID_demo@@@alice").await;
    let (_bob, mut bob_ev) = device(a.ports.mqtt, "GID_demo@@@bob").await;
    let call = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call.start");
    invited(&mut bob_ev, None).await;

    let (status, body) = request(a.ports.http, "GET", "/metrics", &[], None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        sample(&body, "mqrtc_call_setups_total"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(
            &body,
            r#"mqrtc_controller_requests_total{result="ok",type="call.start"}"#
        ),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"mqrtc_calls{state="ringing"}"#),
        Some(1.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "mqrtc_call_setup_seconds_count"),
        Some(1.0),
        "{body}"
    );
    let open: f64 = body
        .lines()
        .filter(|l| l.starts_with("mqrtc_connections{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(open, 2.0, "alice and bob: {body}");
    assert!(
        sample(&body, "process_resident_memory_bytes").unwrap_or(0.0) > 0.0,
        "{body}"
    );
    drop(call);

    // The text format as Prometheus's own linter reads it.
    let mut lint = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package)");
    lint.stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = lint.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}",
        text(&out)
    );

    let p = Prometheus::scraping(a.ports.http);
    let setups = p.value_of("mqrtc_call_setups_total");
    assert_eq!(setups, 1.0);
    let p99 = p.value_of("histogram_quantile(0.99, sum by (le) (mqrtc_call_setup_seconds_bucket))");
    assert!(p99 > 0.0 && p99 <= 5.0, "setup p99 {p99} s");
    let up = p.value_of(r#"up{job="mqrtc"}"#);
    assert_eq!(up, 1.0);
}

/// The first IPv4 address of this machine that is not loopback.
fn outside_address() -> Option<IpAddr> {
    if_addrs::get_if_addrs()
        .ok()?
        .into_iter()
        .map(|i| i.ip())
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
}

#[test]
fn a_scrape_from_another_address_needs_an_api_key() {
    let Some(ip) = outside_address() else {
        eprintln!("skipped: this machine has no address other than loopback");
        return;
    };
    let a = Appliance::start(&["--all-interfaces"]);
    let at = SocketAddr::new(ip, a.ports.http);
    let (status, body) = request_at(at, "GET", "/metrics", &[], None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("API key"), "{body}");
    let dir = a.path().to_str().expect("utf-8 path").to_string();
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "admin",
            "api-key-create",
            "prometheus",
            "--data-dir",
            &dir,
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let key: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let key = key["key"].as_str().expect("key").to_string();
    let auth = format!("Bearer {key}");
    let (status, body) = request_at(at, "GET", "/metrics", &[("Authorization", &auth)], None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("mqrtc_connections{"), "{body}");
}
