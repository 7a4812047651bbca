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
const ACL: &str = "\
pattern write rtc_up/+/%c
pattern read rtc_down/p2p/%c
pattern read rtc_event/p2p/%c
pattern write rtc_event/p2p/+
user mqrtc-controller
topic read rtc_up/#
topic write rtc_down/#
";

struct Setup {
    mosquitto: Mosquitto,
    controller: Appliance,
    _postgres: Option<Postgres>,
}

/// A data dir with the demo tenant and a config for `mosquitto`, the
/// controller's state in `store` (empty: SQLite); invitations ring 2 s.
fn data_dir(mosquitto: &Mosquitto, store: &str) -> (Arc<tempfile::TempDir>, String) {
    let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
    let d = dir.path().to_str().expect("utf-8 path");
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["instance", "demo", "--data-dir", d],
    );
    assert!(o.status.success(), "mqrtc instance demo: {}", text(&o));
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(
        &cfg,
        format!(
            "[controller]\nring_timeout_secs = 2\n[rtc]\napp_key = \"shared-by-every-controller\"\n\
             [upstream]\nurl = \"mqtt://127.0.0.1:{}\"\nusername = \"mqrtc-controller\"\nstore = \"{store}\"\nlease_poll_ms = 200\n",
            mosquitto.port
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    (dir, cfg)
}

fn mosquitto() -> Mosquitto {
    Mosquitto::start_with("acl_file {dir}/acl\n", &[("acl", ACL)])
}

/// Mosquitto and one controller, its state in SQLite or PostgreSQL.
fn setup(pg: bool) -> Setup {
    let mosquitto = mosquitto();
    let postgres = pg.then(Postgres::start);
    let (dir, cfg) = data_dir(&mosquitto, postgres.as_ref().map_or("", |p| p.url.as_str()));
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
fn wait_role(http: u16, want: &str) -> std::time::Instant {
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

const SCENARIOS: [&str; 7] = [
    "seed", "decline", "cancel", "timeout", "meeting", "errors", "offline",
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
async fn device(port: u16, id: &str) -> (Client, Events) {
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

async fn ended(ev: &mut Events, call: &str) -> EndReason {
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

#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_controller_while_ringing_and_in_a_call() {
    let s = setup(false);
    let port = s.mosquitto.port;
    let (alice, mut alice_ev) = device(port, "GID_demo@@@alice").await;
    let (bob, mut bob_ev) = device(port, "GID_demo@@@bob").await;
    let (_carol, _) = device(port, "GID_demo@@@carol").await;

    // A call in progress survives the controller's death.
    let talk = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call bob");
    crate::common::sdk::invited(&mut bob_ev, Some(&talk.call.call_id)).await;
    bob.accept(&talk.call.call_id).await.expect("accept");
    // Ringing: carol never answers.
    let ring = alice
        .start_call(&["carol"], Media::Audio)
        .await
        .expect("call carol");

    let controller = tokio::task::spawn_blocking(move || s.controller.kill9_and_restart())
        .await
        .expect("restart");
    // The ring timeout (2 s) still fires, from the stored timer.
    let reason = ended(&mut alice_ev, &ring.call.call_id).await;
    assert_eq!(reason, EndReason::NoAnswer, "log:\n{}", controller.log());
    // The answered call is still up on both sides, and can be hung up.
    let a = alice.sync().await.expect("sync");
    let b = bob.sync().await.expect("sync");
    for (who, view) in [("alice", &a), ("bob", &b)] {
        let ids: Vec<&str> = view.calls.iter().map(|c| c.call_id.as_str()).collect();
        assert_eq!(
            ids,
            [talk.call.call_id.as_str()],
            "{who}'s calls after the restart"
        );
    }
    // Requests answered before the kill are not applied again: one call each.
    bob.hangup(&talk.call.call_id).await.expect("hang up");
    assert_eq!(
        ended(&mut alice_ev, &talk.call.call_id).await,
        EndReason::Hangup
    );
    drop(controller);
    drop(s.mosquitto);
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

/// A device that speaks the protocol by hand (rumqttc), to send the very
/// same request twice.
struct RawDevice {
    client: rumqttc::AsyncClient,
    inbox: tokio::sync::mpsc::UnboundedReceiver<serde_json::Value>,
    id: String,
}

impl RawDevice {
    async fn connect(port: u16, id: &str) -> RawDevice {
        let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_session(false);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 64);
        let (tx, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready) = tokio::sync::oneshot::channel();
        let mut ready_tx = Some(ready_tx);
        tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        if let Some(t) = ready_tx.take() {
                            let _ = t.send(());
                        }
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        if let Ok(v) = serde_json::from_slice(&p.payload) {
                            let _ = tx.send(v);
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        client
            .subscribe(format!("rtc_down/p2p/{id}"), rumqttc::QoS::AtLeastOnce)
            .await
            .expect("subscribe");
        tokio::time::timeout(Duration::from_secs(10), ready)
            .await
            .expect("suback")
            .ok();
        RawDevice {
            client,
            inbox,
            id: id.to_string(),
        }
    }

    /// Publishes `call.start` to `to` with request id `req` (a new message id each time).
    async fn start(&self, to: &str, req: &str) {
        let env = serde_json::json!({
            "v": 1, "id": mqrtc::controller::new_id(), "type": "call.start", "req": req,
            "ts": mqrtc::controller::now_ms(), "ttl": 60000, "body": { "to": to },
        });
        self.client
            .publish(
                format!("rtc_up/call/{}", self.id),
                rumqttc::QoS::AtLeastOnce,
                false,
                env.to_string(),
            )
            .await
            .expect("publish");
    }

    /// The call id in the next answer to `req`.
    async fn answer(&mut self, req: &str) -> String {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let v = self.inbox.recv().await.expect("inbox");
                if v["req"] == req && v["type"] == "result" {
                    return v["body"]["call"]["call_id"]
                        .as_str()
                        .expect("call id")
                        .to_string();
                }
            }
        })
        .await
        .expect("an answer")
    }
}

/// Two controllers on one PostgreSQL database: the active one is killed
/// with kill -9 during a call, a ringing call and a request in flight; the
/// standby takes over.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_active_controller_and_the_standby_takes_over() {
    let mosquitto = mosquitto();
    let pg = tokio::task::block_in_place(Postgres::start);
    let (dir_a, cfg_a) = data_dir(&mosquitto, &pg.url);
    // The standby's host gets a copy of the data dir (provisioning and keys).
    let dir_b = Arc::new(tempfile::tempdir().expect("tempdir"));
    let from = format!("{}/.", dir_a.path().display());
    let o = run("cp", &["-a", &from, dir_b.path().to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg_b = dir_b.path().join("mqrtc.toml").display().to_string();
    let (a, b) = tokio::task::block_in_place(|| {
        let a = Appliance::controller(dir_a, &["--config", &cfg_a]);
        wait_role(a.ports.http, "active");
        let b = Appliance::controller(dir_b, &["--config", &cfg_b]);
        wait_role(b.ports.http, "standby");
        (a, b)
    });
    let port = mosquitto.port;
    let (alice, mut alice_ev) = device(port, "GID_demo@@@alice").await;
    let (bob, mut bob_ev) = device(port, "GID_demo@@@bob").await;
    let (_carol, _) = device(port, "GID_demo@@@carol").await;
    let (_dave, _dave_ev) = device(port, "GID_demo@@@dave").await;
    let mut erin = RawDevice::connect(port, "GID_demo@@@erin").await;

    let talk = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call bob");
    crate::common::sdk::invited(&mut bob_ev, Some(&talk.call.call_id)).await;
    bob.accept(&talk.call.call_id).await.expect("accept");
    erin.start("dave", "dup-1").await;
    let first = erin.answer("dup-1").await;
    let ring = alice
        .start_call(&["carol"], Media::Audio)
        .await
        .expect("call carol");

    let mut a = a;
    let killed = std::time::Instant::now();
    tokio::task::block_in_place(|| a.kill9());
    // A request while no controller is active, and a retry of one answered before.
    let in_flight = {
        let alice = alice.clone();
        tokio::spawn(async move { alice.start_call(&["dave"], Media::Audio).await })
    };
    erin.start("dave", "dup-1").await;
    let took_over = tokio::task::block_in_place(|| wait_role(b.ports.http, "active"));
    in_flight
        .await
        .expect("task")
        .expect("answered after the failover");
    let answered_at = std::time::Instant::now();
    println!(
        "failover: standby active {:?} after kill -9; the request sent meanwhile answered after {:?}",
        took_over - killed,
        answered_at - killed
    );

    assert_eq!(
        erin.answer("dup-1").await,
        first,
        "a retry gets the same answer"
    );
    let reason = ended(&mut alice_ev, &ring.call.call_id).await;
    assert_eq!(
        reason,
        EndReason::NoAnswer,
        "the ring timer fired on the standby"
    );
    // Each request applied once: one call from erin, two from alice to dave
    // and carol, one to bob; every one of them in the database B writes.
    let hosts = tokio::task::block_in_place(|| {
        let mut db = postgres::Client::connect(&pg.url, postgres::NoTls).expect("connect");
        db.query(
            "SELECT data::json->>'host', count(*) FROM calls GROUP BY 1 ORDER BY 1",
            &[],
        )
        .expect("query")
        .iter()
        .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
        .collect::<Vec<_>>()
    });
    assert_eq!(hosts, [("alice".to_string(), 3), ("erin".to_string(), 1)]);
    for (who, c) in [("alice", &alice), ("bob", &bob)] {
        let calls = c.sync().await.expect("sync").calls;
        assert!(
            calls.iter().any(|c| c.call_id == talk.call.call_id),
            "{who} is still in the call"
        );
    }
    bob.hangup(&talk.call.call_id).await.expect("hang up");
    assert_eq!(
        ended(&mut alice_ev, &talk.call.call_id).await,
        EndReason::Hangup
    );
    drop(b);
}

/// Fencing: once another controller took the lease over, the old one's
/// writes are refused, whatever it still believes.
#[test]
fn a_controller_that_lost_the_lease_cannot_write() {
    use mqrtc::store::pg::{lease::Lease, PgStore};
    use mqrtc::store::{Batch, StateStore, StoreError};
    let pg = Postgres::start();
    let old = PgStore::connect(&pg.url).expect("connect");
    let lease = Lease::acquire(&pg.url, "old", Duration::from_millis(10), || 0).expect("lease");
    old.fence(lease.epoch);
    let mut batch = Batch::default();
    let dev = mqrtc::calls::Device {
        client_id: "GID_demo@@@alice".into(),
        user: "alice".into(),
        instance: "mqrtc-demo".into(),
    };
    batch.devices.push((dev, 1));
    old.apply_batch(&batch).expect("the holder writes");
    drop(lease); // its connection ends: PostgreSQL releases the lock
    let mut new = Lease::acquire(&pg.url, "new", Duration::from_millis(10), || 0).expect("lease");
    assert_eq!(new.epoch, 2);
    new.check().expect("the new holder holds it");
    match old.apply_batch(&batch) {
        Err(StoreError::Fenced(why)) => assert!(why.contains("epoch 2"), "{why}"),
        other => panic!("the old controller wrote: {other:?}"),
    }
    let loaded = PgStore::connect(&pg.url)
        .expect("connect")
        .load_controller(0)
        .expect("load");
    assert_eq!(loaded.devices.len(), 1, "what the holder wrote is there");
}
