//! The `[upstream]` section: the external broker `mqrtc controller` uses.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The external MQTT broker of `mqrtc controller`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Upstream {
    /// The broker: `mqtt://host:port` or `mqtts://host:port` (MQTT 5).
    pub url: String,
    /// Where the controller's state lives: empty for the SQLite database in
    /// the data dir (one controller), or a `postgres://` URL: then every
    /// controller started on it stands by until it holds the lease. With
    /// `?sslmode=require` the connection uses TLS and verifies the
    /// server's certificate and name; otherwise it is plain.
    pub store: String,
    /// CA certificate (PEM) trusted for PostgreSQL's TLS (unset: the
    /// system's roots).
    pub store_ca_file: Option<PathBuf>,
    /// How often a standby asks PostgreSQL for the lease, in milliseconds.
    pub lease_poll_ms: u64,
    /// Username the controller logs in with (empty: none).
    pub username: String,
    /// File holding the controller's password (unset: none).
    pub password_file: Option<PathBuf>,
    /// CA certificate (PEM) trusted for `mqtts://` (unset: the system's roots).
    pub ca_file: Option<PathBuf>,
    /// The controller's client id. Every controller of a deployment uses
    /// the same one, so the one taking over resumes the session (and the
    /// unacknowledged uplinks) of the one that stopped.
    pub client_id: String,
    /// Group of the shared subscription to the uplink topics
    /// (`$share/{group}/{uplink parent}/#`).
    pub share_group: String,
    /// How long the broker keeps the controller's session while no
    /// controller is connected, in seconds.
    pub session_expiry_secs: u32,
    /// Where device presence comes from: `requests` (a device is online
    /// once it sends a request; the SDKs `sync` on connect) or `emqx`
    /// (also EMQX's `$SYS/brokers/+/clients/+/connected|disconnected`).
    pub presence: Presence,
}

/// Where `mqrtc controller` learns which devices are online.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Presence {
    /// From the devices' requests only (any broker).
    #[default]
    Requests,
    /// Also from EMQX's client connected/disconnected system topics.
    Emqx,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            url: "mqtt://127.0.0.1:1883".into(),
            store: String::new(),
            store_ca_file: None,
            lease_poll_ms: 500,
            username: String::new(),
            password_file: None,
            ca_file: None,
            client_id: "mqrtc-controller".into(),
            share_group: "mqrtc".into(),
            session_expiry_secs: 86_400,
            presence: Presence::Requests,
        }
    }
}

impl Upstream {
    /// The PostgreSQL database of `store`.
    pub fn database(&self) -> crate::store::pg::Database {
        crate::store::pg::Database {
            url: self.store.clone(),
            ca_file: self.store_ca_file.clone(),
        }
    }
}

/// `mqtt://host:port` or `mqtts://host:port` as (tls, host, port).
pub fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else {
        return Err(format!(
            "upstream.url {url:?}: expected mqtt://host:port or mqtts://host:port"
        ));
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("upstream.url {url:?}: bad port {p:?}"))?,
        ),
        _ => (rest, if tls { 8883 } else { 1883 }),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("upstream.url {url:?}: no host"));
    }
    Ok((tls, host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(parse_url("mqtt://h:1884"), Ok((false, "h".into(), 1884)));
        assert_eq!(parse_url("mqtts://h"), Ok((true, "h".into(), 8883)));
        assert_eq!(parse_url("mqtt://[::1]:9"), Ok((false, "::1".into(), 9)));
        assert!(parse_url("http://h").is_err());
        assert!(parse_url("mqtt://h:x").is_err());
        assert!(parse_url("mqtt://").is_err());
    }
}
