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
    reload_directory_since(scx, state, tokio::time::Instant::now()).await
}

/// [`reload_directory`] for a check asked for at `asked_at`: skipped if a
/// check that began after that has already run (it saw everything
/// provisioned before `asked_at`), so a burst of failed CONNECTs costs one
/// look at the database, not one each.
pub(crate) async fn reload_directory_since(
    scx: &ServerContext,
    state: &BrokerState,
    asked_at: tokio::time::Instant,
) -> Option<usize> {
    let source = state.source.as_deref()?;
    one_reload_at_a_time(&state.reload, asked_at, source, |fresh| async move {
        state.directory.set(fresh);
        bump(&state.stats.directory_reloads);
        end_revoked(scx, state).await
    })
    .await
}

/// Takes a snapshot from `source` and `apply`s it, holding `lock` for both;
/// nothing if a check that began at or after `asked_at` already ran.
async fn one_reload_at_a_time<F, Fut>(
    lock: &tokio::sync::Mutex<Option<tokio::time::Instant>>,
    asked_at: tokio::time::Instant,
    source: &dyn DirectorySource,
    apply: F,
) -> Option<usize>
where
    F: FnOnce(Directory) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut last = lock.lock().await;
    if last.is_some_and(|began| began >= asked_at) {
        return None;
    }
    *last = Some(tokio::time::Instant::now());
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
        // DISCONNECT 0x87 with why (MQTT 5); 3.1.1 clients just lose the connection.
        let text = Reason::MqttError(rmqtt::net::MqttError::PublishAckReason(
            rmqtt::codec::v5::PublishAckReason::NotAuthorized,
            format!("not authorized: {why}").into(),
        ));
        let (scx, client_id) = (scx.clone(), c.principal.client_id.clone());
        match problem {
            // As the cloud service does: tell the client, then disconnect it,
            // leaving the notice time to be delivered.
            Some(p) => {
                super::notify_token_invalid(&scx, &client_id, p).await;
                tokio::spawn(async move {
                    tokio::time::sleep(NOTICE_GRACE).await;
                    super::close_client(&scx, &client_id, text).await;
                });
            }
            None => {
                super::close_client(&scx, &client_id, text).await;
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
        let lock = tokio::sync::Mutex::new(None);
        let source = Once(AtomicBool::new(false));
        let now = tokio::time::Instant::now;
        let current = Mutex::new(Directory::default());
        let (applying_tx, applying_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        // The periodic reload takes the snapshot and is slow to apply it.
        let periodic = one_reload_at_a_time(&lock, now(), &source, |d| async {
            let _ = applying_tx.send(());
            let _ = release_rx.await;
            *current.lock().unwrap() = d;
            0
        });
        // A CONNECT's check starts while it is applying.
        let check = async {
            applying_rx.await.unwrap();
            let r = one_reload_at_a_time(&lock, now(), &source, |_| async { 1 }).await;
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

    /// Counts how often it is asked.
    struct Counting(std::sync::atomic::AtomicUsize);

    #[async_trait::async_trait]
    impl DirectorySource for Counting {
        async fn changed(&self) -> Option<Directory> {
            self.0.fetch_add(1, Ordering::SeqCst);
            None
        }
    }

    #[tokio::test]
    async fn a_burst_of_checks_asks_the_source_once() {
        let lock = tokio::sync::Mutex::new(None);
        let source = Counting(Default::default());
        let asked = tokio::time::Instant::now();
        let guard = lock.lock().await;
        let checks: Vec<_> = (0..10)
            .map(|_| one_reload_at_a_time(&lock, asked, &source, |_| async { 0 }))
            .collect();
        drop(guard);
        futures::future::join_all(checks).await;
        assert_eq!(source.0.load(Ordering::SeqCst), 1);
        let later = tokio::time::Instant::now();
        one_reload_at_a_time(&lock, later, &source, |_| async { 0 }).await;
        assert_eq!(
            source.0.load(Ordering::SeqCst),
            2,
            "a later failure looks again"
        );
    }
}
