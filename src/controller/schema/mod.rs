//! The protocol as a JSON Schema (draft 2020-12), generated from the Rust
//! types that decode requests (`bodies`) and describe answers and events
//! (`crate::calls`), and published as `docs/protocol.schema.json` (a test
//! fails when that file is out of date).
//!
//! Shape: `$defs/Uplink` is a request as a device publishes it,
//! `$defs/Downlink` an answer or event as a device receives it; both are the
//! `Envelope` with the body chosen by `type` (`if`/`then`), and the root
//! accepts either. Every body has its own definition: `<Type>Request`,
//! `<Type>Result` (the `result` body answering that request), `<Type>Event`,
//! `ErrorBody`.

pub mod bodies;
#[cfg(test)]
mod encoder_tests;
#[cfg(test)]
mod tests;

use schemars::generate::{SchemaGenerator, SchemaSettings};
use schemars::{json_schema, JsonSchema, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::protocol::{call_error_code, Envelope, WireError};
use crate::calls::{CallError, Event};
use bodies::{
    CallIdBody, CallIdReply, ContactsReply, ErrorBody, InviteBody, JoinReply, MuteBody, RemoveBody,
    RequestType, StartBody, SyncReply, TransferHostBody,
};

/// Where the schema is published, relative to the repository root.
pub const PATH: &str = "docs/protocol.schema.json";

/// The schema's `$id`.
pub const ID: &str = "urn:mqrtc:protocol:1";

/// The JSON Schema of every message of the protocol, both directions.
pub fn document() -> Value {
    let mut de = generator().for_deserialize().into_generator();
    let mut ser = generator().for_serialize().into_generator();
    let mut defs = Map::new();
    de.subschema_for::<Envelope>();

    let (mut up_types, mut up_rules) = (Vec::new(), Vec::new());
    for (t, doc) in variants::<RequestType>() {
        let wire = wire_name(&t);
        let (body_def, result_def) = (def_name(&wire, "Request"), def_name(&wire, "Result"));
        let body = described(
            request_body(t, &mut de),
            &format!(
                "`{wire}` request body. {doc} Answered by a `result` whose body is `{result_def}`."
            ),
        );
        let result = described(
            result_body(t, &mut ser),
            &format!("The `result` body answering `{wire}`."),
        );
        defs.insert(body_def.clone(), body);
        defs.insert(result_def, result);
        // The bodies of `sync` and `contacts` are not read, so they may be absent.
        let required = !matches!(t, RequestType::Sync | RequestType::Contacts);
        up_rules.push(rule(&wire, &body_def, required, &[]));
        up_types.push(wire);
    }

    let mut down_types = vec!["result".to_string(), "error".to_string()];
    let mut down_rules = vec![
        rule("result", "ResultBody", true, &["req"]),
        rule("error", "ErrorBody", true, &[]),
    ];
    let results: Vec<Value> = [
        ser.subschema_for::<CallIdReply>(),
        ser.subschema_for::<JoinReply>(),
        ser.subschema_for::<SyncReply>(),
        ser.subschema_for::<ContactsReply>(),
    ]
    .into_iter()
    .map(Schema::to_value)
    .collect();
    defs.insert(
        "ResultBody".into(),
        json!({
            "description": "The body of a `result` answer: its shape depends on the request \
                            (see `<Type>Result`); the answer's `req` names the request.",
            "oneOf": results,
        }),
    );
    ser.subschema_for::<ErrorBody>();
    ser.subschema_for::<Event>();
    let events = ser.definitions_mut().remove("Event").unwrap_or_default();
    for branch in events["oneOf"].as_array().into_iter().flatten() {
        let wire = branch["properties"]["type"]["const"]
            .as_str()
            .unwrap_or_default();
        let name = def_name(wire, "Event");
        let mut body = branch["properties"]["body"].clone();
        body["description"] = branch["description"].clone();
        defs.insert(name.clone(), body);
        down_rules.push(rule(wire, &name, true, &[]));
        down_types.push(wire.to_string());
    }

    for (name, schema) in de
        .take_definitions(true)
        .into_iter()
        .chain(ser.take_definitions(true))
    {
        if let Some(other) = defs.get(&name) {
            assert_eq!(other, &schema, "two schemas named {name}");
        }
        defs.insert(name, schema);
    }
    defs.insert(
        "Uplink".into(),
        envelope(
            "A request: what a device publishes on an uplink topic.",
            &up_types,
            up_rules,
            &[],
        ),
    );
    defs.insert(
        "Downlink".into(),
        envelope(
            "An answer (`result` or `error`) or an event: what the controller sends a device.",
            &down_types,
            down_rules,
            &["ttl"],
        ),
    );
    let mut doc = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": ID,
        "title": "mqrtc signaling protocol, version 1",
        "description": "Every message between devices and mqrtc's call controller \
                        (docs/protocol.md). Generated from the Rust types; do not edit.",
        "anyOf": [{ "$ref": "#/$defs/Uplink" }, { "$ref": "#/$defs/Downlink" }],
        "$defs": defs,
    });
    tidy(&mut doc);
    doc
}

/// The published text: `document()`, pretty-printed, its own keys first and
/// `$defs` last, with a final newline.
pub fn text() -> String {
    #[derive(Serialize)]
    struct Ordered<'a> {
        #[serde(rename = "$schema")]
        schema: &'a Value,
        #[serde(rename = "$id")]
        id: &'a Value,
        title: &'a Value,
        description: &'a Value,
        #[serde(rename = "anyOf")]
        any_of: &'a Value,
        #[serde(rename = "$defs")]
        defs: &'a Value,
    }
    let d = document();
    let ordered = Ordered {
        schema: &d["$schema"],
        id: &d["$id"],
        title: &d["title"],
        description: &d["description"],
        any_of: &d["anyOf"],
        defs: &d["$defs"],
    };
    let mut s = serde_json::to_string_pretty(&ordered).unwrap_or_default();
    s.push('\n');
    s
}

