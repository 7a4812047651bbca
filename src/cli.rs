//! The command line: `mqrtc serve`, `healthcheck`, `print-config`, `bench`,
//! `device`, and the provisioning commands.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::admin::{
    AccountCmd, Admin, DeviceCmd, GroupCmd, InstanceCmd, Target, TokenCmd, TopicCmd,
};
use crate::bench::BenchArgs;

/// mqrtc: the signaling side of an audio/video calling app on one box.
#[derive(Debug, Parser)]
#[command(name = "mqrtc", version, about, long_about = None)]
pub struct Cli {
    /// What to do; with none, `serve`.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance (MQTT broker, HTTP service) until SIGINT/SIGTERM.
    Serve(Box<ServeArgs>),
    /// Print the effective configuration (defaults, file, environment, flags) as TOML.
    PrintConfig(Box<ServeArgs>),
    /// Run the call controller, the RTC token issuer and the mock RTC
    /// service against an external MQTT 5 broker (`docs/scale-out.md`).
    Controller(Box<crate::upstream::cli::ControllerArgs>),
    /// Check that a running appliance answers; exit 0 if healthy.
    Healthcheck(HealthArgs),
    /// Measure an MQTT broker (this appliance or any other host:port).
    Bench(BenchArgs),
    /// Instances (tenants) and their access keys.
    Instance {
        /// What to do.
        #[command(subcommand)]
        cmd: InstanceCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
    /// Group IDs, their topic grants and P2P scope.
    Group {
        /// What to do.
        #[command(subcommand)]
        cmd: GroupCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
    /// Parent topics.
    Topic {
        /// What to do.
        #[command(subcommand)]
        cmd: TopicCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
    /// A command-line device (`mqrtc device --id GID_demo@@@alice [call bob]`),
    /// or per-device credentials (`mqrtc device create|list|delete`).
    #[command(args_conflicts_with_subcommands = true)]
    Device {
        /// Provisioning of DeviceCredential keys.
        #[command(subcommand)]
        cmd: Option<DeviceCmd>,
        /// Data dir (for the CA with `--tls`) and `--json` event lines.
        #[command(flatten)]
        target: Target,
        /// The command-line device.
        #[command(flatten)]
        run: Box<crate::device::DeviceArgs>,
    },
    /// Tokens (Token mode).
    Token {
        /// What to do.
        #[command(subcommand)]
        cmd: TokenCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
    /// The generated TLS certificates (`<data dir>/certs`).
    Certs {
        /// What to do.
        #[command(subcommand)]
        cmd: CertsCmd,
        /// Data dir.
        #[command(flatten)]
        target: Target,
    },
    /// Signed webhooks: each instance's endpoint, and every delivery attempt.
    Webhook {
        /// What to do.
        #[command(subcommand)]
        cmd: crate::webhooks::cli::WebhookCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
    /// Back up a data directory, also while the appliance runs (`docs/install.md`).
    Backup(BackupArgs),
    /// Restore a backup into a new data directory.
    Restore(RestoreArgs),
    /// Console accounts and admin API keys.
    Admin {
        /// What to do.
        #[command(subcommand)]
        cmd: AccountCmd,
        /// Data dir and output format.
        #[command(flatten)]
        target: Target,
    },
}

/// `mqrtc certs ...`
#[derive(Debug, Subcommand)]
pub enum CertsCmd {
    /// Issue a new server certificate under the same CA, for the names the
    /// current one covers; a running appliance uses it for new TLS
    /// connections within a second, and clients that trust `ca.pem` keep
    /// working. With `--ca`, a new CA too (clients must trust the new `ca.pem`).
    Rotate {
        /// Also make a new local CA.
        #[arg(long)]
        ca: bool,
    },
    /// Show the names, the CA's constraints and when each certificate ends.
    Show,
}

impl Command {
    /// The provisioning command this is, if it is one.
    pub fn admin(self) -> Result<(Admin, Target), Box<Command>> {
        match self {
            Command::Instance { cmd, target } => Ok((Admin::Instance(cmd), target)),
            Command::Group { cmd, target } => Ok((Admin::Group(cmd), target)),
            Command::Topic { cmd, target } => Ok((Admin::Topic(cmd), target)),
            Command::Device {
                cmd: Some(cmd),
                target,
                ..
            } => Ok((Admin::Device(cmd), target)),
            Command::Token { cmd, target } => Ok((Admin::Token(cmd), target)),
            Command::Admin { cmd, target } => Ok((Admin::Account(cmd), target)),
            other => Err(Box::new(other)),
        }
    }
}

/// Flags of `serve` and `print-config`; each overrides the config file and
/// the environment.
#[derive(Debug, Default, Clone, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory (database, certificates, sessions, ports.json).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// MQTT over TCP port (default 1883; 0 picks a free one).
    #[arg(long)]
    pub mqtt_port: Option<u16>,
    /// MQTT over TLS port (default 8883).
    #[arg(long)]
    pub mqtts_port: Option<u16>,
    /// MQTT over WebSocket port (default 8083).
    #[arg(long)]
    pub ws_port: Option<u16>,
    /// MQTT over secure WebSocket port (default 8084).
    #[arg(long)]
    pub wss_port: Option<u16>,
    /// HTTP port (default 8080).
    #[arg(long)]
    pub http_port: Option<u16>,
    /// HTTPS port: the same service over TLS (default 8443).
    #[arg(long)]
    pub https_port: Option<u16>,
    /// Address to listen on (default 127.0.0.1).
    #[arg(long, value_name = "ADDR", conflicts_with = "all_interfaces")]
    pub bind: Option<IpAddr>,
    /// Listen on all interfaces (same as --bind 0.0.0.0).
    #[arg(long)]
    pub all_interfaces: bool,
    /// Host other machines reach this one on, for the mock RTC service's
    /// address (default: the bind address, or with --all-interfaces the
    /// first non-loopback IPv4 address).
    #[arg(long, value_name = "HOST")]
    pub public_host: Option<String>,
    /// Demo mode: provision the demo tenant and let its devices connect without a password.
    #[arg(long)]
    pub dev: bool,
    /// Allow --dev on an address other than loopback (warned on every start).
    #[arg(long, requires = "dev")]
    pub dev_on_network: bool,
    /// Plain MQTT broker: any client id, any topic, anonymous allowed.
    #[arg(long)]
    pub standard_mqtt: bool,
    /// With --standard-mqtt: an ACL file in mosquitto's format.
    #[arg(long, value_name = "FILE", requires = "standard_mqtt")]
    pub acl_file: Option<PathBuf>,
    /// Log lines as text or as JSON (one object per line).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<crate::config::LogFormat>,
    /// Tests only: loopback endpoints that break parts on purpose.
    #[arg(long, hide = true)]
    pub fault_injection: bool,
}

impl ServeArgs {
    /// The flags that were given, as a partial config table (the last layer).
    pub fn overrides(&self) -> toml::Table {
        let mut root = toml::Table::new();
        let mut ports = toml::Table::new();
        let mut put_port = |key: &str, v: Option<u16>| {
            if let Some(v) = v {
                ports.insert(key.into(), toml::Value::Integer(i64::from(v)));
            }
        };
        put_port("mqtt", self.mqtt_port);
        put_port("mqtts", self.mqtts_port);
        put_port("ws", self.ws_port);
        put_port("wss", self.wss_port);
        put_port("http", self.http_port);
        put_port("https", self.https_port);
        if !ports.is_empty() {
            root.insert("ports".into(), toml::Value::Table(ports));
        }
        if let Some(dir) = &self.data_dir {
            root.insert(
                "data_dir".into(),
                toml::Value::String(dir.display().to_string()),
            );
        }
        let bind = if self.all_interfaces {
            Some(IpAddr::from([0, 0, 0, 0]))
        } else {
            self.bind
        };
        if let Some(bind) = bind {
            root.insert("bind".into(), toml::Value::String(bind.to_string()));
        }
        if let Some(host) = &self.public_host {
            let mut rtc = toml::Table::new();
            rtc.insert("public_host".into(), toml::Value::String(host.clone()));
            root.insert("rtc".into(), toml::Value::Table(rtc));
        }
        // The config's own serde names (`text`, `json`).
        if let Some(f) = self.log_format.and_then(|f| toml::Value::try_from(f).ok()) {
            root.insert("log_format".into(), f);
        }
        if self.dev {
            root.insert("dev".into(), toml::Value::Boolean(true));
        }
        if self.dev_on_network {
            root.insert("dev_on_network".into(), toml::Value::Boolean(true));
        }
        if self.standard_mqtt {
            root.insert("standard_mqtt".into(), toml::Value::Boolean(true));
        }
        if let Some(f) = &self.acl_file {
            root.insert(
                "acl_file".into(),
                toml::Value::String(f.display().to_string()),
            );
        }
        if self.fault_injection {
            root.insert("fault_injection".into(), toml::Value::Boolean(true));
        }
        root
    }
}

/// Flags of `healthcheck`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Data directory of the appliance to check (its ports.json says where it listens).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "mqrtc-data",
        env = "MQRTC_DATA_DIR"
    )]
    pub data_dir: PathBuf,
    /// Check this HTTP port instead of reading ports.json.
    #[arg(long)]
    pub http_port: Option<u16>,
    /// Host to reach the appliance on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Seconds to wait for an answer.
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_overrides() {
        let cli = Cli::parse_from([
            "mqrtc",
            "serve",
            "--mqtt-port",
            "0",
            "--https-port",
            "9443",
            "--public-host",
            "192.168.1.20",
            "--all-interfaces",
            "--dev",
            "--data-dir",
            "/tmp/d",
        ]);
        let Some(Command::Serve(args)) = cli.command else {
            panic!("not serve")
        };
        let t = args.overrides();
        assert_eq!(t["ports"]["mqtt"].as_integer(), Some(0));
        assert_eq!(t["ports"]["https"].as_integer(), Some(9443));
        assert_eq!(t["rtc"]["public_host"].as_str(), Some("192.168.1.20"));
        assert_eq!(t["bind"].as_str(), Some("0.0.0.0"));
        assert_eq!(t["dev"].as_bool(), Some(true));
        assert!(t.get("standard_mqtt").is_none());
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::parse_from(["mqrtc"]);
        assert!(cli.command.is_none());
    }
}

/// `mqrtc backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// The backup file to write (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Data directory to back up.
    #[arg(
        long,
        value_name = "DIR",
        env = "MQRTC_DATA_DIR",
        default_value = "mqrtc-data"
    )]
    pub data_dir: PathBuf,
    /// Include the keys and secrets (master.key, rtc-app.key, certificate
    /// keys, password files); the file is then sealed with a passphrase.
    #[arg(long)]
    pub include_keys: bool,
    /// File holding the passphrase (else MQRTC_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}

/// `mqrtc restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// The backup file.
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The new data directory (must not exist, or be empty).
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
    /// File holding the passphrase of a sealed backup (else MQRTC_BACKUP_PASSPHRASE).
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
}
