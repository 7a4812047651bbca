use super::*;
use crate::directory::{AccessKey, DeviceCredential, ParentTopic, TokenGrant};
use crate::store::token_hash;

const NOW: i64 = 1_800_000_000;

fn rules() -> Rules {
    Rules {
        max_client_id_len: 64,
        max_topic_len: 64,
        max_payload_bytes: 64 * 1024,
    }
}

fn dir() -> Directory {
    let mut d = Directory {
        instances: vec!["demo".into(), "other".into()],
        ..Default::default()
    };
    d.add_group("GID_demo", "demo");
    d.add_group("GID_xyz", "other");
    for (name, instance, role) in [
        ("rtc_up", "demo", TopicRole::Uplink),
        ("rtc_down", "demo", TopicRole::Downlink),
        ("rtc_event", "demo", TopicRole::Event),
        ("x_event", "other", TopicRole::Event),
    ] {
        d.topics.insert(
            name.into(),
            ParentTopic {
                instance: instance.into(),
                role,
            },
        );
    }
    d.access_keys.insert(
        "AK1".into(),
        AccessKey {
            instance: "demo".into(),
            secret: "s3cret".into(),
        },
    );
    d.devices.insert(
        "DK1".into(),
        DeviceCredential {
            instance: "demo".into(),
            client_id: "GID_demo@@@phone".into(),
            secret: "devsecret".into(),
        },
    );
    d.tokens.insert(
        token_hash("write-tok"),
        TokenGrant {
            id: "t1".into(),
            instance: "demo".into(),
            kind: TokenKind::W,
            resources: vec!["rtc_event/room/#".into()],
            expires_at: NOW + 60,
        },
    );
    d
}

fn authn(client: &str, user: &str, pass: &str) -> AuthnResponse {
    let req = AuthnRequest {
        clientid: client.into(),
        username: user.into(),
        password: pass.into(),
    };
    authenticate(&dir(), &rules(), &req, NOW)
}

fn authz(client: &str, user: &str, action: &str, topic: &str, tokens: &str) -> AuthzResponse {
    let req = AuthzRequest {
        clientid: client.into(),
        username: user.into(),
        topic: topic.into(),
        action: action.into(),
        tokens: tokens.into(),
    };
    authorize(&dir(), &rules(), &req, NOW)
}

const ALICE: &str = "GID_demo@@@alice";
const SIG: &str = "Signature|AK1|demo";

#[test]
fn the_three_login_modes() {
    let sig = auth::signature("s3cret", ALICE);
    let ok = authn(ALICE, SIG, &sig);
    assert_eq!((ok.result.as_str(), ok.is_superuser), ("allow", false));
    assert!(ok.client_attrs.is_empty() && ok.expire_at.is_none());
    let bad = authn(ALICE, SIG, "nope");
    assert_eq!(bad.result, "deny");
    assert!(bad.reason.contains("signature"), "{}", bad.reason);
    assert_eq!(authn("GID_nope@@@a", SIG, &sig).result, "deny");

    let dev = auth::signature("devsecret", "GID_demo@@@phone");
    let user = "DeviceCredential|DK1|demo";
    assert_eq!(authn("GID_demo@@@phone", user, &dev).result, "allow");
    let other = auth::signature("devsecret", ALICE);
    assert_eq!(
        authn(ALICE, user, &other).result,
        "deny",
        "bound to one client id"
    );

    let t = authn(ALICE, "Token|AK1|demo", "W|write-tok");
    assert_eq!(t.result, "allow");
    let attr = format!("W:{}", token_hash("write-tok"));
    assert_eq!(t.client_attrs.get(TOKENS_ATTR), Some(&attr));
    assert_eq!(t.expire_at, Some(NOW + 60));
    assert_eq!(authn(ALICE, "Token|AK1|demo", "W|forged").result, "deny");
    let json = serde_json::to_value(&t).expect("json");
    assert_eq!(json["client_attrs"][TOKENS_ATTR], attr.as_str());
}

#[test]
fn uplinks_name_their_sender() {
    let allow = |t: &str| authz(ALICE, SIG, "publish", t, "").result;
    assert_eq!(allow("rtc_up/call/GID_demo@@@alice"), "allow");
    assert_eq!(allow("rtc_up/GID_demo@@@alice"), "allow");
    assert_eq!(
        allow("rtc_up/call/GID_demo@@@bob"),
        "deny",
        "another sender"
    );
    assert_eq!(allow("rtc_up/call"), "deny", "no sender");
    assert_eq!(
        allow("rtc_down/p2p/GID_demo@@@bob"),
        "deny",
        "controller only"
    );
    assert_eq!(allow("x_event/a"), "deny", "another instance's topic");
}

#[test]
fn inboxes_and_event_topics() {
    let sub = |t: &str| authz(ALICE, SIG, "subscribe", t, "");
    assert_eq!(sub("rtc_down/p2p/GID_demo@@@alice").result, "allow");
    assert_eq!(sub("rtc_event/p2p/GID_demo@@@alice").result, "allow");
    assert_eq!(sub("rtc_down/p2p/GID_demo@@@bob").result, "deny");
    assert_eq!(sub("rtc_event/p2p/+").result, "deny");
    assert_eq!(sub("rtc_event/room/1").result, "allow");
    let wide = sub("rtc_event/#");
    assert_eq!(wide.result, "deny", "would reach P2P inboxes");
    assert!(wide.reason.contains("P2P"), "{}", wide.reason);
    assert_eq!(sub("rtc_event/+/x").result, "deny");
    assert_eq!(sub("rtc_up/#").result, "deny", "uplinks are not readable");
    assert_eq!(sub("$share/g/rtc_up/#").result, "deny");

    let p2p = |t: &str| authz(ALICE, SIG, "publish", t, "").result;
    assert_eq!(p2p("rtc_event/p2p/GID_demo@@@bob"), "allow");
    assert_eq!(
        p2p("rtc_event/p2p/GID_xyz@@@eve"),
        "deny",
        "another instance"
    );
    assert_eq!(
        authz(ALICE, SIG, "delete", "rtc_event/a", "").result,
        "deny"
    );
}

#[test]
fn token_logins_are_limited_to_their_tokens() {
    let attr = format!("W:{}", token_hash("write-tok"));
    let t = "Token|AK1|demo";
    assert_eq!(
        authz(ALICE, t, "publish", "rtc_event/room/1", &attr).result,
        "allow"
    );
    assert_eq!(
        authz(ALICE, t, "publish", "rtc_event/lobby", &attr).result,
        "deny"
    );
    assert_eq!(
        authz(ALICE, t, "subscribe", "rtc_event/room/1", &attr).result,
        "deny",
        "W only"
    );
    assert_eq!(
        authz(ALICE, t, "publish", "rtc_event/room/1", "").result,
        "deny",
        "no tokens"
    );
    assert_eq!(
        authz(ALICE, t, "publish", "rtc_event/room/1", "garbage").result,
        "deny"
    );
    let forged = format!("W:{}", token_hash("made-up"));
    assert_eq!(
        authz(ALICE, t, "publish", "rtc_event/room/1", &forged).result,
        "deny"
    );
}
