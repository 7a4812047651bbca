//! `--log-format json`: every line is one JSON object, and one call can be
//! followed across the broker, the controller and the RTC service by its
//! `call_id` and the devices' `client_id`, as `jq` would.

use std::time::Duration;

use mqrtc::calls::Media;
use serde_json::Value;

use crate::common::sdk::{device, invited};
use crate::common::Appliance;

const WAIT: Duration = Duration::from_secs(30);

/// Every line of the log as JSON (a line that is not fails the test).
fn lines(log: &str) -> Vec<Value> {
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_follow_one_call_by_call_id_and_client_id() {
    let a = Appliance::start(&["--dev", "--log-format", "json"]);
    let (alice, _alice_ev) = device(a.ports.mqtt, "GID_demo@@@alice").await;
    let (bob, mut bob_ev) = device(a.ports.mqtt, "GID_demo@@@bob").await;
    let started = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call.start");
    let call = started.call.call_id.clone();
    invited(&mut bob_ev, None).await;
    bob.decline(&call).await.expect("decline");

    // The log is written as things happen; wait (bounded) for the decline's line.
    let deadline = std::time::Instant::now() + WAIT;
    let all = loop {
        let all = lines(&a.log());
        let declined = all.iter().any(|l| {
            l["message"] == "request"
                && l["call_id"] == call.as_str()
                && l["client_id"] == "GID_demo@@@bob"
        });
        if declined {
            break all;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decline in the log:\n{}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    for l in &all {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    let of_call: Vec<&Value> = all
        .iter()
        .filter(|l| l["call_id"] == call.as_str())
        .collect();
    let has = |message: &str, client: &str, kind: &str| {
        of_call
            .iter()
            .any(|l| l["message"] == message && l["client_id"] == client && l["kind"] == kind)
    };
    assert!(
        has("request", "GID_demo@@@alice", "call.start"),
        "{of_call:#?}"
    );
    assert!(
        has("downlink", "GID_demo@@@bob", "call.invite"),
        "{of_call:#?}"
    );
    assert!(
        has("downlink", "GID_demo@@@alice", "result"),
        "{of_call:#?}"
    );
    assert!(
        has("request", "GID_demo@@@bob", "call.decline"),
        "{of_call:#?}"
    );
    let request = of_call
        .iter()
        .find(|l| l["message"] == "request" && l["kind"] == "call.start")
        .expect("call.start line");
    assert_eq!(request["result"], "ok");
    assert!(
        request["req"].as_str().is_some_and(|r| !r.is_empty()),
        "{request}"
    );
    // The broker's side of the same devices.
    let connected = |client: &str| {
        all.iter().any(|l| {
            l["message"] == "connected" && l["client_id"] == client && l["transport"] == "mqtt"
        })
    };
    assert!(connected("GID_demo@@@alice") && connected("GID_demo@@@bob"));
}
