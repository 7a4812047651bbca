//! Provisioning and the cloud service's three auth modes, driven through
//! the `mqrtc` provisioning commands and real clients.

use std::time::Duration;

use crate::common::{python, run, text, Appliance, Sub};

fn reloads(a: &Appliance) -> u64 {
    let body = crate::persistence::http_get(a.ports.http, "/healthz");
    let json = &body[body.find('{').expect("JSON body")..];
    let v: serde_json::Value = serde_json::from_str(json).expect("health JSON");
    v["broker"]["directory_reloads"].as_u64().expect("reloads")
}

/// Runs a provisioning command and waits until the running appliance has
/// loaded the change (its reload counter moves).
fn admin_applied(a: &Appliance, args: &[&str]) -> serde_json::Value {
    let before = reloads(a);
    let v = admin(a, args);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while reloads(a) == before {
        assert!(
            std::time::Instant::now() < deadline,
            "appliance did not reload after {args:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    v
}

/// Runs `mqrtc <args> --data-dir <dir> --json` and returns its JSON output.
pub(crate) fn admin(a: &Appliance, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    let dir = a.path().to_str().unwrap().to_string();
    all.extend(["--data-dir", &dir, "--json"]);
    let o = run(env!("CARGO_BIN_EXE_mqrtc"), &all);
    assert!(o.status.success(), "mqrtc {args:?}: {}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

pub(crate) fn token(a: &Appliance, kind: &str, resource: &str, ttl: u32) -> String {
    let ttl = ttl.to_string();
    let v = admin(
        a,
        &[
            "token",
            "create",
            "--instance",
            "mqrtc-demo",
            "--type",
            kind,
            "--resource",
            resource,
            "--ttl",
            &ttl,
        ],
    );
    v["token"].as_str().expect("token").to_string()
}

fn with_config(body: &str) -> Appliance {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(&cfg, body).unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    Appliance::start_in(dir, &["--config", &cfg])
}

#[test]
fn token_mode_expiry_refresh_and_scope() {
    let a = with_config("[limits]\ntoken_expire_notice_secs = 2\n");
    let (key_id, _) = a.demo_key();
    let p = a.ports.mqtt.to_string();
    let py = |args: &[&str]| {
        let mut all = vec!["--port", p.as_str(), "--key-id", key_id.as_str()];
        all.extend_from_slice(args);
        let o = python("paho_token.py", &all);
        assert!(o.status.success(), "{}\nlog:\n{}", text(&o), a.log());
    };
    // A token that runs out during the test: notice, invalid notice, DISCONNECT 0x87.
    let short = format!("RW|{}", token(&a, "RW", "rtc_event", 4));
    py(&[
        "--password",
        &short,
        "--expect",
        "expire",
        "--client-id",
        "GID_demo@@@tok-expire",
    ]);
    // A fresh token uploaded in time keeps the connection past the first one.
    let first = format!("RW|{}", token(&a, "RW", "rtc_event", 3));
    let second = token(&a, "RW", "rtc_event", 600);
    py(&[
        "--password",
        &first,
        "--refresh-token",
        &second,
        "--expect",
        "refresh",
        "--wait",
        "5",
        "--client-id",
        "GID_demo@@@tok-refresh",
    ]);
    // A read-only token cannot publish.
    let read = format!("R|{}", token(&a, "R", "rtc_event", 600));
    py(&[
        "--password",
        &read,
        "--expect",
        "no-write",
        "--client-id",
        "GID_demo@@@tok-read",
    ]);
    // A write token outside its resources is refused too.
    let up_only = format!("W|{}", token(&a, "W", "rtc_up", 600));
    py(&[
        "--password",
        &up_only,
        "--expect",
        "no-write",
        "--client-id",
        "GID_demo@@@tok-up",
    ]);
}

#[test]
fn refusals_have_the_right_codes() {
    let a = Appliance::start(&[]);
    let (key_id, secret) = a.demo_key();
    let p = a.ports.mqtt.to_string();
    let sig = |id: &str, secret: &str| {
        let script =
            format!("printf %s '{id}' | openssl dgst -sha1 -hmac '{secret}' -binary | base64");
        String::from_utf8(run("sh", &["-c", &script]).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let connect = |v: &str, id: &str, user: &str, pw: &str| {
        run(
            "mosquitto_pub",
            &[
                "-V", v, "-p", &p, "-i", id, "-u", user, "-P", pw, "-t", "rtc_up/x", "-m", "x",
            ],
        )
        .status
        .code()
    };
    let user = format!("Signature|{key_id}|mqrtc-demo");
    let id = "GID_demo@@@codes";
    assert_eq!(
        connect("mqttv311", id, &user, &sig(id, "wrong-secret")),
        Some(4),
        "wrong secret"
    );
    assert_eq!(
        connect("mqttv5", id, &user, &sig(id, "wrong-secret")),
        Some(0x86)
    );
    let nowhere = format!("Signature|{key_id}|no-such-instance");
    assert_eq!(
        connect("mqttv311", id, &nowhere, &sig(id, &secret)),
        Some(4),
        "unknown instance"
    );
    assert_eq!(
        connect(
            "mqttv311",
            "GID_nothere@@@x",
            &user,
            &sig("GID_nothere@@@x", &secret)
        ),
        Some(2),
        "unknown group"
    );
    assert_eq!(
        connect(
            "mqttv5",
            "GID_nothere@@@x",
            &user,
            &sig("GID_nothere@@@x", &secret)
        ),
        Some(0x85)
    );

    // A second instance: its client ids are not the demo key's to sign for.
    admin(&a, &["instance", "create", "acme"]);
    admin(&a, &["group", "create", "GID_acme", "--instance", "acme"]);
    let acme = "GID_acme@@@eve";
    assert_eq!(
        connect("mqttv311", acme, &user, &sig(acme, &secret)),
        Some(5),
        "client id of another instance"
    );
    assert_eq!(
        connect("mqttv5", acme, &user, &sig(acme, &secret)),
        Some(0x87)
    );

    // A group limited to publishing on rtc_up cannot publish on rtc_event.
    admin_applied(&a, &["group", "grant", "GID_web", "rtc_up", "--publish"]);
    let web = "GID_web@@@granted";
    let o = run(
        "mosquitto_pub",
        &[
            "-V",
            "mqttv5",
            "-p",
            &p,
            "-i",
            web,
            "-u",
            &user,
            "-P",
            &sig(web, &secret),
            "-q",
            "1",
            "-t",
            "rtc_event/x",
            "-m",
            "x",
            "-d",
        ],
    );
    assert!(
        text(&o).contains("RC:135"),
        "publish on a parent topic the group lacks: {}",
        text(&o)
    );
    let o = run(
        "mosquitto_pub",
        &[
            "-V",
            "mqttv5",
            "-p",
            &p,
            "-i",
            web,
            "-u",
            &user,
            "-P",
            &sig(web, &secret),
            "-q",
            "1",
            "-t",
            "rtc_up/x",
            "-m",
            "x",
            "-d",
        ],
    );
    assert!(text(&o).contains("RC:0"), "granted topic: {}", text(&o));
}

#[test]
fn device_credentials_with_paho() {
    let a = Appliance::start(&[]);
    let dev = admin(
        &a,
        &[
            "device",
            "create",
            "GID_demo@@@phone-1",
            "--instance",
            "mqrtc-demo",
        ],
    );
    let (id, secret) = (dev["id"].as_str().unwrap(), dev["secret"].as_str().unwrap());
    let p = a.ports.mqtt.to_string();
    let base = [
        "--port",
        &p,
        "--mode",
        "DeviceCredential",
        "--key-id",
        id,
        "--secret",
        secret,
    ];
    let o = python(
        "paho_p2p.py",
        &[
            &base[..],
            &["--connect-only", "--sender", "GID_demo@@@phone-1"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = python(
        "paho_p2p.py",
        &[
            &base[..],
            &["--connect-only", "--sender", "GID_demo@@@phone-2"],
        ]
        .concat(),
    );
    assert!(
        text(&o).contains("\"rc\": 135"),
        "bound to one client id: {}",
        text(&o)
    );
    let o = python(
        "paho_p2p.py",
        &[
            &base[..],
            &["--bad-password", "--sender", "GID_demo@@@phone-1"],
        ]
        .concat(),
    );
    assert!(text(&o).contains("\"rc\": 134"), "{}", text(&o));
}

#[test]
fn deleting_a_group_or_revoking_a_credential_ends_connections() {
    let a = Appliance::start(&["--dev"]);
    let p = a.ports.mqtt.to_string();
    let web = Sub::start(&[
        "-V",
        "mqttv5",
        "-p",
        &p,
        "-i",
        "GID_web@@@doomed",
        "-t",
        "rtc_event/x",
    ]);
    web.wait_for("Subscribed", Duration::from_secs(10))
        .expect("up");
    admin(&a, &["group", "delete", "GID_web"]);
    let line = web
        .wait_for("Received DISCONNECT", Duration::from_secs(10))
        .expect("disconnected");
    assert!(line.contains("135"), "{line}");
    let o = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-i",
            "GID_web@@@again",
            "-t",
            "rtc_up/x",
            "-m",
            "x",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "the group is gone: {}", text(&o));

    // A token revoked while in use: notice, then DISCONNECT 0x87.
    let (key_id, _) = a.demo_key();
    let t = admin(
        &a,
        &[
            "token",
            "create",
            "--instance",
            "mqrtc-demo",
            "--type",
            "RW",
            "--resource",
            "rtc_event",
            "--ttl",
            "600",
        ],
    );
    let user = format!("Token|{key_id}|mqrtc-demo");
    let pw = format!("RW|{}", t["token"].as_str().unwrap());
    let holder = Sub::start(&[
        "-V",
        "mqttv5",
        "-p",
        &p,
        "-i",
        "GID_demo@@@tok",
        "-u",
        &user,
        "-P",
        &pw,
        "-t",
        "rtc_event/x",
        "-t",
        "$SYS/tokenInvalidNotice",
    ]);
    holder
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("token client up");
    admin(&a, &["token", "delete", t["id"].as_str().unwrap()]);
    holder
        .wait_for("tokenInvalidNotice", Duration::from_secs(10))
        .expect("invalid notice");
    holder
        .wait_for("Received DISCONNECT (135)", Duration::from_secs(10))
        .expect("disconnected");
}

#[test]
fn repeated_failures_from_one_address_are_slowed_down() {
    let a = with_config("[limits]\nauth_failures_before_delay = 2\nauth_delay_max_ms = 300\n");
    let p = a.ports.mqtt.to_string();
    for _ in 0..5 {
        let o = run(
            "mosquitto_pub",
            &[
                "-p",
                &p,
                "-i",
                "GID_demo@@@guess",
                "-u",
                "Signature|AKNONE|mqrtc-demo",
                "-P",
                "x",
                "-t",
                "rtc_up/x",
                "-m",
                "x",
            ],
        );
        assert_eq!(o.status.code(), Some(4));
    }
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &["healthcheck", "--data-dir", a.path().to_str().unwrap()],
    );
    assert!(o.status.success());
    let body = crate::persistence::http_get(a.ports.http, "/healthz");
    assert!(
        body.contains("\"auth_failures\":5"),
        "the appliance's own probes are not counted: {body}"
    );
    assert!(
        body.contains("\"auth_delays\":3"),
        "failures 3 to 5 were delayed: {body}"
    );
    assert!(
        a.log().contains("repeated authentication failures"),
        "and logged"
    );
}
