//! The durable session store (sled, through rmqtt's session-storage
//! plugin): a clear error with the way out when it cannot be opened, and a
//! check that what a clean stop saved came back (sled recovers a damaged
//! log by dropping what follows the damage, silently).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::ConnectInfo;

use super::BrokerError;

/// Written on a clean stop: how many persistent sessions were saved.
const SAVED: &str = "sessions.saved.json";

/// Opens the store and restores the sessions it holds.
pub(crate) async fn open(scx: &ServerContext, state_dir: &Path) -> Result<(), BrokerError> {
    let began = std::time::Instant::now();
    let opened = rmqtt_session_storage::register(scx, true, false).await;
    tracing::info!(
        ms = began.elapsed().as_millis() as u64,
        "session store loaded"
    );
    opened.map_err(|e| {
        let dir = state_dir.join("sessions");
        BrokerError::Plugin {
            plugin: "session storage",
            reason: format!(
                "{e}. The session store {dir} cannot be opened. To start without it, \
                     move it aside (mv {dir} {dir}.broken) and start again: devices reconnect and \
                     subscribe again, messages queued for offline devices are lost \
                     (docs/operations.md, \"A damaged session store\")",
                dir = dir.display()
            ),
        }
    })
}

/// Sessions that outlive their connection (clean session off).
pub(crate) async fn persistent(scx: &ServerContext) -> usize {
    let sessions: Vec<_> = {
        let shared = scx.extends.shared().await;
        shared.iter().filter_map(|e| e.session()).collect()
    };
    let mut n = 0;
    for s in sessions {
        let clean = match s.connect_info().await.as_deref() {
            Ok(ConnectInfo::V3(_, c)) => c.clean_session,
            Ok(ConnectInfo::V5(_, c)) => c.clean_start,
            Err(_) => true,
        };
        n += usize::from(!clean && !s.id.client_id.starts_with(super::hooks::PROBE_PREFIX));
    }
    n
}

/// Once the plugin has restored the saved sessions (in the background: the
/// count stops changing), compares them with what the last clean stop
/// saved (nothing to compare after a crash), then forgets that figure.
pub(crate) async fn check_restored(
    scx: ServerContext,
    state_dir: PathBuf,
    stats: Arc<super::BrokerStats>,
) {
    let path = state_dir.join(SAVED);
    let saved: Option<usize> = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["persistent_sessions"].as_u64())
        .map(|n| n as usize);
    let _ = std::fs::remove_file(&path);
    let Some(saved) = saved else {
        return;
    };
    let (mut restored, mut stable) = (persistent(&scx).await, 0);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let n = persistent(&scx).await;
        stable = if n == restored { stable + 1 } else { 0 };
        restored = n;
        if restored >= saved || stable >= 10 {
            break;
        }
    }
    if restored < saved {
        stats
            .sessions_lost
            .store((saved - restored) as u64, Ordering::Relaxed);
        tracing::error!(
            saved,
            restored,
            "the session store gave back fewer sessions than the last clean stop saved: it was damaged; \
             the missing devices' subscriptions and queued messages are lost (they reconnect and \
             subscribe again; docs/operations.md, \"A damaged session store\")"
        );
    } else {
        tracing::info!(restored, "saved sessions restored");
    }
}

/// Records how many persistent sessions a clean stop saved.
pub(crate) fn record_saved(state_dir: &Path, n: usize) {
    let body = serde_json::json!({ "persistent_sessions": n }).to_string();
    if let Err(e) = std::fs::write(state_dir.join(SAVED), body) {
        tracing::warn!("{SAVED} not written: {e}");
    }
}
