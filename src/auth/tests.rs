use super::*;
use crate::directory::{AccessKey, DeviceCredential, TokenGrant};

const NOW: i64 = 1_800_000_000;

fn dir() -> Directory {
    let mut d = Directory {
        instances: vec!["demo".into(), "other".into()],
        ..Default::default()
    };
    d.add_group("GID_demo", "demo");
    d.add_group("GID_xyz", "other");
    d.access_keys.insert(
        "AK1".into(),
        AccessKey {
            instance: "demo".into(),
            secret: "s3cret".into(),
        },
    );
    d.access_keys.insert(
        "AK2".into(),
        AccessKey {
            instance: "other".into(),
            secret: "zz".into(),
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
    for (tok, kind, inst, exp) in [
        ("read-tok", TokenKind::R, "demo", NOW + 60),
        ("write-tok", TokenKind::W, "demo", NOW + 60),
        ("old-tok", TokenKind::RW, "demo", NOW - 1),
        ("other-tok", TokenKind::RW, "other", NOW + 60),
    ] {
        d.tokens.insert(
            token_hash(tok),
            TokenGrant {
                id: tok.into(),
                instance: inst.into(),
                kind,
                resources: vec!["rtc_event".into()],
                expires_at: exp,
            },
        );
    }
    d
}

fn creds<'a>(id: &'a str, user: Option<&'a str>, pass: Option<&'a [u8]>) -> Credentials<'a> {
    Credentials {
        client_id: id,
        username: user,
        password: pass,
    }
}

fn auth(
    d: &Directory,
    id: &str,
    user: Option<&str>,
    pass: Option<&[u8]>,
) -> Result<Authenticated, ConnectRefusal> {
    authenticate(d, 64, creds(id, user, pass), NOW)
}

#[test]
fn known_signature_value() {
    // echo -n 'GID_demo@@@alice' | openssl dgst -sha1 -hmac s3cret -binary | base64
    assert_eq!(
        signature("s3cret", "GID_demo@@@alice"),
        "7uy2MV8JSn+5MrBrS+wzUvijYaI="
    );
}

#[test]
fn signature_mode() {
    let d = dir();
    let id = "GID_demo@@@alice";
    let good = signature("s3cret", id);
    let ok = auth(&d, id, Some("Signature|AK1|demo"), Some(good.as_bytes())).unwrap();
    assert_eq!(ok.principal.instance, "demo");
    assert_eq!(ok.credential, Credential::Signature("AK1".into()));
    let bad = auth(&d, id, Some("Signature|AK1|demo"), Some(b"AAAA"));
    assert!(matches!(bad, Err(ConnectRefusal::BadCredentials(_))));
    assert!(matches!(
        auth(&d, id, Some("Signature|AK1|demo"), None),
        Err(ConnectRefusal::BadCredentials(_))
    ));
    let unknown_inst = auth(&d, id, Some("Signature|AK1|nope"), Some(good.as_bytes()));
    assert!(
        matches!(unknown_inst, Err(ConnectRefusal::BadCredentials(m)) if m.contains("unknown instance"))
    );
    let wrong_inst = auth(&d, id, Some("Signature|AK1|other"), Some(good.as_bytes()));
    assert!(matches!(wrong_inst, Err(ConnectRefusal::BadCredentials(_))));
}

#[test]
fn client_of_another_instance_is_not_authorized() {
    let d = dir();
    let id = "GID_xyz@@@eve";
    let sig = signature("s3cret", id);
    let r = auth(&d, id, Some("Signature|AK1|demo"), Some(sig.as_bytes()));
    assert!(matches!(r, Err(ConnectRefusal::NotAuthorized(_))), "{r:?}");
}

#[test]
fn client_ids_and_groups() {
    let d = dir();
    assert!(matches!(
        auth(&d, "alice", None, None),
        Err(ConnectRefusal::BadClientId(_))
    ));
    assert!(matches!(
        auth(&d, "GID_nope@@@a", None, None),
        Err(ConnectRefusal::BadClientId(_))
    ));
}

