//! `mqrtc backup` while calls run, and `mqrtc restore` into a new data
//! directory that then serves every tenant, device credential and call of
//! the original; a backup without keys holds none; a sealed one needs its
//! passphrase.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mqrtc::calls::Media;
use mqrtc::client::{Client, Events};
use serde_json::Value;

use crate::common::http::request;
use crate::common::sdk::{device, invited};
use crate::common::{run, text, Appliance};

/// One call from `a` to bob, cancelled once bob's invite arrived; its id.
async fn one_call(a: &Client, bob_ev: &mut Events) -> String {
    let call = a
        .start_call(&["bob"], Media::Audio)
        .await
        .expect("call.start")
        .call
        .call_id;
    invited(bob_ev, Some(&call)).await;
    a.cancel(&call).await.expect("cancel");
    call
}

fn mqrtc(args: &[&str]) -> String {
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), args);
    assert!(o.status.success(), "mqrtc {args:?}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Every call id the admin API lists.
fn call_ids(a: &Appliance, auth: &str) -> Vec<String> {
    let (status, body) = request(
        a.ports.http,
        "GET",
        "/api/v1/calls?per_page=500",
        &[("Authorization", auth)],
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("JSON");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["call_id"].as_str().map(String::from))
        .collect()
}

/// `mqrtc <args> --data-dir <dir>`.
fn in_dir(dir: &str, args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.extend(["--data-dir", dir]);
    mqrtc(&all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_everything() {
    let a = Appliance::start(&["--dev"]);
    let data = a.path().to_str().expect("utf-8").to_string();
    let d = |args: &[&str]| in_dir(&data, args);
    d(&["instance", "create", "acme"]);
    d(&["group", "create", "GID_acme", "--instance", "acme"]);
    d(&[
        "device",
        "create",
        "GID_acme@@@sensor1",
        "--instance",
        "acme",
    ]);
    let key: Value =
        serde_json::from_str(&d(&["admin", "api-key-create", "backup-test", "--json"]))
            .expect("JSON");
    let auth = format!("Bearer {}", key["key"].as_str().expect("key"));
    let (alice, _alice_ev) = device(a.ports.mqtt, "GID_demo@@@alice").await;
    let (_bob, mut bob_ev) = device(a.ports.mqtt, "GID_demo@@@bob").await;
    let mut before = Vec::new();
    for _ in 0..5 {
        before.push(one_call(&alice, &mut bob_ev).await);
    }

    // Calls keep coming while the backups are taken.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                one_call(&alice, &mut bob_ev).await;
                n += 1;
            }
            n
        })
    };
    let work = tempfile::tempdir().expect("tempdir");
    let pass = work.path().join("passphrase");
    std::fs::write(&pass, "correct horse battery staple\n").expect("passphrase");
    let (sealed, plain) = (
        work.path().join("sealed.bak"),
        work.path().join("plain.bak"),
    );
    let (s, p, pp) = (sealed.clone(), plain.clone(), pass.clone());
    let dir = data.clone();
    tokio::task::spawn_blocking(move || {
        mqrtc(&[
            "backup",
            "--data-dir",
            &dir,
            "--to",
            p.to_str().expect("utf-8"),
        ]);
        mqrtc(&[
            "backup",
            "--data-dir",
            &dir,
            "--to",
            s.to_str().expect("utf-8"),
            "--include-keys",
            "--passphrase-file",
            pp.to_str().expect("utf-8"),
        ]);
    })
    .await
    .expect("backups");
    stop.store(true, Ordering::Relaxed);
    let during = load.await.expect("load");
    assert!(during > 0, "no call ran while the backups were taken");

    // Without keys: no key or password file in it, and restoring says so.
    let listing = text(&run("tar", &["tzf", plain.to_str().expect("utf-8")]));
    assert!(
        listing.contains("mqrtc.sqlite") && listing.contains("certs/ca.pem"),
        "{listing}"
    );
    for secret in [
        "master.key",
        "rtc-app.key",
        "ca.key",
        "server.key",
        "admin-password.txt",
        "demo-tenant.txt",
    ] {
        assert!(
            !listing.contains(secret),
            "{secret} in a backup without keys:\n{listing}"
        );
    }
    // Sealed: the archive cannot be read, and a wrong passphrase is refused.
    assert!(std::fs::read(&sealed)
        .expect("sealed")
        .starts_with(b"MQRTC-SEALED-BACKUP-1\n"));
    let wrong = work.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase\n").expect("wrong");
    let target = Arc::new(tempfile::tempdir().expect("tempdir"));
    let t = target.path().to_str().expect("utf-8");
    let refused = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "restore",
            "--from",
            sealed.to_str().expect("utf-8"),
            "--data-dir",
            t,
            "--passphrase-file",
            wrong.to_str().expect("utf-8"),
        ],
    );
    assert!(
        !refused.status.success() && text(&refused).contains("wrong passphrase"),
        "{}",
        text(&refused)
    );
    mqrtc(&[
        "restore",
        "--from",
        sealed.to_str().expect("utf-8"),
        "--data-dir",
        t,
        "--passphrase-file",
        pass.to_str().expect("utf-8"),
    ]);

    // The restored directory serves every tenant, credential and call.
    let (demo_id, demo_secret) = a.demo_key();
    let instances = d(&["instance", "list", "--json"]);
    let devices = d(&["device", "list", "--instance", "acme", "--json"]);
    let r = Appliance::start_bare(target.clone(), &[]);
    let rd = |args: &[&str]| in_dir(t, args);
    assert_eq!(rd(&["instance", "list", "--json"]), instances);
    assert_eq!(
        rd(&["device", "list", "--instance", "acme", "--json"]),
        devices
    );
    let ids = call_ids(&r, &auth);
    for call in &before {
        assert!(
            ids.contains(call),
            "call {call} missing after restore: {ids:?}"
        );
    }
    // Sealed secrets open with the restored master key: Signature logins work.
    let login = |secret: &str| {
        let id = "GID_demo@@@restored";
        let script =
            format!("printf %s '{id}' | openssl dgst -sha1 -hmac '{secret}' -binary | base64");
        let sig = String::from_utf8(run("sh", &["-c", &script]).stdout)
            .expect("utf-8")
            .trim()
            .to_string();
        let user = format!("Signature|{demo_id}|mqrtc-demo");
        let port = r.ports.mqtt.to_string();
        run(
            "mosquitto_pub",
            &[
                "-p", &port, "-i", id, "-u", &user, "-P", &sig, "-t", "rtc_up/x", "-m", "x",
            ],
        )
        .status
        .code()
    };
    assert_eq!(login(&demo_secret), Some(0));
    assert_ne!(login("not-the-secret"), Some(0));
}
