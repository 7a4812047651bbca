//! Provisioning from the command line: `mqrtc instance|group|topic|device|token`.
//!
//! Each command opens the data dir's database directly (or, with `--store`,
//! the PostgreSQL database of `mqrtc controller`); a running appliance or
//! controller notices the change within a second, reloads, and disconnects
//! clients whose group or credential went away.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::store::{Store, StoreError};

mod cmds;

pub use cmds::{AccountCmd, DeviceCmd, GroupCmd, InstanceCmd, TokenCmd, TopicCmd};

/// Flags every provisioning command takes.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// Data directory of the appliance.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "mqrtc-data",
        env = "MQRTC_DATA_DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    /// The PostgreSQL store of `mqrtc controller --store` instead of the
    /// data dir's SQLite database (the data dir still holds `master.key`).
    #[arg(long, value_name = "URL", env = "MQRTC_STORE", global = true)]
    pub store: Option<String>,
    /// CA certificate for that store's TLS (`sslmode=require`).
    #[arg(long, value_name = "FILE", global = true)]
    pub store_ca_file: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Target {
    /// The store these flags name.
    pub fn open(&self) -> Result<Store, StoreError> {
        let postgres = self.store.as_ref().map(|url| crate::store::pg::Database {
            url: url.clone(),
            ca_file: self.store_ca_file.clone(),
        });
        Store::open_at(&self.data_dir, postgres.as_ref())
    }
}

/// A provisioning command and where to apply it.
#[derive(Debug, Clone)]
pub enum Admin {
    /// Instances and access keys.
    Instance(InstanceCmd),
    /// Group IDs and their permissions.
    Group(GroupCmd),
    /// Parent topics.
    Topic(TopicCmd),
    /// Device credentials.
    Device(DeviceCmd),
    /// Tokens.
    Token(TokenCmd),
    /// Console accounts and API keys.
    Account(AccountCmd),
}

