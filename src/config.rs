//! One typed configuration for the whole appliance.
//!
//! Layers, later ones winning: built-in defaults, a TOML file (`--config`),
//! `MQRTC_*` environment variables (`__` separates sections, e.g.
//! `MQRTC_LIMITS__MAX_TOPIC_LEN=80`), then command-line flags. Unknown keys
//! are an error that names the key and where it came from.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Everything the appliance can be told; `Config::default()` runs a complete
/// single-box appliance with no file at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the SQLite database, certificates, session storage and the
    /// `ports.json` file live.
    pub data_dir: PathBuf,
    /// Address every listener binds to (`0.0.0.0` listens on all interfaces).
    pub bind: IpAddr,
    /// Demo mode: provisions the demo tenant and lets its clients connect
    /// without a password.
    pub dev: bool,
    /// Allows `dev` on an address other than loopback (a warning is logged
    /// on every start): anyone who reaches the machine may then connect as
    /// a demo device without a password.
    pub dev_on_network: bool,
    /// Plain MQTT broker mode: any client id, any topic, anonymous allowed.
    pub standard_mqtt: bool,
    /// With `standard_mqtt`: who may publish and subscribe to what, in
    /// mosquitto's `acl_file` format (`docs/conformance.md`). Unset: anyone,
    /// anything.
    pub acl_file: Option<PathBuf>,
    /// Log filter in `tracing` `EnvFilter` syntax (`RUST_LOG` wins if set).
    pub log: String,
    /// `text` (one line per event) or `json` (one JSON object per line, the
    /// fields such as `client_id`, `call_id` and `req` at the top level).
    pub log_format: LogFormat,
    /// Listener ports; 0 picks a free port (see `ports.json` in the data dir).
    pub ports: Ports,
    /// TLS certificate and key; generated into `<data_dir>/certs` when empty.
    pub tls: Tls,
    /// Limits of the cloud service's wire conventions, and queue bounds.
    pub limits: Limits,
    /// Start-up behaviour.
    pub startup: Startup,
    /// The call controller.
    pub controller: Controller,
    /// The RTC token issuer and mock RTC service.
    pub rtc: Rtc,
    /// Delivery of the signed webhooks (endpoints: `mqrtc webhook set`).
    pub webhooks: Webhooks,
    /// The external broker of `mqrtc controller` (unused by `serve`).
    pub upstream: crate::upstream::Upstream,
    /// For tests only: loopback `POST /debug/faults/...` endpoints that
    /// break parts of the appliance on purpose. Never in production.
    pub fault_injection: bool,
}

/// How log lines are written (to standard error).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// JSON lines, for `jq` and log shippers.
    Json,
}

/// The call controller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Controller {
    /// Run the controller (off: the appliance is only a broker).
    pub enabled: bool,
    /// How long an invitation rings, in seconds.
    pub ring_timeout_secs: u64,
    /// A call's longest life, in seconds.
    pub max_duration_secs: u64,
    /// A callee already in a call: "reject" (busy) or "waiting" (call waiting).
    pub busy: crate::calls::BusyPolicy,
    /// Largest uplink message the controller reads, in bytes.
    pub max_message_bytes: usize,
    /// Clock difference tolerated when judging a request's time to live, in ms.
    pub clock_skew_ms: i64,
    /// Ended calls and their timelines are deleted after this many days
    /// (0 keeps them for ever).
    pub retention_days: u64,
}

/// How webhook events are delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Webhooks {
    /// Wait before the first retry of a failed delivery, in milliseconds;
    /// each next retry waits twice as long.
    pub retry_base_ms: u64,
    /// Longest wait between two attempts, in seconds.
    pub retry_max_secs: u64,
    /// An event not delivered after this many hours is given up.
    pub give_up_after_hours: u64,
    /// Time limit of one attempt, in seconds.
    pub timeout_secs: u64,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            retry_base_ms: 1000,
            retry_max_secs: 600,
            give_up_after_hours: 72,
            timeout_secs: 10,
        }
    }
}

