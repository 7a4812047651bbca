//! Records when the binary was built, so the appliance can warn when its
//! clock says an earlier time (a board without a battery-backed clock).

use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    println!("cargo:rustc-env=BUILT_AT_UNIX_MS={ms}");
    // Refreshed when the package changes (a version bump), not on every build.
    println!("cargo:rerun-if-changed=Cargo.toml");
}
