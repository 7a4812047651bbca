//! Loops that run beside the appliance until it stops: provisioning
//! changes made by other processes, and the renewal of the generated TLS
//! certificate.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::blocking;
use crate::broker::{Broker, DirectorySource};
use crate::certs;
use crate::directory::Directory;
use crate::store::{Store, DEMO_INSTANCE};

/// Provisioning as the broker sees it: the store, and the SQLite data
/// version last loaded (another process's commit changes it).
pub(crate) struct Provisioning {
    pub(crate) store: Arc<Store>,
    pub(crate) seen: tokio::sync::Mutex<Option<i64>>,
    pub(crate) dev: bool,
}

#[async_trait::async_trait]
impl DirectorySource for Provisioning {
    async fn changed(&self) -> Option<Directory> {
        let mut seen = self.seen.lock().await;
        let now = blocking(&self.store, |s| s.data_version()).await.ok();
        if now == *seen {
            return None;
        }
        match blocking(&self.store, |s| s.directory()).await {
            Ok(mut d) => {
                *seen = now;
                if self.dev {
                    d.passwordless_instance = Some(DEMO_INSTANCE.into());
                }
                Some(d)
            }
            Err(e) => {
                tracing::error!("provisioning changed but cannot be read: {e:#}");
                None
            }
        }
    }
}

/// Renews the generated server certificate when it is within 30 days of
/// its end (it lasts 90), checking twice a day; the TLS listeners follow
/// the files (`certs::reload`), so nothing restarts.
pub(super) async fn renew_certificates(data_dir: PathBuf, names: Vec<String>) {
    let mut tick = tokio::time::interval(Duration::from_secs(12 * 3600));
    tick.tick().await; // the first tick is now: start-up just did it
    loop {
        tick.tick().await;
        let (dir, names) = (data_dir.clone(), names.clone());
        let tls = crate::config::Tls::default();
        match tokio::task::spawn_blocking(move || certs::ensure_for(&dir, &tls, &names)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!("renewing the TLS certificate failed (will retry in 12 h): {e}")
            }
            Err(e) => tracing::error!("renewing the TLS certificate panicked: {e}"),
        }
    }
}

/// Reloads the directory whenever another process (the `mqrtc` CLI)
/// changes provisioning, and lets the broker end what was revoked.
pub(super) async fn follow_provisioning(broker: Arc<Broker>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        if let Some(ended) = broker.reload_directory().await {
            tracing::info!(ended, "provisioning changed: directory reloaded");
        }
    }
}
