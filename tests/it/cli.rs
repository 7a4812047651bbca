//! The command line: configuration layering and errors, healthcheck.

use crate::common::{run, text, Appliance};

fn mqrtc(args: &[&str]) -> std::process::Output {
    run(env!("CARGO_BIN_EXE_mqrtc"), args)
}

#[test]
fn print_config_shows_the_effective_configuration() {
    let o = mqrtc(&["print-config", "--mqtt-port", "1999", "--all-interfaces"]);
    assert!(o.status.success(), "{}", text(&o));
    let cfg: toml::Table = toml::from_str(&String::from_utf8_lossy(&o.stdout)).expect("valid TOML");
    assert_eq!(cfg["ports"]["mqtt"].as_integer(), Some(1999));
    assert_eq!(cfg["ports"]["wss"].as_integer(), Some(8084));
    assert_eq!(cfg["bind"].as_str(), Some("0.0.0.0"));
    assert_eq!(cfg["limits"]["max_payload_bytes"].as_integer(), Some(65536));
}

#[test]
fn unknown_keys_are_errors_that_say_how_to_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mqrtc.toml");
    std::fs::write(&file, "[limits]\nmax_topic_length = 80\n").unwrap();
    let o = mqrtc(&["print-config", "--config", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    let t = text(&o);
    assert!(
        t.contains("max_topic_length") && t.contains("print-config"),
        "{t}"
    );

    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqrtc"))
        .arg("print-config")
        .env("MQRTC_PORTS__MQQT", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("mqqt"), "{}", text(&o));
}

#[test]
fn environment_beats_file_and_flags_beat_both() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mqrtc.toml");
    std::fs::write(&file, "[ports]\nhttp = 1000\nmqtt = 1000\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_mqrtc"))
        .args([
            "print-config",
            "--config",
            file.to_str().unwrap(),
            "--mqtt-port",
            "3000",
        ])
        .env("MQRTC_PORTS__HTTP", "2000")
        .env("MQRTC_PORTS__MQTT", "2000")
        .output()
        .unwrap();
    let cfg: toml::Table = toml::from_str(&String::from_utf8_lossy(&o.stdout)).expect("valid TOML");
    assert_eq!(cfg["ports"]["http"].as_integer(), Some(2000));
    assert_eq!(cfg["ports"]["mqtt"].as_integer(), Some(3000));
}

#[test]
fn healthcheck_reports_a_running_appliance_and_fails_without_one() {
    let a = Appliance::start(&["--dev"]);
    let o = mqrtc(&["healthcheck", "--data-dir", a.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("healthy"), "{}", text(&o));
    let empty = tempfile::tempdir().unwrap();
    let o = mqrtc(&["healthcheck", "--data-dir", empty.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("ports.json"), "{}", text(&o));
}

#[test]
fn ports_file_names_every_bound_port() {
    let a = Appliance::start(&["--dev"]);
    let p = a.ports;
    for port in [p.mqtt, p.mqtts, p.ws, p.wss, p.http] {
        assert_ne!(port, 0);
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("listening");
    }
}

/// An app that depends on `mqrtc` with `default-features = false` gets the
/// client SDK without the broker, axum, SQLite or sled (`.ci/run` also
/// compiles that build).
#[test]
fn the_client_sdk_builds_without_the_server() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let o = std::process::Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "--no-default-features",
            "-e",
            "normal",
            "--prefix",
            "none",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tree = String::from_utf8_lossy(&o.stdout);
    let has = |name: &str| tree.lines().any(|l| l.starts_with(&format!("{name} v")));
    assert!(
        has("rumqttc") && has("tokio"),
        "the client's own dependencies:\n{tree}"
    );
    for server_only in ["rmqtt", "axum", "sled", "rusqlite", "askama", "argon2"] {
        assert!(
            !has(server_only),
            "{server_only} in the client-only build:\n{tree}"
        );
    }
}

/// `/healthz` names each part; `/livez` only says the process answers; a
/// controller switched off in the config is `disabled`, not down.
#[test]
fn health_reports_each_part() {
    let a = Appliance::start(&[]);
    let body = crate::persistence::http_get(a.ports.http, "/healthz");
    assert!(
        body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"),
        "{body}"
    );
    let json: serde_json::Value = serde_json::from_str(&body[body.find('{').unwrap()..]).unwrap();
    assert_eq!(json["status"], "ok");
    for part in ["broker", "controller", "store", "rtc"] {
        assert_eq!(json["parts"][part], "ok", "{part}: {json}");
    }
    let live = crate::persistence::http_get(a.ports.http, "/livez");
    assert!(
        live.contains(" 200 ") && live.ends_with("alive\n"),
        "{live}"
    );

    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(&cfg, "[controller]\nenabled = false\n").unwrap();
    let off = Appliance::start_in(dir, &["--config", cfg.to_str().unwrap()]);
    let body = crate::persistence::http_get(off.ports.http, "/healthz");
    let json: serde_json::Value = serde_json::from_str(&body[body.find('{').unwrap()..]).unwrap();
    assert_eq!(
        (
            json["status"].as_str(),
            json["parts"]["controller"].as_str()
        ),
        (Some("ok"), Some("disabled"))
    );
}
