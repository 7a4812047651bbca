//! The controller's state store, the same checks on both backends: SQLite
//! (the appliance, `mqrtc controller` without `--store`) and PostgreSQL
//! (`mqrtc controller --store postgres://...`). Calls come from the pure
//! state machine, as the controller writes them.

use mqrtc::calls::{
    CallError, CallState, Command, Device, Engine, Input, Kind, Media, ReplyBody, Rules, Timer,
    TimerKind,
};
use mqrtc::store::pg::{Database, PgStore};
use mqrtc::store::{Batch, StateStore, Store, TimelineEntry};

use crate::common::postgres::Postgres;

fn device(user: &str) -> Device {
    Device {
        client_id: format!("GID_demo@@@{user}"),
        user: user.to_string(),
        instance: "mqrtc-demo".to_string(),
    }
}

fn request(engine: &mut Engine, from: &str, req: &str, cmd: Command, now: i64) {
    let input = Input::Request {
        from: device(from),
        req: req.to_string(),
        sent_at: now,
        ttl: 10_000,
        cmd,
    };
    engine.apply(input, now, &format!("id-{req}"));
}

fn timer(call_id: &str, kind: TimerKind) -> Timer {
    Timer {
        call_id: call_id.to_string(),
        kind,
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Everything the controller writes, read back; then updates, the outbox
/// drained, a replayed batch, and both prunes.
fn check(store: &dyn StateStore) {
    let empty = store.load_controller(0).expect("load an empty store");
    assert!(empty.calls.is_empty() && empty.outbox.is_empty() && empty.replies.is_empty());

    let mut engine = Engine::new(Rules::default());
    for u in ["alice", "bob"] {
        engine.apply(Input::DeviceSeen(device(u)), 1_000, "");
    }
    let start = Command::Start {
        to: vec!["bob".into()],
        kind: Kind::Call,
        media: Media::Video,
        title: Some("ünïcode 'quoted'".into()),
    };
    request(&mut engine, "alice", "r1", start, 1_000);
    let call = engine.calls().next().expect("a call").clone();
    let id = call.id.clone();
    let done = Ok(ReplyBody::Done {
        call_id: id.clone(),
    });
    let entry = TimelineEntry {
        at: 1_000,
        direction: "in".into(),
        client_id: device("alice").client_id,
        kind: "start".into(),
        message: serde_json::json!({ "type": "start", "to": ["bob"] }),
    };
    let first = Batch {
        calls: vec![call.clone()],
        timers: vec![
            (timer(&id, TimerKind::Ring("bob".into())), Some(31_000)),
            (timer(&id, TimerKind::MaxDuration), Some(99_000)),
        ],
        outbox: vec![
            (
                "GID_demo@@@bob".into(),
                "rtc_down/p2p/GID_demo@@@bob".into(),
                "{\"n\":1}".into(),
                61_000,
            ),
            (
                "GID_demo@@@alice".into(),
                "rtc_down/p2p/GID_demo@@@alice".into(),
                "{\"n\":2}".into(),
                61_000,
            ),
        ],
        replies: vec![
            (
                device("alice").client_id,
                "r1".into(),
                done.clone(),
                601_000,
            ),
            (
                device("bob").client_id,
                "r0".into(),
                Err(CallError::NotFound),
                2_000,
            ),
        ],
        devices: vec![(device("alice"), 1_000), (device("bob"), 1_000)],
        events: vec![(id.clone(), entry)],
        ..Batch::default()
    };
    let rows = store.apply_batch(&first).expect("first batch");
    assert_eq!(rows.len(), 2, "one outbox row per downlink");
    assert!(
        rows[0].seq < rows[1].seq,
        "sequence follows the batch: {rows:?}"
    );
    assert_eq!(
        (rows[0].payload.as_str(), rows[1].payload.as_str()),
        ("{\"n\":1}", "{\"n\":2}")
    );

    let loaded = store.load_controller(0).expect("load");
    assert_eq!(
        loaded.calls,
        std::slice::from_ref(&call),
        "the call as the engine had it"
    );
    assert_eq!(
        sorted(
            loaded
                .timers
                .iter()
                .map(|(t, due)| (format!("{:?}", t.kind), *due))
                .collect()
        ),
        [
            ("MaxDuration".to_string(), 99_000),
            ("Ring(\"bob\")".to_string(), 31_000)
        ]
    );
    assert_eq!(
        sorted(loaded.devices.iter().map(|d| d.client_id.clone()).collect()),
        ["GID_demo@@@alice", "GID_demo@@@bob"]
    );
    let mut replies = loaded.replies;
    replies.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(replies.len(), 2);
    assert_eq!(
        (replies[0].1.as_str(), &replies[0].2),
        ("r0", &Err(CallError::NotFound))
    );
    assert_eq!(
        (replies[1].1.as_str(), &replies[1].2, replies[1].3),
        ("r1", &done, 601_000)
    );
    assert_eq!(loaded.outbox, rows, "the outbox as it was written");

    // The caller cancels: the call ends, its ring timer goes, the first
    // downlink was handed over; the same devices are seen again.
    request(
        &mut engine,
        "alice",
        "r2",
        Command::Cancel {
            call_id: id.clone(),
        },
        5_000,
    );
    let ended = engine.call(&id).expect("still known").clone();
    assert!(
        matches!(ended.state, CallState::Ended(_)),
        "{:?}",
        ended.state
    );
    let second = Batch {
        calls: vec![ended.clone()],
        timers: vec![(timer(&id, TimerKind::Ring("bob".into())), None)],
        outbox_done: vec![rows[0].seq],
        devices: vec![(device("alice"), 5_000)],
        replies: vec![(
            device("alice").client_id,
            "r1".into(),
            done.clone(),
            700_000,
        )],
        ..Batch::default()
    };
    assert!(store.apply_batch(&second).expect("second batch").is_empty());
    let loaded = store.load_controller(0).expect("load");
    assert_eq!(
        loaded.calls,
        std::slice::from_ref(&ended),
        "the call updated in place"
    );
    assert_eq!(
        loaded.timers.len(),
        1,
        "the ring timer is gone: {:?}",
        loaded.timers
    );
    assert_eq!(loaded.outbox, rows[1..], "the handed-over row is gone");
    assert_eq!(
        loaded.devices.len(),
        2,
        "a device seen again is not doubled"
    );
    let r1 = loaded.replies.iter().find(|r| r.1 == "r1").expect("r1");
    assert_eq!(
        r1.3, 700_000,
        "a reply remembered again keeps the later date"
    );

    // Loading after the call ended and a while: ended calls stay in the
    // database only; replies past their date are not loaded.
    let ended_at = ended.ended_at.expect("ended_at");
    let later = store.load_controller(ended_at + 1).expect("load");
    assert!(later.calls.is_empty(), "an ended call is not restored");
    assert_eq!(later.replies.len(), 1, "r0 (until 2 000) is past");

    store.prune_replies(3_000).expect("prune replies");
    let loaded = store.load_controller(0).expect("load");
    assert_eq!(loaded.replies.len(), 1, "r0 pruned");
    assert_eq!(
        store.prune_calls(ended_at, 100).expect("prune"),
        0,
        "not older than the cutoff"
    );
    assert_eq!(
        store.prune_calls(ended_at + 1, 100).expect("prune"),
        1,
        "the ended call"
    );
    assert!(store.load_controller(0).expect("load").calls.is_empty());
}

#[test]
fn sqlite() {
    check(&Store::open_in_memory().expect("in-memory SQLite"));
}

#[test]
fn postgres() {
    let pg = Postgres::start();
    check(&PgStore::connect(&Database::new(&pg.url)).expect("PostgreSQL"));
}

/// `sslmode=require`: the same checks over TLS, the server's certificate
/// verified against the CA given; a server the CA did not sign is refused.
#[test]
fn postgres_over_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let [ca, cert, key] = crate::scaleout::certificates(certs.path());
    let pg = Postgres::start_tls(cert.as_ref(), key.as_ref());
    let db = Database {
        url: format!("{}?sslmode=require", pg.url),
        ca_file: Some(ca.into()),
    };
    let store = PgStore::connect(&db).expect("PostgreSQL over TLS");
    check(&store);
    let mut plain = postgres::Client::connect(&pg.url, postgres::NoTls).expect("connect");
    let tls: i64 = plain
        .query_one("SELECT count(*) FROM pg_stat_ssl WHERE ssl", &[])
        .expect("pg_stat_ssl")
        .get(0);
    assert_eq!(tls, 1, "the store's connection is the one TLS connection");

    let untrusted = Database {
        ca_file: None,
        ..db
    };
    let err = PgStore::connect(&untrusted)
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("certificate"), "{err}");
}
