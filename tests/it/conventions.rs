//! The cloud service's conventions on the embedded broker, checked with
//! the mosquitto command-line clients (MQTT 3.1.1 and 5).

use std::time::Duration;

use crate::common::{run, text, Appliance, Sub};

const V3: &str = "mqttv311";
const V5: &str = "mqttv5";

fn port(a: &Appliance) -> String {
    a.ports.mqtt.to_string()
}

/// Creates a persistent (clean=false) session for `id` and leaves.
pub fn make_session(a: &Appliance, version: &str, id: &str) {
    let p = port(a);
    let inbox = format!("rtc_event/p2p/{id}");
    let o = run(
        "mosquitto_sub",
        &[
            "-V", version, "-p", &p, "-i", id, "-c", "-q", "1", "-t", &inbox, "-W", "1",
        ],
    );
    // -W ends it with "Timed out" after subscribing: that is the expected way out.
    assert!(
        text(&o).contains("Timed out") || o.status.success(),
        "{}",
        text(&o)
    );
}

/// Publishes with mosquitto_pub and returns its output.
pub fn publish(
    a: &Appliance,
    version: &str,
    id: &str,
    topic: &str,
    msg: &str,
) -> std::process::Output {
    let p = port(a);
    run(
        "mosquitto_pub",
        &[
            "-V", version, "-p", &p, "-i", id, "-q", "1", "-t", topic, "-m", msg, "-d",
        ],
    )
}

/// Reconnects `id` with its persistent session and returns the first message line.
pub fn receive_one(a: &Appliance, version: &str, id: &str) -> String {
    let p = port(a);
    let inbox = format!("rtc_event/p2p/{id}");
    let o = run(
        "mosquitto_sub",
        &[
            "-V", version, "-p", &p, "-i", id, "-c", "-q", "1", "-t", &inbox, "-C", "1", "-W",
            "10", "-v",
        ],
    );
    text(&o)
}

#[test]
fn p2p_reaches_an_offline_persistent_client_when_it_returns() {
    let a = Appliance::start(&["--dev"]);
    for v in [V3, V5] {
        let bob = format!("GID_web@@@bob-{v}");
        make_session(&a, v, &bob);
        let topic = format!("rtc_event/p2p/{bob}");
        let o = publish(&a, v, "GID_demo@@@alice", &topic, "offer-1");
        assert!(text(&o).contains("received PUBACK"), "{}", text(&o));
        let got = receive_one(&a, v, &bob);
        assert!(got.contains(&format!("{topic} offer-1")), "{v}: {got}");
    }
}

#[test]
fn p2p_needs_no_subscription_and_wildcards_never_see_it() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let carol = "GID_web@@@carol";
    // carol subscribes to something unrelated; she must still get her P2P.
    let target = Sub::start(&["-p", &p, "-i", carol, "-q", "1", "-t", "rtc_event/lobby"]);
    target
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("carol subscribed");
    let snoop = Sub::start(&[
        "-p",
        &p,
        "-i",
        "GID_demo@@@snoop",
        "-q",
        "1",
        "-t",
        "rtc_event/#",
    ]);
    snoop
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("snoop subscribed");
    let topic = format!("rtc_event/p2p/{carol}");
    publish(&a, V3, "GID_demo@@@alice", &topic, "private");
    publish(&a, V3, "GID_demo@@@alice", "rtc_event/lobby", "public");
    let line = target
        .wait_for("private", Duration::from_secs(10))
        .expect("P2P arrives");
    assert!(
        line.starts_with(&topic),
        "arrives on its own P2P topic: {line}"
    );
    snoop
        .wait_for("public", Duration::from_secs(10))
        .expect("snoop sees plain traffic");
    assert!(
        !snoop.drain().contains("private"),
        "a wildcard subscriber saw P2P traffic"
    );
}

