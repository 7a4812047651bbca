//! Watching the appliance: the overview (status, counts, rates and a
//! 15-minute history sampled every 5 s), connections and the per-device
//! "why can't it call?" report, calls, RTC channels.

use std::collections::VecDeque;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use serde::Serialize;

use super::{Ops, OpsError};
use crate::broker::{ClientDetail, ClientPage, ClientQuery, ConnEvent, StatsSnapshot};
use crate::controller::now_ms;
use crate::rtc::mock::ChannelInfo;
use crate::store::{CallCounts, CallPage, CallQuery, TimelineEntry};

/// Seconds between samples.
pub const SAMPLE_SECS: u64 = 5;
/// Samples kept: 15 minutes.
const SAMPLES: usize = 180;

/// One point of the overview's history.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct Sample {
    /// Unix milliseconds.
    pub at: i64,
    /// Connected clients.
    pub connections: i64,
    /// Messages into the broker per second since the previous sample.
    pub in_per_sec: f64,
    /// Messages delivered per second since the previous sample.
    pub out_per_sec: f64,
    /// Active calls.
    pub active_calls: i64,
    /// Ringing calls.
    pub ringing_calls: i64,
    /// Calls created in the last minute.
    pub setups_per_min: i64,
}

/// The last 15 minutes of samples.
#[derive(Default)]
pub struct Sampler {
    points: Mutex<VecDeque<Sample>>,
    last: Mutex<Option<(i64, StatsSnapshot)>>,
}

impl Sampler {
    fn push(&self, now: i64, stats: StatsSnapshot, connections: i64, calls: CallCounts) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let (in_rate, out_rate) = match *last {
            Some((t, prev)) if now > t => {
                let secs = (now - t) as f64 / 1000.0;
                (
                    stats.messages_in.saturating_sub(prev.messages_in) as f64 / secs,
                    stats.messages_out.saturating_sub(prev.messages_out) as f64 / secs,
                )
            }
            _ => (0.0, 0.0),
        };
        *last = Some((now, stats));
        let mut pts = self.points.lock().unwrap_or_else(|p| p.into_inner());
        if pts.len() >= SAMPLES {
            pts.pop_front();
        }
        pts.push_back(Sample {
            at: now,
            connections,
            in_per_sec: in_rate,
            out_per_sec: out_rate,
            active_calls: calls.active,
            ringing_calls: calls.ringing,
            setups_per_min: calls.setups_last_minute,
        });
    }

    fn series(&self) -> Vec<Sample> {
        let pts = self.points.lock().unwrap_or_else(|p| p.into_inner());
        pts.iter().copied().collect()
    }
}

/// Samples every 5 s while the service layer lives.
pub(super) async fn sample_forever(ops: Weak<Ops>) {
    let mut tick = tokio::time::interval(Duration::from_secs(SAMPLE_SECS));
    loop {
        tick.tick().await;
        let Some(ops) = ops.upgrade() else { return };
        let now = now_ms();
        let calls = ops
            .db(move |s| s.call_counts(now))
            .await
            .unwrap_or_default();
        ops.sampler.push(
            now,
            ops.broker.stats(),
            ops.broker.connections() as i64,
            calls,
        );
    }
}

/// The state of each part, as `/healthz` reports it: `ok`, `down`,
/// `restarting` (the controller, after a failure, until it has reloaded its
/// state) or `disabled` (a controller switched off in the config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Parts {
    /// The embedded broker.
    pub broker: String,
    /// The call controller's task.
    pub controller: String,
    /// SQLite (answers a query within 2 s).
    pub store: String,
    /// The mock RTC service.
    pub rtc: String,
}

impl Default for Parts {
    fn default() -> Parts {
        let ok = || "ok".to_string();
        Parts {
            broker: ok(),
            controller: ok(),
            store: ok(),
            rtc: ok(),
        }
    }
}

impl Parts {
    /// Whether every part is `ok` or `disabled`.
    pub fn ok(&self) -> bool {
        [&self.broker, &self.controller, &self.store, &self.rtc]
            .iter()
            .all(|p| matches!(p.as_str(), "ok" | "disabled"))
    }
}