/// The RTC token issuer and mock RTC channel service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rtc {
    /// AppID of the ARTC tokens.
    pub app_id: String,
    /// AppKey; empty means generated once into `<data_dir>/rtc-app.key`.
    pub app_key: String,
    /// Lifetime of a join token, in seconds (the cloud suggests one day).
    pub token_ttl_secs: i64,
    /// GSLB addresses given to clients; empty means this appliance's mock RTC service.
    pub gslb: Vec<String>,
    /// Host (name or IP) other machines reach this appliance on, used in that
    /// mock RTC service's address; empty means the bind address or, when
    /// bound to all interfaces, the machine's first non-loopback IPv4 address.
    pub public_host: String,
    /// ICE servers (`stun:`/`turn:` URLs) the softphone's WebRTC uses; none
    /// by default: host candidates, enough on one LAN.
    pub ice_servers: Vec<String>,
}

impl Default for Controller {
    fn default() -> Self {
        Controller {
            enabled: true,
            ring_timeout_secs: 30,
            max_duration_secs: 4 * 3600,
            busy: crate::calls::BusyPolicy::Reject,
            max_message_bytes: 16 * 1024,
            clock_skew_ms: 30_000,
            retention_days: 30,
        }
    }
}

impl Default for Rtc {
    fn default() -> Self {
        Rtc {
            app_id: "mqrtc-local".into(),
            app_key: String::new(),
            token_ttl_secs: 86_400,
            gslb: vec![],
            public_host: String::new(),
            ice_servers: vec![],
        }
    }
}

/// Listener ports of the appliance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ports {
    /// MQTT over TCP (3.1.1 and 5).
    pub mqtt: u16,
    /// MQTT over TLS.
    pub mqtts: u16,
    /// MQTT over WebSocket (subprotocol `mqtt`).
    pub ws: u16,
    /// MQTT over secure WebSocket.
    pub wss: u16,
    /// HTTP: health, the mock RTC service, the admin API and the console.
    pub http: u16,
    /// The same HTTP service over TLS (browsers need it for camera and microphone).
    pub https: u16,
}

/// User-supplied TLS material. Both paths empty means "generate and reuse a
/// local CA and server certificate in `<data_dir>/certs`".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tls {
    /// PEM certificate chain (server certificate first).
    pub cert: Option<PathBuf>,
    /// PEM private key of the server certificate.
    pub key: Option<PathBuf>,
}

/// Limits; the defaults are the cloud service's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Longest client id (`GroupID@@@DeviceID`).
    pub max_client_id_len: usize,
    /// Longest topic; in a P2P topic the target client id is not counted
    /// (it has its own limit, `max_client_id_len`).
    pub max_topic_len: usize,
    /// Largest message body in bytes.
    pub max_payload_bytes: usize,
    /// How long an offline client's messages are kept, in seconds (3 days).
    pub offline_message_ttl_secs: u64,
    /// How long a disconnected clean=false session is kept, in seconds.
    pub session_expiry_secs: u64,
    /// Messages queued per client before the oldest are dropped (counted and logged).
    pub max_queue_len: usize,
    /// QoS 1/2 messages in flight per client.
    pub max_inflight: u16,
    /// Authentication failures from one address (in 10 minutes) answered at
    /// normal speed; later ones wait 250 ms, doubling.
    pub auth_failures_before_delay: u32,
    /// The longest such wait, in milliseconds.
    pub auth_delay_max_ms: u64,
    /// How long before a token expires its client gets `$SYS/tokenExpireNotice`.
    pub token_expire_notice_secs: u64,
    /// Open connections in all; more are refused (CONNACK 0x97 / 3). 0: no limit.
    pub max_connections: usize,
    /// Open connections from one address (loopback exempt). 0: no limit.
    pub max_connections_per_address: usize,
    /// Messages a second one client may publish (bursts of twice that);
    /// more are refused (PUBACK 0x97; 3.1.1: disconnect). 0: no limit.
    pub max_publish_rate: u32,
    /// Subscriptions one client may hold; more are refused (SUBACK 0x97 / 0x80).
    pub max_subscriptions: usize,
    /// Retained messages kept in all; a new topic past it is not retained
    /// (the message is still delivered). 0: no limit.
    pub max_retained_messages: usize,
    /// Connections the kernel holds for each listener (MQTT and HTTP)
    /// before the appliance accepts them (capped by `net.core.somaxconn`). Too small, and a
    /// reconnect storm loses SYNs that clients resend only after 1 s, 3 s...
    pub listen_backlog: u32,
    /// The longest keepalive a client may ask for, in seconds: MQTT 5
    /// clients asking more are told this one (Server Keep Alive), 3.1.1
    /// clients are refused (CONNACK 2), as mosquitto's `max_keepalive`.
    pub max_keepalive_secs: u16,
}

