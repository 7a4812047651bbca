//! Signed webhooks, delivered at least once: a receiver that refuses the
//! first attempts, is down while calls happen and while the appliance is
//! killed with kill -9, still gets every event, each with a valid Standard
//! Webhooks signature (checked here with HMAC-SHA256 directly), and a
//! repeated delivery carries the same id and body.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use mqrtc::calls::Media;
use serde_json::Value;
use sha2::Sha256;

use crate::common::http::request;
use crate::common::sdk::{device, invited};
use crate::common::{run, text, Appliance};

const WAIT: Duration = Duration::from_secs(60);

/// One request the receiver got: headers (lower-case), body, status answered.
type Seen = (HashMap<String, String>, String, u16);

/// A webhook endpoint on a fixed port that can fail and go down.
pub(crate) struct Receiver {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    fail_next: Arc<AtomicUsize>,
    up: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    pub(crate) fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let mut r = Receiver {
            port,
            seen: Arc::default(),
            fail_next: Arc::default(),
            up: Arc::default(),
            thread: None,
        };
        r.serve(listener);
        r
    }

    fn serve(&mut self, listener: TcpListener) {
        self.up.store(true, Ordering::SeqCst);
        let (seen, fail, up) = (self.seen.clone(), self.fail_next.clone(), self.up.clone());
        self.thread = Some(std::thread::spawn(move || {
            for s in listener.incoming() {
                if !up.load(Ordering::SeqCst) {
                    return; // dropping the listener: the port refuses connections
                }
                let Ok(mut s) = s else { continue };
                let mut r = BufReader::new(s.try_clone().expect("clone"));
                let mut headers = HashMap::new();
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.trim().split_once(':') {
                        headers.insert(k.trim().to_lowercase(), v.trim().to_string());
                    }
                }
                let len = headers
                    .get("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0; len];
                let _ = r.read_exact(&mut body);
                let failing = fail
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                let status = if failing { 500 } else { 204 };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                seen.lock().unwrap().push((
                    headers,
                    String::from_utf8_lossy(&body).into_owned(),
                    status,
                ));
            }
        }));
    }

    fn down(&mut self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            t.join().expect("receiver thread");
        }
    }

    fn back_up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the same port");
        self.serve(listener);
    }

    /// Bodies accepted (2xx) by webhook-id.
    pub(crate) fn accepted(&self) -> HashMap<String, Vec<Seen>> {
        let mut out: HashMap<String, Vec<Seen>> = HashMap::new();
        for s in self.seen.lock().unwrap().iter().filter(|s| s.2 == 204) {
            out.entry(s.0.get("webhook-id").cloned().unwrap_or_default())
                .or_default()
                .push(s.clone());
        }
        out
    }
}

