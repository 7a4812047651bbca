//! Periodic credential checks: token expiry notices and ends, and ending
//! connections whose group or credential was deleted.

use std::sync::Arc;
use std::time::Duration;

use rmqtt::context::ServerContext;
use rmqtt::types::Reason;

use super::conns::{revoked, token_expiry, BrokerState};
use super::stats::bump;

/// How long a client has to receive `$SYS/tokenInvalidNotice` before its
/// connection is closed.
const NOTICE_GRACE: Duration = Duration::from_millis(300);

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
        state.conns.remove(&c.principal.client_id, c.since);
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
