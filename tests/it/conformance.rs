//! `--standard-mqtt` against the Eclipse Paho interoperability suite
//! (../shared/conformance, not part of this repository). MQTT 3.1.1: at
//! least 9 of 10, the ACL tests always. MQTT 5: the tests fixed so far must pass and at least 20 of 26
//! in all; the goal is 25 (all but `test_subscribe_failure`, whose client
//! accepts only 0x80 in a SUBACK where MQTT 5 says 0x87, what this broker
//! and mosquitto answer), reached in some runs but not yet in every one:
//! docs/conformance.md says which tests still fail now and then, and why.
//! Figures of repeated runs: `scripts/paho-runs.sh`.

use std::path::PathBuf;

use crate::common::{run, text, Appliance};

/// The suite's runner, if this checkout has ../shared next to it.
fn suite() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/run-paho.sh");
    p.exists().then_some(p)
}

/// The appliance as the suite expects a broker: plain MQTT, `test/nosubscribe`
/// refused by the ACL file, keepalive at most 60 s.
pub fn paho_appliance() -> Appliance {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic readwrite #\ntopic deny test/nosubscribe\n").unwrap();
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(&cfg, "[limits]\nmax_keepalive_secs = 60\n").unwrap();
    let (acl, cfg) = (acl.display().to_string(), cfg.display().to_string());
    Appliance::start_in(
        dir,
        &["--standard-mqtt", "--acl-file", &acl, "--config", &cfg],
    )
}

/// Names of the tests the suite reported as failed or in error.
fn failed(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            l.strip_prefix("FAIL: ")
                .or_else(|| l.strip_prefix("ERROR: "))
        })
        .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_paho_interoperability_suite_passes() {
    let Some(runner) = suite() else {
        println!(
            "skipped: ../shared/conformance/run-paho.sh not found (the Eclipse Paho suite is not part \
             of this repository; CI has it)"
        );
        return;
    };
    let _alone = crate::common::TIMING
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let a = paho_appliance();
    let port = a.ports.mqtt.to_string();
    let runner = runner.to_str().unwrap();

    // 3.1.1 passed 10 of 10 in six runs, then `test_redelivery_on_reconnect`
    // failed once in CI (under investigation, docs/conformance.md): one
    // failure is tolerated, but never in the tests the ACL file fixed.
    let o = run("bash", &[runner, "127.0.0.1", &port, "3"]);
    let out = text(&o);
    let failed3 = failed(&out);
    assert!(
        out.contains("Ran 10 tests")
            && failed3.len() <= 1
            && !failed3
                .iter()
                .any(|t| t == "test_subscribe_failure" || t == "test_dollar_topics"),
        "MQTT 3.1.1: failed {failed3:?}:\n{out}\nappliance log:\n{}",
        a.log()
    );

    let o = run("bash", &[runner, "127.0.0.1", &port, "5"]);
    let out = text(&o);
    assert!(out.contains("Ran 26 tests"), "MQTT 5: {out}");
    let failed = failed(&out);
    // Every test must pass but these: `test_subscribe_failure` by choice
    // (the suite accepts only 0x80; this broker says 0x87, as MQTT 5 lists),
    // and the two that publish on one connection without waiting for the
    // SUBACK of the subscriber on another (a race in the suite, lost now
    // and then by any broker that serves connections on several threads).
    let tolerated = [
        "test_subscribe_failure",
        "test_subscribe_options",
        "test_request_response",
    ];
    assert!(
        failed.iter().all(|t| tolerated.contains(&t.as_str())),
        "MQTT 5: failed {failed:?}:\n{out}\nappliance log:\n{}",
        a.log()
    );
    println!(
        "Paho: MQTT 3.1.1 {}/10, MQTT 5 {}/26",
        10 - failed3.len(),
        26 - failed.len()
    );
}
