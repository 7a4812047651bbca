//! `mqrtc controller` behind Debian's mosquitto (MQTT 5, shared
//! subscriptions): the protocol scenarios of `calls.rs` with the same
//! paho-mqtt devices, SDK devices, and a controller killed with kill -9.

use std::sync::Arc;
use std::time::Duration;

use mqrtc::calls::{EndReason, Event as CallEvent, Media};
use mqrtc::client::{Client, Event, Events, Options};

use crate::common::postgres::Postgres;
use crate::common::{python, run, text, Appliance, Mosquitto};

/// What mosquitto can enforce of the appliance's rules: per-client topic
/// patterns (`docs/scale-out.md`). It cannot check the cloud logins.
const ACL: &str = include_str!("../../packaging/scale-out/mosquitto.acl");

struct Setup {
    mosquitto: Mosquitto,
    controller: Appliance,
    _postgres: Option<Postgres>,
}

/// A data dir with the demo tenant and a config for the broker at `url`,
/// the controller's state in `store` (empty: SQLite); invitations ring 2 s.
/// Returns the dir and the config file's path.
pub(crate) fn data_dir(url: &str, store: &str) -> (Arc<tempfile::TempDir>, String) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let d = dir.path().to_str().expect("utf-8 path");
    // With PostgreSQL, provisioning goes there (the data dir keeps the master key).
    let mut args = vec!["instance", "demo", "--data-dir", d];
    if !store.is_empty() {
        args.extend(["--store", store]);
    }
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), &args);
    assert!(o.status.success(), "mqrtc instance demo: {}", text(&o));
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[controller]\nring_timeout_secs = 2\n[rtc]\napp_key = \"shared-by-every-controller\"\n\
             [upstream]\nurl = \"{url}\"\nusername = \"mqrtc-controller\"\nstore = \"{store}\"\nlease_poll_ms = 200\n",
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    (dir, cfg)
}

pub(crate) fn mosquitto() -> Mosquitto {
    Mosquitto::start_with("acl_file {dir}/acl\n", &[("acl", ACL)])
}

/// Mosquitto and one controller, its state in SQLite or PostgreSQL.
fn setup(pg: bool) -> Setup {
    let mosquitto = mosquitto();
    let postgres = pg.then(Postgres::start);
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let (dir, cfg) = data_dir(&url, postgres.as_ref().map_or("", |p| p.url.as_str()));
    let controller = Appliance::controller(dir, &["--config", &cfg]);
    wait_role(controller.ports.http, "active");
    if pg {
        assert!(controller.log().contains("took over the controller lease"));
    }
    Setup {
        mosquitto,
        controller,
        _postgres: postgres,
    }
}

