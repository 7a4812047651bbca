//! Migrations from an empty database and from each earlier schema.

use rusqlite::{params, Connection};

use super::migrate::MIGRATIONS;
use super::{MasterKey, Store};

/// A database left at schema `version` by an older mqrtc.
fn database_at(path: &std::path::Path, version: usize) -> Connection {
    let c = Connection::open(path).unwrap();
    for sql in &MIGRATIONS[..version] {
        c.execute_batch(sql).unwrap();
    }
    c.pragma_update(None, "user_version", version as u32)
        .unwrap();
    c
}

#[test]
fn from_empty_to_latest() {
    let s = Store::open_in_memory().unwrap();
    assert_eq!(s.schema_version().unwrap() as usize, MIGRATIONS.len());
}

#[test]
fn from_schema_1_keeps_data_and_seals_plain_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqrtc.sqlite");
    let c = database_at(&path, 1);
    c.execute(
        "INSERT INTO instances (id, name, created_at) VALUES ('inst', 'old', 1)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO groups (id, instance_id, created_at) VALUES ('GID_old', 'inst', 1)",
        [],
    )
    .unwrap();
    c.execute("INSERT INTO topics (name, instance_id, role, created_at) VALUES ('up', 'inst', 'uplink', 1)", [])
        .unwrap();
    c.execute(
        "INSERT INTO access_keys (id, instance_id, secret, created_at) VALUES ('AKOLD', 'inst', ?1, 1)",
        params!["plain-old-secret"],
    )
    .unwrap();
    drop(c);

    let s = Store::open(&path, MasterKey::random()).unwrap();
    assert_eq!(s.schema_version().unwrap() as usize, MIGRATIONS.len());
    let d = s.directory().unwrap();
    assert_eq!(
        d.access_keys["AKOLD"].secret, "plain-old-secret",
        "the secret still works"
    );
    assert_eq!(d.group_instance("GID_old"), Some("inst"));
    assert!(
        d.groups["GID_old"].grants.is_none(),
        "old groups keep their permissions"
    );
    let left: String = s
        .conn()
        .query_row("SELECT secret FROM access_keys", [], |r| r.get(0))
        .unwrap();
    assert!(left.is_empty(), "no secret left in clear");
    // A second open changes nothing.
    drop(s);
    let key_again = MasterKey::random();
    assert!(
        Store::open(&path, key_again).unwrap().directory().is_err(),
        "another key cannot read the secrets"
    );
}

#[test]
fn from_schema_2_adds_the_controller_tables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqrtc.sqlite");
    let key = MasterKey::random();
    let c = database_at(&path, 2);
    c.execute(
        "INSERT INTO instances (id, name, created_at) VALUES ('inst', 'two', 1)",
        [],
    )
    .unwrap();
    drop(c);
    let s = Store::open(&path, key).unwrap();
    assert_eq!(s.schema_version().unwrap() as usize, MIGRATIONS.len());
    assert!(s.instance_exists("inst").unwrap());
    let loaded = s.load_controller(0).unwrap();
    assert!(loaded.calls.is_empty() && loaded.outbox.is_empty());
}

#[test]
fn from_schema_5_removes_join_tokens_from_timelines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mqrtc.sqlite");
    let c = database_at(&path, 5);
    let with_join = r#"{"id":"m1","type":"reply","body":{"result":{"call":{"call_id":"c1"},"join":{"channel":"ch","token":"secret-hex","token_b64":"c2VjcmV0","nonce":"n"}}}}"#;
    let without =
        r#"{"id":"m2","type":"call.ringing","body":{"call_id":"c1","token":"not-a-join-token"}}"#;
    for (at, m) in [(1, with_join), (2, without)] {
        c.execute(
            "INSERT INTO call_events (call_id, at, direction, client_id, type, message) VALUES ('c1', ?1, 'out', 'GID_x@@@a', 't', ?2)",
            params![at, m],
        )
        .unwrap();
    }
    drop(c);
    let _ = Store::open(&path, MasterKey::random()).unwrap();
    let c = Connection::open(&path).unwrap();
    let rows: Vec<serde_json::Value> = c
        .prepare("SELECT message FROM call_events ORDER BY at")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|m| serde_json::from_str(&m.unwrap()).unwrap())
        .collect();
    let join = &rows[0]["body"]["result"]["join"];
    assert_eq!(join["token"], "(removed)");
    assert_eq!(join["token_b64"], "(removed)");
    assert_eq!(join["nonce"], "n", "the rest of the join stays");
    assert_eq!(
        rows[1]["body"]["token"], "not-a-join-token",
        "only join tokens go"
    );
}
