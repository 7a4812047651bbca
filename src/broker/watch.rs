//! Periodic credential checks: token expiry notices and ends, and ending
//! connections whose group or credential was deleted.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::Reason;

use super::conns::{revoked, token_expiry, BrokerState};
use super::stats::bump;
use super::DirectorySource;
use crate::directory::Directory;

/// How long a client has to receive `$SYS/tokenInvalidNotice` before its
/// connection is closed.
const NOTICE_GRACE: Duration = Duration::from_millis(300);

/// Applies a newer provisioning snapshot, if the source has one, and ends
/// the connections it revoked; `Some(connections ended)` if there was one.
/// One reload at a time: the source hands a snapshot out only once, so a
/// check racing a reload in progress must wait for it to be applied, or a
/// CONNECT with a credential created a moment ago would be checked against
/// the old directory (seen in a test: refused 0.2 ms before the periodic
/// reload, which had already taken the snapshot, applied it).
pub(crate) async fn reload_directory(scx: &ServerContext, state: &BrokerState) -> Option<usize> {
    let source = state.source.as_deref()?;
    one_reload_at_a_time(&state.reload, source, |fresh| async move {
        state.directory.set(fresh);
        bump(&state.stats.directory_reloads);
        end_revoked(scx, state).await
    })
    .await
}

/// Takes a snapshot from `source` and `apply`s it, holding `lock` for both.
async fn one_reload_at_a_time<F, Fut>(
    lock: &tokio::sync::Mutex<()>,
    source: &dyn DirectorySource,
    apply: F,
) -> Option<usize>
where
    F: FnOnce(Directory) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let _one_at_a_time = lock.lock().await;
    let fresh = source.changed().await?;
    Some(apply(fresh).await)
}

/// Every second: warn Token-mode clients whose token ends within `notice`
/// (`$SYS/tokenExpireNotice`, once per token), end the connections whose
/// tokens expired or whose credentials were revoked.
pub(crate) async fn credentials(scx: ServerContext, state: Arc<BrokerState>, notice: Duration) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        end_revoked(&scx, &state).await;
        let dir = state.directory.get();
        let now = super::unix_now();
        let due = |c: &super::conns::Conn| {
            !c.expire_noticed
                && token_expiry(&dir, c).is_some_and(|(at, _)| at - now <= notice.as_secs() as i64)
        };
        for c in state.conns.matching(due) {
            if let Some((expires_at, kind)) = token_expiry(&dir, &c) {
                if expires_at - now <= notice.as_secs() as i64 {
                    let body = serde_json::json!({ "expireTime": expires_at * 1000, "type": kind.as_str() });
                    super::bridge::notify(
                        &scx,
                        &c.principal.client_id,
                        "$SYS/tokenExpireNotice",
                        body.to_string().into(),
                    )
                    .await;
                    state
                        .conns
                        .mark_expire_noticed(&c.principal.client_id, c.since);
                }
            }
        }
        state.tarpit.prune();
    }
}

/// Ends every connection the current directory no longer allows; returns how many.
pub(crate) async fn end_revoked(scx: &ServerContext, state: &BrokerState) -> usize {
    let dir = state.directory.get();
    let now = super::unix_now();
    let mut ended = 0;
    for c in state.conns.matching(|c| revoked(&dir, c, now).is_some()) {
        let Some((why, problem)) = revoked(&dir, &c, now) else {
            continue;
        };
        tracing::info!(client_id = %c.principal.client_id, "ending connection: {why}");
        // Forgotten at once: from now on its publishes and subscribes are refused.
        state.conns.remove(&c.principal.client_id, c.since, false);
        bump(&state.stats.revoked_connections);
        ended += 1;
        let text = format!("{}{why}", rmqtt::session::NOT_AUTHORIZED_PREFIX);
        let (scx, client_id) = (scx.clone(), c.principal.client_id.clone());
        match problem {
            // As the cloud service does: tell the client, then disconnect it,
            // leaving the notice time to be delivered.
            Some(p) => {
                super::notify_token_invalid(&scx, &client_id, p).await;
                tokio::spawn(async move {
                    tokio::time::sleep(NOTICE_GRACE).await;
                    super::close_client(&scx, &client_id, Reason::from(text)).await;
                });
            }
            None => {
                super::close_client(&scx, &client_id, Reason::from(text)).await;
            }
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// Hands out one new snapshot, then none (like the SQLite-backed source).
    struct Once(AtomicBool);

    #[async_trait::async_trait]
    impl DirectorySource for Once {
        async fn changed(&self) -> Option<Directory> {
            (!self.0.swap(true, Ordering::SeqCst)).then(|| Directory {
                passwordless_instance: Some("new".into()),
                ..Directory::default()
            })
        }
    }

    #[tokio::test]
    async fn a_check_during_a_reload_returns_after_the_snapshot_is_applied() {
        let lock = tokio::sync::Mutex::new(());
        let source = Once(AtomicBool::new(false));
        let current = Mutex::new(Directory::default());
        let (applying_tx, applying_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        // The periodic reload takes the snapshot and is slow to apply it.
        let periodic = one_reload_at_a_time(&lock, &source, |d| async {
            let _ = applying_tx.send(());
            let _ = release_rx.await;
            *current.lock().unwrap() = d;
            0
        });
        // A CONNECT's check starts while it is applying.
        let check = async {
            applying_rx.await.unwrap();
            let r = one_reload_at_a_time(&lock, &source, |_| async { 1 }).await;
            (r, current.lock().unwrap().passwordless_instance.clone())
        };
        let release = async {
            tokio::task::yield_now().await;
            let _ = release_tx.send(());
        };
        let (p, (c, seen), ()) = tokio::join!(periodic, check, release);
        assert_eq!(p, Some(0));
        assert_eq!(c, None, "the snapshot is handed out once");
        assert_eq!(
            seen.as_deref(),
            Some("new"),
            "the check returned only after the snapshot was applied"
        );
    }
}
