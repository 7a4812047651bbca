//! The mock RTC channel service: channels registered by the controller,
//! joins checked against ARTC tokens, membership, revocation, and join/leave
//! callbacks to the controller.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use rand::distr::{Alphanumeric, SampleString};
use serde::Serialize;
use tokio::sync::mpsc;

pub use super::join::JoinRequest;
use super::token::{self, JoinParams};
use super::{RtcEvent, RtcProvider};

/// Why a join or leave was refused (HTTP status and error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcError {
    /// The token does not match its fields, or the AppID is not ours.
    #[error("invalid token")]
    InvalidToken,
    /// The token's timestamp has passed.
    #[error("token expired")]
    Expired,
    /// The user was removed from the channel after this token was issued.
    #[error("access to this channel was revoked")]
    Revoked,
    /// No such channel, or it was closed.
    #[error("no such channel, or it is closed")]
    NoChannel,
    /// Not a member (leave) or malformed request.
    #[error("{0}")]
    BadRequest(String),
}

impl RtcError {
    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            RtcError::InvalidToken | RtcError::Expired => 401,
            RtcError::Revoked => 403,
            RtcError::NoChannel => 404,
            RtcError::BadRequest(_) => 400,
        }
    }

    /// A stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RtcError::InvalidToken => "invalid_token",
            RtcError::Expired => "token_expired",
            RtcError::Revoked => "revoked",
            RtcError::NoChannel => "no_channel",
            RtcError::BadRequest(_) => "bad_request",
        }
    }
}

/// A member of a channel and where to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Peer {
    /// RTC user id.
    pub userid: String,
    /// The device's client id, if it said which when joining.
    pub client_id: Option<String>,
}

/// A successful join.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Joined {
    /// Session id, for leaving.
    pub session: String,
    /// Channel id.
    pub channel: String,
    /// Everyone in the channel now.
    pub members: Vec<String>,
    /// Everyone in the channel now, with their client ids.
    pub peers: Vec<Peer>,
}

#[derive(Debug, Default)]
struct Channel {
    open: bool,
    call_id: String,
    /// RTC user to session id.
    members: BTreeMap<String, String>,
    /// RTC user to the client id it joined from.
    clients: BTreeMap<String, String>,
    /// RTC user to the time (ms) their access was revoked.
    revoked: HashMap<String, i64>,
}

/// The mock RTC channel service.
pub struct MockRtc {
    app_id: String,
    app_key: String,
    token_ttl_secs: i64,
    gslb: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    events: mpsc::UnboundedSender<RtcEvent>,
}

impl MockRtc {
    /// A service for one AppID/AppKey; joins and leaves go to the returned receiver.
    pub fn new(
        app_id: &str,
        app_key: &str,
        token_ttl_secs: i64,
        gslb: Vec<String>,
    ) -> (MockRtc, mpsc::UnboundedReceiver<RtcEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rtc = MockRtc {
            app_id: app_id.into(),
            app_key: app_key.into(),
            token_ttl_secs,
            gslb,
            channels: Mutex::new(HashMap::new()),
            events: tx,
        };
        (rtc, rx)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Channel>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Joins a channel with a token, at `now_ms`.
    pub fn join(&self, r: &JoinRequest, now_ms: i64) -> Result<Joined, RtcError> {
        let out = self.join_checked(r, now_ms);
        let result = match &out {
            Ok(_) => "ok",
            Err(e) => e.code(),
        };
        let call_id = self
            .lock()
            .get(&r.channel)
            .map(|c| c.call_id.clone())
            .unwrap_or_default();
        tracing::info!(
            client_id = r.client_id.as_deref().unwrap_or(""),
            call_id,
            channel = r.channel,
            user = r.userid,
            result,
            "rtc join"
        );
        crate::metrics::get()
            .rtc_joins
            .with_label_values(&[result])
            .inc();
        out
    }

    fn join_checked(&self, r: &JoinRequest, now_ms: i64) -> Result<Joined, RtcError> {
        let expected = token::token(
            &self.app_id,
            &self.app_key,
            &r.channel,
            &r.userid,
            &r.nonce,
            r.timestamp,
        );
        // In constant time: how much of a guessed token matches must not
        // show in how long the refusal takes.
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), r.token.as_bytes()).into();
        if r.appid != self.app_id || !matches {
            return Err(RtcError::InvalidToken);
        }
        if r.timestamp * 1000 <= now_ms {
            return Err(RtcError::Expired);
        }
        let mut channels = self.lock();
        let ch = channels
            .get_mut(&r.channel)
            .filter(|c| c.open)
            .ok_or(RtcError::NoChannel)?;
        if let Some(at) = ch.revoked.get(&r.userid) {
            if issued_at(&r.nonce).is_none_or(|issued| issued <= *at) {
                return Err(RtcError::Revoked);
            }
        }
        let session = format!("s-{}", Alphanumeric.sample_string(&mut rand::rng(), 16));
        let fresh = ch
            .members
            .insert(r.userid.clone(), session.clone())
            .is_none();
        match &r.client_id {
            Some(c) => ch.clients.insert(r.userid.clone(), c.clone()),
            None => ch.clients.remove(&r.userid),
        };
        let members = ch.members.keys().cloned().collect();
        let peers = peers_of(ch);
        drop(channels);
        if fresh {
            let _ = self.events.send(RtcEvent::Joined {
                channel: r.channel.clone(),
                user: r.userid.clone(),
            });
        }
        Ok(Joined {
            session,
            channel: r.channel.clone(),
            members,
            peers,
        })
    }

    /// Leaves a channel.
    /// Idempotent: `Ok(false)` when `user` is no longer in the channel (it
    /// left, was removed, or the call ended and the channel is gone).
    pub fn leave(&self, channel: &str, user: &str, session: &str) -> Result<bool, RtcError> {
        let mut channels = self.lock();
        // A closed channel is forgotten: whoever was in it is out already.
        let Some(ch) = channels.get_mut(channel) else {
            return Ok(false);
        };
        match ch.members.get(user) {
            None => return Ok(false),
            Some(s)
                if !bool::from(subtle::ConstantTimeEq::ct_eq(
                    s.as_bytes(),
                    session.as_bytes(),
                )) =>
            {
                return Err(RtcError::BadRequest(format!(
                    "{user} has no session {session} in {channel}"
                )))
            }
            Some(_) => {}
        }
        ch.members.remove(user);
        ch.clients.remove(user);
        drop(channels);
        let _ = self.events.send(RtcEvent::Left {
            channel: channel.into(),
            user: user.into(),
        });
        Ok(true)
    }

    /// Who is in a channel and where to reach them.
    pub fn peers(&self, channel: &str) -> Vec<Peer> {
        self.lock().get(channel).map(peers_of).unwrap_or_default()
    }

    /// Who is in a channel, and the call it belongs to.
    pub fn members(&self, channel: &str) -> Option<(String, bool, Vec<String>)> {
        self.lock().get(channel).map(|c| {
            (
                c.call_id.clone(),
                c.open,
                c.members.keys().cloned().collect(),
            )
        })
    }
}

