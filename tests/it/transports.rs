//! TLS, WebSocket and secure WebSocket, with paho-mqtt and mosquitto; and
//! the accept loops' independence from idle sockets.

use std::net::TcpStream;

use crate::common::{python, run, text, Appliance};

fn paho_p2p(a: &Appliance, extra: &[&str]) {
    let o = python("paho_p2p.py", extra);
    assert!(
        o.status.success(),
        "{}\nappliance log:\n{}",
        text(&o),
        a.log()
    );
    assert!(text(&o).contains("\"ok\": true"), "{}", text(&o));
}

#[test]
fn mosquitto_over_tls_with_the_generated_ca() {
    let a = Appliance::start(&["--dev"]);
    let (p, ca) = (a.ports.mqtts.to_string(), a.ca());
    let ca = ca.to_str().unwrap();
    for v in ["mqttv311", "mqttv5"] {
        let bob = format!("GID_web@@@tls-{v}");
        let inbox = format!("rtc_event/p2p/{bob}");
        let sub = |extra: &[&str]| {
            let mut args = vec![
                "-V",
                v,
                "-h",
                "localhost",
                "-p",
                &p,
                "--cafile",
                ca,
                "-i",
                &bob,
                "-c",
                "-q",
                "1",
                "-t",
                &inbox,
                "-v",
            ];
            args.extend_from_slice(extra);
            text(&run("mosquitto_sub", &args))
        };
        assert!(sub(&["-W", "1"]).contains("Timed out"));
        let o = run(
            "mosquitto_pub",
            &[
                "-V",
                v,
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "--cafile",
                ca,
                "-i",
                "GID_demo@@@alice",
                "-q",
                "1",
                "-t",
                &inbox,
                "-m",
                "over-tls",
                "-d",
            ],
        );
        assert!(text(&o).contains("received PUBACK"), "{}", text(&o));
        assert!(sub(&["-C", "1", "-W", "10"]).contains("over-tls"), "{v}");
    }
}

#[test]
fn paho_over_tcp_websocket_and_secure_websocket() {
    let a = Appliance::start(&["--dev"]);
    let ca = a.ca();
    let ca = ca.to_str().unwrap();
    let tcp = a.ports.mqtt.to_string();
    let ws = a.ports.ws.to_string();
    let wss = a.ports.wss.to_string();
    paho_p2p(&a, &["--port", &tcp, "--receiver", "GID_web@@@py-tcp"]);
    paho_p2p(
        &a,
        &[
            "--port",
            &tcp,
            "--version",
            "5",
            "--receiver",
            "GID_web@@@py-tcp5",
        ],
    );
    paho_p2p(
        &a,
        &[
            "--port",
            &ws,
            "--transport",
            "websockets",
            "--receiver",
            "GID_web@@@py-ws",
        ],
    );
    paho_p2p(
        &a,
        &[
            "--port",
            &wss,
            "--transport",
            "websockets",
            "--ca",
            ca,
            "--version",
            "5",
            "--receiver",
            "GID_web@@@py-wss",
        ],
    );
}

#[test]
fn paho_computes_the_signature_itself() {
    let a = Appliance::start(&[]);
    let (key_id, secret) = a.demo_key();
    let tcp = a.ports.mqtt.to_string();
    paho_p2p(
        &a,
        &["--port", &tcp, "--key-id", &key_id, "--secret", &secret],
    );
    // paho 2 reports a 3.1.1 CONNACK 4 as reason code 134 too.
    let o = python(
        "paho_p2p.py",
        &[
            "--port",
            &tcp,
            "--key-id",
            &key_id,
            "--secret",
            &secret,
            "--bad-password",
        ],
    );
    assert!(text(&o).contains("\"rc\": 134"), "{}", text(&o));
    let o = python(
        "paho_p2p.py",
        &[
            "--port",
            &tcp,
            "--version",
            "5",
            "--key-id",
            &key_id,
            "--secret",
            &secret,
            "--bad-password",
        ],
    );
    assert!(text(&o).contains("\"rc\": 134"), "{}", text(&o));
}

#[test]
fn idle_sockets_do_not_delay_tls_or_websocket_connects() {
    let a = Appliance::start(&["--dev"]);
    // Sockets that connect and send nothing, on every listener.
    let idle: Vec<TcpStream> = [a.ports.mqtt, a.ports.mqtts, a.ports.ws, a.ports.wss]
        .iter()
        .flat_map(|p| {
            (0..10).map(move |_| TcpStream::connect(("127.0.0.1", *p)).expect("idle connect"))
        })
        .collect();
    let ca = a.ca();
    let ca = ca.to_str().unwrap();
    let wss = a.ports.wss.to_string();
    let ws = a.ports.ws.to_string();
    // paho gives up after 10 s without a CONNACK; the broker's handshake timeout is 15 s,
    // so success here means the idle sockets did not hold the accept loops.
    paho_p2p(
        &a,
        &[
            "--port",
            &wss,
            "--transport",
            "websockets",
            "--ca",
            ca,
            "--receiver",
            "GID_web@@@idle-wss",
        ],
    );
    paho_p2p(
        &a,
        &[
            "--port",
            &ws,
            "--transport",
            "websockets",
            "--receiver",
            "GID_web@@@idle-ws",
        ],
    );
    let p = a.ports.mqtts.to_string();
    let o = run(
        "mosquitto_pub",
        &[
            "-h",
            "localhost",
            "-p",
            &p,
            "--cafile",
            ca,
            "-i",
            "GID_demo@@@idle",
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
    drop(idle);
}

#[test]
fn mqtt_js_over_websocket_and_secure_websocket() {
    let a = Appliance::start(&["--dev"]);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/p2p.mjs");
    let script = script.to_str().unwrap();
    let ca = a.ca();
    for (url, ca) in [
        (format!("ws://127.0.0.1:{}/mqtt", a.ports.ws), None),
        (
            format!("wss://127.0.0.1:{}/mqtt", a.ports.wss),
            Some(ca.to_str().unwrap()),
        ),
    ] {
        let mut args = vec![script, url.as_str()];
        args.extend(ca);
        let o = run("node", &args);
        assert!(
            o.status.success(),
            "{url}: {}\n(run `npm ci --prefix tests/js` first)\n{}",
            text(&o),
            a.log()
        );
    }
}

#[test]
fn offline_sessions_hold_no_sockets() {
    let a = Appliance::start(&["--dev"]);
    let p = a.ports.mqtt.to_string();
    let before = a.open_fds();
    for i in 0..30 {
        let id = format!("GID_web@@@gone-{i}");
        let o = run(
            "mosquitto_sub",
            &[
                "-p",
                &p,
                "-i",
                &id,
                "-c",
                "-q",
                "1",
                "-t",
                "rtc_event/x",
                "-W",
                "1",
            ],
        );
        assert!(text(&o).contains("Timed out"));
    }
    let after = a.open_fds();
    assert!(
        after < before + 10,
        "30 offline persistent sessions kept sockets: {before} -> {after} fds"
    );
}