/// Whether each part of the appliance runs.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `running` or `stopped`.
    pub broker: String,
    /// `running`, `stopped` or `disabled`.
    pub controller: String,
    /// `running` (the mock RTC service answers on the HTTP port).
    pub rtc: String,
}

/// The overview page and `GET /api/v1/stats`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Overview {
    /// mqrtc version.
    pub version: String,
    /// Seconds since start.
    pub uptime_secs: i64,
    /// Whether each part runs.
    pub status: Status,
    /// Listener ports.
    #[schema(value_type = Object)]
    pub ports: crate::http::PortsFile,
    /// Connected clients now.
    pub connections: i64,
    /// Calls now.
    pub calls: CallCounts,
    /// Broker counters since start (refusals by reason, drops, messages).
    #[schema(value_type = Object)]
    pub broker: StatsSnapshot,
    /// The newest refused CONNECTs.
    pub recent_refusals: Vec<ConnEvent>,
    /// Samples of the last 15 minutes, oldest first.
    pub series: Vec<Sample>,
}

/// One finding of the device report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Check {
    /// Whether this is fine.
    pub ok: bool,
    /// What was found.
    pub text: String,
}

/// Everything about one client id: "why can't it call?".
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeviceReport {
    /// The client id.
    pub client_id: String,
    /// The findings, most important first.
    pub checks: Vec<Check>,
    /// Session, subscriptions and connection history.
    pub broker: ClientDetail,
    /// Its user's latest calls.
    pub calls: CallPage,
}

fn check(ok: bool, text: impl Into<String>) -> Check {
    Check {
        ok,
        text: text.into(),
    }
}

impl Ops {
    /// Each part's state, for `/healthz`.
    pub async fn parts(&self) -> Parts {
        let store =
            tokio::time::timeout(Duration::from_secs(2), self.db(|s| s.data_version())).await;
        Parts {
            broker: "ok".into(),
            controller: self.controller_state().into(),
            store: if matches!(store, Ok(Ok(_))) {
                "ok"
            } else {
                "down"
            }
            .into(),
            rtc: "ok".into(),
        }
    }

    /// The controller's health, if it runs.
    pub fn controller_health(&self) -> Option<&crate::controller::Health> {
        self.controller.as_deref()
    }

