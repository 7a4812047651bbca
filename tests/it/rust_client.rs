//! The broker with a Rust client crate used directly (rumqttc), 3.1.1 and 5.

use std::time::Duration;

use crate::common::Appliance;

async fn next_publish(ev: &mut rumqttc::EventLoop) -> rumqttc::Publish {
    loop {
        match ev.poll().await.expect("event loop") {
            rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => return p,
            _ => continue,
        }
    }
}

async fn connected(ev: &mut rumqttc::EventLoop) -> Result<(), rumqttc::ConnectionError> {
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_)) = ev.poll().await? {
            return Ok(());
        }
    }
}

#[tokio::test]
async fn rumqttc_v311_p2p_and_refusal() {
    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let mut o = rumqttc::MqttOptions::new("GID_web@@@rust-bob", "127.0.0.1", port);
    o.set_clean_session(false);
    let (_bob, mut bob_ev) = rumqttc::AsyncClient::new(o, 10);
    connected(&mut bob_ev).await.expect("bob connects");

    let o = rumqttc::MqttOptions::new("GID_demo@@@rust-alice", "127.0.0.1", port);
    let (alice, mut alice_ev) = rumqttc::AsyncClient::new(o, 10);
    connected(&mut alice_ev).await.expect("alice connects");
    let topic = "rtc_event/p2p/GID_web@@@rust-bob";
    alice
        .publish(topic, rumqttc::QoS::AtLeastOnce, false, "hi-bob")
        .await
        .unwrap();
    tokio::spawn(async move { while alice_ev.poll().await.is_ok() {} });

    let p = tokio::time::timeout(Duration::from_secs(10), next_publish(&mut bob_ev))
        .await
        .expect("P2P in time");
    assert_eq!(p.topic, topic);
    assert_eq!(&p.payload[..], b"hi-bob");

    let o = rumqttc::MqttOptions::new("not-a-cloud-id", "127.0.0.1", port);
    let (_c, mut ev) = rumqttc::AsyncClient::new(o, 10);
    match connected(&mut ev).await {
        Err(rumqttc::ConnectionError::ConnectionRefused(code)) => {
            assert_eq!(code, rumqttc::ConnectReturnCode::BadClientId)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn rumqttc_v5_p2p() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};

    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let (_bob, mut bob_ev) = AsyncClient::new(
        MqttOptions::new("GID_web@@@rust5-bob", "127.0.0.1", port),
        10,
    );
    let (alice, mut alice_ev) = AsyncClient::new(
        MqttOptions::new("GID_demo@@@rust5-alice", "127.0.0.1", port),
        10,
    );
    for ev in [&mut bob_ev, &mut alice_ev] {
        loop {
            if let Event::Incoming(Packet::ConnAck(_)) = ev.poll().await.expect("connect") {
                break;
            }
        }
    }
    let topic = "rtc_event/p2p/GID_web@@@rust5-bob";
    alice
        .publish(topic, QoS::AtLeastOnce, false, "hi-v5")
        .await
        .unwrap();
    tokio::spawn(async move { while alice_ev.poll().await.is_ok() {} });
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = bob_ev.poll().await.expect("poll") {
                return p;
            }
        }
    })
    .await
    .expect("P2P in time");
    assert_eq!(&got.topic[..], topic.as_bytes());
    assert_eq!(&got.payload[..], b"hi-v5");
}
