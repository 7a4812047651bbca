//! The cloud service's three auth modes, computed on the client side.

use super::ClientId;

/// How a client proves who it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No username or password (the appliance's `--dev` demo tenant, or an
    /// anonymous standard broker).
    #[default]
    None,
    /// `Signature|AccessKeyId|InstanceId`, password
    /// `Base64(HMAC-SHA1(AccessKeySecret, ClientId))`.
    Signature {
        /// Instance id.
        instance: String,
        /// AccessKeyId.
        key_id: String,
        /// AccessKeySecret.
        secret: String,
    },
    /// `DeviceCredential|DeviceAccessKeyId|InstanceId`, password
    /// `Base64(HMAC-SHA1(DeviceAccessKeySecret, ClientId))`.
    DeviceCredential {
        /// Instance id.
        instance: String,
        /// DeviceAccessKeyId.
        key_id: String,
        /// DeviceAccessKeySecret.
        secret: String,
    },
    /// `Token|AccessKeyId|InstanceId`, password `R|token|W|token` or `RW|token`.
    Token {
        /// Instance id.
        instance: String,
        /// AccessKeyId.
        key_id: String,
        /// Tokens by type (`R`, `W`, `RW`).
        tokens: Vec<(String, String)>,
    },
    /// Any username and password (a standard broker's own scheme).
    Plain {
        /// Username.
        username: String,
        /// Password.
        password: String,
    },
}

impl Credentials {
    /// The MQTT username and password for `client_id`, if any.
    pub fn login(&self, client_id: &ClientId) -> Option<(String, String)> {
        let id = client_id.to_string();
        match self {
            Credentials::None => None,
            Credentials::Signature {
                instance,
                key_id,
                secret,
            } => Some((
                format!("Signature|{key_id}|{instance}"),
                crate::signature::signature(secret, &id),
            )),
            Credentials::DeviceCredential {
                instance,
                key_id,
                secret,
            } => Some((
                format!("DeviceCredential|{key_id}|{instance}"),
                crate::signature::signature(secret, &id),
            )),
            Credentials::Token {
                instance,
                key_id,
                tokens,
            } => Some((
                format!("Token|{key_id}|{instance}"),
                tokens
                    .iter()
                    .map(|(k, t)| format!("{k}|{t}"))
                    .collect::<Vec<_>>()
                    .join("|"),
            )),
            Credentials::Plain { username, password } => Some((username.clone(), password.clone())),
        }
    }

    /// Replaces (or adds) the token of type `kind`; false if not in Token mode.
    pub fn set_token(&mut self, kind: &str, token: &str) -> bool {
        let Credentials::Token { tokens, .. } = self else {
            return false;
        };
        match tokens.iter_mut().find(|(k, _)| k == kind) {
            Some(slot) => slot.1 = token.to_string(),
            None => tokens.push((kind.to_string(), token.to_string())),
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logins_follow_the_cloud_formulas() {
        let id: ClientId = "GID_demo@@@alice".parse().unwrap();
        assert_eq!(Credentials::None.login(&id), None);
        let (u, p) = Credentials::Signature {
            instance: "inst".into(),
            key_id: "AK".into(),
            secret: "secret".into(),
        }
        .login(&id)
        .unwrap();
        assert_eq!(u, "Signature|AK|inst");
        // echo -n GID_demo@@@alice | openssl dgst -sha1 -hmac secret -binary | base64
        assert_eq!(p, "/Fcuwk+KcgEr2wWnqMhxFpOvIEU=");
        let mut t = Credentials::Token {
            instance: "inst".into(),
            key_id: "AK".into(),
            tokens: vec![("R".into(), "r1".into()), ("W".into(), "w1".into())],
        };
        assert_eq!(t.login(&id).unwrap().1, "R|r1|W|w1");
        assert!(t.set_token("W", "w2"));
        assert_eq!(
            t.login(&id).unwrap(),
            ("Token|AK|inst".into(), "R|r1|W|w2".into())
        );
    }
}
