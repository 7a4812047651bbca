//! Real downlinks, made by the controller from real uplinks, fit the schema.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::document;
use super::tests::{errors, validator};
use crate::bridge::{BridgeEvent, Uplink};
use crate::calls::{Engine, Rules};
use crate::controller::now_ms;
use crate::controller::runtime::{Runtime, Settings, Staged};
use crate::directory::{Directory, ParentTopic, SharedDirectory, TopicRole};
use crate::rtc::MockRtc;
use crate::store::Store;

/// A controller runtime with no broker: uplinks go in, the downlinks it
/// would publish come out.
struct Rig {
    rt: Runtime,
    n: u32,
    /// (call id, client id) of every timeline entry written.
    logged: Vec<(String, String)>,
}

/// The rig hands nothing to a broker: it reads the staged batch.
struct NoBroker;

#[async_trait::async_trait]
impl crate::bridge::MessageBridge for NoBroker {
    fn subscribe(
        &self,
        _: crate::bridge::Topics,
        _: usize,
    ) -> Result<crate::bridge::EventStream, crate::bridge::BridgeError> {
        Err(crate::bridge::BridgeError::Closed)
    }

    async fn connected_clients(&self) -> Result<Vec<String>, crate::bridge::BridgeError> {
        Ok(Vec::new())
    }

    async fn publish(&self, _: crate::bridge::Downlink) -> Result<(), crate::bridge::BridgeError> {
        Err(crate::bridge::BridgeError::Closed)
    }
}

impl Rig {
    fn new(clients: &[&str]) -> Rig {
        let mut d = Directory::default();
        d.instances.push("demo".into());
        d.add_group("GID_demo", "demo");
        d.add_group("GID_web", "demo");
        for (name, role) in [
            ("rtc_up", TopicRole::Uplink),
            ("rtc_down", TopicRole::Downlink),
        ] {
            let topic = ParentTopic {
                instance: "demo".into(),
                role,
            };
            d.topics.insert(name.into(), topic);
        }
        let gslb = vec!["http://127.0.0.1:8080/rtc/v1".to_string()];
        let (rtc, _) = MockRtc::new("mqrtc-local", "key", 86_400, gslb);
        let (out, _) = mpsc::unbounded_channel();
        let rules = Rules::default();
        let settings = Settings {
            rules: rules.clone(),
            max_message_bytes: 16 * 1024,
            clock_skew_ms: 30_000,
            retention_ms: 0,
        };
        let rt = Runtime::new(
            settings,
            Engine::new(rules),
            Vec::new(),
            Arc::new(NoBroker),
            Arc::new(Store::open_in_memory().expect("store")),
            Arc::new(SharedDirectory::new(d)),
            Arc::new(rtc),
            out,
        );
        let mut rig = Rig {
            rt,
            n: 0,
            logged: Vec::new(),
        };
        let mut staged = Staged::default();
        for c in clients {
            let ev = BridgeEvent::Connected {
                client_id: c.to_string(),
                at: SystemTime::now(),
            };
            rig.rt.bridge_event(ev, &mut staged);
        }
        rig
    }

    /// Publishes `payload` from `sender`; returns (recipient, message) of every downlink.
    fn raw(&mut self, sender: &str, payload: Vec<u8>) -> Vec<(String, Value)> {
        let up = Uplink {
            sender: sender.into(),
            topic: "rtc_up/call".into(),
            payload: payload.into(),
            qos: 1,
            is_will: false,
            received_at: SystemTime::now(),
            ack: None,
        };
        let mut staged = Staged::default();
        self.rt.uplink(up, &mut staged);
        let logged = staged.batch.events.iter();
        self.logged
            .extend(logged.map(|(call, e)| (call.clone(), e.client_id.clone())));
        let out = staged.batch.outbox.into_iter();
        out.map(|(to, _, p, _)| (to, serde_json::from_str(&p).expect("a JSON downlink")))
            .collect()
    }

    /// Sends a request (checked against the schema too); returns every downlink.
    fn send(&mut self, sender: &str, kind: &str, body: Value) -> Vec<(String, Value)> {
        self.n += 1;
        let msg = json!({"v": 1, "id": format!("m-{}", self.n), "req": format!("r-{}", self.n),
                         "type": kind, "ts": now_ms(), "ttl": 30_000, "body": body});
        let uplink = validator("Uplink");
        assert!(uplink.is_valid(&msg), "{msg}: {}", errors(&uplink, &msg));
        self.raw(sender, serde_json::to_vec(&msg).expect("json"))
    }
}

/// The body of the `result` to `to` among `out`.
fn result(out: &[(String, Value)], to: &str) -> Value {
    let found = out.iter().find(|(c, m)| c == to && m["type"] == "result");
    found
        .map(|(_, m)| m["body"].clone())
        .unwrap_or_else(|| panic!("no result for {to}: {out:?}"))
}

const ALICE: &str = "GID_demo@@@alice";
const BOB: &str = "GID_demo@@@bob";
const BOB_WEB: &str = "GID_web@@@bob";
const CAROL: &str = "GID_demo@@@carol";