#[test]
fn hash_and_foreign_inbox_are_refused_with_suback_codes() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    for (v, code) in [(V3, "128"), (V5, "135")] {
        for filter in [
            "#",
            "rtc_down/p2p/GID_web@@@victim",
            "rtc_up/#",
            "+/p2p/GID_demo@@@eve",
        ] {
            let o = run(
                "mosquitto_sub",
                &[
                    "-V",
                    v,
                    "-p",
                    &p,
                    "-i",
                    "GID_demo@@@eve",
                    "-t",
                    filter,
                    "-W",
                    "2",
                    "-d",
                ],
            );
            let t = text(&o);
            assert!(
                t.contains(&format!("Subscribed (mid: 1): {code}")),
                "{v} {filter}: {t}"
            );
        }
        // Its own inbox is fine.
        let o = run(
            "mosquitto_sub",
            &[
                "-V",
                v,
                "-p",
                &p,
                "-i",
                "GID_demo@@@eve",
                "-q",
                "1",
                "-t",
                "rtc_down/p2p/GID_demo@@@eve",
                "-W",
                "1",
                "-d",
            ],
        );
        assert!(
            text(&o).contains("Subscribed (mid: 1): 1"),
            "{v}: {}",
            text(&o)
        );
    }
}

#[test]
fn bad_client_ids_are_refused_with_identifier_rejected() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let long = format!("GID_demo@@@{}", "x".repeat(60));
    for id in [
        "no-separator",
        "GIX_demo@@@a",
        "GID_unknown@@@a",
        long.as_str(),
    ] {
        let o = run(
            "mosquitto_pub",
            &["-V", V3, "-p", &p, "-i", id, "-t", "rtc_up/x", "-m", "hi"],
        );
        assert_eq!(o.status.code(), Some(2), "{id}: {}", text(&o));
        assert!(
            text(&o).contains("identifier rejected"),
            "{id}: {}",
            text(&o)
        );
        let o = run(
            "mosquitto_pub",
            &["-V", V5, "-p", &p, "-i", id, "-t", "rtc_up/x", "-m", "hi"],
        );
        assert_eq!(o.status.code(), Some(0x85), "{id}: {}", text(&o));
    }
}

#[test]
fn oversize_and_unprovisioned_publishes_get_reason_codes() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let big = a.path().join("big.bin");
    std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).unwrap();
    let big = big.to_str().unwrap();
    let watcher = Sub::start(&["-p", &p, "-i", "GID_demo@@@watch", "-t", "rtc_event/#"]);
    watcher
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("subscribed");

    let v5 = |topic: &str, file: Option<&str>| {
        let mut args = vec![
            "-V",
            V5,
            "-p",
            &p,
            "-i",
            "GID_demo@@@alice",
            "-q",
            "1",
            "-t",
            topic,
            "-d",
        ];
        match file {
            Some(f) => args.extend(["-f", f]),
            None => args.extend(["-m", "x"]),
        }
        text(&run("mosquitto_pub", &args))
    };
    assert!(
        v5("rtc_event/big", Some(big)).contains("RC:151"),
        "64 KB + 1 gets 0x97"
    );
    assert!(
        v5("rtc_down/x", None).contains("RC:135"),
        "downlink is the controller's"
    );
    assert!(
        v5("nowhere/x", None).contains("RC:135"),
        "unprovisioned parent"
    );
    assert!(
        v5(&format!("rtc_up/{}", "t".repeat(60)), None).contains("RC:144"),
        "topic over 64"
    );

    // 3.1.1 has no PUBACK codes: the connection is closed and nothing is delivered.
    let o = run(
        "mosquitto_pub",
        &[
            "-V",
            V3,
            "-p",
            &p,
            "-i",
            "GID_demo@@@alice",
            "-q",
            "1",
            "-t",
            "rtc_event/big",
            "-f",
            big,
            "-d",
        ],
    );
    assert!(!text(&o).contains("received PUBACK"), "{}", text(&o));
    // A normal message after them proves the watcher is alive and saw none of the refused ones.
    publish(&a, V3, "GID_demo@@@alice", "rtc_event/ok", "fine");
    watcher
        .wait_for("rtc_event/ok", Duration::from_secs(10))
        .expect("ok message");
    assert!(!watcher.drain().contains("rtc_event/big"));
}

