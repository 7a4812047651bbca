//! CONNECT authentication under the cloud service's conventions.
//!
//! Signature mode: username `Signature|AccessKeyId|InstanceId`, password
//! `Base64(HMAC-SHA1(AccessKeySecret, ClientId))`. In `--dev` the demo
//! instance's devices may also connect with no username at all.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use crate::directory::Directory;
use crate::policy::{parse_client_id, ClientIdError, Principal};

/// What a CONNECT carried that authentication looks at.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The client id.
    pub client_id: &'a str,
    /// The username, if any.
    pub username: Option<&'a str>,
    /// The password, if any.
    pub password: Option<&'a [u8]>,
}

/// Why a CONNECT was refused; each maps to one CONNACK code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectRefusal {
    /// The client id is malformed or its Group ID is not provisioned
    /// (CONNACK 2 in 3.1.1, 0x85 in 5).
    #[error("client id rejected: {0}")]
    BadClientId(String),
    /// Username or password wrong (CONNACK 4 / 0x86).
    #[error("bad username or password: {0}")]
    BadCredentials(String),
    /// Credentials fine but not for this client (CONNACK 5 / 0x87).
    #[error("not authorized: {0}")]
    NotAuthorized(String),
}

/// Authenticates a CONNECT, returning who the client is.
pub fn authenticate(
    dir: &Directory,
    max_client_id_len: usize,
    c: Credentials<'_>,
) -> Result<Principal, ConnectRefusal> {
    let parts = parse_client_id(c.client_id, max_client_id_len)
        .map_err(|e: ClientIdError| ConnectRefusal::BadClientId(e.to_string()))?;
    let instance = dir.group_instance(parts.group).ok_or_else(|| {
        ConnectRefusal::BadClientId(format!("Group ID {} is not provisioned", parts.group))
    })?;
    let principal = Principal {
        client_id: c.client_id.to_string(),
        group: parts.group.to_string(),
        instance: instance.to_string(),
    };
    let Some(username) = c.username else {
        if dir.passwordless_instance.as_deref() == Some(instance) {
            return Ok(principal);
        }
        return Err(ConnectRefusal::BadCredentials(
            "a username is required: Signature|AccessKeyId|InstanceId".into(),
        ));
    };
    let mut fields = username.split('|');
    let (mode, key_id, inst) = match (fields.next(), fields.next(), fields.next(), fields.next()) {
        (Some(m), Some(k), Some(i), None) => (m, k, i),
        _ => {
            return Err(ConnectRefusal::BadCredentials(
                "username must be Mode|AccessKeyId|InstanceId".into(),
            ))
        }
    };
    if mode != "Signature" {
        return Err(ConnectRefusal::BadCredentials(format!(
            "auth mode {mode} is not supported"
        )));
    }
    let key = dir
        .access_keys
        .get(key_id)
        .filter(|k| k.instance == inst)
        .ok_or_else(|| {
            ConnectRefusal::BadCredentials(format!(
                "unknown AccessKeyId {key_id} for instance {inst}"
            ))
        })?;
    if !signature_matches(&key.secret, c.client_id, c.password.unwrap_or_default()) {
        return Err(ConnectRefusal::BadCredentials(
            "signature does not match".into(),
        ));
    }
    if inst != instance {
        return Err(ConnectRefusal::NotAuthorized(format!(
            "client id's group {} belongs to another instance",
            parts.group
        )));
    }
    Ok(principal)
}

/// `Base64(HMAC-SHA1(secret, client_id))`, the Signature password.
pub fn signature(secret: &str, client_id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(mac(secret, client_id).finalize().into_bytes())
}

fn mac(secret: &str, client_id: &str) -> Hmac<Sha1> {
    // HMAC accepts keys of any length, so new_from_slice cannot fail.
    let mut m = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(client_id.as_bytes());
    m
}

/// Constant-time check of a Signature password.
fn signature_matches(secret: &str, client_id: &str, password: &[u8]) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(password) else {
        return false;
    };
    mac(secret, client_id).verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::AccessKey;

    fn dir() -> Directory {
        let mut d = Directory::default();
        d.groups.insert("GID_demo".into(), "demo".into());
        d.groups.insert("GID_xyz".into(), "other".into());
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
        d
    }

    fn creds<'a>(id: &'a str, user: Option<&'a str>, pass: Option<&'a [u8]>) -> Credentials<'a> {
        Credentials {
            client_id: id,
            username: user,
            password: pass,
        }
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
        let ok = authenticate(
            &d,
            64,
            creds(id, Some("Signature|AK1|demo"), Some(good.as_bytes())),
        );
        assert_eq!(ok.unwrap().instance, "demo");
        let bad = authenticate(&d, 64, creds(id, Some("Signature|AK1|demo"), Some(b"AAAA")));
        assert!(matches!(bad, Err(ConnectRefusal::BadCredentials(_))));
        let no_pw = authenticate(&d, 64, creds(id, Some("Signature|AK1|demo"), None));
        assert!(matches!(no_pw, Err(ConnectRefusal::BadCredentials(_))));
        let wrong_inst = authenticate(
            &d,
            64,
            creds(id, Some("Signature|AK1|other"), Some(good.as_bytes())),
        );
        assert!(matches!(wrong_inst, Err(ConnectRefusal::BadCredentials(_))));
    }

    #[test]
    fn client_of_another_instance_is_not_authorized() {
        let d = dir();
        let id = "GID_xyz@@@eve";
        let sig = signature("s3cret", id);
        let r = authenticate(
            &d,
            64,
            creds(id, Some("Signature|AK1|demo"), Some(sig.as_bytes())),
        );
        assert!(matches!(r, Err(ConnectRefusal::NotAuthorized(_))), "{r:?}");
    }

    #[test]
    fn client_ids_and_groups() {
        let d = dir();
        assert!(matches!(
            authenticate(&d, 64, creds("alice", None, None)),
            Err(ConnectRefusal::BadClientId(_))
        ));
        assert!(matches!(
            authenticate(&d, 64, creds("GID_nope@@@a", None, None)),
            Err(ConnectRefusal::BadClientId(_))
        ));
    }

    #[test]
    fn passwordless_only_for_the_dev_instance() {
        let mut d = dir();
        let id = "GID_demo@@@alice";
        assert!(matches!(
            authenticate(&d, 64, creds(id, None, None)),
            Err(ConnectRefusal::BadCredentials(_))
        ));
        d.passwordless_instance = Some("demo".into());
        assert!(authenticate(&d, 64, creds(id, None, None)).is_ok());
        assert!(authenticate(&d, 64, creds("GID_xyz@@@eve", None, None)).is_err());
        let wrong = authenticate(&d, 64, creds(id, Some("Signature|AK1|demo"), Some(b"bad")));
        assert!(wrong.is_err(), "a wrong password fails even in dev mode");
    }
}
