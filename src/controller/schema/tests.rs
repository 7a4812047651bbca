//! The published schema is current, and it accepts what the decoder accepts.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::{document, text, PATH};
use crate::controller::protocol::{decode, WireError};

/// A validator for `$defs/<def>` of the document (the root when `def` is empty).
pub(super) fn validator(def: &str) -> jsonschema::Validator {
    let mut doc = document();
    if !def.is_empty() {
        let m = doc.as_object_mut().expect("an object");
        m.remove("anyOf");
        m.insert("$ref".into(), json!(format!("#/$defs/{def}")));
    }
    jsonschema::draft202012::new(&doc).expect("the schema compiles")
}

/// Why `v` does not fit (empty when it does).
pub(super) fn errors(v: &jsonschema::Validator, msg: &Value) -> String {
    v.iter_errors(msg)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn published_schema_is_current() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(PATH);
    let fresh = text();
    if std::env::var_os("MQRTC_UPDATE_SCHEMA").is_some_and(|v| v == "1") {
        std::fs::write(&path, &fresh).expect("writing the schema");
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == fresh,
        "{PATH} is not what the Rust types generate: rerun with MQRTC_UPDATE_SCHEMA=1 \
         (`MQRTC_UPDATE_SCHEMA=1 cargo test --lib controller::schema`) to rewrite it, \
         then review and commit it"
    );
}

#[test]
fn schema_is_valid_draft_2020_12() {
    let doc = document();
    let meta = jsonschema::draft202012::meta::validate(&doc);
    assert!(meta.is_ok(), "{meta:?}");
    // Every request and event type has a body definition.
    let defs = doc["$defs"].as_object().expect("$defs");
    for dir in ["Uplink", "Downlink"] {
        for t in defs[dir]["properties"]["type"]["enum"]
            .as_array()
            .expect("types")
        {
            let t = t.as_str().expect("a type name");
            let rule = defs[dir]["allOf"].as_array().and_then(|r| {
                r.iter()
                    .find(|r| r["if"]["properties"]["type"]["const"] == t)
            });
            let body = rule.map(|r| &r["then"]["properties"]["body"]["$ref"]);
            let def = body
                .and_then(Value::as_str)
                .map(|r| r.trim_start_matches("#/$defs/"));
            assert!(
                def.is_some_and(|d| defs.contains_key(d)),
                "{dir} {t}: no body"
            );
        }
    }
    assert_eq!(
        defs["Uplink"]["properties"]["type"]["enum"]
            .as_array()
            .map(Vec::len),
        Some(14)
    );
    assert_eq!(
        defs["Downlink"]["properties"]["type"]["enum"]
            .as_array()
            .map(Vec::len),
        Some(11)
    );
    let codes = defs["ErrorBody"]["properties"]["code"]["oneOf"]
        .as_array()
        .expect("codes");
    let mut names: Vec<&str> = codes.iter().filter_map(|c| c["const"].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), 19, "every error code, once: {names:?}");
}

/// (type, body, whether the decoder takes it): the schema must say the same.
fn samples() -> Vec<(&'static str, Option<Value>, bool)> {
    let c = || json!({"call_id": "c1"});
    let mut s = vec![
        ("call.start", Some(json!({"to": "bob"})), true),
        (
            "call.start",
            Some(
                json!({"to": ["bob", "carol"], "kind": "meeting", "media": "audio", "title": "t"}),
            ),
            true,
        ),
        (
            "call.start",
            Some(json!({"to": "bob", "kind": null, "media": null, "title": null, "extra": 1})),
            true,
        ),
        ("call.start", Some(json!({"to": []})), true),
        ("call.start", Some(json!({})), false),
        ("call.start", Some(json!({"to": ["bob", 2]})), false),
        (
            "call.start",
            Some(json!({"to": "bob", "kind": "conference"})),
            false,
        ),
        ("call.start", Some(json!({"to": "bob", "kind": 1})), false),
        (
            "call.start",
            Some(json!({"to": "bob", "media": "AUDIO"})),
            false,
        ),
        ("call.start", Some(json!({"to": "bob", "title": 5})), false),
        ("call.start", None, false),
        (
            "call.invite",
            Some(json!({"call_id": "c1", "to": "dave"})),
            true,
        ),
        (
            "call.invite",
            Some(json!({"call_id": "c1", "to": ["dave"]})),
            true,
        ),
        ("call.invite", Some(json!({"to": "dave"})), false),
        ("call.invite", Some(c()), false),
        (
            "call.mute",
            Some(json!({"call_id": "c1", "muted": true})),
            true,
        ),
        (
            "call.mute",
            Some(json!({"call_id": "c1", "muted": false, "media": "video", "target": "bob"})),
            true,
        ),
        ("call.mute", Some(c()), false),
        (
            "call.mute",
            Some(json!({"call_id": "c1", "muted": "yes"})),
            false,
        ),
        (
            "call.mute",
            Some(json!({"call_id": "c1", "muted": true, "target": 5})),
            false,
        ),
        (
            "call.remove",
            Some(json!({"call_id": "c1", "target": "bob"})),
            true,
        ),
        ("call.remove", Some(c()), false),
        (
            "call.transfer_host",
            Some(json!({"call_id": "c1", "to": "bob"})),
            true,
        ),
        (
            "call.transfer_host",
            Some(json!({"call_id": "c1", "to": ["bob"]})),
            false,
        ),
        ("sync", Some(json!({})), true),
        ("sync", None, true),
        ("call.fly", Some(c()), false),
    ];
    for t in [
        "call.ringing",
        "call.accept",
        "call.decline",
        "call.cancel",
        "call.leave",
        "call.hangup",
        "call.end",
    ] {
        s.push((t, Some(c()), true));
        s.push((t, Some(json!({"call_id": 7})), false));
        s.push((t, Some(json!([])), false));
        s.push((t, None, false));
    }
    s
}