#[test]
fn wills_are_checked_like_publishes() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let victim = "GID_web@@@victim";
    let inbox = Sub::start(&[
        "-p",
        &p,
        "-i",
        victim,
        "-c",
        "-q",
        "1",
        "-t",
        "rtc_event/p2p/GID_web@@@victim",
    ]);
    inbox
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("subscribed");
    // A will aimed at someone's downlink inbox is refused at CONNECT.
    for (v, code) in [(V3, 5), (V5, 0x87)] {
        let o = run(
            "mosquitto_pub",
            &[
                "-V",
                v,
                "-p",
                &p,
                "-i",
                "GID_demo@@@mallory",
                "--will-topic",
                &format!("rtc_down/p2p/{victim}"),
                "--will-payload",
                "forged",
                "--will-qos",
                "1",
                "-t",
                "rtc_up/x",
                "-m",
                "x",
            ],
        );
        assert_eq!(o.status.code(), Some(code), "{v}: {}", text(&o));
    }
    // An allowed will (P2P on an event topic) is delivered when its owner vanishes.
    let owner = Sub::start(&[
        "-p",
        &p,
        "-i",
        "GID_demo@@@dies",
        "-t",
        "rtc_event/x",
        "--will-topic",
        &format!("rtc_event/p2p/{victim}"),
        "--will-payload",
        "owner-gone",
        "--will-qos",
        "1",
    ]);
    owner
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("owner up");
    drop(owner); // SIGKILL: no DISCONNECT, so the will fires
    inbox
        .wait_for("owner-gone", Duration::from_secs(10))
        .expect("allowed will delivered");
    assert!(!inbox.drain().contains("forged"));
}

#[test]
fn a_second_connection_with_the_same_client_id_takes_over() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let first = Sub::start(&[
        "-V",
        V5,
        "-p",
        &p,
        "-i",
        "GID_demo@@@twin",
        "-t",
        "rtc_event/a",
    ]);
    first
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("first up");
    let second = Sub::start(&[
        "-V",
        V5,
        "-p",
        &p,
        "-i",
        "GID_demo@@@twin",
        "-t",
        "rtc_event/b",
    ]);
    second
        .wait_for("Subscribed", Duration::from_secs(10))
        .expect("second up");
    first
        .wait_for("Received DISCONNECT (142)", Duration::from_secs(10))
        .expect("first told: session taken over");
    publish(&a, V3, "GID_demo@@@alice", "rtc_event/b", "to-second");
    second
        .wait_for("to-second", Duration::from_secs(10))
        .expect("second is the live one");
}

#[test]
fn without_dev_a_signature_is_required() {
    let a = Appliance::start(&[]);
    let (key_id, secret) = a.demo_key();
    let p = port(&a);
    let id = "GID_demo@@@sig";
    let o = run(
        "mosquitto_pub",
        &["-p", &p, "-i", id, "-t", "rtc_up/x", "-m", "x"],
    );
    assert_eq!(o.status.code(), Some(4), "no credentials: {}", text(&o));
    // The password computed by openssl from the documented formula.
    let script = format!("printf %s '{id}' | openssl dgst -sha1 -hmac '{secret}' -binary | base64");
    let pw = String::from_utf8(run("sh", &["-c", &script]).stdout).unwrap();
    let user = format!("Signature|{key_id}|mqrtc-demo");
    let o = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-i",
            id,
            "-u",
            &user,
            "-P",
            pw.trim(),
            "-q",
            "1",
            "-t",
            "rtc_up/x",
            "-m",
            "x",
            "-d",
        ],
    );
    assert!(text(&o).contains("received PUBACK"), "{}", text(&o));
    let o = run(
        "mosquitto_pub",
        &[
            "-V", V5, "-p", &p, "-i", id, "-u", &user, "-P", "AAAA", "-t", "rtc_up/x", "-m", "x",
        ],
    );
    assert_eq!(o.status.code(), Some(0x86), "{}", text(&o));
    let o = run(
        "mosquitto_pub",
        &[
            "-p",
            &p,
            "-i",
            "GID_web@@@sig",
            "-u",
            &user,
            "-P",
            pw.trim(),
            "-t",
            "rtc_up/x",
            "-m",
            "x",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "signature of another client id: {}",
        text(&o)
    );
}