fn generator() -> SchemaSettings {
    SchemaSettings::draft2020_12()
}

/// The schema of a request type's body (what `protocol::decode` parses).
fn request_body(t: RequestType, g: &mut SchemaGenerator) -> Schema {
    use RequestType::*;
    match t {
        Start => g.subschema_for::<StartBody>(),
        Ringing | Accept | Decline | Cancel | Leave | Hangup | End => {
            g.subschema_for::<CallIdBody>()
        }
        Invite => g.subschema_for::<InviteBody>(),
        Mute => g.subschema_for::<MuteBody>(),
        Remove => g.subschema_for::<RemoveBody>(),
        TransferHost => g.subschema_for::<TransferHostBody>(),
        Sync | Contacts => json_schema!({ "description": "Not read: send `{}`." }),
    }
}

/// The schema of the `result` body answering a request type.
fn result_body(t: RequestType, g: &mut SchemaGenerator) -> Schema {
    use RequestType::*;
    match t {
        Start | Accept | Invite => g.subschema_for::<JoinReply>(),
        Sync => g.subschema_for::<SyncReply>(),
        Contacts => g.subschema_for::<ContactsReply>(),
        Ringing | Decline | Cancel | Leave | Hangup | End | Mute | Remove | TransferHost => {
            g.subschema_for::<CallIdReply>()
        }
    }
}

/// Every error code of an `error` answer, with its meaning.
fn error_codes(_: &mut SchemaGenerator) -> Schema {
    let wire = variants::<WireError>()
        .into_iter()
        .map(|(e, doc)| json!({ "const": e.code(), "description": doc }));
    let calls = variants::<CallError>()
        .into_iter()
        .map(|(e, doc)| json!({ "const": call_error_code(e), "description": doc }));
    let unavailable = json!({ "const": super::protocol::UNAVAILABLE,
        "description": "Not stored (the appliance's disk or database failed): nothing changed; send it again with the same `req`." });
    let all = wire.chain(calls).chain([unavailable]).collect::<Vec<_>>();
    json_schema!({ "type": "string", "oneOf": all })
}

/// The variants of a unit-only enum, with their doc comments, read from its schema.
fn variants<T: JsonSchema + DeserializeOwned>() -> Vec<(T, String)> {
    let schema = generator().into_generator().into_root_schema_for::<T>();
    let v = schema.as_value();
    let names: Vec<(Value, String)> = match (v.get("enum"), v.get("oneOf")) {
        (Some(Value::Array(names)), _) => {
            names.iter().map(|n| (n.clone(), String::new())).collect()
        }
        (_, Some(Value::Array(branches))) => branches
            .iter()
            .map(|b| {
                let doc = b["description"].as_str().unwrap_or_default().to_string();
                (
                    b.get("const")
                        .or_else(|| b["enum"].get(0))
                        .cloned()
                        .unwrap_or_default(),
                    doc,
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .map(|(n, doc)| {
            let t = serde_json::from_value(n.clone())
                .unwrap_or_else(|e| panic!("variant {n} does not read back: {e}"));
            (t, doc)
        })
        .collect()
}

/// The string a unit variant is written as.
fn wire_name<T: Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `call.answered_elsewhere` + `Event` → `CallAnsweredElsewhereEvent`.
fn def_name(wire: &str, suffix: &str) -> String {
    let mut name: String = wire
        .split(['.', '_'])
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect();
    name.push_str(suffix);
    name
}

/// `schema` (often a `$ref`) with a description.
fn described(schema: Schema, description: &str) -> Value {
    let mut v = schema.to_value();
    if let Value::Bool(true) = v {
        v = json!({});
    }
    v["description"] = json!(description);
    v
}

/// If `type` is `wire`, the body must fit `$defs/<def>` (and `also` be present).
fn rule(wire: &str, def: &str, body_required: bool, also: &[&str]) -> Value {
    let mut required: Vec<&str> = also.to_vec();
    if body_required {
        required.push("body");
    }
    json!({
        "if": { "type": "object", "properties": { "type": { "const": wire } }, "required": ["type"] },
        "then": {
            "type": "object",
            "properties": { "body": { "$ref": format!("#/$defs/{def}") } },
            "required": required,
        },
    })
}

/// An `Envelope` whose `type` is one of `types`, with one rule per type.
fn envelope(description: &str, types: &[String], rules: Vec<Value>, required: &[&str]) -> Value {
    json!({
        "description": description,
        "type": "object",
        "$ref": "#/$defs/Envelope",
        "properties": { "type": { "enum": types } },
        "required": required,
        "allOf": rules,
    })
}

/// Drops schemars' `format` of integers (`int64`, `uint32`...): not formats
/// of JSON Schema, and strict validators (Ajv) refuse unknown formats. Joins
/// the lines of descriptions taken from wrapped doc comments.
fn tidy(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let numeric = m
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("int") || f.starts_with("uint") || f == "double");
            if numeric {
                m.remove("format");
            }
            if let Some(Value::String(d)) = m.get_mut("description") {
                *d = d
                    .split("\n\n")
                    .map(|p| p.replace('\n', " "))
                    .collect::<Vec<_>>()
                    .join("\n\n");
            }
            m.values_mut().for_each(tidy);
        }
        Value::Array(a) => a.iter_mut().for_each(tidy),
        _ => {}
    }
}
