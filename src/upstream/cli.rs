//! The flags of `mqrtc controller`.

use std::path::PathBuf;

use clap::Args;

use super::config::Presence;
use crate::cli::ServeArgs;

/// Flags of `mqrtc controller`; each overrides the config file and the
/// environment. Of the `serve` flags, `--config`, `--data-dir`,
/// `--http-port`, `--bind`, `--public-host` and `--log-format` apply.
#[derive(Debug, Default, Clone, Args)]
pub struct ControllerArgs {
    /// The external broker, `mqtt://host:port` or `mqtts://host:port` (`upstream.url`).
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Username the controller logs in with (`upstream.username`).
    #[arg(long, value_name = "NAME")]
    pub upstream_username: Option<String>,
    /// File holding the controller's password (`upstream.password_file`).
    #[arg(long, value_name = "FILE")]
    pub upstream_password_file: Option<PathBuf>,
    /// CA certificate to trust for mqtts:// (`upstream.ca_file`).
    #[arg(long, value_name = "FILE")]
    pub upstream_ca_file: Option<PathBuf>,
    /// The controller's state: a `postgres://` URL (`upstream.store`;
    /// default: the SQLite database in the data dir).
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// CA certificate to trust for PostgreSQL with `sslmode=require`
    /// (`upstream.store_ca_file`).
    #[arg(long, value_name = "FILE")]
    pub store_ca_file: Option<PathBuf>,
    /// Where device presence comes from (`upstream.presence`).
    #[arg(long, value_enum)]
    pub presence: Option<Presence>,
    /// The rest, as for `serve`.
    #[command(flatten)]
    pub serve: ServeArgs,
}

impl ControllerArgs {
    /// The flags that were given, as a partial config table.
    pub fn overrides(&self) -> toml::Table {
        let mut root = self.serve.overrides();
        let mut up = toml::Table::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                up.insert(k.into(), toml::Value::String(v));
            }
        };
        put("url", self.upstream.clone());
        put("username", self.upstream_username.clone());
        put("store", self.store.clone());
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        put("password_file", path(&self.upstream_password_file));
        put("ca_file", path(&self.upstream_ca_file));
        put("store_ca_file", path(&self.store_ca_file));
        if let Some(p) = self.presence.and_then(|p| toml::Value::try_from(p).ok()) {
            up.insert("presence".into(), p);
        }
        if !up.is_empty() {
            root.insert("upstream".into(), toml::Value::Table(up));
        }
        root
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command};

    #[test]
    fn flags_become_overrides() {
        let cli = Cli::parse_from([
            "mqrtc",
            "controller",
            "--upstream",
            "mqtts://broker:8883",
            "--presence",
            "emqx",
            "--http-port",
            "0",
        ]);
        let Some(Command::Controller(args)) = cli.command else {
            panic!("not controller")
        };
        let t = args.overrides();
        assert_eq!(t["upstream"]["url"].as_str(), Some("mqtts://broker:8883"));
        assert_eq!(t["upstream"]["presence"].as_str(), Some("emqx"));
        assert_eq!(t["ports"]["http"].as_integer(), Some(0));
    }
}
