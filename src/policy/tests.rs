use super::*;
use crate::directory::{Directory, ParentTopic, TopicRole};

fn rules() -> Rules {
    Rules {
        max_client_id_len: 64,
        max_topic_len: 64,
        max_payload_bytes: 64 * 1024,
    }
}

fn dir() -> Directory {
    let mut d = Directory::default();
    for (g, i) in [
        ("GID_demo", "demo"),
        ("GID_web", "demo"),
        ("GID_other", "other"),
    ] {
        d.add_group(g, i);
    }
    for (t, i, role) in [
        ("rtc_up", "demo", TopicRole::Uplink),
        ("rtc_down", "demo", TopicRole::Downlink),
        ("rtc_event", "demo", TopicRole::Event),
        ("theirs", "other", TopicRole::Event),
    ] {
        d.topics.insert(
            t.into(),
            ParentTopic {
                instance: i.into(),
                role,
            },
        );
    }
    d
}

fn alice() -> Principal {
    Principal {
        client_id: "GID_demo@@@alice".into(),
        group: "GID_demo".into(),
        instance: "demo".into(),
    }
}

#[test]
fn client_ids() {
    assert_eq!(
        parse_client_id("GID_demo@@@alice", 64),
        Ok(ClientIdParts {
            group: "GID_demo",
            device: "alice"
        })
    );
    assert!(parse_client_id("GID-a_b@@@x:y.z-1", 64).is_ok());
    assert_eq!(
        parse_client_id("alice", 64),
        Err(ClientIdError::NoSeparator)
    );
    assert_eq!(
        parse_client_id("GID_@@@alice", 64),
        Err(ClientIdError::BadGroup),
        "group too short"
    );
    assert_eq!(
        parse_client_id("GIX_demo@@@alice", 64),
        Err(ClientIdError::BadGroup)
    );
    assert_eq!(
        parse_client_id("GID_demo@@@", 64),
        Err(ClientIdError::BadDevice)
    );
    assert_eq!(
        parse_client_id("GID_demo@@@a/b", 64),
        Err(ClientIdError::BadDevice)
    );
    let long = format!("GID_demo@@@{}", "x".repeat(60));
    assert!(matches!(
        parse_client_id(&long, 64),
        Err(ClientIdError::TooLong { .. })
    ));
}

#[test]
fn shapes_and_counted_length() {
    assert_eq!(
        shape("rtc_down/p2p/GID_a@@@b"),
        TopicShape::P2p {
            parent: "rtc_down",
            target: "GID_a@@@b"
        }
    );
    assert_eq!(
        shape("rtc_down/x/y"),
        TopicShape::Plain { parent: "rtc_down" }
    );
    assert_eq!(shape("rtc_down/p2p"), TopicShape::BadP2p);
    assert_eq!(shape("rtc_down/p2p/a/b"), TopicShape::BadP2p);
    assert_eq!(
        counted_topic_len("rtc_down/p2p/GID_demo@@@alice"),
        "rtc_down/p2p/".len()
    );
    assert_eq!(counted_topic_len("a/b"), 3);
}

#[test]
fn publish_rules() {
    let (d, r, a) = (dir(), rules(), alice());
    assert_eq!(
        check_publish(&d, &r, &a, &Access::Full, "rtc_up/call", 10),
        Ok(Route::Topic)
    );
    assert_eq!(
        check_publish(&d, &r, &a, &Access::Full, "rtc_event/quality", 10),
        Ok(Route::Topic)
    );
    assert_eq!(
        check_publish(&d, &r, &a, &Access::Full, "rtc_event/p2p/GID_web@@@bob", 10),
        Ok(Route::P2p("GID_web@@@bob"))
    );
    let code = |t: &str, n: usize| {
        check_publish(&d, &r, &a, &Access::Full, t, n)
            .unwrap_err()
            .code
    };
    assert_eq!(
        code("rtc_down/p2p/GID_web@@@bob", 1),
        RefusalCode::NotAuthorized,
        "downlink is the controller's"
    );
    assert_eq!(
        code("rtc_up/p2p/GID_web@@@bob", 1),
        RefusalCode::NotAuthorized,
        "no P2P on uplink"
    );
    assert_eq!(
        code("rtc_event/p2p/GID_other@@@eve", 1),
        RefusalCode::NotAuthorized,
        "other instance"
    );
    assert_eq!(code("rtc_event/p2p/nobody", 1), RefusalCode::TopicInvalid);
    assert_eq!(
        code("theirs/x", 1),
        RefusalCode::NotAuthorized,
        "other instance's parent"
    );
    assert_eq!(code("unknown/x", 1), RefusalCode::NotAuthorized);
    assert_eq!(code("$SYS/x", 1), RefusalCode::TopicInvalid);
    assert_eq!(
        code("rtc_up/x", 64 * 1024 + 1),
        RefusalCode::PayloadTooLarge
    );
    assert!(
        check_publish(&d, &r, &a, &Access::Full, "rtc_up/x", 64 * 1024).is_ok(),
        "exactly the limit is fine"
    );
    let long = format!("rtc_up/{}", "x".repeat(60));
    assert_eq!(code(&long, 1), RefusalCode::TopicInvalid);
}