/// The role `/healthz` reports (`""` if it does not answer).
fn role(http: u16) -> String {
    let (_, body) = crate::common::http::request(http, "GET", "/healthz", &[], None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["role"].as_str().unwrap_or_default().to_string()
}

/// Waits until the controller on `http` reports `want`.
pub(crate) fn wait_role(http: u16, want: &str) -> std::time::Instant {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if role(http) == want {
            return std::time::Instant::now();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "controller on {http} never {want}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scenario(s: &Setup, name: &str, extra: &[&str]) -> String {
    let (p, h) = (
        s.mosquitto.port.to_string(),
        s.controller.ports.http.to_string(),
    );
    let mut args = vec![name, "--port", &p, "--http-port", &h, "--standard-broker"];
    args.extend_from_slice(extra);
    let o = python("call_scenarios.py", &args);
    assert!(
        o.status.success(),
        "{name}:\n{}\ncontroller log:\n{}",
        text(&o),
        s.controller.log()
    );
    text(&o)
}

/// In this order: without disconnect events (mosquitto) the controller
/// cannot know a device went away, so `offline-late` (which needs B free)
/// goes first and `offline` (which leaves B in a call) last.
const SCENARIOS: [&str; 8] = [
    "offline-late",
    "seed",
    "decline",
    "cancel",
    "timeout",
    "meeting",
    "errors",
    "offline",
];

/// The same scenarios as `calls.rs` runs against the appliance.
#[test]
fn the_protocol_scenarios_through_mosquitto_state_in_sqlite() {
    let s = setup(false);
    for name in SCENARIOS {
        scenario(&s, name, &[]);
    }
}

/// The same again, the controller's state in PostgreSQL.
#[test]
fn the_protocol_scenarios_through_mosquitto_state_in_postgres() {
    let s = setup(true);
    for name in SCENARIOS {
        scenario(&s, name, &[]);
    }
}

/// A device on the SDK, configured for a standard broker.
pub(crate) async fn device(port: u16, id: &str) -> (Client, Events) {
    let mut o = Options::new(id.parse().expect("client id"), "127.0.0.1", port);
    o.backoff_min = Duration::from_millis(50);
    o.sender_in_topic();
    let (c, mut ev) = Client::connect(o).expect("connect");
    tokio::time::timeout(Duration::from_secs(30), async {
        while !matches!(ev.recv().await, Some(Event::Synced(_)) | None) {}
    })
    .await
    .expect("synced");
    (c, ev)
}

pub(crate) async fn ended(ev: &mut Events, call: &str) -> EndReason {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match ev.recv().await {
                Some(Event::Call(CallEvent::Ended { call_id, reason })) if call_id == call => {
                    return reason
                }
                None => panic!("events ended"),
                _ => {}
            }
        }
    })
    .await
    .expect("call.ended")
}

/// Alice in a call with Bob, and then ringing Carol (who never answers):
/// what a controller's death must not disturb.
pub(crate) struct TwoCalls {
    pub alice: Client,
    alice_ev: Events,
    bob: Client,
    _bob_ev: Events,
    _carol: (Client, Events),
    talk: String,
    ring: Option<String>,
}

impl TwoCalls {
    /// Connects the three and sets up the call between Alice and Bob.
    pub(crate) async fn talking(port: u16) -> TwoCalls {
        let (alice, alice_ev) = device(port, "GID_demo@@@alice").await;
        let (bob, mut bob_ev) = device(port, "GID_demo@@@bob").await;
        let carol = device(port, "GID_demo@@@carol").await;
        let talk = alice
            .start_call(&["bob"], Media::Audio)
            .await
            .expect("call bob")
            .call
            .call_id;
        crate::common::sdk::invited(&mut bob_ev, Some(&talk)).await;
        bob.accept(&talk).await.expect("accept");
        TwoCalls {
            alice,
            alice_ev,
            bob,
            _bob_ev: bob_ev,
            _carol: carol,
            talk,
            ring: None,
        }
    }

    /// Alice rings Carol (invitations ring 2 s in these tests).
    pub(crate) async fn ringing(&mut self) {
        let ring = self.alice.start_call(&["carol"], Media::Audio).await;
        self.ring = Some(ring.expect("call carol").call.call_id);
    }

