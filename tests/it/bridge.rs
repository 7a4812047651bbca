//! The in-process bridge (the RocketMQ bridge's stand-in): connect events,
//! allowed uplinks with the sender's id, and QoS 1 publishing from inside.

use std::time::Duration;

use bytes::Bytes;
use mqrtc::bridge::{BridgeEvent, Downlink};
use mqrtc::config::Config;

use crate::common::{run, text};

fn config(dir: &std::path::Path) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        dev: true,
        ..Config::default()
    };
    c.ports.mqtt = 0;
    c.ports.mqtts = 0;
    c.ports.ws = 0;
    c.ports.wss = 0;
    c.ports.http = 0;
    c
}

async fn next(
    rx: &mut mqrtc::bridge::EventStream,
    want: impl Fn(&BridgeEvent) -> bool,
) -> BridgeEvent {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let ev = rx.recv().await.expect("stream open");
            if want(&ev) {
                return ev;
            }
        }
    })
    .await
    .expect("event in time")
}

async fn sh(program: &'static str, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        run(
            program,
            &args.iter().map(String::as_str).collect::<Vec<_>>(),
        )
    })
    .await
    .unwrap()
}

/// The session-storage plugin parks a blocking task for sled that never
/// ends, so the runtime is shut down in the background, not dropped.
fn in_runtime(f: impl std::future::Future<Output = ()>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A failure must not drop the runtime (that waits for the parked task).
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(f)));
    rt.shutdown_background();
    if let Err(p) = r {
        std::panic::resume_unwind(p);
    }
}

#[test]
fn uplinks_events_and_inprocess_publishing() {
    in_runtime(uplinks_events_and_inprocess_publishing_async());
}

async fn uplinks_events_and_inprocess_publishing_async() {
    let dir = tempfile::tempdir().unwrap();
    let app = mqrtc::app::start(config(dir.path())).await.expect("start");
    let bridge = app.broker.bridge();
    let mut rx = bridge
        .subscribe(mqrtc::bridge::Topics::Filters(vec!["rtc_up/#".into()]), 64)
        .unwrap();
    let p = app.ports.mqtt.to_string();

    // An allowed uplink arrives with the authenticated sender; a refused one never does.
    let pub_args = |id: &str, topic: &str, msg: &str| {
        ["-p", &p, "-i", id, "-q", "1", "-t", topic, "-m", msg]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    sh(
        "mosquitto_pub",
        pub_args("GID_demo@@@alice", "rtc_down/x", "refused"),
    )
    .await;
    sh(
        "mosquitto_pub",
        pub_args("GID_demo@@@alice", "rtc_up/call", "{\"type\":\"call\"}"),
    )
    .await;
    let ev = next(&mut rx, |e| matches!(e, BridgeEvent::Uplink(_))).await;
    let BridgeEvent::Uplink(up) = ev else {
        unreachable!()
    };
    assert_eq!(up.sender, "GID_demo@@@alice");
    assert_eq!(up.topic, "rtc_up/call");
    assert_eq!(&up.payload[..], b"{\"type\":\"call\"}");
    assert!(!up.is_will);

    // Connect and disconnect events carry client ids. They are coalesced
    // per client (the latest state wins), so the connect is awaited while
    // the client is still connected.
    let bob = "GID_web@@@bridge-bob";
    let args: Vec<String> = [
        "-p",
        &p,
        "-i",
        bob,
        "-c",
        "-q",
        "1",
        "-t",
        "rtc_event/x",
        "-W",
        "3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sub = tokio::spawn(sh("mosquitto_sub", args));
    next(
        &mut rx,
        |e| matches!(e, BridgeEvent::Connected { client_id, .. } if client_id == bob),
    )
    .await;
    let o = sub.await.unwrap();
    assert!(text(&o).contains("Timed out"));
    next(
        &mut rx,
        |e| matches!(e, BridgeEvent::Disconnected { client_id, .. } if client_id == bob),
    )
    .await;

    // A QoS 1 P2P publish from inside waits for the offline client.
    bridge
        .publish(Downlink {
            topic: format!("rtc_down/p2p/{bob}"),
            payload: Bytes::from_static(b"join-params"),
            expiry: Some(Duration::from_secs(60)),
        })
        .await
        .expect("published");
    let inbox = format!("rtc_down/p2p/{bob}");
    let o = sh(
        "mosquitto_sub",
        [
            "-p", &p, "-i", bob, "-c", "-q", "1", "-t", &inbox, "-C", "1", "-W", "10", "-v",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    assert!(
        text(&o).contains(&format!("{inbox} join-params")),
        "{}",
        text(&o)
    );
    app.stop().await;
}
