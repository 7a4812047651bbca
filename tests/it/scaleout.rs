//! `mqrtc controller` behind Debian's mosquitto (MQTT 5, shared
//! subscriptions): the protocol scenarios of `calls.rs` with the same
//! paho-mqtt devices, SDK devices, and a controller killed with kill -9.

use std::sync::Arc;
use std::time::Duration;

use mqrtc::calls::{EndReason, Event as CallEvent, Media};
use mqrtc::client::{Client, Event, Events, Options};

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
}

/// Mosquitto and one controller on a data dir with the demo tenant;
/// invitations ring 2 s.
fn setup() -> Setup {
    let mosquitto = Mosquitto::start_with("acl_file {dir}/acl\n", &[("acl", ACL)]);
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
            "[controller]\nring_timeout_secs = 2\n[upstream]\nurl = \"mqtt://127.0.0.1:{}\"\nusername = \"mqrtc-controller\"\n",
            mosquitto.port
        ),
    )
    .expect("config");
    let cfg = cfg.to_str().expect("utf-8 path").to_string();
    let controller = Appliance::controller(dir, &["--config", &cfg]);
    Setup {
        mosquitto,
        controller,
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

#[test]
fn the_protocol_scenarios_through_mosquitto() {
    let s = setup();
    for name in [
        "seed", "decline", "cancel", "timeout", "meeting", "errors", "offline",
    ] {
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
    let s = setup();
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
    let s = setup();
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
