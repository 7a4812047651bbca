//! The JavaScript SDK (static/sdk) under Node's test runner with MQTT.js
//! from npm: tests/js/sdk/*.test.mjs start this binary themselves (they
//! kill -9 and restart it) and run the Rust SDK's scenarios.

use std::process::Command;

use crate::common::text;

#[test]
fn javascript_sdk_scenarios() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!("{root}/tests/js/node_modules/mqtt")).exists(),
        "MQTT.js missing: run ./scripts/install-test-deps.sh"
    );
    let o = Command::new("node")
        .args(["--test", "--test-reporter=spec", "--test-concurrency=1"])
        .arg(format!("{root}/tests/js/sdk/sdk.test.mjs"))
        .env("MQRTC_BIN", env!("CARGO_BIN_EXE_mqrtc"))
        .output()
        .expect("node");
    assert!(o.status.success(), "JS SDK tests failed:\n{}", text(&o));
    println!("{}", text(&o));
}