/// A channel as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChannelInfo {
    /// Channel id.
    pub channel: String,
    /// The call it belongs to.
    pub call_id: String,
    /// Whether members may still join.
    pub open: bool,
    /// RTC user ids in the channel now.
    pub members: Vec<String>,
    /// The members with the client ids they joined from.
    pub peers: Vec<Peer>,
}

impl MockRtc {
    /// Every channel the service knows (open ones first, then by id).
    pub fn channels(&self) -> Vec<ChannelInfo> {
        let mut all: Vec<ChannelInfo> = self
            .lock()
            .iter()
            .map(|(id, c)| ChannelInfo {
                channel: id.clone(),
                call_id: c.call_id.clone(),
                open: c.open,
                members: c.members.keys().cloned().collect(),
                peers: peers_of(c),
            })
            .collect();
        all.sort_by(|a, b| b.open.cmp(&a.open).then_with(|| a.channel.cmp(&b.channel)));
        all
    }
}

fn peers_of(ch: &Channel) -> Vec<Peer> {
    ch.members
        .keys()
        .map(|u| Peer {
            userid: u.clone(),
            client_id: ch.clients.get(u).cloned(),
        })
        .collect()
}

/// The issue time (ms) the mock embeds in its nonces.
fn issued_at(nonce: &str) -> Option<i64> {
    nonce.split('-').nth(1)?.parse().ok()
}

impl RtcProvider for MockRtc {
    fn open_channel(&self, channel: &str, call_id: &str) {
        let mut channels = self.lock();
        let ch = channels.entry(channel.to_string()).or_default();
        ch.open = true;
        ch.call_id = call_id.to_string();
    }

    /// Closes a channel and forgets it (a late join gets `no_channel`), so
    /// channels do not pile up with the call history.
    fn close_channel(&self, channel: &str) {
        let gone: Vec<String> = match self.lock().remove(channel) {
            Some(ch) => ch.members.into_keys().collect(),
            None => vec![],
        };
        for user in gone {
            let _ = self.events.send(RtcEvent::Left {
                channel: channel.into(),
                user,
            });
        }
    }

    fn revoke(&self, channel: &str, user: &str, now_ms: i64) {
        let was_in = {
            let mut channels = self.lock();
            // A channel that is gone (its call ended) has nothing to revoke.
            let Some(ch) = channels.get_mut(channel) else {
                return;
            };
            ch.revoked.insert(user.to_string(), now_ms);
            ch.clients.remove(user);
            ch.members.remove(user).is_some()
        };
        if was_in {
            let _ = self.events.send(RtcEvent::Left {
                channel: channel.into(),
                user: user.into(),
            });
        }
    }

