//! What is fuzzed: each parser a device (or an operator's file) reaches,
//! with seeds from the protocol's documented examples and one valid input
//! per form. A target returns a short label of its outcome; an input whose
//! label is new joins the corpus.

use mqrtc::auth::{authenticate, parse_tokens, Credentials};
use mqrtc::controller::protocol::decode;
use mqrtc::directory::{
    AccessKey, DeviceCredential, Directory, ParentTopic, TokenGrant, TokenKind, TopicRole,
};
use mqrtc::policy::acl_file::{self, AclFile};
use mqrtc::policy::{self, Access, Principal, Rules};
use mqrtc::rtc::join::JoinBody;
use mqrtc::rtc::token::token;
use mqrtc::rtc::{MockRtc, RtcProvider};
use mqrtc::signature::signature;
use mqrtc::store::token_hash;

const NOW: i64 = 1_800_000_000;

/// Runs one input and labels its outcome.
pub type Run = Box<dyn FnMut(&[u8]) -> String>;

/// One parser under test.
pub struct Target {
    /// Its name (`--target`).
    pub name: &'static str,
    /// Inputs to start from.
    pub seeds: Vec<Vec<u8>>,
    /// Runs one input; returns a label of the outcome.
    pub run: Run,
}

/// Every target.
pub fn all() -> Vec<Target> {
    vec![protocol(), client_id(), topic(), auth(), rtc_join(), acl()]
}

fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