/// After a client's DISCONNECT nothing more is delivered on that connection
/// (rmqtt patch 9): a raw socket says DISCONNECT but keeps its socket open;
/// a P2P message sent to it then must wait for its next session.
#[test]
fn nothing_is_delivered_after_disconnect() {
    use std::io::{Read, Write};
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    for (name, level) in [("3.1.1", 4u8), ("5", 5u8)] {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", a.ports.mqtt)).unwrap();
        let id = format!("GID_demo@@@raw{level}");
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', level, 0x00, 0, 60];
        if level == 5 {
            body.extend_from_slice(&[5, 0x11, 0, 0, 0x0e, 0x10]); // session expiry 3600 s
        }
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        let mut connect = vec![0x10, body.len() as u8];
        connect.extend(body);
        s.write_all(&connect).unwrap();
        let mut head = [0u8; 2];
        s.read_exact(&mut head).unwrap();
        assert_eq!(head[0], 0x20, "{name}: CONNACK");
        let mut rest = vec![0u8; head[1] as usize];
        s.read_exact(&mut rest).unwrap();
        s.write_all(&[0xe0, 0x00]).unwrap(); // DISCONNECT, socket left open
        let topic = format!("rtc_event/p2p/{id}");
        let o = run(
            "mosquitto_pub",
            &[
                "-p",
                &p,
                "-i",
                "GID_demo@@@alice",
                "-q",
                "1",
                "-t",
                &topic,
                "-m",
                name,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        // Whatever the old socket still yields (nothing, or its close) must
        // not be a PUBLISH.
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        assert!(
            !got.iter().any(|b| b >> 4 == 3),
            "{name}: a PUBLISH reached the connection after DISCONNECT: {got:?}"
        );
        let version = if level == 5 { V5 } else { V3 };
        let o = run(
            "mosquitto_sub",
            &[
                "-p",
                &p,
                "-V",
                version,
                "-i",
                &id,
                "-c",
                "-q",
                "1",
                "-t",
                "rtc_event/x",
                "-C",
                "1",
                "-W",
                "10",
            ],
        );
        assert_eq!(
            text(&o).trim(),
            name,
            "{name}: delivered to the next session"
        );
    }
}

#[test]
fn delayed_wills_and_wills_after_a_restart_are_delivered() {
    let a = Appliance::start(&["--dev"]);
    let p = port(&a);
    let wait = Duration::from_secs(15);
    // The owner vanishes; its will waits one second, after the connection's
    // record is gone.
    let victim = Sub::python("wills.py", &["victim", "--port", &p, "--wait", "15"]);
    victim.wait_for("ready", wait).expect("victim up");
    let owner = Sub::python(
        "wills.py",
        &["owner", "--port", &p, "--delay", "1", "--vanish"],
    );
    owner.wait_for("ready", wait).expect("owner up");
    let got = victim.wait_for("will received", wait);
    assert!(got.is_ok(), "delayed will: {got:?}\n{}", a.log());

    // The owner is connected when the appliance stops; its will (3 s delay)
    // fires after the restart, when nothing is left of its connection.
    let owner = Sub::python("wills.py", &["owner", "--port", &p, "--delay", "3"]);
    owner.wait_for("ready", wait).expect("owner up");
    let a = a.restart();
    drop(owner);
    let p = port(&a);
    let victim = Sub::python("wills.py", &["victim", "--port", &p, "--wait", "15"]);
    let got = victim.wait_for("will received", Duration::from_secs(20));
    assert!(got.is_ok(), "will after a restart: {got:?}\n{}", a.log());
}

#[test]
fn connection_rate_subscription_and_retained_limits() {
    let Some(lan) = mqrtc::certs::local_addrs()
        .into_iter()
        .find(|ip| ip.is_ipv4() && !ip.is_loopback())
    else {
        println!("skipped: this machine has no non-loopback IPv4 address (loopback is exempt from these limits)");
        return;
    };
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(
        &cfg,
        "[limits]\nmax_connections_per_address = 2\nmax_publish_rate = 5\nmax_subscriptions = 3\nmax_retained_messages = 2\n",
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    let a = Appliance::start_in(
        dir,
        &[
            "--dev",
            "--dev-on-network",
            "--all-interfaces",
            "--config",
            &cfg,
        ],
    );
    let (host, p) = (lan.to_string(), port(&a));
    let o = crate::common::python("limits.py", &["--host", &host, "--port", &p]);
    assert!(o.status.success(), "{}\n{}", text(&o), a.log());
    let health = crate::persistence::http_get(a.ports.http, "/healthz");
    assert!(
        health.contains("\"connection_limit_refusals\":2"),
        "{health}"
    );
    assert!(!health.contains("\"rate_refusals\":0"), "{health}");
}
