//! Upgrades: each fixture in `tests/fixtures/upgrade/` is a data directory
//! written by a release (`scripts/make-upgrade-fixture.sh`). This build
//! starts on it: the database is migrated to the latest schema, every row
//! of every table is still there, and the data is served (the instances,
//! the admin API with the fixture's key, the call history with its
//! timeline).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::common::http::request;
use crate::common::{run, text, Appliance};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upgrade");

/// Tables whose rows expire by design, whatever the release: remembered
/// replies (minutes), console sessions, downlinks already handed over.
const EXPIRING: &[&str] = &["call_replies", "admin_sessions", "outbox"];

/// A copy of the fixture as a data directory (git keeps no file modes).
fn data_dir_from(fixture: &Path) -> Arc<tempfile::TempDir> {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
    for f in ["mqrtc.sqlite", "master.key"] {
        let to = dir.path().join(f);
        std::fs::copy(fixture.join(f), &to).unwrap_or_else(|e| panic!("{f}: {e}"));
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    Arc::new(dir)
}

fn json(o: std::process::Output, what: &str) -> Value {
    assert!(o.status.success(), "{what}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{what}: not JSON ({e})"))
}

#[test]
fn every_release_fixture_migrates_keeps_every_row_and_is_served() {
    let latest = mqrtc::store::Store::open_in_memory()
        .and_then(|s| s.schema_version())
        .expect("schema version of a new database");
    let mut fixtures: Vec<_> = std::fs::read_dir(FIXTURES)
        .expect("tests/fixtures/upgrade")
        .map(|e| e.expect("entry").path())
        .collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "no fixture in {FIXTURES}");
    for fixture in fixtures {
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture.join("manifest.json")).expect("manifest.json"),
        )
        .expect("manifest JSON");
        let dir = data_dir_from(&fixture);
        let data = dir.path().to_str().expect("utf-8 path").to_string();
        // Old calls are kept (the default retention would delete them once
        // the fixture is 30 days old).
        let conf = dir.path().join("keep.toml");
        std::fs::write(&conf, "[controller]\nretention_days = 0\n").expect("config");
        let mut a =
            Appliance::start_bare(dir.clone(), &["--config", conf.to_str().expect("utf-8")]);

        let instances = json(
            run(
                env!("CARGO_BIN_EXE_mqrtc"),
                &["instance", "list", "--data-dir", &data, "--json"],
            ),
            "instance list",
        );
        let ids = instances.to_string();
        assert!(
            ids.contains("acme") && ids.contains("demo"),
            "{fixture:?}: {ids}"
        );
        let key = json(
            run(
                env!("CARGO_BIN_EXE_mqrtc"),
                &[
                    "admin",
                    "api-key-create",
                    "upgrade",
                    "--data-dir",
                    &data,
                    "--json",
                ],
            ),
            "api-key-create",
        );
        let auth = format!("Bearer {}", key["key"].as_str().expect("key"));
        let (status, body) = request(
            a.ports.http,
            "GET",
            "/api/v1/calls",
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(status, 200, "{body}");
        let calls: Value = serde_json::from_str(&body).expect("JSON");
        let call_id = calls["items"][0]["call_id"]
            .as_str()
            .unwrap_or_else(|| panic!("{fixture:?}: no call in {body}"))
            .to_string();
        let (status, body) = request(
            a.ports.http,
            "GET",
            &format!("/api/v1/calls/{call_id}/timeline"),
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains("call.start"), "{fixture:?}: timeline {body}");
        a.terminate();

        let c = rusqlite::Connection::open(dir.path().join("mqrtc.sqlite")).expect("open");
        let version: u32 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .expect("version");
        assert_eq!(
            version, latest,
            "{fixture:?} (schema {}) not migrated",
            manifest["schema"]
        );
        for (table, rows) in manifest["rows"].as_object().expect("rows") {
            if EXPIRING.contains(&table.as_str()) {
                continue;
            }
            let n: i64 = c
                .query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
                    r.get(0)
                })
                .unwrap_or_else(|e| panic!("{fixture:?}: table {table}: {e}"));
            assert!(
                n >= rows.as_i64().expect("count"),
                "{fixture:?}: {table} had {rows} rows, now {n}"
            );
        }
    }
}
