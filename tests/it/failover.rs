//! Two `mqrtc controller`s on one PostgreSQL database behind Debian's
//! mosquitto: the active one is killed and the standby takes over; a
//! controller that lost the lease cannot write.

use std::sync::Arc;
use std::time::Duration;

use mqrtc::calls::Media;

use crate::common::postgres::Postgres;
use crate::common::{run, text, Appliance};
use crate::scaleout::{data_dir, device, mosquitto, wait_role, TwoCalls};

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

/// Another controller host: a data dir with only the master key and the
/// config of `dir` (provisioning is in PostgreSQL). The dir and its config.
fn another_host(dir: &tempfile::TempDir) -> (Arc<tempfile::TempDir>, String) {
    let other = Arc::new(tempfile::tempdir().expect("tempdir"));
    for f in ["master.key", "mqrtc.toml"] {
        let to = other.path().join(f);
        let o = run(
            "cp",
            &[
                "-p",
                &dir.path().join(f).display().to_string(),
                &to.display().to_string(),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let cfg = other.path().join("mqrtc.toml").display().to_string();
    (other, cfg)
}

/// POSTs a DeviceCredential login to a controller's EMQX endpoint; the result.
fn emqx_login(http: u16, client_id: &str, id: &str, secret: &str) -> String {
    let body = serde_json::json!({
        "clientid": client_id,
        "username": format!("DeviceCredential|{id}|mqrtc-demo"),
        "password": mqrtc::auth::signature(secret, client_id),
    });
    let (_, text) =
        crate::common::http::request(http, "POST", "/emqx/v5/authn", &[], Some(&body.to_string()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["result"].as_str().unwrap_or_default().to_string()
}

/// Provisioning lives in PostgreSQL: a credential made with the CLI on a
/// third host reaches the active controller and the standby; a host with
/// another master key is refused.
#[test]
fn provisioning_in_postgres_reaches_every_controller() {
    let mosquitto = mosquitto();
    let pg = Postgres::start();
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let (dir_a, cfg_a) = data_dir(&url, &pg.url);
    let (dir_b, cfg_b) = another_host(&dir_a);
    let (dir_c, _) = another_host(&dir_a);
    let a = Appliance::controller(dir_a, &["--config", &cfg_a]);
    wait_role(a.ports.http, "active");
    let b = Appliance::controller(dir_b, &["--config", &cfg_b]);
    wait_role(b.ports.http, "standby");

    let zoe = "GID_demo@@@zoe";
    let c = dir_c.path().to_str().expect("utf-8 path");
    let args = [
        "device",
        "create",
        zoe,
        "--instance",
        "mqrtc-demo",
        "--json",
        "--data-dir",
        c,
        "--store",
        &pg.url,
    ];
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), &args);
    assert!(o.status.success(), "{}", text(&o));
    let made: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let (id, secret) = (
        made["id"].as_str().expect("id"),
        made["secret"].as_str().expect("secret"),
    );
    for (who, http) in [("active", a.ports.http), ("standby", b.ports.http)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while emqx_login(http, zoe, id, secret) != "allow" {
            assert!(
                std::time::Instant::now() < deadline,
                "the {who} controller never allowed zoe"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            emqx_login(http, zoe, id, "d3Jvbmc="),
            "deny",
            "{who}: a wrong secret"
        );
    }

    let stranger = tempfile::tempdir().expect("tempdir");
    let d = stranger.path().to_str().expect("utf-8 path");
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["instance", "list", "--data-dir", d, "--store", &pg.url],
    );
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("another master key"), "{}", text(&o));
}

/// Two controllers on one PostgreSQL database: the active one is killed
/// with kill -9 during a call, a ringing call and a request in flight; the
/// standby takes over.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_active_controller_and_the_standby_takes_over() {
    let mosquitto = mosquitto();
    let pg = tokio::task::block_in_place(Postgres::start);
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let (dir_a, cfg_a) = data_dir(&url, &pg.url);
    let (dir_b, cfg_b) = another_host(&dir_a);
    let (a, b) = tokio::task::block_in_place(|| {
        let a = Appliance::controller(dir_a, &["--config", &cfg_a]);
        wait_role(a.ports.http, "active");
        let b = Appliance::controller(dir_b, &["--config", &cfg_b]);
        wait_role(b.ports.http, "standby");
        (a, b)
    });
    let port = mosquitto.port;
    let (_dave, _dave_ev) = device(port, "GID_demo@@@dave").await;
    let mut erin = RawDevice::connect(port, "GID_demo@@@erin").await;
    let mut calls = TwoCalls::talking(port).await;
    erin.start("dave", "dup-1").await;
    let first = erin.answer("dup-1").await;
    calls.ringing().await;

    let mut a = a;
    let killed = std::time::Instant::now();
    tokio::task::block_in_place(|| a.kill9());
    // A request while no controller is active, and a retry of one answered before.
    let in_flight = {
        let alice = calls.alice.clone();
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
    calls.survived(|| b.log()).await;
    drop(b);
}

/// Fencing: once another controller took the lease over, the old one's
/// writes are refused, whatever it still believes.
#[test]
fn a_controller_that_lost_the_lease_cannot_write() {
    use mqrtc::store::pg::{lease::Lease, Database, PgStore};
    use mqrtc::store::{Batch, StateStore, StoreError};
    let pg = Postgres::start();
    let old = PgStore::connect(&Database::new(&pg.url)).expect("connect");
    let lease = Lease::acquire(
        &Database::new(&pg.url),
        "old",
        Duration::from_millis(10),
        || 0,
    )
    .expect("lease");
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
    let mut new = Lease::acquire(
        &Database::new(&pg.url),
        "new",
        Duration::from_millis(10),
        || 0,
    )
    .expect("lease");
    assert_eq!(new.epoch, 2);
    new.check().expect("the new holder holds it");
    match old.apply_batch(&batch) {
        Err(StoreError::Fenced(why)) => assert!(why.contains("epoch 2"), "{why}"),
        other => panic!("the old controller wrote: {other:?}"),
    }
    let loaded = PgStore::connect(&Database::new(&pg.url))
        .expect("connect")
        .load_controller(0)
        .expect("load");
    assert_eq!(loaded.devices.len(), 1, "what the holder wrote is there");
}

/// A controller whose database cannot be reached says so and exits 1.
#[test]
fn a_controller_without_its_database_exits_with_the_reason() {
    let nowhere = format!(
        "postgres://mqrtc@127.0.0.1:{}/mqrtc",
        crate::common::free_port()
    );
    let (dir, cfg) = data_dir("mqtt://127.0.0.1:1", "");
    let d = dir.path().to_str().expect("utf-8 path");
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "controller",
            "--data-dir",
            d,
            "--config",
            &cfg,
            "--http-port",
            "0",
            "--store",
            &nowhere,
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("PostgreSQL"), "{out}");
    assert!(
        !dir.path().join("ports.json").exists(),
        "ports.json removed"
    );
}