#[test]
fn p2p_topics_with_long_client_ids_fit() {
    let (d, r, a) = (dir(), rules(), alice());
    let target = format!("GID_web@@@{}", "d".repeat(54));
    assert_eq!(target.len(), 64);
    let topic = format!("rtc_event/p2p/{target}");
    assert!(topic.len() > 64);
    assert!(check_publish(&d, &r, &a, &Access::Full, &topic, 1).is_ok());
}

#[test]
fn subscribe_rules() {
    let (d, r, a) = (dir(), rules(), alice());
    let ok = |f: &str| check_subscribe(&d, &r, &a, &Access::Full, f).is_ok();
    assert!(ok("rtc_event/room1/#"));
    assert!(ok("rtc_event/#"));
    assert!(ok("rtc_down/p2p/GID_demo@@@alice"), "own inbox");
    assert!(
        ok("rtc_event/p2p/GID_demo@@@alice"),
        "own inbox on any parent"
    );
    assert!(!ok("#"));
    assert!(!ok("+/p2p/GID_demo@@@alice"));
    assert!(!ok("$SYS/#"));
    assert!(!ok("rtc_down/p2p/GID_web@@@bob"), "foreign inbox");
    assert!(!ok("rtc_down/p2p/+"));
    assert!(!ok("rtc_down/p2p/#"));
    assert!(!ok("rtc_up/#"), "uplink belongs to the controller");
    assert!(!ok("rtc_down/news"), "downlink only as P2P");
    assert!(!ok("theirs/#"));
    assert!(!ok("nope/x"));
}

#[test]
fn token_resources_cover_filters() {
    assert!(covers("rtc_up", "rtc_up/call"));
    assert!(covers("rtc_up", "rtc_up"));
    assert!(covers("rtc_event/#", "rtc_event/room/1"));
    assert!(covers("rtc_event/+/x", "rtc_event/a/x"));
    assert!(covers("rtc_event/+/x", "rtc_event/+/x"));
    assert!(
        !covers("rtc_event/+/x", "rtc_event/#"),
        "a wider filter is not covered"
    );
    assert!(!covers("rtc_event/a", "rtc_event/+"));
    assert!(!covers("rtc_up", "rtc_upx/call"));
    assert!(covers("#", "anything/at/all"));
}

#[test]
fn tokens_limit_what_a_connection_may_do() {
    let (d, r, a) = (dir(), rules(), alice());
    let read_only = Access::Tokens {
        read: vec!["rtc_event".into()],
        write: vec![],
    };
    assert!(check_subscribe(&d, &r, &a, &read_only, "rtc_event/room/#").is_ok());
    let e = check_publish(&d, &r, &a, &read_only, "rtc_event/room", 1).unwrap_err();
    assert_eq!(e.code, RefusalCode::NotAuthorized, "R token cannot publish");
    let write_up = Access::Tokens {
        read: vec![],
        write: vec!["rtc_up/#".into()],
    };
    assert!(check_publish(&d, &r, &a, &write_up, "rtc_up/call", 1).is_ok());
    assert!(
        check_publish(&d, &r, &a, &write_up, "rtc_event/x", 1).is_err(),
        "outside the token's resources"
    );
    assert!(
        check_subscribe(&d, &r, &a, &write_up, "rtc_event/#").is_err(),
        "W token cannot subscribe"
    );
    assert!(
        check_subscribe(&d, &r, &a, &write_up, "rtc_down/p2p/GID_demo@@@alice").is_ok(),
        "own inbox"
    );
}

#[test]
fn group_grants_and_p2p_scope() {
    let (mut d, r, a) = (dir(), rules(), alice());
    let mut grants = std::collections::HashMap::new();
    grants.insert(
        "rtc_up".to_string(),
        crate::directory::Grant {
            publish: true,
            subscribe: false,
        },
    );
    grants.insert(
        "rtc_event".to_string(),
        crate::directory::Grant {
            publish: false,
            subscribe: true,
        },
    );
    d.groups.get_mut("GID_demo").unwrap().grants = Some(grants);
    let full = Access::Full;
    assert!(check_publish(&d, &r, &a, &full, "rtc_up/x", 1).is_ok());
    assert!(
        check_publish(&d, &r, &a, &full, "rtc_event/x", 1).is_err(),
        "event not granted for publish"
    );
    assert!(check_subscribe(&d, &r, &a, &full, "rtc_event/#").is_ok());
    d.groups.get_mut("GID_demo").unwrap().grants = None;
    d.groups.get_mut("GID_demo").unwrap().p2p_scope = crate::directory::P2pScope::Group;
    assert!(check_publish(&d, &r, &a, &full, "rtc_event/p2p/GID_demo@@@bob", 1).is_ok());
    assert!(check_publish(&d, &r, &a, &full, "rtc_event/p2p/GID_web@@@bob", 1).is_err());
    d.groups.get_mut("GID_demo").unwrap().p2p_scope = crate::directory::P2pScope::None;
    assert!(check_publish(&d, &r, &a, &full, "rtc_event/p2p/GID_demo@@@bob", 1).is_err());
}
