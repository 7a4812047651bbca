//! The client SDK (`mqrtc::client`) and `mqrtc device` against the real
//! appliance, and against a Debian mosquitto started by the test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use mqrtc::calls::{EndReason, Event as CallEvent, Media, PState};
use mqrtc::client::{rtc, Client, Error, Event, Events, Options};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};

use crate::common::{Appliance, Mosquitto};

const WAIT: Duration = Duration::from_secs(30);

fn opts(port: u16, id: &str) -> Options {
    let mut o = Options::new(id.parse().expect("client id"), "127.0.0.1", port);
    o.backoff_min = Duration::from_millis(50);
    o.backoff_max = Duration::from_millis(500);
    o
}

/// Waits (up to 30 s, as a readiness bound) for an event `f` accepts;
/// returns it and everything seen before it.
async fn wait_for(ev: &mut Events, what: &str, f: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let e = ev.recv().await.expect("event stream ended");
            if f(&e) {
                return e;
            }
            seen.push(e);
        }
    })
    .await;
    match found {
        Ok(e) => (e, seen),
        Err(_) => panic!("no {what} within {WAIT:?}; saw {seen:#?}"),
    }
}

async fn connected(a_port: u16, id: &str) -> (Client, Events) {
    let (c, mut ev) = Client::connect(opts(a_port, id)).expect("connect");
    wait_for(&mut ev, "sync after connect", |e| {
        matches!(e, Event::Synced(_))
    })
    .await;
    (c, ev)
}

fn is_call(e: &Event, f: impl Fn(&CallEvent) -> bool) -> bool {
    matches!(e, Event::Call(c) if f(c))
}