#[test]
fn passwordless_only_for_the_dev_instance() {
    let mut d = dir();
    let id = "GID_demo@@@alice";
    assert!(matches!(
        auth(&d, id, None, None),
        Err(ConnectRefusal::BadCredentials(_))
    ));
    d.passwordless_instance = Some("demo".into());
    assert_eq!(
        auth(&d, id, None, None).unwrap().credential,
        Credential::Passwordless
    );
    assert!(auth(&d, "GID_xyz@@@eve", None, None).is_err());
    assert!(
        auth(&d, id, Some("Signature|AK1|demo"), Some(b"bad")).is_err(),
        "a wrong password fails even in dev"
    );
}

#[test]
fn device_credential_mode_is_bound_to_its_client_id() {
    let d = dir();
    let id = "GID_demo@@@phone";
    let pw = signature("devsecret", id);
    let ok = auth(
        &d,
        id,
        Some("DeviceCredential|DK1|demo"),
        Some(pw.as_bytes()),
    )
    .unwrap();
    assert_eq!(ok.credential, Credential::Device("DK1".into()));
    let other = "GID_demo@@@laptop";
    let pw2 = signature("devsecret", other);
    let r = auth(
        &d,
        other,
        Some("DeviceCredential|DK1|demo"),
        Some(pw2.as_bytes()),
    );
    assert!(matches!(r, Err(ConnectRefusal::NotAuthorized(_))), "{r:?}");
    let r = auth(&d, id, Some("DeviceCredential|DK1|demo"), Some(b"d3Jvbmc="));
    assert!(matches!(r, Err(ConnectRefusal::BadCredentials(_))));
}

#[test]
fn token_mode() {
    let d = dir();
    let id = "GID_demo@@@tok";
    let ok = auth(
        &d,
        id,
        Some("Token|AK1|demo"),
        Some(b"R|read-tok|W|write-tok"),
    )
    .unwrap();
    let Credential::Tokens(ak, toks) = &ok.credential else {
        panic!("{ok:?}")
    };
    assert_eq!(ak, "AK1");
    assert_eq!(toks.len(), 2);
    assert_eq!(
        access(&d, &ok.credential, NOW),
        Access::Tokens {
            read: vec!["rtc_event".into()],
            write: vec!["rtc_event".into()]
        }
    );
    for (pw, why) in [
        (&b"RW|old-tok"[..], "expired"),
        (b"R|no-such", "unknown"),
        (b"RW|other-tok", "instance"),
        (b"W|read-tok", "wrong type"),
        (b"R|read-tok|W|no-such", "all must be valid"),
        (b"R", "malformed"),
        (b"R|read-tok|R|read-tok", "two of a type"),
    ] {
        let r = auth(&d, id, Some("Token|AK1|demo"), Some(pw));
        assert!(
            matches!(r, Err(ConnectRefusal::BadCredentials(_))),
            "{why}: {r:?}"
        );
    }
    let r = auth(&d, id, Some("Token|AK2|demo"), Some(b"R|read-tok"));
    assert!(r.is_err(), "access key of another instance");
}

#[test]
fn token_problems_over_time() {
    let d = dir();
    let cred = Credential::Tokens("AK1".into(), parse_tokens(b"R|read-tok").unwrap());
    assert_eq!(
        access(&d, &cred, NOW + 60),
        Access::Tokens {
            read: vec![],
            write: vec![]
        },
        "expired allows nothing"
    );
    let toks = parse_tokens(b"R|read-tok").unwrap();
    assert_eq!(token_problem(&d, "demo", &toks, NOW), None);
    assert_eq!(
        token_problem(&d, "demo", &toks, NOW + 60),
        Some(TokenProblem {
            kind: TokenKind::R,
            code: 1
        })
    );
    let mut revoked = d.clone();
    revoked.tokens.clear();
    assert_eq!(
        token_problem(&revoked, "demo", &toks, NOW),
        Some(TokenProblem {
            kind: TokenKind::R,
            code: 2
        })
    );
}