/// The JSON examples in docs/protocol.md, and one request of each type.
fn protocol() -> Target {
    let doc = include_str!("../../docs/protocol.md");
    let mut seeds: Vec<Vec<u8>> = doc
        .split("```json")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(|b| b.trim().as_bytes().to_vec())
        .collect();
    let id = r#""call_id":"01KAZ995CCW7QJ3M8X2R5T9VNB""#;
    for (kind, body) in [
        (
            "call.start",
            r#"{"to":["bob","carol"],"kind":"meeting","media":"audio","title":"standup"}"#
                .to_string(),
        ),
        ("call.start", r#"{"to":"bob"}"#.to_string()),
        ("call.ringing", format!("{{{id}}}")),
        ("call.accept", format!("{{{id}}}")),
        ("call.decline", format!("{{{id}}}")),
        ("call.cancel", format!("{{{id}}}")),
        ("call.invite", format!(r#"{{{id},"to":["dave"]}}"#)),
        ("call.leave", format!("{{{id}}}")),
        ("call.hangup", format!("{{{id}}}")),
        ("call.end", format!("{{{id}}}")),
        (
            "call.mute",
            format!(r#"{{{id},"muted":true,"media":"video","target":"bob"}}"#),
        ),
        ("call.remove", format!(r#"{{{id},"target":"bob"}}"#)),
        ("call.transfer_host", format!(r#"{{{id},"to":"bob"}}"#)),
        ("sync", "{}".to_string()),
        ("contacts", "{}".to_string()),
    ] {
        let env = format!(
            r#"{{"v":1,"id":"m-1","type":"{kind}","req":"r-1","ts":1764134000000,"ttl":30000,"from":"GID_demo@@@alice","body":{body}}}"#
        );
        seeds.push(env.into_bytes());
    }
    Target {
        name: "protocol",
        seeds,
        run: Box::new(|data| match decode(data, "GID_demo@@@alice", 16 * 1024) {
            Ok(r) => format!("ok {}", r.envelope.kind),
            Err((e, req)) => format!("{} {}", e.code(), req.is_some()),
        }),
    }
}

fn client_id() -> Target {
    let seeds = [
        "GID_demo@@@alice",
        "GID-a_b@@@x:y.z-1",
        "GID_demo@@@",
        "alice",
    ];
    Target {
        name: "client_id",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        run: Box::new(|data| match policy::parse_client_id(&text(data), 64) {
            Ok(_) => "ok".into(),
            Err(e) => format!("{e:?}").chars().take(12).collect(),
        }),
    }
}

fn directory() -> Directory {
    let mut d = Directory {
        instances: vec!["demo".into(), "other".into()],
        ..Default::default()
    };
    d.add_group("GID_demo", "demo");
    d.add_group("GID_other", "other");
    for (t, i, role) in [
        ("rtc_up", "demo", TopicRole::Uplink),
        ("rtc_down", "demo", TopicRole::Downlink),
        ("rtc_event", "demo", TopicRole::Event),
        ("theirs", "other", TopicRole::Event),
    ] {
        let topic = ParentTopic {
            instance: i.into(),
            role,
        };
        d.topics.insert(t.into(), topic);
    }
    let key = AccessKey {
        instance: "demo".into(),
        secret: "s3cret".into(),
    };
    d.access_keys.insert("AK1".into(), key);
    let dev = DeviceCredential {
        instance: "demo".into(),
        client_id: "GID_demo@@@phone".into(),
        secret: "devsecret".into(),
    };
    d.devices.insert("DK1".into(), dev);
    for (tok, kind, exp) in [
        ("read-tok", TokenKind::R, NOW + 60),
        ("old-tok", TokenKind::W, NOW - 1),
    ] {
        let grant = TokenGrant {
            id: tok.into(),
            instance: "demo".into(),
            kind,
            resources: vec!["rtc_event".into(), "rtc_up/a/+".into()],
            expires_at: exp,
        };
        d.tokens.insert(token_hash(tok), grant);
    }
    d
}

/// A topic or filter, checked for publish and subscribe with full and token access.
fn topic() -> Target {
    let dir = directory();
    let rules = Rules {
        max_client_id_len: 64,
        max_topic_len: 64,
        max_payload_bytes: 64 * 1024,
    };
    let who = Principal {
        client_id: "GID_demo@@@alice".into(),
        group: "GID_demo".into(),
        instance: "demo".into(),
    };
    let tokens = Access::Tokens {
        read: vec!["rtc_event".into(), "rtc_down/#".into()],
        write: vec!["rtc_up/+/x".into()],
    };
    let seeds = [
        "rtc_up",
        "rtc_down/GID_demo@@@alice",
        "rtc_event/p2p/GID_demo@@@bob",
        "rtc_event/#",
        "rtc_event/+/x",
        "theirs/a",
        "$SYS/x",
        "rtc_event/p2p/",
        "a//b",
    ];
    Target {
        name: "topic",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        run: Box::new(move |data| {
            let t = text(data);
            let mut label = String::new();
            for access in [&Access::Full, &tokens] {
                let p = policy::check_publish(&dir, &rules, &who, access, &t, data.len());
                let s = policy::check_subscribe(&dir, &rules, &who, access, &t);
                let p = p.map(|r| matches!(r, policy::Route::P2p(_)));
                label += &format!("{:?}/{:?} ", p.map_err(|r| r.code), s.map_err(|r| r.code));
            }
            let _ = policy::covers("rtc_up/+/x", &t);
            let _ = policy::covers(&t, "rtc_up/a/b");
            let _ = policy::counted_topic_len(&t);
            label
        }),
    }
}

/// `client id \0 username \0 password`, as a CONNECT carries them.
fn auth() -> Target {
    let dir = directory();
    let sig = signature("s3cret", "GID_demo@@@alice");
    let dev = signature("devsecret", "GID_demo@@@phone");
    let seeds = [
        format!("GID_demo@@@alice\0Signature|AK1|demo\0{sig}"),
        format!("GID_demo@@@phone\0DeviceCredential|DK1|demo\0{dev}"),
        "GID_demo@@@alice\0Token|AK1|demo\0R|read-tok|W|old-tok".to_string(),
        "GID_other@@@x\0Signature|AK1|demo\0nope".to_string(),
    ];
    Target {
        name: "auth",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        run: Box::new(move |data| {
            let mut parts = data.splitn(3, |b| *b == 0);
            let id = text(parts.next().unwrap_or_default());
            let user = parts.next().map(text);
            let password = parts.next();
            let _ = parse_tokens(password.unwrap_or_default());
            let c = Credentials {
                client_id: &id,
                username: user.as_deref(),
                password,
            };
            match authenticate(&dir, 64, c, NOW) {
                Ok(a) => format!("ok {:?}", a.credential).chars().take(12).collect(),
                Err(e) => format!("{e:?}").chars().take(12).collect(),
            }
        }),
    }
}

/// `POST /rtc/v1/join` bodies, against an open channel.
fn rtc_join() -> Target {
    let (rtc, mut events) = MockRtc::new("app", "key", 3600, vec![]);
    rtc.open_channel("ch1", "call1");
    let p = rtc.join_params("ch1", "alice", NOW * 1000);
    let fields = serde_json::json!({
        "appid": p.appid, "channel": p.channel, "userid": p.userid, "nonce": p.nonce,
        "timestamp": p.timestamp, "token": p.token, "client_id": "GID_demo@@@alice",
    });
    let forged = token("app", "key", "ch2", "bob", "n", NOW + 60);
    let seeds = vec![
        fields.to_string().into_bytes(),
        serde_json::json!({ "token": p.token_b64, "client_id": "GID_demo@@@alice" })
            .to_string()
            .into_bytes(),
        serde_json::json!({ "appid": "app", "channel": "ch2", "userid": "bob", "nonce": "n",
            "timestamp": NOW + 60, "token": forged })
        .to_string()
        .into_bytes(),
    ];
    Target {
        name: "rtc_join",
        seeds,
        run: Box::new(move |data| {
            let label = match serde_json::from_slice::<JoinBody>(data) {
                Err(_) => "bad_request".to_string(),
                Ok(body) => match body.into_request().and_then(|r| rtc.join(&r, NOW * 1000)) {
                    Ok(j) => format!("joined {}", j.members.len()),
                    Err(e) => e.code().to_string(),
                },
            };
            while events.try_recv().is_ok() {}
            label
        }),
    }
}

/// An ACL file (mosquitto's format; the operator's input) and a few checks with it.
fn acl() -> Target {
    let seeds = [
        "topic readwrite #\ntopic deny test/nosubscribe\n",
        "user alice\ntopic read a/+/b\npattern write dev/%c/%u\n# comment\n",
        "pattern readwrite $SYS/#\nuser \ntopic\n",
    ];
    Target {
        name: "acl_file",
        seeds: seeds.iter().map(|s| s.as_bytes().to_vec()).collect(),
        run: Box::new(|data| match AclFile::parse(&text(data)) {
            Err(_) => "invalid".into(),
            Ok(f) => {
                let r = f.allows(Some("alice"), "c1", "a/x/b", acl_file::Access::Read);
                let w = f.allows(None, "c1", "dev/c1/alice", acl_file::Access::Write);
                format!("ok {r} {w}")
            }
        }),
    }
}