    /// After the controller's death: the ring timeout fired, the call is
    /// up once on both sides, and hanging it up ends it.
    pub(crate) async fn survived(mut self, log: impl Fn() -> String) {
        let ring = self.ring.clone().expect("ringing() was called");
        let reason = ended(&mut self.alice_ev, &ring).await;
        assert_eq!(
            reason,
            EndReason::NoAnswer,
            "the ring timer fired; log:\n{}",
            log()
        );
        for (who, c) in [("alice", &self.alice), ("bob", &self.bob)] {
            let calls = c.sync().await.expect("sync").calls;
            let ids: Vec<&str> = calls.iter().map(|c| c.call_id.as_str()).collect();
            let talk = ids.iter().filter(|id| **id == self.talk).count();
            assert_eq!(talk, 1, "{who} is in the call once: {ids:?}");
            assert!(
                !ids.contains(&ring.as_str()),
                "{who}: the ringing call ended"
            );
        }
        self.bob.hangup(&self.talk).await.expect("hang up");
        let reason = ended(&mut self.alice_ev, &self.talk).await;
        assert_eq!(reason, EndReason::Hangup);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_controller_while_ringing_and_in_a_call() {
    let s = setup(false);
    let mut calls = TwoCalls::talking(s.mosquitto.port).await;
    calls.ringing().await;
    let controller = tokio::task::spawn_blocking(move || s.controller.kill9_and_restart())
        .await
        .expect("restart");
    // The ring timeout (2 s) still fires, from the stored timer; requests
    // answered before the kill are not applied again.
    calls.survived(|| controller.log()).await;
    // SIGTERM while the broker is gone still ends the process cleanly.
    drop(s.mosquitto);
    let mut controller = controller;
    tokio::task::block_in_place(|| controller.terminate());
}

/// Webhooks with the state in PostgreSQL: the endpoint is set with the
/// CLI's `--store`, the active controller writes the events with the
/// call's state and delivers them, signed.
#[tokio::test(flavor = "multi_thread")]
async fn webhooks_with_the_state_in_postgres() {
    use crate::webhooks::{signed_right, Receiver};
    let rx = Receiver::start();
    let s = tokio::task::block_in_place(|| setup(true));
    let store = s._postgres.as_ref().expect("PostgreSQL").url.clone();
    let url = format!("http://127.0.0.1:{}/hooks", rx.port);
    let d = s
        .controller
        .path()
        .to_str()
        .expect("utf-8 path")
        .to_string();
    let args = [
        "webhook",
        "set",
        "--instance",
        "mqrtc-demo",
        "--url",
        &url,
        "--json",
        "--data-dir",
        &d,
        "--store",
        &store,
    ];
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), &args);
    assert!(o.status.success(), "{}", text(&o));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let secret = made["secret"].as_str().expect("secret").to_string();

