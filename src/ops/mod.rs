//! The operators' service layer: what the console pages and the admin REST
//! API both call (the CLI verbs call the same store functions). Handlers
//! only translate HTTP into these calls and `OpsError` into status codes.
//!
//! It has its own SQLite connection, so console reads never wait behind the
//! controller's writes, and so a provisioning change made here is seen by
//! the broker's directory reload like one made by the CLI.

use std::sync::Arc;

use crate::broker::Broker;
use crate::http::PortsFile;
use crate::rtc::MockRtc;
use crate::store::{Store, StoreError};

mod access;
mod metrics;
mod monitor;
pub mod provision;

pub use access::{SignInError, SESSION_SECS};
pub use metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
pub use monitor::{Check, DeviceReport, Overview, Parts, Sample, Sampler, Status};

/// What went wrong, in terms a person or a script can act on.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// Nothing has that name.
    #[error("{0}")]
    NotFound(String),
    /// The name is taken, or a dependent thing is in the way.
    #[error("{0}")]
    Conflict(String),
    /// A value given is not acceptable.
    #[error("{0}")]
    Invalid(String),
    /// The appliance failed (logged with detail; answered without internals).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for OpsError {
    fn from(e: StoreError) -> OpsError {
        match e {
            StoreError::NotFound(m) => OpsError::NotFound(m),
            StoreError::Conflict(m) | StoreError::Constraint(m) => OpsError::Conflict(m),
            StoreError::Invalid(m) => OpsError::Invalid(m),
            other => OpsError::Internal(other.to_string()),
        }
    }
}

/// Everything the service layer works on.
pub struct Ops {
    pub(crate) store: Arc<Store>,
    pub(crate) broker: Arc<Broker>,
    pub(crate) rtc: Arc<MockRtc>,
    pub(crate) sampler: Arc<Sampler>,
    pub(crate) tarpit: crate::tarpit::Tarpit,
    /// Where everything listens.
    pub ports: PortsFile,
    /// `--dev`: the console opens without sign-in on loopback.
    pub dev: bool,
    /// The controller task, to report whether it runs.
    pub(crate) controller: Option<std::sync::Arc<crate::controller::Health>>,
    /// Unix milliseconds at start.
    pub started_at: i64,
    /// Maximum client id length (for the device report).
    pub(crate) max_client_id_len: usize,
}

/// What `Ops::new` needs.
pub struct OpsDeps {
    /// A store connection of its own.
    pub store: Arc<Store>,
    /// The broker.
    pub broker: Arc<Broker>,
    /// The mock RTC service.
    pub rtc: Arc<MockRtc>,
    /// Listener ports.
    pub ports: PortsFile,
    /// `--dev`.
    pub dev: bool,
    /// The controller task, if one runs.
    pub controller: Option<std::sync::Arc<crate::controller::Health>>,
    /// Maximum client id length.
    pub max_client_id_len: usize,
}

impl Ops {
    /// The service layer, with its stats sampler started.
    pub fn new(d: OpsDeps) -> Arc<Ops> {
        let ops = Arc::new(Ops {
            store: d.store,
            broker: d.broker,
            rtc: d.rtc,
            sampler: Arc::new(Sampler::default()),
            tarpit: crate::tarpit::Tarpit::new(
                3,
                std::time::Duration::from_secs(600),
                std::time::Duration::from_secs(8),
            ),
            ports: d.ports,
            dev: d.dev,
            controller: d.controller,
            started_at: crate::controller::now_ms(),
            max_client_id_len: d.max_client_id_len,
        });
        tokio::spawn(monitor::sample_forever(Arc::downgrade(&ops)));
        ops
    }

    /// Runs blocking store work off the async threads.
    pub(crate) async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, OpsError> {
        let s = self.store.clone();
        match tokio::task::spawn_blocking(move || f(&s)).await {
            Ok(r) => r.map_err(OpsError::from),
            Err(e) => Err(OpsError::Internal(e.to_string())),
        }
    }

    /// Runs a provisioning change, then applies it to the broker at once
    /// (connections whose group or credential went away are ended).
    pub(crate) async fn change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, OpsError> {
        let out = self.db(f).await?;
        self.broker.reload_directory().await;
        Ok(out)
    }
}