fn rtc_base(a: &Appliance) -> String {
    format!("http://127.0.0.1:{}/rtc/v1", a.ports.http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_full_call_on_two_devices_of_one_user() {
    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let (alice, mut alice_ev) = connected(port, "GID_demo@@@alice").await;
    let (phone, mut phone_ev) = connected(port, "GID_demo@@@bob").await;
    let (web, mut web_ev) = connected(port, "GID_web@@@bob").await;

    let started = alice
        .start_call(&["bob"], Media::Video)
        .await
        .expect("call.start");
    let call = started.call.call_id.clone();
    assert!(started.unreachable.is_empty());
    for ev in [&mut phone_ev, &mut web_ev] {
        wait_for(ev, "invite", |e| is_call(e, |c| matches!(c, CallEvent::Invite { call: v, from, .. } if v.call_id == call && from == "alice"))).await;
    }
    assert!(phone.book().invites.contains_key(&call));

    let accepted = phone.accept(&call).await.expect("call.accept");
    wait_for(&mut web_ev, "answered elsewhere", |e| {
        is_call(e, |c| matches!(c, CallEvent::AnsweredElsewhere { .. }))
    })
    .await;
    assert!(
        web.book().invites.is_empty(),
        "the web client stops ringing"
    );

    let base = rtc_base(&a);
    rtc::join(&base, &started.join)
        .await
        .expect("alice joins the RTC channel");
    let bob_in = rtc::join(&base, &accepted.join)
        .await
        .expect("bob joins the RTC channel");
    assert_eq!(bob_in.members, vec!["alice".to_string(), "bob".to_string()]);
    wait_for(&mut alice_ev, "bob joined", |e| {
        is_call(e, |c| matches!(c, CallEvent::Participant { user, state: PState::Joined, .. } if user == "bob"))
    })
    .await;

    alice
        .mute(&call, Media::Audio, true, None)
        .await
        .expect("call.mute");
    wait_for(&mut phone_ev, "alice muted", |e| {
        is_call(
            e,
            |c| matches!(c, CallEvent::Muted { user, muted: true, .. } if user == "alice"),
        )
    })
    .await;
    assert!(phone.book().calls[&call].participants["alice"].audio_muted);

    phone.hangup(&call).await.expect("call.leave");
    wait_for(&mut alice_ev, "call ended", |e| {
        is_call(e, |c| {
            matches!(
                c,
                CallEvent::Ended {
                    reason: EndReason::Hangup,
                    ..
                }
            )
        })
    })
    .await;
    assert!(alice.book().calls.is_empty() && phone.book().calls.is_empty());
    let refused = phone.hangup(&call).await.expect_err("the call is over");
    assert!(
        matches!(refused, Error::Refused { ref code, .. } if code == "call_ended"),
        "{refused:?}"
    );
}

/// A dev appliance whose invitations ring 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_lists_contacts_with_their_online_state() {
    let a = Appliance::start(&["--dev"]);
    let (alice, _ea) = connected(a.ports.mqtt, "GID_demo@@@alice").await;
    let (bob, _eb) = connected(a.ports.mqtt, "GID_web@@@bob").await;
    let (carol, _ec) = connected(a.ports.mqtt, "GID_web@@@carol").await;
    carol.close().await;
    let mut users = alice.contacts().await.expect("contacts");
    users.sort_by(|x, y| x.user.cmp(&y.user));
    let seen: Vec<(&str, bool)> = users.iter().map(|c| (c.user.as_str(), c.online)).collect();
    assert_eq!(seen, [("bob", true), ("carol", false)]);
    bob.close().await;
    alice.close().await;
}

fn ringing_5s() -> Appliance {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cfg = dir.path().join("mqrtc.toml");
    std::fs::write(&cfg, "[controller]\nring_timeout_secs = 5\n").unwrap();
    let cfg = cfg.to_str().unwrap().to_string();
    Appliance::start_in(dir, &["--dev", "--config", &cfg])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_callee_offline_back_within_and_after_the_time_to_live() {
    let a = ringing_5s();
    let port = a.ports.mqtt;
    let (alice, mut alice_ev) = connected(port, "GID_demo@@@alice").await;
    let (bob, _) = connected(port, "GID_demo@@@bob").await;
    bob.close().await;

    // Back while it still rings: the invitation waited in his session.
    let call1 = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .unwrap()
        .call
        .call_id;
    let (bob, mut bob_ev) = Client::connect(opts(port, "GID_demo@@@bob")).unwrap();
    wait_for(&mut bob_ev, "invite after reconnect", |e| {
        is_call(
            e,
            |c| matches!(c, CallEvent::Invite { call, .. } if call.call_id == call1),
        )
    })
    .await;
    bob.accept(&call1).await.expect("accept after coming back");
    bob.hangup(&call1).await.unwrap();
    wait_for(&mut alice_ev, "first call ended", |e| {
        is_call(
            e,
            |c| matches!(c, CallEvent::Ended { call_id, .. } if *call_id == call1),
        )
    })
    .await;
    bob.close().await;

    // Back after it stopped ringing: no invitation, a missed call.
    let call2 = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .unwrap()
        .call
        .call_id;
    wait_for(&mut alice_ev, "no answer", |e| {
        is_call(e, |c| matches!(c, CallEvent::Ended { call_id, reason: EndReason::NoAnswer } if *call_id == call2))
    })
    .await;
    let (bob, mut bob_ev) = Client::connect(opts(port, "GID_demo@@@bob")).unwrap();
    let (_, before) = wait_for(&mut bob_ev, "missed call", |e| {
        is_call(e, |c| matches!(c, CallEvent::Missed { call_id, from, .. } if *call_id == call2 && from == "alice"))
    })
    .await;
    let (synced, more) = wait_for(&mut bob_ev, "sync", |e| matches!(e, Event::Synced(_))).await;
    let rang = before.iter().chain(&more).any(|e| {
        is_call(
            e,
            |c| matches!(c, CallEvent::Invite { call, .. } if call.call_id == call2),
        )
    });
    assert!(
        !rang,
        "an expired invitation must not ring: {before:?} {more:?}"
    );
    let Event::Synced(s) = synced else {
        unreachable!()
    };
    assert!(s.invites.is_empty() && s.calls.is_empty(), "{s:?}");
    assert_eq!(bob.book().missed.len(), 1);
}

fn envelope(id: &str, ts: i64, ttl: i64, text: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"v": 1, "id": id, "type": "note", "ts": ts, "ttl": ttl, "body": {"text": text}}),
    )
    .unwrap()
}

async fn raw_client(port: u16, id: &str) -> AsyncClient {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(true);
    let (c, mut el) = AsyncClient::new(o, 16);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    c
}

