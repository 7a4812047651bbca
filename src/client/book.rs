//! The client's picture of its calls, kept from replies, events and sync
//! snapshots. A snapshot replaces everything, so a lost message never
//! leaves it wrong for longer than one reconnect.

use std::collections::BTreeMap;

use crate::calls::{CallState, CallView, Event, Kind, Media, PState, ParticipantView};

use super::Snapshot;

/// A missed call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    /// Call id.
    pub call_id: String,
    /// Who called.
    pub from: String,
    /// When, ms since the Unix epoch.
    pub at: i64,
}

/// Calls this client is in and invitations ringing for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallBook {
    /// Calls this user is in, by call id.
    pub calls: BTreeMap<String, CallView>,
    /// Invitations ringing for this user, by call id.
    pub invites: BTreeMap<String, CallView>,
    /// Missed calls seen, oldest first.
    pub missed: Vec<Missed>,
}

impl CallBook {
    /// Takes a sync snapshot as the truth.
    pub fn replace(&mut self, s: &Snapshot) {
        self.calls = s
            .calls
            .iter()
            .map(|c| (c.call_id.clone(), c.clone()))
            .collect();
        self.invites = s
            .invites
            .iter()
            .map(|c| (c.call_id.clone(), c.clone()))
            .collect();
    }

    /// A call this user now takes part in (from a start, accept or invite reply).
    pub fn joined(&mut self, call: &CallView) {
        self.invites.remove(&call.call_id);
        self.calls.insert(call.call_id.clone(), call.clone());
    }

    /// Forgets a call (declined, left, cancelled by us).
    pub fn forget(&mut self, call_id: &str) {
        self.invites.remove(call_id);
        self.calls.remove(call_id);
    }

    /// Applies an event from the controller.
    pub fn apply(&mut self, e: &Event) {
        match e {
            Event::Invite { call, .. } => {
                if !self.calls.contains_key(&call.call_id) {
                    self.invites.insert(call.call_id.clone(), call.clone());
                }
            }
            Event::Participant {
                call_id,
                user,
                state,
            } => {
                for c in self
                    .calls
                    .get_mut(call_id)
                    .into_iter()
                    .chain(self.invites.get_mut(call_id))
                {
                    // Someone new in a 1:1 call: it became a meeting (call.invite).
                    if c.kind == Kind::Call && !c.participants.contains_key(user) {
                        c.kind = Kind::Meeting;
                    }
                    let p = c
                        .participants
                        .entry(user.clone())
                        .or_insert(ParticipantView {
                            state: *state,
                            audio_muted: false,
                            video_muted: false,
                        });
                    p.state = *state;
                    if matches!(state, PState::Accepted | PState::Joined) {
                        c.state = CallState::Active;
                    }
                }
            }
            Event::AnsweredElsewhere { call_id, .. } | Event::Cancelled { call_id, .. } => {
                self.invites.remove(call_id);
            }
            Event::Ended { call_id, .. } | Event::Removed { call_id, .. } => self.forget(call_id),
            Event::Missed {
                call_id, from, at, ..
            } => {
                self.invites.remove(call_id);
                self.missed.push(Missed {
                    call_id: call_id.clone(),
                    from: from.clone(),
                    at: *at,
                });
            }
            Event::Muted {
                call_id,
                user,
                media,
                muted,
                ..
            } => {
                if let Some(p) = self
                    .calls
                    .get_mut(call_id)
                    .and_then(|c| c.participants.get_mut(user))
                {
                    match media {
                        Media::Audio => p.audio_muted = *muted,
                        Media::Video => p.video_muted = *muted,
                    }
                }
            }
            Event::Host { call_id, user } => {
                if let Some(c) = self.calls.get_mut(call_id) {
                    c.host = user.clone();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_third_participant_makes_a_call_a_meeting() {
        let view: CallView = serde_json::from_value(serde_json::json!({
            "call_id": "c1", "kind": "call", "media": "video", "title": null, "host": "alice",
            "state": "active", "created_at": 1,
            "participants": {
                "alice": {"state": "joined", "audio_muted": false, "video_muted": false},
                "bob": {"state": "joined", "audio_muted": false, "video_muted": false}
            }
        }))
        .unwrap();
        let mut book = CallBook::default();
        book.joined(&view);
        let seen = |user: &str, state| Event::Participant {
            call_id: "c1".into(),
            user: user.into(),
            state,
        };
        book.apply(&seen("bob", PState::Left));
        assert_eq!(
            book.calls["c1"].kind,
            Kind::Call,
            "a known user changes nothing"
        );
        book.apply(&seen("carol", PState::Invited));
        assert_eq!(book.calls["c1"].kind, Kind::Meeting);
    }
}
