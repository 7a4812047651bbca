//! The controller end to end: paho-mqtt devices (tests/py/rtcdev.py, written
//! from docs/protocol.md) through the real broker, and the mock RTC service.

use crate::common::{python, text, Appliance};

/// A dev appliance whose invitations ring 2 s.
fn appliance() -> Appliance {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(&cfg, "[controller]\nring_timeout_secs = 2\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    Appliance::start_in(dir, &["--dev", "--config", &cfg])
}

fn scenario(a: &Appliance, name: &str, extra: &[&str]) -> String {
    let (p, h) = (a.ports.mqtt.to_string(), a.ports.http.to_string());
    let mut args = vec![name, "--port", &p, "--http-port", &h];
    args.extend_from_slice(extra);
    let o = python("call_scenarios.py", &args);
    assert!(
        o.status.success(),
        "{name}:\n{}\nappliance log:\n{}",
        text(&o),
        a.log()
    );
    text(&o)
}

#[test]
fn the_seed_flow_with_join_tokens_and_a_timeline() {
    let a = appliance();
    let id = call_id_of(&scenario(&a, "seed", &[]));
    // The call's timeline holds every message in and out, in order.
    let body = crate::persistence::http_get(a.ports.http, &format!("/api/v1/calls/{id}/timeline"));
    let json: serde_json::Value = serde_json::from_str(&body[body.find('{').unwrap()..]).unwrap();
    let steps: Vec<(String, String, String)> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or_default().to_string();
            (s("direction"), s("client_id"), s("type"))
        })
        .collect();
    let pos = |dir: &str, who: &str, kind: &str| {
        steps
            .iter()
            .position(|(d, c, t)| d == dir && c == who && t == kind)
            .unwrap_or_else(|| panic!("{dir} {who} {kind} not in the timeline: {steps:?}"))
    };
    let start = pos("in", "GID_demo@@@alice", "call.start");
    let invite = pos("out", "GID_web@@@bob", "call.invite");
    let accept = pos("in", "GID_demo@@@bob", "call.accept");
    let ended = pos("out", "GID_demo@@@bob", "call.ended");
    assert!(
        start < invite && invite < accept && accept < ended,
        "{steps:?}"
    );
    // Join tokens went out (the scenario joined with them) but the stored
    // timeline does not keep them.
    let joins: Vec<&serde_json::Value> = json["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| {
            m["message"]["body"]["result"]
                .get("join")
                .or(m["message"]["body"].get("join"))
        })
        .collect();
    assert!(
        !joins.is_empty(),
        "answers with a join are on the timeline: {json}"
    );
    for j in joins {
        assert_eq!(j["token"], "(removed)", "{j}");
        assert_eq!(j["token_b64"], "(removed)", "{j}");
        assert!(j["nonce"].is_string(), "the rest of the join is kept: {j}");
    }
    let call = crate::persistence::http_get(a.ports.http, &format!("/api/v1/calls/{id}"));
    assert!(
        call.contains("\"reason\":\"hangup\""),
        "the stored call ended by hangup: {call}"
    );
}

#[test]
fn decline_cancel_and_ring_timeout() {
    let a = appliance();
    for s in ["decline", "cancel", "timeout"] {
        scenario(&a, s, &[]);
    }
}

#[test]
fn meeting_invite_mute_remove_end() {
    let a = appliance();
    scenario(&a, "meeting", &[]);
}

#[test]
fn callee_offline_back_within_and_after_the_time_to_live() {
    let a = appliance();
    scenario(&a, "offline", &[]);
    let b = appliance();
    scenario(&b, "offline-late", &[]);
}

#[test]
fn bad_messages_are_answered_and_change_nothing() {
    let a = appliance();
    scenario(&a, "errors", &[]);
}

fn call_id_of(out: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("phase 1 prints the call id");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["call_id"].as_str().unwrap().to_string()
}

#[test]
fn kill9_while_ringing_then_restart() {
    // Answered after the restart: the call and its invitation survived, nothing rings twice.
    let a = appliance();
    let id = call_id_of(&scenario(&a, "k9-before", &[]));
    let a = a.kill9_and_restart();
    scenario(&a, "k9-after", &["--call-id", &id]);

    // Not answered: the ring timer resumes where it was.
    let b = appliance();
    let id = call_id_of(&scenario(&b, "k9-before", &[]));
    let b = b.kill9_and_restart();
    scenario(&b, "k9-timeout", &["--call-id", &id]);
}
