//! `mqrtc webhook set|list|delete|deliveries`.

use crate::store::Delivery;

/// `mqrtc webhook ...`
#[derive(Debug, clap::Subcommand)]
pub enum WebhookCmd {
    /// Send an instance's events to URL (replaces its endpoint); prints the
    /// new signing secret once.
    Set {
        /// Instance.
        #[arg(long)]
        instance: String,
        /// Endpoint (`http://` or `https://`).
        #[arg(long)]
        url: String,
    },
    /// List the endpoints.
    List,
    /// Stop sending an instance's events.
    Delete {
        /// Instance.
        #[arg(long)]
        instance: String,
    },
    /// Events and every delivery attempt, newest first.
    Deliveries {
        /// Only this instance's.
        #[arg(long)]
        instance: Option<String>,
        /// Only this call's.
        #[arg(long)]
        call: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

fn line(d: &Delivery) -> String {
    let mut s = format!(
        "{} {} {} {} call={} attempts={}",
        crate::http::when(d.created_at),
        d.id,
        d.kind,
        d.state,
        d.call_id.as_deref().unwrap_or("-"),
        d.attempts.len()
    );
    for a in &d.attempts {
        let status = a.status.map_or("-".to_string(), |c| c.to_string());
        s.push_str(&format!(
            "\n    {} status={status} {} ms{}",
            crate::http::when(a.at),
            a.ms,
            a.error
                .as_deref()
                .map(|e| format!(" error={e}"))
                .unwrap_or_default()
        ));
    }
    s
}

/// Runs one command on the store `target` names; returns what to print.
pub fn run(cmd: &WebhookCmd, target: &crate::admin::Target) -> anyhow::Result<String> {
    let (s, json) = (target.open()?, target.json);
    Ok(match cmd {
        WebhookCmd::Set { instance, url } => {
            let secret = s.set_webhook(instance, url)?;
            if json {
                serde_json::json!({ "instance": instance, "url": url, "secret": secret })
                    .to_string()
            } else {
                format!("instance {instance} sends its events to {url}\nsigning secret: {secret}\n(shown only this once: store it now)")
            }
        }
        WebhookCmd::List => {
            let all = s.webhooks()?;
            if json {
                serde_json::to_string(
                    &all.iter()
                        .map(|(i, u)| serde_json::json!({ "instance": i, "url": u }))
                        .collect::<Vec<_>>(),
                )?
            } else {
                all.iter()
                    .map(|(i, u)| format!("{i} {u}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
        WebhookCmd::Delete { instance } => {
            s.delete_webhook(instance)?;
            format!("instance {instance} sends no more webhooks")
        }
        WebhookCmd::Deliveries {
            instance,
            call,
            limit,
        } => {
            let all = s.webhook_deliveries(instance.as_deref(), call.as_deref(), *limit)?;
            if json {
                serde_json::to_string(&all)?
            } else {
                all.iter().map(line).collect::<Vec<_>>().join("\n")
            }
        }
    })
}