/// Every downlink of a meeting's life, from start to end.
fn a_meeting() -> Vec<(String, Value)> {
    let mut rig = Rig::new(&[ALICE, BOB, BOB_WEB, CAROL]);
    let mut all = Vec::new();
    let started = rig.send(
        ALICE,
        "call.start",
        json!({"to": ["bob", "carol"], "title": "standup"}),
    );
    let call_id = result(&started, ALICE)["call"]["call_id"].clone();
    assert!(
        result(&started, ALICE)["join"]["token"].is_string(),
        "a result with join"
    );
    assert!(started
        .iter()
        .any(|(c, m)| c == CAROL && m["type"] == "call.invite"));
    all.extend(started);
    let c = || json!({"call_id": call_id});
    all.extend(rig.send(BOB, "call.ringing", c()));
    all.extend(rig.send(BOB, "call.accept", c()));
    let synced = rig.send(BOB_WEB, "sync", json!({}));
    assert_eq!(
        result(&synced, BOB_WEB)["joins"].as_array().map(Vec::len),
        Some(1)
    );
    all.extend(synced);
    let synced = rig.send(CAROL, "sync", json!({}));
    assert_eq!(
        result(&synced, CAROL)["invites"].as_array().map(Vec::len),
        Some(1)
    );
    all.extend(synced);
    all.extend(rig.send(
        ALICE,
        "call.mute",
        json!({"call_id": call_id, "muted": true, "target": "bob"}),
    ));
    all.extend(rig.send(
        ALICE,
        "call.transfer_host",
        json!({"call_id": call_id, "to": "bob"}),
    ));
    all.extend(rig.send(
        BOB,
        "call.remove",
        json!({"call_id": call_id, "target": "alice"}),
    ));
    let refused = rig.send(ALICE, "call.leave", c());
    assert_eq!(
        refused[0].1["body"]["code"], "invalid_state",
        "after removal"
    );
    all.extend(refused);
    all.extend(rig.send(ALICE, "call.accept", json!({"call_id": "no-such-call"})));
    all.extend(rig.send(BOB, "call.end", c()));
    all.extend(rig.raw(CAROL, b"{not json".to_vec()));
    all.extend(rig.raw(
        CAROL,
        br#"{"v":1,"id":"m-x","type":"call.fly","ts":1}"#.to_vec(),
    ));
    all
}

#[test]
fn encoded_downlinks_fit_the_schema() {
    let downlink = validator("Downlink");
    let any = validator("");
    let strict = strict_validator();
    let all = a_meeting();
    let mut seen = BTreeSet::new();
    for (to, m) in &all {
        assert!(
            downlink.is_valid(m),
            "to {to}: {m}: {}",
            errors(&downlink, m)
        );
        assert!(any.is_valid(m), "to {to}: {m}: {}", errors(&any, m));
        assert!(
            strict.is_valid(m),
            "a field the schema does not describe, to {to}: {m}: {}",
            errors(&strict, m)
        );
        seen.insert(m["type"].as_str().unwrap_or_default().to_string());
    }
    let doc = document();
    let types = doc["$defs"]["Downlink"]["properties"]["type"]["enum"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let types: BTreeSet<String> = types
        .iter()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect();
    assert_eq!(seen, types, "every downlink type was produced and checked");
    let codes: BTreeSet<&str> = all
        .iter()
        .filter(|(_, m)| m["type"] == "error")
        .filter_map(|(_, m)| m["body"]["code"].as_str())
        .collect();
    assert_eq!(
        codes,
        BTreeSet::from(["bad_json", "invalid_state", "not_found", "unknown_type"])
    );
    // The strict check does catch a field the schema does not describe.
    let (_, joined) = all
        .iter()
        .find(|(_, m)| m["body"]["join"].is_object())
        .expect("a join");
    let mut extra = joined.clone();
    extra["body"]["join"]["region"] = json!("eu");
    assert!(downlink.is_valid(&extra) && !strict.is_valid(&extra));
}

/// The schema with `unevaluatedProperties: false` on every definition that
/// lists properties: a field the encoder writes but the schema lacks fails.
fn strict_validator() -> jsonschema::Validator {
    let mut doc = document();
    for (name, def) in doc["$defs"].as_object_mut().into_iter().flatten() {
        if name != "Uplink" && name != "Downlink" && def.get("properties").is_some() {
            def["unevaluatedProperties"] = json!(false);
        }
    }
    doc.as_object_mut().map(|m| m.remove("anyOf"));
    doc["$ref"] = json!("#/$defs/Downlink");
    jsonschema::draft202012::new(&doc).expect("the strict schema compiles")
}

#[test]
fn an_outsiders_request_is_answered_but_not_logged_on_the_call() {
    let mut rig = Rig::new(&[ALICE, BOB, CAROL]);
    let started = rig.send(ALICE, "call.start", json!({"to": "bob"}));
    let call_id = result(&started, ALICE)["call"]["call_id"]
        .as_str()
        .expect("call id")
        .to_string();
    let out = rig.send(CAROL, "call.accept", json!({"call_id": call_id}));
    assert!(
        out.iter().any(|(c, m)| c == CAROL && m["type"] == "error"),
        "{out:?}"
    );
    assert!(
        rig.logged
            .iter()
            .any(|(c, who)| *c == call_id && who == ALICE),
        "a participant's request is logged"
    );
    assert!(
        !rig.logged.iter().any(|(_, who)| who == CAROL),
        "an outsider's is not: {:?}",
        rig.logged
    );
}
