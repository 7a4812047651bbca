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

/// Two controllers on one PostgreSQL database: the active one is killed
/// with kill -9 during a call, a ringing call and a request in flight; the
/// standby takes over.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_of_the_active_controller_and_the_standby_takes_over() {
    let mosquitto = mosquitto();
    let pg = tokio::task::block_in_place(Postgres::start);
    let url = format!("mqtt://127.0.0.1:{}", mosquitto.port);
    let (dir_a, cfg_a) = data_dir(&url, &pg.url);
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

/// A controller whose database cannot be reached says so and exits 1 (it
/// has served HTTP meanwhile, as a standby).
#[test]
fn a_controller_without_its_database_exits_with_the_reason() {
    let nowhere = format!(
        "postgres://mqrtc@127.0.0.1:{}/mqrtc",
        crate::common::free_port()
    );
    let (dir, cfg) = data_dir("mqtt://127.0.0.1:1", &nowhere);
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
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(
        out.contains("cannot become active") && out.contains("PostgreSQL"),
        "{out}"
    );
    assert!(
        !dir.path().join("ports.json").exists(),
        "ports.json removed"
    );
}