/// Start-up behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Startup {
    /// If the listeners are not bound within this many seconds the process
    /// says so and exits non-zero.
    pub watchdog_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("mqrtc-data"),
            bind: IpAddr::from([127, 0, 0, 1]),
            dev: false,
            dev_on_network: false,
            acl_file: None,
            standard_mqtt: false,
            log: "info,rmqtt=warn,sled=warn".into(),
            log_format: LogFormat::Text,
            ports: Ports::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            startup: Startup::default(),
            controller: Controller::default(),
            rtc: Rtc::default(),
            webhooks: Webhooks::default(),
            upstream: crate::upstream::Upstream::default(),
            fault_injection: false,
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            mqtt: 1883,
            mqtts: 8883,
            ws: 8083,
            wss: 8084,
            http: 8080,
            https: 8443,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_client_id_len: 64,
            max_topic_len: 64,
            max_payload_bytes: 64 * 1024,
            offline_message_ttl_secs: 3 * 24 * 3600,
            session_expiry_secs: 3 * 24 * 3600,
            max_queue_len: 1000,
            max_inflight: 16,
            auth_failures_before_delay: 5,
            auth_delay_max_ms: 5000,
            token_expire_notice_secs: 300,
            max_connections: 15_000,
            max_connections_per_address: 1_000,
            max_publish_rate: 100,
            max_subscriptions: 100,
            max_retained_messages: 10_000,
            listen_backlog: 4096,
            max_keepalive_secs: 65535,
        }
    }
}

impl Default for Startup {
    fn default() -> Self {
        Self { watchdog_secs: 15 }
    }
}

