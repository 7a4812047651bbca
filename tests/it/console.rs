//! The web console in a real browser: tests/js/browser/console.test.mjs
//! drives Debian's chromium (playwright-core) against this appliance,
//! started here without `--dev` so sign-in is real. Screenshots go to
//! docs/screenshots, so the README shows what a user sees.

use std::process::Command;

use crate::common::{text, Appliance};

#[test]
fn console_in_headless_chromium() {
    let (_one_at_a_time, root) = crate::common::browser_test();
    let a = Appliance::start(&[]);
    let password = std::fs::read_to_string(a.path().join("admin-password.txt")).unwrap();
    let (key_id, secret) = a.demo_key();
    let o = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=spec")
        .arg("--test-concurrency=1")
        .arg(format!("{root}/tests/js/browser/console.test.mjs"))
        .env("MQRTC_HTTP", format!("http://127.0.0.1:{}", a.ports.http))
        .env("MQRTC_MQTT_PORT", a.ports.mqtt.to_string())
        .env("MQRTC_PASSWORD", password.trim())
        .env("MQRTC_BIN", env!("CARGO_BIN_EXE_mqrtc"))
        .env("MQRTC_DEMO_KEY_ID", key_id)
        .env("MQRTC_DEMO_SECRET", secret)
        .env("MQRTC_TEST_DATA_DIR", a.path())
        .env("SCREENSHOT_DIR", format!("{root}/docs/screenshots"))
        .output()
        .expect("node");
    assert!(
        o.status.success(),
        "browser test failed:\n{}\nappliance log:\n{}",
        text(&o),
        a.log()
    );
    println!("{}", text(&o));
}