/// Checks a delivery's signature the way a receiver would.
pub(crate) fn signed_right(secret: &str, s: &Seen) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret");
    let (id, ts) = (&s.0["webhook-id"], &s.0["webhook-timestamp"]);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{ts}.{}", s.1).as_bytes());
    let expected = format!("v1,{}", b64.encode(mac.finalize().into_bytes()));
    s.0["webhook-signature"]
        .split(' ')
        .any(|sig| sig == expected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_through_failures_downtime_and_kill_9() {
    let mut rx = Receiver::start();
    rx.fail_next.store(2, Ordering::SeqCst);
    let conf = tempfile::NamedTempFile::new().expect("config");
    std::fs::write(
        conf.path(),
        "[webhooks]\nretry_base_ms = 200\nretry_max_secs = 2\n",
    )
    .expect("config");
    let a = Appliance::start(&["--dev", "--config", conf.path().to_str().expect("utf-8")]);
    let data = a.path().to_str().expect("utf-8").to_string();
    let url = format!("http://127.0.0.1:{}/hooks", rx.port);
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "webhook",
            "set",
            "--instance",
            "mqrtc-demo",
            "--url",
            &url,
            "--data-dir",
            &data,
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let secret = serde_json::from_slice::<Value>(&o.stdout).expect("JSON")["secret"]
        .as_str()
        .expect("secret")
        .to_string();

    let (alice, _alice_ev) = device(a.ports.mqtt, "GID_demo@@@alice").await;
    let (bob, mut bob_ev) = device(a.ports.mqtt, "GID_demo@@@bob").await;
    // Answered and hung up.
    let answered = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call.start")
        .call
        .call_id;
    invited(&mut bob_ev, Some(&answered)).await;
    bob.accept(&answered).await.expect("accept");
    alice.hangup(&answered).await.expect("hangup");
    // While the receiver is down: a call bob misses (cancelled).
    rx.down();
    let missed = alice
        .start_call(&["bob"], Media::Video)
        .await
        .expect("call.start")
        .call
        .call_id;
    invited(&mut bob_ev, Some(&missed)).await;
    alice.cancel(&missed).await.expect("cancel");
    // Committed before the kill: the appliance dies with these undelivered.
    let a = a.kill9_and_restart();
    rx.back_up();

    // Every event the appliance recorded ends up delivered.
    let deadline = Instant::now() + WAIT;
    let events = loop {
        let o = run(
            env!("CARGO_BIN_EXE_mqrtc"),
            &[
                "webhook",
                "deliveries",
                "--limit",
                "500",
                "--data-dir",
                &data,
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let all: Vec<Value> = serde_json::from_slice(&o.stdout).expect("JSON");
        if !all.is_empty() && all.iter().all(|d| d["state"] == "delivered") {
            break all;
        }
        assert!(
            Instant::now() < deadline,
            "not all delivered within {WAIT:?}: {all:#?}\n{}",
            a.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let got = rx.accepted();
    let of_type = |t: &str, call: &str| {
        events
            .iter()
            .filter(|e| e["type"] == t && e["call_id"] == call)
            .count()
    };
    assert_eq!(of_type("call.started", &answered), 1);
    assert_eq!(of_type("call.answered", &answered), 1);
    assert_eq!(of_type("call.ended", &answered), 1);
    assert_eq!(of_type("call.started", &missed), 1);
    assert_eq!(of_type("call.missed", &missed), 1);
    assert_eq!(of_type("call.ended", &missed), 1);
    assert!(
        events.iter().any(|e| e["type"] == "device.connected"),
        "{events:#?}"
    );
    for e in &events {
        let id = e["id"].as_str().expect("id");
        let copies = got
            .get(id)
            .unwrap_or_else(|| panic!("{id} ({}) never arrived", e["type"]));
        for c in copies {
            assert!(signed_right(&secret, c), "bad signature on {id}: {:?}", c.0);
            assert_eq!(c.1, copies[0].1, "a repeat of {id} changed its body");
            let body: Value = serde_json::from_str(&c.1).expect("JSON body");
            assert_eq!(body["type"], e["type"]);
        }
    }
    // The refusals and the downtime were retried, and every attempt recorded.
    let retried = events
        .iter()
        .filter(|e| e["attempts"].as_array().is_some_and(|a| a.len() > 1))
        .count();
    assert!(retried >= 1, "nothing needed a retry: {events:#?}");
    let ended: Value = serde_json::from_str(
        &got[events
            .iter()
            .find(|e| e["type"] == "call.ended" && e["call_id"] == answered.as_str())
            .expect("ended")["id"]
            .as_str()
            .expect("id")][0]
            .1,
    )
    .expect("JSON");
    assert_eq!(ended["data"]["reason"], "hangup", "{ended}");
    assert_eq!(ended["data"]["answered"], true, "{ended}");
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "webhook",
            "deliveries",
            "--call",
            &missed,
            "--data-dir",
            &data,
        ],
    );
    assert!(
        text(&o).contains("call.missed") && text(&o).contains("status="),
        "{}",
        text(&o)
    );
    // The call's page and the admin API show them too (--dev: loopback needs no sign-in).
    let (status, page) = request(
        a.ports.http,
        "GET",
        &format!("/console/calls/{missed}"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("id=\"webhooks\"")
            && page.contains("call.missed")
            && page.contains("HTTP 204"),
        "{page}"
    );
    let (status, body) = request(
        a.ports.http,
        "GET",
        &format!("/api/v1/calls/{missed}/webhooks"),
        &[],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let listed: Vec<Value> = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        listed.first().map(|d| d["type"].clone()),
        Some(Value::from("call.started")),
        "{body}"
    );
}
