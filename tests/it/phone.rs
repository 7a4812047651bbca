//! The softphone in headless Chromium with fake camera and microphone:
//! tests/js/browser/phone.test.mjs, run in a network namespace that has
//! only loopback (`unshare -n`, root), so WebRTC traffic cannot leave
//! 127.0.0.1. The script starts this binary itself inside the namespace.

use std::process::Command;

use crate::common::text;

#[test]
fn softphone_calls_with_real_media_in_headless_chromium() {
    let (_one_at_a_time, root) = crate::common::browser_test();
    let script = format!(
        "ip link set lo up && exec node --test --test-reporter=spec --test-concurrency=1 {root}/tests/js/browser/phone.test.mjs"
    );
    let o = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env("MQRTC_BIN", env!("CARGO_BIN_EXE_mqrtc"))
        .env("SCREENSHOT_DIR", format!("{root}/docs/screenshots"))
        .output()
        .expect("unshare (util-linux)");
    assert!(
        o.status.success(),
        "softphone test failed (it needs root for `unshare -n`):\n{}",
        text(&o)
    );
    println!("{}", text(&o));
}