#[test]
fn decoder_and_schema_agree() {
    let uplink = validator("Uplink");
    for (t, body, takes) in samples() {
        let mut msg = json!({"v": 1, "id": "m1", "type": t, "ts": 1});
        if let Some(b) = body {
            msg["body"] = b;
        }
        let payload = serde_json::to_vec(&msg).expect("json");
        let decoded = decode(&payload, "GID_demo@@@alice", 16 * 1024);
        assert_eq!(decoded.is_ok(), takes, "decoder on {msg}: {decoded:?}");
        if let Err((e, _)) = decoded {
            let want = if t == "call.fly" {
                WireError::UnknownType
            } else {
                WireError::BadBody
            };
            assert_eq!(e, want, "{msg}");
        }
        assert_eq!(
            uplink.is_valid(&msg),
            takes,
            "schema on {msg}: {}",
            errors(&uplink, &msg)
        );
    }
    for bad in [
        json!({"v": 1, "id": "", "type": "sync", "ts": 1}),
        json!({"v": 1, "id": "x".repeat(129), "type": "sync", "ts": 1}),
        json!({"v": 1, "id": "m", "req": "r".repeat(129), "type": "sync", "ts": 1}),
        json!({"v": 2, "id": "m", "type": "sync", "ts": 1}),
        json!({"v": 1, "id": "m", "type": "sync"}),
        json!({"v": 1, "id": "m", "type": "sync", "ts": "1"}),
    ] {
        let payload = serde_json::to_vec(&bad).expect("json");
        assert!(decode(&payload, "x", 16 * 1024).is_err(), "{bad}");
        assert!(!uplink.is_valid(&bad), "{bad}");
    }
}

/// The ```json blocks of `docs/protocol.md` that are messages.
fn documented_messages() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    doc.split("```json\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .filter(|v| v.get("v").is_some())
        .collect()
}

#[test]
fn documented_examples_fit_the_schema() {
    let any = validator("");
    let messages = documented_messages();
    assert!(messages.len() >= 5, "examples found: {}", messages.len());
    for m in &messages {
        assert!(
            any.is_valid(m),
            "docs/protocol.md example {m}: {}",
            errors(&any, m)
        );
    }
}

#[test]
fn documented_token_recomputes() {
    use crate::rtc::{MockRtc, RtcProvider};
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let (key, channel, issued) = (
        "q3Vx8LmT2cN7pR4sW9yB1dF6hJ0kZ5aE",
        "ch01KAZ995CCW7QJ3M8X2R5T9VNB",
        1764134000012,
    );
    let gslb = vec!["http://127.0.0.1:8080/rtc/v1".to_string()];
    let (rtc, _) = MockRtc::new("mqrtc-local", key, 86_400, gslb);
    let p = rtc.join_params(channel, "alice", issued);
    let concatenated = format!("mqrtc-local{key}{channel}alice{}{}", p.nonce, p.timestamp);
    for part in [
        key,
        channel,
        &p.nonce,
        &concatenated,
        &p.token,
        &p.token_b64,
    ] {
        assert!(doc.contains(part), "docs/protocol.md lacks {part}");
    }
}

#[test]
fn every_error_code_is_documented() {
    let doc = document();
    let codes: Vec<&str> = doc["$defs"]["ErrorBody"]["properties"]["code"]["oneOf"]
        .as_array()
        .expect("ErrorBody.code lists its codes")
        .iter()
        .filter_map(|c| c["const"].as_str())
        .collect();
    assert!(codes.len() > 10, "{codes:?}");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for page in ["docs/protocol.md", "docs/refusals.md"] {
        let text = std::fs::read_to_string(root.join(page)).expect("the page");
        let missing: Vec<_> = codes
            .iter()
            .filter(|c| !text.contains(&format!("`{c}`")))
            .collect();
        assert!(missing.is_empty(), "{page} does not list {missing:?}");
    }
}
