//! Migrations from an empty database and from each earlier schema.

use rusqlite::{params, Connection};

use super::{MasterKey, Store, MIGRATIONS};

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