    fn join_params(&self, channel: &str, user: &str, issued_ms: i64) -> JoinParams {
        // The nonce carries the issue time, so a revocation can refuse older
        // tokens only; it is derived, not random, so issuing the same
        // parameters again (a retried request) gives the same token.
        let tag = token::token(&self.app_id, "nonce", channel, user, "", issued_ms);
        let nonce = format!("AK-{issued_ms}-{}", &tag[..8]);
        let expiry = issued_ms / 1000 + self.token_ttl_secs;
        JoinParams::issue(
            &self.app_id,
            &self.app_key,
            channel,
            user,
            &nonce,
            expiry,
            self.gslb.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(p: &JoinParams) -> JoinRequest {
        JoinRequest {
            appid: p.appid.clone(),
            channel: p.channel.clone(),
            userid: p.userid.clone(),
            nonce: p.nonce.clone(),
            timestamp: p.timestamp,
            token: p.token.clone(),
            client_id: Some(format!("GID_web@@@{}", p.userid)),
        }
    }

    #[test]
    fn join_checks_token_channel_expiry_and_revocation() {
        let (rtc, mut rx) = MockRtc::new("app", "key", 60, vec![]);
        let now = 1_000_000_000;
        let p = rtc.join_params("ch1", "bob", now);
        assert_eq!(rtc.join(&request(&p), now), Err(RtcError::NoChannel));
        rtc.open_channel("ch1", "c1");
        let ok = rtc.join(&request(&p), now).unwrap();
        assert_eq!(ok.members, vec!["bob".to_string()]);
        assert_eq!(
            ok.peers,
            vec![Peer {
                userid: "bob".into(),
                client_id: Some("GID_web@@@bob".into())
            }],
            "members say where to reach them"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            RtcEvent::Joined {
                channel: "ch1".into(),
                user: "bob".into()
            }
        );

        let mut forged = request(&p);
        forged.userid = "mallory".into();
        assert_eq!(rtc.join(&forged, now), Err(RtcError::InvalidToken));
        assert_eq!(rtc.join(&request(&p), now + 61_000), Err(RtcError::Expired));

        rtc.revoke("ch1", "bob", now + 10);
        assert_eq!(
            rx.try_recv().unwrap(),
            RtcEvent::Left {
                channel: "ch1".into(),
                user: "bob".into()
            }
        );
        assert_eq!(rtc.join(&request(&p), now + 20), Err(RtcError::Revoked));
        let again = rtc.join_params("ch1", "bob", now + 30);
        assert!(
            rtc.join(&request(&again), now + 40).is_ok(),
            "a token issued after the revocation works"
        );

        rtc.close_channel("ch1");
        assert_eq!(
            rtc.join(&request(&again), now + 50),
            Err(RtcError::NoChannel)
        );
    }

    #[test]
    fn a_closed_channel_is_forgotten() {
        let (rtc, mut rx) = MockRtc::new("app", "key", 60, vec![]);
        rtc.open_channel("ch1", "c1");
        let p = rtc.join_params("ch1", "bob", 0);
        rtc.join(&request(&p), 0).unwrap();
        let _ = rx.try_recv();
        rtc.close_channel("ch1");
        assert!(
            matches!(rx.try_recv(), Ok(RtcEvent::Left { .. })),
            "members are told"
        );
        assert!(rtc.channels().is_empty(), "nothing left behind");
        rtc.revoke("ch1", "bob", 1);
        assert!(
            rtc.channels().is_empty(),
            "a late revocation creates nothing"
        );
        assert_eq!(rtc.join(&request(&p), 0).unwrap_err(), RtcError::NoChannel);
        assert_eq!(
            rtc.leave("ch1", "bob", "s-any"),
            Ok(false),
            "leaving it is fine"
        );
    }

    #[test]
    fn leave_needs_the_session() {
        let (rtc, mut rx) = MockRtc::new("app", "key", 60, vec![]);
        rtc.open_channel("ch1", "c1");
        let p = rtc.join_params("ch1", "bob", 0);
        let s = rtc.join(&request(&p), 0).unwrap().session;
        let _ = rx.try_recv();
        assert!(rtc.leave("ch1", "bob", "nope").is_err());
        assert!(rtc.leave("ch1", "bob", &s).unwrap());
        assert!(
            !rtc.leave("ch1", "bob", &s).unwrap(),
            "leaving twice is fine"
        );
        assert_eq!(
            rx.try_recv().unwrap(),
            RtcEvent::Left {
                channel: "ch1".into(),
                user: "bob".into()
            }
        );
    }

    #[test]
    fn every_error_is_documented_with_its_status() {
        let page = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/refusals.md"),
        )
        .expect("docs/refusals.md");
        let all = [
            RtcError::InvalidToken,
            RtcError::Expired,
            RtcError::Revoked,
            RtcError::NoChannel,
            RtcError::BadRequest(String::new()),
        ];
        for e in all {
            let row = format!("| {} | `{}` |", e.status(), e.code());
            assert!(page.contains(&row), "docs/refusals.md lacks {row}");
        }
    }
}