/// Why a configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer had a bad or unknown key.
    #[error(
        "{0}\nhint: run `mqrtc print-config` to see every valid key and its default; \
environment variables are MQRTC_<KEY> or MQRTC_<SECTION>__<KEY>"
    )]
    Layer(Box<figment::Error>),
    /// The values parse but make no sense together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Builds the configuration from defaults, an optional TOML file, the
    /// process environment and `overrides` (the command-line flags, already
    /// in the shape of a partial config).
    pub fn load(file: Option<&Path>, overrides: &toml::Table) -> Result<Config, ConfigError> {
        Self::load_with_env(file, overrides, Env::prefixed("MQRTC_").split("__"))
    }

    /// As [`Config::load`] with an explicit environment provider (for tests).
    pub fn load_with_env(
        file: Option<&Path>,
        overrides: &toml::Table,
        env: Env,
    ) -> Result<Config, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            fig = fig.merge(Toml::file(path));
        }
        let fig = fig
            .merge(env)
            .merge(Serialized::defaults(overrides.clone()));
        let cfg: Config = fig.extract().map_err(|e| ConfigError::Layer(Box::new(e)))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks values that parse but cannot work, saying how to fix them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.dev && !self.bind.is_loopback() && !self.dev_on_network {
            return Err(ConfigError::Invalid(format!(
                "--dev on {} (not loopback) would let anyone who reaches this machine connect as a \
                 demo device without a password; bind to 127.0.0.1, or add --dev-on-network \
                 (dev_on_network = true) if that is what you want",
                self.bind
            )));
        }
        if self.acl_file.is_some() && !self.standard_mqtt {
            return Err(ConfigError::Invalid(
                "acl_file is for --standard-mqtt; the cloud conventions take their rules from provisioning".into(),
            ));
        }
        let l = &self.limits;
        if l.max_client_id_len < 11 || l.max_client_id_len > 65535 {
            return Err(ConfigError::Invalid(format!(
                "limits.max_client_id_len = {} must be between 11 (GID_x@@@d) and 65535",
                l.max_client_id_len
            )));
        }
        if l.max_topic_len == 0 || l.max_payload_bytes == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_topic_len and limits.max_payload_bytes must be greater than 0".into(),
            ));
        }
        if l.max_payload_bytes > 256 * 1024 * 1024 {
            return Err(ConfigError::Invalid(
                "limits.max_payload_bytes must be at most 268435456 (MQTT's packet limit)".into(),
            ));
        }
        if l.max_inflight == 0 || l.max_queue_len == 0 {
            return Err(ConfigError::Invalid(
                "limits.max_inflight and limits.max_queue_len must be greater than 0".into(),
            ));
        }
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return Err(ConfigError::Invalid(
                "tls.cert and tls.key must be given together (or neither, to generate them)".into(),
            ));
        }
        if self.startup.watchdog_secs == 0 {
            return Err(ConfigError::Invalid(
                "startup.watchdog_secs must be greater than 0".into(),
            ));
        }
        if self.controller.ring_timeout_secs == 0 || self.controller.max_duration_secs == 0 {
            return Err(ConfigError::Invalid(
                "controller.ring_timeout_secs and controller.max_duration_secs must be greater than 0".into(),
            ));
        }
        if !crate::rtc::token::valid_id(&self.rtc.app_id) || self.rtc.token_ttl_secs <= 0 {
            return Err(ConfigError::Invalid(
                "rtc.app_id must be 1 to 64 of [A-Za-z0-9_-] and rtc.token_ttl_secs greater than 0"
                    .into(),
            ));
        }
        let host = &self.rtc.public_host;
        let name_char = |c: char| c.is_ascii_alphanumeric() || "-.".contains(c);
        if !host.chars().all(name_char) && host.parse::<IpAddr>().is_err() {
            return Err(ConfigError::Invalid(format!(
                "rtc.public_host = {host:?} must be a host name or an IP address (no scheme, no port)"
            )));
        }
        if self.dev && self.standard_mqtt {
            return Err(ConfigError::Invalid(
                "dev and standard_mqtt exclude each other: --dev keeps the cloud conventions \
with a demo tenant, --standard-mqtt drops them"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `mqrtc print-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}\n"))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail closures return figment::Error
mod tests {
    use super::*;

    fn no_env() -> Env {
        Env::prefixed("MQRTC_TEST_NOTHING_SET_")
    }

    #[test]
    fn defaults_validate_and_round_trip_through_toml() {
        let cfg = Config::default();
        cfg.validate().unwrap();
        let text = cfg.to_toml();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "dev = true\n[ports]\nmqtt = 1000\nhttp = 2000\n").unwrap();
        figment::Jail::expect_with(|jail| {
            jail.set_env("MQRTC_PORTS__HTTP", "3000");
            jail.set_env("MQRTC_LIMITS__MAX_TOPIC_LEN", "80");
            let mut flags = toml::Table::new();
            let mut ports = toml::Table::new();
            ports.insert("mqtt".into(), toml::Value::Integer(0));
            flags.insert("ports".into(), toml::Value::Table(ports));
            let cfg = Config::load(Some(&file), &flags).unwrap();
            assert!(cfg.dev, "file sets dev");
            assert_eq!(cfg.ports.mqtt, 0, "flag beats file");
            assert_eq!(cfg.ports.http, 3000, "env beats file");
            assert_eq!(cfg.limits.max_topic_len, 80);
            assert_eq!(cfg.ports.ws, 8083, "default kept");
            Ok(())
        });
    }

    #[test]
    fn unknown_key_in_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.toml");
        std::fs::write(&file, "[ports]\nmqqt = 1\n").unwrap();
        let err = Config::load_with_env(Some(&file), &toml::Table::new(), no_env()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mqqt"), "{msg}");
        assert!(msg.contains("print-config"), "{msg}");
    }

    #[test]
    fn unknown_env_key_is_an_error() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("MQRTC_DATADIR", "/tmp/x");
            let err = Config::load(None, &toml::Table::new()).unwrap_err();
            assert!(err.to_string().contains("datadir"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn nonsense_values_are_explained() {
        let mut cfg = Config::default();
        cfg.tls.cert = Some("/x.pem".into());
        assert!(cfg.validate().unwrap_err().to_string().contains("tls.key"));
        let cfg = Config {
            dev: true,
            standard_mqtt: true,
            ..Config::default()
        };
        assert!(cfg.validate().is_err());
        let mut cfg = Config::default();
        cfg.rtc.public_host = "http://x:1".into();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(err.contains("public_host"), "{err}");
        cfg.rtc.public_host = "fd00::2".into();
        cfg.validate().unwrap();
    }
}
