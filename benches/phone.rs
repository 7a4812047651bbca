//! `cargo bench --bench phone`: time from Accept to the first remote video
//! frame between two softphone pages, and the browser's CPU during a call
//! (tests/js/browser/phone.bench.mjs in headless Chromium, in a network
//! namespace with only loopback; needs root for `unshare -n`).

use std::process::Command;

fn main() {
    let root = env!("CARGO_MANIFEST_DIR");
    let script = format!("ip link set lo up && exec node {root}/tests/js/browser/phone.bench.mjs");
    let status = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .env("MQRTC_BIN", env!("CARGO_BIN_EXE_mqrtc"))
        .status()
        .expect("unshare (util-linux) and node");
    if !status.success() {
        eprintln!("phone benchmark failed ({status}); it needs root, chromium and tests/js/node_modules (./scripts/install-test-deps.sh)");
        std::process::exit(1);
    }
}
