//! Hostile input over sockets: malformed, truncated and oversized MQTT
//! packets get a reason code or a closed connection, never a session or a
//! panic; a slowloris on every listener does not stop well-behaved clients,
//! and the appliance closes the attack's sockets by itself.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

use crate::common::{run, text, Appliance};

/// A 3.1.1 (level 4) or 5 CONNECT with a clean session.
fn connect(level: u8, client_id: &str) -> Vec<u8> {
    let mut var = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', level, 0x02, 0x00, 0x3c];
    if level == 5 {
        var.push(0x00); // no properties
    }
    var.extend_from_slice(&(client_id.len() as u16).to_be_bytes());
    var.extend_from_slice(client_id.as_bytes());
    let mut p = vec![0x10, var.len() as u8];
    p.extend(var);
    p
}

/// Everything the server sends until it closes the connection (at most 20 s).
fn until_closed(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e) => return Err(format!("still open after 20 s ({e}), got {got:02x?}")),
        }
    }
}

/// Sends `bytes` (then, if `half_close`, nothing more) and returns what the
/// server answered before it closed the connection.
fn exchange(port: u16, bytes: &[u8], half_close: bool) -> Result<Vec<u8>, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    // A server that closes early may reset the rest of a long write.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    until_closed(&mut s)
}

/// A CONNACK that accepted the connection (3.1.1 or 5).
fn accepted(answer: &[u8]) -> bool {
    answer.len() >= 4 && answer[0] == 0x20 && answer[3] == 0
}

#[test]
fn malformed_and_truncated_packets_are_refused_and_nothing_breaks() {
    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for level in [4, 5] {
        let good = connect(level, "GID_demo@@@hostile");
        for cut in 1..good.len() {
            cases.push((
                format!("level {level} CONNECT cut at {cut}"),
                good[..cut].to_vec(),
            ));
        }
    }
    let mut rng = StdRng::seed_from_u64(13);
    for n in 0..200 {
        let len = rng.random_range(1..512);
        let mut b: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if n % 2 == 0 {
            b[0] = 0x10; // claims to be a CONNECT
        }
        cases.push((format!("random {n}"), b));
    }
    // Run them a few at a time: each ends as soon as the server closes.
    let failures: Vec<String> = std::thread::scope(|scope| {
        let chunks: Vec<_> = cases.chunks(cases.len().div_ceil(8)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut bad = Vec::new();
                    for (name, bytes) in chunk {
                        match exchange(port, bytes, true) {
                            Ok(answer) if accepted(&answer) => {
                                bad.push(format!("{name}: accepted {answer:02x?}"))
                            }
                            Ok(_) => {}
                            Err(e) => bad.push(format!("{name}: {e}")),
                        }
                    }
                    bad
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");

    // A remaining length of 256 MiB (closed when the handshake timeout
    // ends: the version is still unknown), one of five bytes (not MQTT,
    // closed at once); no body is waited for or read.
    for (name, head) in [
        (
            "remaining length 268435455",
            vec![0x10, 0xff, 0xff, 0xff, 0x7f],
        ),
        (
            "remaining length of 5 bytes",
            vec![0x10, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ] {
        let answer = exchange(port, &head, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!accepted(&answer), "{name}: {answer:02x?}");
    }

    // A protocol level the appliance does not speak: CONNACK 0x01, then
    // the close [MQTT-3.1.2-2].
    let mut level6 = connect(4, "GID_demo@@@level6");
    level6[8] = 6;
    let answer = exchange(port, &level6, false).expect("level 6");
    assert_eq!(answer, [0x20, 0x02, 0x00, 0x01]);

    // After a good MQTT 5 CONNECT: a packet over the limit (1 MiB) is
    // refused with DISCONNECT 0x95, the forbidden packet type 0 with 0x83
    // (the codec's "unsupported packet type"), a malformed one with 0x81.
    for (name, packet, code) in [
        ("PUBLISH of 2 MiB", vec![0x30, 0x80, 0x80, 0x80, 0x01], 0x95),
        ("packet type 0", vec![0x00, 0x00], 0x83),
        (
            "PUBLISH with QoS 3",
            vec![0x36, 0x04, 0x00, 0x01, b'a', 0x00],
            0x81,
        ),
    ] {
        let mut bytes = connect(5, "GID_demo@@@hostile5");
        bytes.extend(packet);
        let answer = exchange(port, &bytes, false).unwrap_or_else(|e| panic!("{name}: {e}"));
        let connack_len = 2 + answer.get(1).copied().unwrap_or(0) as usize;
        assert!(accepted(&answer), "{name}: {answer:02x?}");
        let rest = &answer[connack_len.min(answer.len())..];
        assert!(
            rest.len() >= 3 && rest[0] == 0xe0 && rest[2] == code,
            "{name}: expected DISCONNECT {code:#04x}, got {rest:02x?}"
        );
    }

    // Still serving: a well-behaved client connects and is answered.
    let mut ok = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    ok.write_all(&connect(4, "GID_demo@@@after"))
        .expect("write");
    ok.write_all(&[0xc0, 0x00]).expect("PINGREQ");
    let mut answer = [0u8; 6];
    ok.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    ok.read_exact(&mut answer).expect("CONNACK and PINGRESP");
    assert_eq!(answer, [0x20, 0x02, 0x00, 0x00, 0xd0, 0x00]);
    assert!(!a.log().contains("panicked"), "{}", a.log());
}

#[test]
fn a_slowloris_on_every_listener_does_not_stop_well_behaved_clients() {
    let _alone = crate::common::TIMING
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let half_open = 200;
    let o = run(
        env!("CARGO_BIN_EXE_mqrtc"),
        &[
            "bench",
            "abuse",
            "--half-open",
            &half_open.to_string(),
            "--probes",
            "20",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
    assert_eq!(r["attack_in_place"], 6 * half_open, "{r:#}");
    for l in ["mqtt", "mqtts", "ws", "wss", "http", "https"] {
        for round in ["quiet", "under_attack"] {
            assert_eq!(r[round][l]["ok"], 20, "{l} {round}: {r:#}");
        }
        let closed = &r["attack_sockets"][l];
        assert_eq!(
            closed["closed"], half_open,
            "{l}: the appliance left sockets open: {r:#}"
        );
    }
    let fds = &r["appliance_fds"];
    let (before, after) = (fds["before"].as_u64(), fds["after"].as_u64());
    assert!(after <= before.map(|b| b + 10), "{r:#}");
    assert_eq!(r["appliance_panics"], 0, "{r:#}");
}

#[test]
fn a_stop_does_not_wait_for_an_open_event_stream() {
    let a = Appliance::start(&["--dev"]);
    let mut tail = TcpStream::connect(("127.0.0.1", a.ports.http)).expect("connect");
    tail.write_all(b"GET /api/v1/tail HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut head = [0u8; 12];
    tail.read_exact(&mut head).expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200", "{}", String::from_utf8_lossy(&head));
    let pid = a.pid().to_string();
    assert!(run("kill", &["-TERM", &pid]).status.success());
    // The stream never ends by itself; the stop waits for it at most 10 s.
    let stat = format!("/proc/{pid}/stat");
    let exited = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&stat).map_or(true, |s| s.contains(") Z "))
    });
    assert!(
        exited,
        "still running 60 s after SIGTERM; log:\n{}",
        a.log()
    );
}