    let mut calls = TwoCalls::talking(s.mosquitto.port).await;
    calls.ringing().await;
    calls.survived(|| s.controller.log()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let kinds = loop {
        let got = rx.accepted();
        let kinds: Vec<String> = got
            .values()
            .filter_map(|v| v.first())
            .map(|seen| {
                assert!(signed_right(&secret, seen), "signature of {}", seen.1);
                let body: serde_json::Value = serde_json::from_str(&seen.1).unwrap_or_default();
                body["type"].as_str().unwrap_or_default().to_string()
            })
            .collect();
        if kinds.iter().filter(|k| *k == "call.ended").count() >= 2 {
            break kinds;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "webhooks so far: {kinds:?}\n{}",
            s.controller.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(kinds.iter().any(|k| k == "call.started"), "{kinds:?}");
}

/// POSTs `body` to the controller's EMQX endpoint `path`; status and JSON.
fn emqx(s: &Setup, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let (status, text) = crate::common::http::request(
        s.controller.ports.http,
        "POST",
        path,
        &[],
        Some(&body.to_string()),
    );
    (status, serde_json::from_str(&text).unwrap_or_default())
}

/// EMQX's HTTP authentication and authorization, with requests in the
/// body format its documentation configures.
#[test]
fn emqx_http_auth_and_acl_from_the_provisioning_data() {
    use serde_json::json;
    let s = setup(false);
    let (key_id, secret) = s.controller.demo_key();
    let alice = "GID_demo@@@alice";
    let user = format!("Signature|{key_id}|mqrtc-demo");
    let authn = |password: &str, user: &str| {
        emqx(
            &s,
            "/emqx/v5/authn",
            &json!({ "clientid": alice, "username": user, "password": password }),
        )
    };
    let (status, ok) = authn(&mqrtc::auth::signature(&secret, alice), &user);
    assert_eq!(
        (status, ok["result"].as_str()),
        (200, Some("allow")),
        "{ok}"
    );
    assert_eq!(ok["is_superuser"], json!(false));
    let (_, bad) = authn("d3JvbmcK", &user);
    assert_eq!(bad["result"], "deny", "{bad}");

    let authz = |topic: &str, action: &str, user: &str, tokens: &str| {
        let body = json!({ "clientid": alice, "username": user, "topic": topic, "action": action, "tokens": tokens });
        emqx(&s, "/emqx/v5/authz", &body).1["result"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (topic, action, want) in [
        ("rtc_up/call/GID_demo@@@alice", "publish", "allow"),
        ("rtc_up/call/GID_demo@@@bob", "publish", "deny"),
        ("rtc_down/p2p/GID_demo@@@bob", "publish", "deny"),
        ("rtc_down/p2p/GID_demo@@@alice", "subscribe", "allow"),
        ("rtc_down/p2p/GID_demo@@@bob", "subscribe", "deny"),
        ("rtc_event/p2p/GID_web@@@bob", "publish", "allow"),
        ("rtc_event/#", "subscribe", "deny"),
        ("rtc_up/#", "subscribe", "deny"),
    ] {
        assert_eq!(authz(topic, action, &user, ""), want, "{action} {topic}");
    }

    // A token issued while the controller runs: EMQX keeps its hash as a
    // client attribute and sends it back with every authorization request.
    let token = crate::auth::token(&s.controller, "W", "rtc_event", 600);
    let tuser = format!("Token|{key_id}|mqrtc-demo");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let t = loop {
        let (_, t) = authn(&format!("W|{token}"), &tuser);
        if t["result"] == "allow" || std::time::Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(t["result"], "allow", "{t}");
    assert!(t["expire_at"].as_i64().is_some(), "{t}");
    let attr = t["client_attrs"]["mqrtc_tokens"].as_str().expect("attr");
    assert!(!attr.contains(&token), "the token itself never leaves");
    assert_eq!(authz("rtc_event/room", "publish", &tuser, attr), "allow");
    assert_eq!(
        authz("rtc_up/call/GID_demo@@@alice", "publish", &tuser, attr),
        "deny"
    );
    assert_eq!(authz("rtc_event/room", "publish", &tuser, ""), "deny");

    let (status, body) = crate::common::http::request(
        s.controller.ports.http,
        "POST",
        "/emqx/v5/authn",
        &[],
        Some("{not json"),
    );
    assert_eq!(status, 400, "{body}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with openssl in
/// `dir`: the paths of ca.pem, server.pem and server.key.
pub(crate) fn certificates(dir: &std::path::Path) -> [String; 3] {
    const SCRIPT: &str = "set -e
EC='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes'
openssl req -x509 $EC -keyout ca.key -out ca.pem -days 2 -subj '/CN=scale-out test CA'
openssl req $EC -keyout server.key -out server.csr -subj /CN=127.0.0.1
printf 'subjectAltName=IP:127.0.0.1\\n' > san.cnf
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \\
  -out server.pem -days 2 -extfile san.cnf";
    let o = std::process::Command::new("sh")
        .args(["-c", SCRIPT])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(o.status.success(), "openssl: {}", text(&o));
    let p = |f: &str| dir.join(f).to_str().expect("utf-8 path").to_string();
    [p("ca.pem"), p("server.pem"), p("server.key")]
}

/// The controller reaches the broker over TLS (`mqtts://`, its CA from
/// `upstream.ca_file`); devices stay on plain MQTT.
#[test]
fn the_controller_over_mqtts() {
    let certs = tempfile::tempdir().expect("tempdir");
    let [ca, cert, key] = certificates(certs.path());
    let tls_port = crate::common::free_port();
    let mosquitto = Mosquitto::start_with(
        &format!(
            "acl_file {{dir}}/acl\n# keys readable by root only: do not drop to the mosquitto user\nuser root\nlistener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        ),
        &[("acl", ACL)],
    );
    let (dir, cfg) = data_dir(&format!("mqtts://127.0.0.1:{tls_port}"), "");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg).expect("config") + &format!("ca_file = \"{ca}\"\n"),
    )
    .expect("config");
    let controller = Appliance::controller(dir, &["--config", &cfg]);
    wait_role(controller.ports.http, "active");
    let s = Setup {
        mosquitto,
        controller,
        _postgres: None,
    };
    scenario(&s, "seed", &[]);
    assert!(s
        .controller
        .log()
        .contains("connected to the upstream broker"));
}