async fn put(peer: &AsyncClient, topic: &str, payloads: &[&Vec<u8>]) {
    for p in payloads {
        peer.publish(topic, QoS::AtLeastOnce, false, p.to_vec())
            .await
            .unwrap();
    }
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Message {
                envelope: Some(env),
                ..
            } => env.body["text"].as_str().map(str::to_string),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_drops_duplicates_and_stale_messages_also_after_an_app_restart() {
    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let dir = tempfile::tempdir().unwrap();
    let mut o = opts(port, "GID_demo@@@bob");
    o.dedup_file = Some(dir.path().join("seen-ids"));
    let (bob, mut bob_ev) = Client::connect(o.clone()).unwrap();
    wait_for(&mut bob_ev, "sync", |e| matches!(e, Event::Synced(_))).await;

    let peer = raw_client(port, "GID_demo@@@carol").await;
    let inbox = "rtc_event/p2p/GID_demo@@@bob";
    let now = mqrtc::controller::now_ms();
    let offer = envelope("offer-1", now, 60_000, "offer");
    let old = envelope("old-1", now - 120_000, 10_000, "stale");
    let marker = envelope("m-2", now, 60_000, "marker");
    put(&peer, inbox, &[&offer, &offer, &old, &marker]).await;
    let (_, before) = wait_for(&mut bob_ev, "marker", |e| {
        texts(std::slice::from_ref(e)) == ["marker"]
    })
    .await;
    assert_eq!(
        texts(&before),
        vec!["offer"],
        "the duplicate and the stale message are dropped"
    );
    let s = bob.stats();
    assert_eq!((s.duplicates, s.stale), (1, 1), "{s:?}");
    bob.close().await;

    // The app restarts with the same dedup file: a late copy is still dropped.
    let (bob, mut bob_ev) = Client::connect(o).unwrap();
    wait_for(&mut bob_ev, "sync", |e| matches!(e, Event::Synced(_))).await;
    put(
        &peer,
        inbox,
        &[&offer, &envelope("m-3", now, 60_000, "marker 2")],
    )
    .await;
    let (_, before) = wait_for(&mut bob_ev, "marker 2", |e| {
        texts(std::slice::from_ref(e)) == ["marker 2"]
    })
    .await;
    assert!(texts(&before).is_empty(), "{before:?}");
    assert_eq!(bob.stats().duplicates, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_devices_recover_the_call_after_an_appliance_kill9_mid_call() {
    let a = Appliance::start(&["--dev"]);
    let port = a.ports.mqtt;
    let (alice, mut alice_ev) = connected(port, "GID_demo@@@alice").await;
    let (bob, mut bob_ev) = connected(port, "GID_web@@@bob").await;
    let call = alice
        .start_call(&["bob"], Media::Video)
        .await
        .unwrap()
        .call
        .call_id;
    wait_for(&mut bob_ev, "invite", |e| {
        is_call(e, |c| matches!(c, CallEvent::Invite { .. }))
    })
    .await;
    bob.accept(&call).await.unwrap();
    wait_for(&mut alice_ev, "bob accepted", |e| {
        is_call(e, |c| {
            matches!(
                c,
                CallEvent::Participant {
                    state: PState::Accepted,
                    ..
                }
            )
        })
    })
    .await;

    let a = a.kill9_and_restart_same_ports();
    // Bob mutes while the appliance restarts: the request is retried with
    // its request id until the controller answers.
    let muting = {
        let bob = bob.clone();
        let call = call.clone();
        tokio::spawn(async move { bob.mute(&call, Media::Audio, true, None).await })
    };
    for ev in [&mut alice_ev, &mut bob_ev] {
        wait_for(
            ev,
            "sync after the restart",
            |e| matches!(e, Event::Synced(s) if s.calls.iter().any(|c| c.call_id == call)),
        )
        .await;
    }
    muting
        .await
        .unwrap()
        .expect("the mute went through after the restart");
    // Alice learns it from the `call.muted` event or from her sync snapshot,
    // whichever came first.
    let bob_muted = || {
        alice
            .book()
            .calls
            .get(&call)
            .is_some_and(|c| c.participants["bob"].audio_muted)
    };
    if !bob_muted() {
        wait_for(&mut alice_ev, "bob muted", |_| bob_muted()).await;
    }
    for (who, c) in [("alice", &alice), ("bob", &bob)] {
        assert!(c.stats().reconnects >= 1, "{who} reconnected");
        let book = c.book();
        let v = book
            .calls
            .get(&call)
            .unwrap_or_else(|| panic!("{who} lost the call: {book:?}"));
        assert_eq!(v.participants.len(), 2);
        assert!(
            v.participants.values().all(|p| p.state == PState::Accepted),
            "{v:?}"
        );
    }
    assert!(alice.book().calls[&call].participants["bob"].audio_muted);
    alice.hangup(&call).await.expect("the call still works");
    wait_for(&mut bob_ev, "ended", |e| {
        is_call(e, |c| matches!(c, CallEvent::Ended { .. }))
    })
    .await;
    drop(a);
}

/// A `mqrtc device` process whose `--json` lines are read by a thread.
struct DeviceProc {
    child: Child,
    lines: std_mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl DeviceProc {
    fn start(args: &[&str]) -> DeviceProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mqrtc"))
            .arg("device")
            .arg("--json")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mqrtc device");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std_mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let v: Value =
                    serde_json::from_str(&l).unwrap_or_else(|_| panic!("not a JSON line: {l}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        DeviceProc {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    fn wait(&mut self, event: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if v["event"] == event && f(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {event} event; saw {:#?}", self.seen),
            }
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    fn exit_ok(&mut self) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "mqrtc device exited with {status}; saw {:#?}",
                    self.seen
                );
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mqrtc device did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DeviceProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_device_processes_make_a_call_with_json_output() {
    let a = Appliance::start(&["--dev"]);
    let (m, h) = (a.ports.mqtt.to_string(), a.ports.http.to_string());
    let ports = ["--mqtt-port", &m, "--http-port", &h];
    // Bob over TLS with the appliance's CA, Alice over plain TCP.
    let (ms, ca) = (a.ports.mqtts.to_string(), a.ca());
    let tls = [
        "--tls",
        "--mqtts-port",
        &ms,
        "--ca",
        ca.to_str().unwrap(),
        "--http-port",
        &h,
    ];
    let mut bob = DeviceProc::start(
        &[
            &["--id", "GID_web@@@bob", "--auto-answer", "--once"],
            &tls[..],
        ]
        .concat(),
    );
    bob.wait("synced", |_| true);
    let mut alice =
        DeviceProc::start(&[&["--id", "GID_demo@@@alice"], &ports[..], &["call", "bob"]].concat());
    let calling = alice.wait("calling", |_| true);
    let call = calling["call_id"].as_str().unwrap().to_string();
    alice.wait("joined", |v| v["call_id"] == call.as_str());
    bob.wait("invite", |v| {
        v["from"] == "alice" && v["call_id"] == call.as_str()
    });
    bob.wait("accepted", |_| true);
    let joined = bob.wait("joined", |_| true);
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    alice.wait("participant", |v| {
        v["user"] == "bob" && v["state"] == "joined"
    });
    alice.type_line("mute");
    bob.wait("muted", |v| v["user"] == "alice" && v["muted"] == true);
    alice.wait("muted", |v| v["user"] == "alice");
    alice.type_line("hangup");
    alice.wait("left", |v| v["call_id"] == call.as_str());
    bob.wait("ended", |v| v["reason"] == "hangup");
    alice.exit_ok();
    bob.exit_ok();
    let channel = format!("ch{call}");
    let (status, body) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(mqrtc::probe::http_get(
            ([127, 0, 0, 1], a.ports.http).into(),
            &format!("/rtc/v1/channels/{channel}"),
            Duration::from_secs(10),
        ))
        .unwrap();
    assert!(
        status == 404 || !body.contains("\"alice\""),
        "both left the RTC channel: {status} {body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_and_device_on_a_standard_mosquitto() {
    let mq = Mosquitto::start();
    let mut ao = opts(mq.port, "GID_demo@@@alice");
    ao.request_ttl = Duration::from_secs(2);
    let (alice, mut alice_ev) = Client::connect(ao).unwrap();
    wait_for(&mut alice_ev, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;
    let (bob, mut bob_ev) = Client::connect(opts(mq.port, "GID_web@@@bob")).unwrap();
    wait_for(&mut bob_ev, "connected", |e| {
        matches!(e, Event::Connected { .. })
    })
    .await;

    // mosquitto has no P2P extension: the SDK's inbox subscription carries it,
    // and any wildcard subscriber can read it too.
    let snoop_opts = MqttOptions::new("snoop", "127.0.0.1", mq.port);
    let (snoop, mut snoop_el) = AsyncClient::new(snoop_opts, 16);
    snoop
        .subscribe("rtc_event/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    loop {
        if let rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)) = snoop_el.poll().await.unwrap()
        {
            break;
        }
    }
    bob.close().await;
    let bob_id = "GID_web@@@bob".parse().unwrap();
    alice
        .send_p2p(
            "rtc_event",
            &bob_id,
            "webrtc.offer",
            json!({"text": "sdp"}),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let seen_by_snoop = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = snoop_el.poll().await
            {
                return p.topic;
            }
        }
    })
    .await
    .expect("a wildcard subscriber on mosquitto sees P2P traffic");
    assert_eq!(seen_by_snoop, "rtc_event/p2p/GID_web@@@bob");

    // Offline with clean=false: the message waited in bob's session.
    let (_bob, mut bob_ev) = Client::connect(opts(mq.port, "GID_web@@@bob")).unwrap();
    let (msg, _) = wait_for(&mut bob_ev, "the P2P message", |e| {
        matches!(e, Event::Message { .. })
    })
    .await;
    let Event::Message {
        topic, envelope, ..
    } = msg
    else {
        unreachable!()
    };
    assert_eq!(topic, "rtc_event/p2p/GID_web@@@bob");
    assert_eq!(envelope.unwrap().kind, "webrtc.offer");

    // No controller answers on a plain broker.
    let e = alice
        .start_call(&["bob"], Media::Audio)
        .await
        .expect_err("no controller");
    assert_eq!(e, Error::Timeout);

    // `mqrtc device` too: one prints what the other sends.
    let port = mq.port.to_string();
    let mut carol = DeviceProc::start(&[
        "--id",
        "GID_web@@@carol",
        "--mqtt-port",
        &port,
        "--request-ttl",
        "2",
    ]);
    carol.wait("connected", |_| true);
    let out = Command::new(env!("CARGO_BIN_EXE_mqrtc"))
        .args([
            "device",
            "--json",
            "--id",
            "GID_demo@@@dave",
            "--mqtt-port",
            &port,
            "send",
            "GID_web@@@carol",
            "hello",
            "carol",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    carol.wait("message", |v| v["text"] == "hello carol");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_logs_in_with_the_three_auth_modes_and_refreshes_a_token() {
    use mqrtc::client::Credentials;
    let a = Appliance::start(&[]);
    let admin = |args: &[&str]| crate::auth::admin(&a, args);
    let (key_id, secret) = a.demo_key();
    let instance = "mqrtc-demo".to_string();
    let dev = admin(&[
        "device",
        "create",
        "GID_demo@@@bob",
        "--instance",
        "mqrtc-demo",
    ]);
    let token = |ttl: u32| crate::auth::token(&a, "RW", "rtc_up,rtc_down,rtc_event", ttl);
    let port = a.ports.mqtt;
    let login = |id: &str, c: Credentials| {
        let mut o = opts(port, id);
        o.credentials = c;
        o
    };

    // Alice over TLS, trusting the appliance's generated CA.
    let mut alice_opts = login(
        "GID_demo@@@alice",
        Credentials::Signature {
            instance: instance.clone(),
            key_id: key_id.clone(),
            secret: secret.clone(),
        },
    );
    alice_opts.port = a.ports.mqtts;
    alice_opts.tls_ca = Some(std::fs::read(a.ca()).unwrap());
    let (alice, mut alice_ev) = Client::connect(alice_opts).unwrap();
    let (bob, mut bob_ev) = Client::connect(login(
        "GID_demo@@@bob",
        Credentials::DeviceCredential {
            instance: instance.clone(),
            key_id: dev["id"].as_str().unwrap().into(),
            secret: dev["secret"].as_str().unwrap().into(),
        },
    ))
    .unwrap();
    let (carol, mut carol_ev) = Client::connect(login(
        "GID_web@@@carol",
        Credentials::Token {
            instance: instance.clone(),
            key_id: key_id.clone(),
            tokens: vec![("RW".into(), token(3600))],
        },
    ))
    .unwrap();
    for ev in [&mut alice_ev, &mut bob_ev, &mut carol_ev] {
        wait_for(ev, "sync after login", |e| matches!(e, Event::Synced(_))).await;
    }

    // A wrong secret never gets in: the client reports the refusal and retries.
    let (_mallory, mut mallory_ev) = Client::connect(login(
        "GID_demo@@@mallory",
        Credentials::Signature {
            instance: instance.clone(),
            key_id: key_id.clone(),
            secret: "wrong".into(),
        },
    ))
    .unwrap();
    let (refused, before) = wait_for(&mut mallory_ev, "refusal", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert!(before.is_empty(), "{before:?}");
    let Event::Disconnected { reason, .. } = refused else {
        unreachable!()
    };
    assert!(
        reason.contains("BadUserNamePassword") || reason.contains("NotAuthorized"),
        "{reason}"
    );

    // Carol presents a fresh token while connected, then keeps working.
    carol
        .refresh_token("RW", &token(7200))
        .await
        .expect("uploadToken");
    let call = alice
        .start(&["bob", "carol"], None, Media::Audio, Some("standup"))
        .await
        .unwrap()
        .call
        .call_id;
    for ev in [&mut bob_ev, &mut carol_ev] {
        wait_for(ev, "invite", |e| {
            is_call(
                e,
                |c| matches!(c, CallEvent::Invite { call: v, .. } if v.call_id == call),
            )
        })
        .await;
    }
    bob.accept(&call)
        .await
        .expect("DeviceCredential device accepts");
    carol
        .accept(&call)
        .await
        .expect("Token device accepts after the refresh");
    alice.end(&call).await.expect("host ends the meeting");
    for ev in [&mut bob_ev, &mut carol_ev] {
        wait_for(ev, "ended", |e| {
            is_call(e, |c| {
                matches!(
                    c,
                    CallEvent::Ended {
                        reason: EndReason::EndedByHost,
                        ..
                    }
                )
            })
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_works_with_an_appliance_whose_clock_is_an_hour_off() {
    let a = Appliance::start(&["--dev", "--fault-injection"]);
    let port = a.ports.mqtt;
    // Net shifts: an hour ahead of the devices, then an hour behind.
    for (shift, name) in [("3600000", "ahead"), ("-7200000", "behind")] {
        let http = a.ports.http;
        let body = format!("{{\"ms\": {shift}}}");
        let (status, _) = tokio::task::spawn_blocking(move || {
            crate::common::http::request(
                http,
                "POST",
                "/debug/faults/clock-shift",
                &[],
                Some(&body),
            )
        })
        .await
        .unwrap();
        assert_eq!(status, 202);
        let (alice, _ea) = connected(port, &format!("GID_demo@@@alice-{name}")).await;
        let (bob, mut eb) = connected(port, &format!("GID_demo@@@bob-{name}")).await;
        let joined = alice
            .start_call(&[&format!("bob-{name}")], Media::Audio)
            .await
            .unwrap_or_else(|e| panic!("{name}: call.start: {e}"));
        let call_id = joined.call.call_id.clone();
        wait_for(&mut eb, "the invitation", |e| {
            is_call(
                e,
                |c| matches!(c, CallEvent::Invite { call, .. } if call.call_id == call_id),
            )
        })
        .await;
        bob.accept(&call_id).await.expect("accept");
        alice.hangup(&call_id).await.expect("hang up");
        wait_for(&mut eb, "the end", |e| {
            is_call(e, |c| matches!(c, CallEvent::Ended { .. }))
        })
        .await;
        assert_eq!(bob.stats().stale, 0, "{name}: nothing dropped as stale");
        alice.close().await;
        bob.close().await;
    }
}
