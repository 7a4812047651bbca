//! Setting up: start, invite, ringing, accept, decline, cancel, ring timeout.

use std::collections::BTreeMap;

use super::engine::{BusyPolicy, Engine};
use super::types::*;

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        from: &Device,
        to: Vec<String>,
        kind: Kind,
        media: Media,
        title: Option<String>,
        now: Millis,
        fresh_id: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let mut invitees: Vec<String> = Vec::new();
        for u in to {
            if u.is_empty() || u == from.user {
                return Err(CallError::BadRequest);
            }
            if !invitees.contains(&u) {
                invitees.push(u);
            }
        }
        if invitees.is_empty() || (kind == Kind::Call && invitees.len() != 1) {
            return Err(CallError::BadRequest);
        }
        if kind == Kind::Call {
            let callee = &invitees[0];
            if self.devices_of(&from.instance, callee).is_empty() {
                return Err(CallError::UnknownUser);
            }
            if self.rules.busy == BusyPolicy::Reject
                && self.in_other_call(&from.instance, callee, fresh_id)
            {
                return Err(CallError::Busy);
            }
        } else if invitees
            .iter()
            .all(|u| self.devices_of(&from.instance, u).is_empty())
        {
            return Err(CallError::UnknownUser);
        }
        let mut participants = BTreeMap::new();
        participants.insert(
            from.user.clone(),
            Participant {
                state: PState::Accepted,
                invited_at: now,
                ring_until: None,
                device: Some(from.client_id.clone()),
                joined_at: None,
                audio_muted: false,
                video_muted: false,
            },
        );
        let call = Call {
            id: fresh_id.to_string(),
            instance: from.instance.clone(),
            kind,
            media,
            title,
            channel: format!("ch{fresh_id}"),
            host: from.user.clone(),
            state: CallState::Ringing,
            participants,
            created_at: now,
            ended_at: None,
            max_end_at: now + self.rules.max_duration,
        };
        fx.push(Effect::OpenChannel {
            channel: call.channel.clone(),
            call_id: call.id.clone(),
        });
        fx.push(Effect::SetTimer {
            timer: Timer {
                call_id: call.id.clone(),
                kind: TimerKind::MaxDuration,
            },
            at: call.max_end_at,
        });
        self.restore_call(call);
        let unreachable = self.ring_users(from, fresh_id, &invitees, now, fx)?;
        let c = self.call_mut(fresh_id)?;
        let (view, channel) = (CallView::from(&*c), c.channel.clone());
        fx.push(Effect::Saved(fresh_id.to_string()));
        Ok(ReplyBody::Joined {
            call: view,
            join: JoinFor {
                call_id: fresh_id.to_string(),
                channel,
                user: from.user.clone(),
                issued_at: now,
            },
            unreachable,
        })
    }

    /// Invites `users` into call `call_id`: rings their devices, starts their
    /// ring timers. Returns the users that cannot be reached or are busy.
    fn ring_users(
        &mut self,
        from: &Device,
        call_id: &str,
        users: &[String],
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<Vec<String>, CallError> {
        let ring_until = now + self.rules.ring_timeout;
        let mut unreachable = Vec::new();
        for u in users {
            let devices = self.devices_of(&from.instance, u);
            let busy = self.in_other_call(&from.instance, u, call_id);
            let state = if devices.is_empty() {
                None
            } else if busy && self.rules.busy == BusyPolicy::Reject {
                Some(PState::Busy)
            } else {
                Some(PState::Invited)
            };
            let Some(state) = state else {
                unreachable.push(u.clone());
                continue;
            };
            let c = self.call_mut(call_id)?;
            c.participants.insert(
                u.clone(),
                Participant {
                    state,
                    invited_at: now,
                    ring_until: (state == PState::Invited).then_some(ring_until),
                    device: None,
                    joined_at: None,
                    audio_muted: false,
                    video_muted: false,
                },
            );
            if state == PState::Busy {
                unreachable.push(u.clone());
                continue;
            }
            let view = CallView::from(&*c);
            fx.push(Effect::SetTimer {
                timer: Timer {
                    call_id: call_id.to_string(),
                    kind: TimerKind::Ring(u.clone()),
                },
                at: ring_until,
            });
            let event = Event::Invite {
                call: view,
                from: from.user.clone(),
                waiting: busy,
            };
            self.notify(fx, devices, event, self.rules.ring_timeout);
        }
        Ok(unreachable)
    }

    pub(super) fn invite(
        &mut self,
        from: &Device,
        call_id: &str,
        to: Vec<String>,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let c = self.call_for(from, call_id)?;
        if !c
            .participants
            .get(&from.user)
            .is_some_and(|p| p.state.is_in())
        {
            return Err(CallError::NotParticipant);
        }
        let fresh: Vec<String> = to
            .into_iter()
            .filter(|u| {
                u != &from.user && !c.participants.get(u).is_some_and(|p| p.state.is_live())
            })
            .collect();
        if fresh.is_empty() {
            return Err(CallError::BadRequest);
        }
        // Inviting a third person turns a 1:1 call into a meeting.
        self.call_mut(call_id)?.kind = Kind::Meeting;
        let unreachable = self.ring_users(from, call_id, &fresh, now, fx)?;
        let ttl = self.rules.event_ttl;
        let c = self.call_mut(call_id)?;
        let view = CallView::from(&*c);
        let channel = c.channel.clone();
        let others = Engine::in_devices(c, None);
        for u in fresh.iter().filter(|u| !unreachable.contains(u)) {
            let event = Event::Participant {
                call_id: call_id.to_string(),
                user: u.clone(),
                state: PState::Invited,
            };
            self.notify(fx, others.clone(), event, ttl);
        }
        fx.push(Effect::Saved(call_id.to_string()));
        Ok(ReplyBody::Joined {
            call: view,
            join: JoinFor {
                call_id: call_id.to_string(),
                channel,
                user: from.user.clone(),
                issued_at: now,
            },
            unreachable,
        })
    }

    pub(super) fn ringing(
        &mut self,
        from: &Device,
        call_id: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let ttl = self.rules.event_ttl;
        let (_, p) = self.own_part(from, call_id)?;
        if p.state == PState::Invited {
            let c = self.call_mut(call_id)?;
            if let Some(p) = c.participants.get_mut(&from.user) {
                p.state = PState::Ringing;
            }
            let others = Engine::in_devices(c, Some(&from.user));
            let event = Event::Participant {
                call_id: call_id.to_string(),
                user: from.user.clone(),
                state: PState::Ringing,
            };
            self.notify(fx, others, event, ttl);
            fx.push(Effect::Saved(call_id.to_string()));
        }
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn accept(
        &mut self,
        from: &Device,
        call_id: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let (_, p) = self.own_part(from, call_id)?;
        match p.state {
            s if s.is_pending() => {}
            s if s.is_in() && p.device.as_deref() == Some(&from.client_id) => {
                return self.joined_reply(call_id, &from.user, now);
            }
            s if s.is_in() => return Err(CallError::AnsweredElsewhere),
            _ => return Err(CallError::InvalidState),
        }
        let ttl = self.rules.event_ttl;
        let siblings: Vec<String> = self
            .devices_of(&from.instance, &from.user)
            .into_iter()
            .filter(|d| d != &from.client_id)
            .collect();
        let c = self.call_mut(call_id)?;
        if let Some(p) = c.participants.get_mut(&from.user) {
            p.state = PState::Accepted;
            p.device = Some(from.client_id.clone());
            p.ring_until = None;
        }
        c.state = CallState::Active;
        let others = Engine::in_devices(c, Some(&from.user));
        fx.push(Effect::CancelTimer(Timer {
            call_id: call_id.to_string(),
            kind: TimerKind::Ring(from.user.clone()),
        }));
        let device = from.client_id.clone();
        self.notify(
            fx,
            siblings,
            Event::AnsweredElsewhere {
                call_id: call_id.to_string(),
                device,
            },
            ttl,
        );
        let event = Event::Participant {
            call_id: call_id.to_string(),
            user: from.user.clone(),
            state: PState::Accepted,
        };
        self.notify(fx, others, event, ttl);
        fx.push(Effect::Saved(call_id.to_string()));
        self.joined_reply(call_id, &from.user, now)
    }

    fn joined_reply(&self, call_id: &str, user: &str, now: Millis) -> Result<ReplyBody, CallError> {
        let c = self.calls.get(call_id).ok_or(CallError::NotFound)?;
        Ok(ReplyBody::Joined {
            call: CallView::from(c),
            join: JoinFor {
                call_id: call_id.to_string(),
                channel: c.channel.clone(),
                user: user.to_string(),
                issued_at: now,
            },
            unreachable: vec![],
        })
    }

    pub(super) fn decline(
        &mut self,
        from: &Device,
        call_id: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let (_, p) = self.own_part(from, call_id)?;
        if !p.state.is_pending() {
            return Err(if p.state.is_in() {
                CallError::AnsweredElsewhere
            } else {
                CallError::InvalidState
            });
        }
        self.give_up(
            call_id,
            &from.instance,
            &from.user,
            PState::Declined,
            EndReason::Declined,
            now,
            fx,
        )?;
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    /// An invitee stops being invited (`state`: declined or no answer); the
    /// call ends if nobody else can still take part.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn give_up(
        &mut self,
        call_id: &str,
        instance: &str,
        user: &str,
        state: PState,
        reason: EndReason,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CallError> {
        let ttl = self.rules.event_ttl;
        let devices = self.devices_of(instance, user);
        let c = self.call_mut(call_id)?;
        if let Some(p) = c.participants.get_mut(user) {
            p.state = state;
            p.ring_until = None;
        }
        let others = Engine::in_devices(c, Some(user));
        let caller = c.host.clone();
        let media = c.media;
        let created = c.created_at;
        fx.push(Effect::CancelTimer(Timer {
            call_id: call_id.to_string(),
            kind: TimerKind::Ring(user.to_string()),
        }));
        self.notify(
            fx,
            devices.clone(),
            Event::Cancelled {
                call_id: call_id.to_string(),
                reason,
            },
            ttl,
        );
        if state == PState::NoAnswer {
            let missed = Event::Missed {
                call_id: call_id.to_string(),
                from: caller,
                at: created,
                media,
            };
            self.notify(fx, devices, missed, self.rules.missed_ttl);
        }
        self.notify(
            fx,
            others,
            Event::Participant {
                call_id: call_id.to_string(),
                user: user.to_string(),
                state,
            },
            ttl,
        );
        fx.push(Effect::Saved(call_id.to_string()));
        self.end_if_alone(call_id, reason, now, fx)
    }

    /// Ends a call nobody but one person can still take part in.
    pub(super) fn end_if_alone(
        &mut self,
        call_id: &str,
        reason: EndReason,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CallError> {
        let c = self.call_mut(call_id)?;
        let live = c
            .participants
            .values()
            .filter(|p| p.state.is_live())
            .count();
        let in_call = c.participants.values().filter(|p| p.state.is_in()).count();
        if live <= 1 || in_call == 0 {
            self.end_call(call_id, reason, now, fx)?;
        }
        Ok(())
    }

    pub(super) fn cancel(
        &mut self,
        from: &Device,
        call_id: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let c = self.call_for(from, call_id)?;
        if c.host != from.user {
            return Err(CallError::NotHost);
        }
        if c.state != CallState::Ringing {
            return Err(CallError::InvalidState);
        }
        self.end_call(call_id, EndReason::Cancelled, now, fx)?;
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn timer(&mut self, t: Timer, now: Millis, fx: &mut Vec<Effect>) {
        let Some(c) = self.calls.get(&t.call_id) else {
            return;
        };
        if c.is_over() {
            return;
        }
        let instance = c.instance.clone();
        let result = match &t.kind {
            TimerKind::MaxDuration if now >= c.max_end_at => {
                self.end_call(&t.call_id, EndReason::MaxDuration, now, fx)
            }
            TimerKind::Ring(user) => match c.participants.get(user) {
                Some(p) if p.state.is_pending() && p.ring_until.is_some_and(|at| now >= at) => self
                    .give_up(
                        &t.call_id,
                        &instance,
                        user,
                        PState::NoAnswer,
                        EndReason::NoAnswer,
                        now,
                        fx,
                    ),
                _ => Ok(()),
            },
            _ => Ok(()),
        };
        debug_assert!(result.is_ok(), "timer on a call that exists");
    }
}
