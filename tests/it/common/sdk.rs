//! Devices on the Rust SDK for the operations tests.

use std::time::Duration;

use mqrtc::calls::Event as CallEvent;
use mqrtc::client::{Client, Event, Events, Options};

/// Readiness bound.
const WAIT: Duration = Duration::from_secs(60);

/// A device connected to the appliance's MQTT port and synced.
pub async fn device(port: u16, id: &str) -> (Client, Events) {
    let mut o = Options::new(id.parse().expect("client id"), "127.0.0.1", port);
    o.backoff_min = Duration::from_millis(50);
    let (c, mut ev) = Client::connect(o).expect("connect");
    tokio::time::timeout(WAIT, async {
        while !matches!(ev.recv().await, Some(Event::Synced(_)) | None) {}
    })
    .await
    .expect("synced");
    (c, ev)
}

/// Waits for the invitation to `call` (any call if `None`).
pub async fn invited(ev: &mut Events, call: Option<&str>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match ev.recv().await {
                Some(Event::Call(CallEvent::Invite { call: c, .. }))
                    if call.is_none_or(|id| c.call_id == id) =>
                {
                    return
                }
                None => panic!("events ended"),
                _ => {}
            }
        }
    })
    .await
    .expect("invite");
}