    fn controller_state(&self) -> &'static str {
        match &self.controller {
            None => "disabled",
            Some(h) => h.state(),
        }
    }

    /// Status, counts, rates and history.
    pub async fn overview(&self) -> Result<Overview, OpsError> {
        let now = now_ms();
        let calls = self.db(move |s| s.call_counts(now)).await?;
        let controller = match self.controller_state() {
            "ok" => "running",
            "down" => "stopped",
            other => other,
        };
        Ok(Overview {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: (now - self.started_at) / 1000,
            status: Status {
                broker: "running".into(),
                controller: controller.into(),
                rtc: "running".into(),
            },
            ports: self.ports,
            connections: self.broker.connections() as i64,
            calls,
            broker: self.broker.stats(),
            recent_refusals: self.broker.refusals(10),
            series: self.sampler.series(),
        })
    }

    /// Sessions matching `q`, one page.
    pub async fn clients(&self, q: ClientQuery) -> ClientPage {
        self.broker.clients(&q).await
    }

    /// Disconnects a client; NotFound if it has no open connection.
    pub async fn kick(&self, client_id: &str) -> Result<(), OpsError> {
        if self.broker.kick(client_id).await {
            tracing::info!(client_id, "disconnected by an admin");
            Ok(())
        } else {
            Err(OpsError::NotFound(format!("{client_id} is not connected")))
        }
    }

    /// The device report for one client id.
    pub async fn device(&self, client_id: String) -> Result<DeviceReport, OpsError> {
        let broker = self.broker.client(&client_id).await;
        let mut checks = Vec::new();
        let user = match crate::policy::parse_client_id(&client_id, self.max_client_id_len) {
            Err(e) => {
                checks.push(check(false, format!("client id is not valid: {e}")));
                None
            }
            Ok(p) => {
                let group = p.group.to_string();
                let g2 = group.clone();
                let known = self
                    .db(move |s| Ok(s.list_groups(None)?.into_iter().any(|g| g.id == g2)))
                    .await?;
                checks.push(if known {
                    check(true, format!("Group ID {group} is provisioned"))
                } else {
                    check(false, format!("Group ID {group} is not provisioned: every CONNECT is refused (CONNACK 2 / 0x85)"))
                });
                Some(p.device.to_string())
            }
        };
        checks.extend(session_checks(&broker));
        let calls = match user {
            Some(u) => {
                let q = CallQuery {
                    user: Some(u),
                    per_page: Some(10),
                    ..CallQuery::default()
                };
                self.db(move |s| s.list_calls(&q)).await?
            }
            None => CallPage {
                page: 1,
                per_page: 10,
                more: false,
                items: Vec::new(),
            },
        };
        Ok(DeviceReport {
            client_id,
            checks,
            broker,
            calls,
        })
    }

    /// Calls matching `q`, newest first.
    pub async fn calls(&self, q: CallQuery) -> Result<CallPage, OpsError> {
        self.db(move |s| s.list_calls(&q)).await
    }

    /// One call as the controller last saved it.
    pub async fn call(&self, id: String) -> Result<crate::calls::Call, OpsError> {
        let key = id.clone();
        self.db(move |s| s.stored_call(&key))
            .await?
            .ok_or_else(|| OpsError::NotFound(format!("no call {id}")))
    }

    /// Every signaling message of a call, in order.
    pub async fn timeline(&self, id: String) -> Result<Vec<TimelineEntry>, OpsError> {
        self.db(move |s| s.timeline(&id)).await
    }

    /// The webhook events of a call with every delivery attempt, oldest first.
    pub async fn call_webhooks(&self, id: String) -> Result<Vec<crate::store::Delivery>, OpsError> {
        let mut all = self
            .db(move |s| s.webhook_deliveries(None, Some(&id), 500))
            .await?;
        all.reverse();
        Ok(all)
    }

    /// RTC channels and their members.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.rtc.channels()
    }

    /// Watches every message the broker routes.
    pub fn tail(&self) -> crate::broker::TailWatch {
        self.broker.tail()
    }
}

fn session_checks(d: &ClientDetail) -> Vec<Check> {
    let mut out = Vec::new();
    match &d.session {
        Some(s) if s.online => out.push(check(
            true,
            format!(
                "online since {} over {}",
                crate::http::when(s.connected_at),
                s.listener
            ),
        )),
        Some(s) => out.push(check(
            false,
            format!(
                "offline; its session is kept with {} message(s) waiting",
                s.queued
            ),
        )),
        None => out.push(check(false, "not connected, and no session is kept")),
    }
    if let Some(s) = &d.session {
        if s.clean_session {
            out.push(check(false, "clean session is on: messages sent while it is offline are lost (use clean session off and QoS 1)"));
        }
    }
    if let Some(r) = d.history.iter().find(|e| e.kind == "refused") {
        let latest_connect = d
            .history
            .iter()
            .find(|e| e.kind == "connected")
            .map(|e| e.at);
        if latest_connect.is_none_or(|c| c < r.at) {
            out.push(check(
                false,
                format!(
                    "last CONNECT was refused with code {}: {}",
                    r.code.map(|c| format!("0x{c:02x}")).unwrap_or_default(),
                    r.reason
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_part_down_makes_the_whole_unready_but_disabled_does_not() {
        let mut p = Parts::default();
        assert!(p.ok());
        p.controller = "disabled".into();
        assert!(p.ok(), "a controller switched off is not a fault");
        p.store = "down".into();
        assert!(!p.ok());
        p.store = "ok".into();
        p.controller = "restarting".into();
        assert!(!p.ok(), "a controller reloading its state is not ready");
    }
}