/// Runs a provisioning command; returns what to print.
pub fn run(cmd: Admin, target: &Target) -> Result<String, StoreError> {
    crate::private::create_dir(&target.data_dir)
        .map_err(|e| StoreError::Io(target.data_dir.display().to_string(), e))?;
    let s = target.open()?;
    let out = |v: &dyn erased::Out| v.render(target.json);
    let secret = |v: &dyn erased::Out| {
        let note = if target.json {
            ""
        } else {
            "\n(shown only this once: store it now)"
        };
        format!("{}{note}", v.render(target.json))
    };
    Ok(match cmd {
        Admin::Instance(c) => {
            match c {
                InstanceCmd::Create { id, name } => {
                    s.create_instance(&id, &name)?;
                    out(&Done(format!("created instance {id}")))
                }
                InstanceCmd::Demo => match s.provision_demo()? {
                    Some(t) => {
                        let path = crate::demo::save(&target.data_dir, &t)
                            .map_err(|e| StoreError::Io(crate::demo::DEMO_TENANT_FILE.into(), e))?;
                        out(&Done(crate::demo::created(&path, false)))
                    }
                    None => {
                        return Err(StoreError::Conflict(format!(
                        "the demo tenant exists already (its first access key was written to {})",
                        target.data_dir.join(crate::demo::DEMO_TENANT_FILE).display()
                    )))
                    }
                },
                InstanceCmd::List => out(&s.list_instances()?),
                InstanceCmd::Delete { id } => {
                    s.delete_instance(&id)?;
                    out(&Done(format!("deleted instance {id}")))
                }
                InstanceCmd::AddKey { id } => secret(&Secret(s.create_access_key(&id)?)),
                InstanceCmd::DeleteKey { key_id } => {
                    s.delete_access_key(&key_id)?;
                    out(&Done(format!("deleted AccessKeyId {key_id}")))
                }
            }
        }
        Admin::Group(c) => match c {
            GroupCmd::Create { id, instance, p2p } => {
                s.create_group(&instance, &id)?;
                s.set_p2p_scope(&id, p2p)?;
                out(&Done(format!("created Group ID {id} in {instance}")))
            }
            GroupCmd::List { instance } => out(&s.list_groups(instance.as_deref())?),
            GroupCmd::Delete { id } => {
                s.delete_group(&id)?;
                out(&Done(format!(
                    "deleted Group ID {id}; its clients are disconnected"
                )))
            }
            GroupCmd::SetP2p { id, scope } => {
                s.set_p2p_scope(&id, scope)?;
                out(&Done(format!(
                    "Group ID {id}: P2P scope {}",
                    scope.as_str()
                )))
            }
            GroupCmd::Grant {
                id,
                topic,
                publish,
                subscribe,
            } => {
                if !publish && !subscribe {
                    return Err(StoreError::Invalid(
                        "grant --publish, --subscribe or both".into(),
                    ));
                }
                s.grant(&id, &topic, publish, subscribe)?;
                out(&Done(format!("Group ID {id} granted {topic}")))
            }
            GroupCmd::Revoke { id, topic } => {
                s.revoke_grant(&id, &topic)?;
                out(&Done(format!("Group ID {id}: grant on {topic} removed")))
            }
        },
        Admin::Topic(c) => match c {
            TopicCmd::Create {
                name,
                instance,
                role,
            } => {
                s.create_topic(&instance, &name, role)?;
                out(&Done(format!(
                    "created {} topic {name} in {instance}",
                    role.as_str()
                )))
            }
            TopicCmd::List { instance } => out(&s.list_topics(instance.as_deref())?),
            TopicCmd::Delete { name } => {
                s.delete_topic(&name)?;
                out(&Done(format!("deleted parent topic {name}")))
            }
        },
        Admin::Device(c) => match c {
            DeviceCmd::Create {
                client_id,
                instance,
            } => secret(&Secret(s.create_device(&instance, &client_id)?)),
            DeviceCmd::List { instance } => out(&s.list_devices(instance.as_deref())?),
            DeviceCmd::Delete { id } => {
                s.delete_device(&id)?;
                out(&Done(format!("deleted device credential {id}")))
            }
        },
        Admin::Account(c) => match c {
            AccountCmd::ResetPassword {
                user,
                password_stdin,
            } => {
                let password = if password_stdin {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .map_err(|e| StoreError::Io("standard input".into(), e))?;
                    line.trim_end_matches(['\r', '\n']).to_string()
                } else {
                    use rand::distr::{Alphanumeric, SampleString};
                    Alphanumeric.sample_string(&mut rand::rng(), 24)
                };
                s.set_admin_password(&user, &password, crate::store::unix_now())?;
                if password_stdin {
                    out(&Done(format!(
                        "password of {user} set; its console sessions ended"
                    )))
                } else {
                    secret(&serde_json::json!({ "user": user, "password": password }))
                }
            }
            AccountCmd::ApiKeyCreate { name } => secret(&Secret(s.create_api_key(
                &name,
                "cli",
                crate::store::unix_now(),
            )?)),
            AccountCmd::ApiKeyList => out(&s.list_api_keys()?),
            AccountCmd::ApiKeyRevoke { id } => {
                s.revoke_api_key(&id, crate::store::unix_now())?;
                out(&Done(format!("revoked API key {id}")))
            }
        },
        Admin::Token(c) => match c {
            TokenCmd::Create {
                instance,
                kind,
                resources,
                ttl,
            } => {
                let now = crate::store::unix_now();
                secret(&Secret(
                    s.create_token(&instance, kind, &resources, now, ttl)?,
                ))
            }
            TokenCmd::List { instance } => out(&s.list_tokens(instance.as_deref())?),
            TokenCmd::Delete { id } => {
                s.delete_token(&id)?;
                out(&Done(format!("revoked token {id}")))
            }
        },
    })
}

/// A confirmation line.
#[derive(Serialize)]
struct Done(String);

/// Something that holds a secret shown only now.
#[derive(Serialize)]
#[serde(transparent)]
struct Secret<T: Serialize>(T);

mod erased {
    use serde::Serialize;

    /// Renders a command's result as JSON or as indented text.
    pub trait Out {
        fn render(&self, json: bool) -> String;
    }

    impl<T: Serialize> Out for T {
        fn render(&self, json: bool) -> String {
            let v = serde_json::to_value(self).unwrap_or_default();
            if json {
                return serde_json::to_string_pretty(&v).unwrap_or_default();
            }
            text(&v, 0)
        }
    }

    fn text(v: &serde_json::Value, depth: usize) -> String {
        let pad = "  ".repeat(depth);
        match v {
            serde_json::Value::Array(items) if items.is_empty() => format!("{pad}(none)"),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|i| text(i, depth))
                .collect::<Vec<_>>()
                .join(&format!("\n{pad}--\n")),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                        format!("{pad}{k}:\n{}", text(v, depth + 1))
                    }
                    other => format!("{pad}{k}: {}", scalar(other)),
                })
                .collect::<Vec<_>>()
                .join("\n"),
            other => format!("{pad}{}", scalar(other)),
        }
    }

    fn scalar(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}
