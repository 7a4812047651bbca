//! During a call: RTC join and leave, leave, end, mute, remove, host
//! transfer; and ending a call.

use super::engine::Engine;
use super::types::*;

impl Engine {
    pub(super) fn leave(
        &mut self,
        from: &Device,
        call_id: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let (c, p) = self.own_part(from, call_id)?;
        if !p.state.is_in() {
            return Err(CallError::InvalidState);
        }
        if c.kind == Kind::Call && c.state == CallState::Ringing && c.host == from.user {
            // Hanging up before anyone answered is cancelling.
            self.end_call(call_id, EndReason::Cancelled, now, fx)?;
        } else {
            self.depart(call_id, &from.user, PState::Left, now, fx)?;
        }
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    /// `user` stops taking part (`state`: left or removed); a 1:1 call, or a
    /// meeting nobody is in any more, ends; a leaving host hands over.
    pub(super) fn depart(
        &mut self,
        call_id: &str,
        user: &str,
        state: PState,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CallError> {
        let ttl = self.rules.event_ttl;
        let c = self.call_mut(call_id)?;
        let was_pending = c
            .participants
            .get(user)
            .is_some_and(|p| p.state.is_pending());
        if let Some(p) = c.participants.get_mut(user) {
            p.state = state;
            p.ring_until = None;
        }
        let channel = c.channel.clone();
        let kind = c.kind;
        let others = Engine::in_devices(c, Some(user));
        // A 1:1 call ends below, so only a meeting hands over its host.
        let new_host = if c.host == user && kind == Kind::Meeting {
            // The longest in the channel (or longest answered) takes over.
            c.participants
                .iter()
                .filter(|(_, p)| p.state.is_in())
                .min_by_key(|(_, p)| (p.joined_at.unwrap_or(i64::MAX), p.invited_at))
                .map(|(u, _)| u.clone())
        } else {
            None
        };
        if let Some(h) = &new_host {
            c.host = h.clone();
        }
        fx.push(Effect::RevokeRtc {
            channel,
            user: user.to_string(),
        });
        if was_pending {
            fx.push(Effect::CancelTimer(Timer {
                call_id: call_id.to_string(),
                kind: TimerKind::Ring(user.to_string()),
            }));
        }
        self.notify(
            fx,
            others.clone(),
            Event::Participant {
                call_id: call_id.to_string(),
                user: user.to_string(),
                state,
            },
            ttl,
        );
        if let Some(h) = new_host {
            self.notify(
                fx,
                others,
                Event::Host {
                    call_id: call_id.to_string(),
                    user: h,
                },
                ttl,
            );
        }
        fx.push(Effect::Saved(call_id.to_string()));
        let c = self.call_mut(call_id)?;
        let anyone_in = c.participants.values().any(|p| p.state.is_in());
        if kind == Kind::Call || !anyone_in {
            self.end_call(call_id, EndReason::Hangup, now, fx)?;
        }
        Ok(())
    }

    pub(super) fn end(
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
        self.end_call(call_id, EndReason::EndedByHost, now, fx)?;
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn mute(
        &mut self,
        from: &Device,
        call_id: &str,
        target: Option<String>,
        media: Media,
        muted: bool,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let ttl = self.rules.event_ttl;
        let c = self.call_for(from, call_id)?;
        if !c
            .participants
            .get(&from.user)
            .is_some_and(|p| p.state.is_in())
        {
            return Err(CallError::NotParticipant);
        }
        let target = target.unwrap_or_else(|| from.user.clone());
        if target != from.user && c.host != from.user {
            return Err(CallError::NotHost);
        }
        if !c.participants.get(&target).is_some_and(|p| p.state.is_in()) {
            return Err(CallError::NotParticipant);
        }
        let c = self.call_mut(call_id)?;
        if let Some(p) = c.participants.get_mut(&target) {
            match media {
                Media::Audio => p.audio_muted = muted,
                Media::Video => p.video_muted = muted,
            }
        }
        let everyone = Engine::in_devices(c, None);
        let event = Event::Muted {
            call_id: call_id.to_string(),
            user: target,
            media,
            muted,
            by: from.user.clone(),
        };
        self.notify(fx, everyone, event, ttl);
        fx.push(Effect::Saved(call_id.to_string()));
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn remove(
        &mut self,
        from: &Device,
        call_id: &str,
        target: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let ttl = self.rules.event_ttl;
        let c = self.call_for(from, call_id)?;
        if c.host != from.user {
            return Err(CallError::NotHost);
        }
        if target == from.user {
            return Err(CallError::BadRequest);
        }
        if !c
            .participants
            .get(target)
            .is_some_and(|p| p.state.is_live())
        {
            return Err(CallError::NotParticipant);
        }
        let devices = self.devices_of(&from.instance, target);
        self.notify(
            fx,
            devices,
            Event::Removed {
                call_id: call_id.to_string(),
                by: from.user.clone(),
            },
            ttl,
        );
        self.depart(call_id, target, PState::Removed, now, fx)?;
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn transfer_host(
        &mut self,
        from: &Device,
        call_id: &str,
        to: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        let ttl = self.rules.event_ttl;
        let c = self.call_for(from, call_id)?;
        if c.host != from.user {
            return Err(CallError::NotHost);
        }
        if !c.participants.get(to).is_some_and(|p| p.state.is_in()) {
            return Err(CallError::NotParticipant);
        }
        let c = self.call_mut(call_id)?;
        c.host = to.to_string();
        let everyone = Engine::in_devices(c, None);
        self.notify(
            fx,
            everyone,
            Event::Host {
                call_id: call_id.to_string(),
                user: to.to_string(),
            },
            ttl,
        );
        fx.push(Effect::Saved(call_id.to_string()));
        Ok(ReplyBody::Done {
            call_id: call_id.to_string(),
        })
    }

    pub(super) fn rtc_joined(
        &mut self,
        channel: &str,
        user: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) {
        let ttl = self.rules.event_ttl;
        let Some(call_id) = self.channels.get(channel).cloned() else {
            return;
        };
        let Ok(c) = self.call_mut(&call_id) else {
            return;
        };
        if c.is_over() {
            return;
        }
        let Some(p) = c.participants.get_mut(user) else {
            return;
        };
        if !matches!(p.state, PState::Accepted | PState::Left) || p.device.is_none() {
            return;
        }
        p.state = PState::Joined;
        p.joined_at = Some(now);
        c.state = CallState::Active;
        let others = Engine::in_devices(c, Some(user));
        let event = Event::Participant {
            call_id: call_id.clone(),
            user: user.to_string(),
            state: PState::Joined,
        };
        self.notify(fx, others, event, ttl);
        fx.push(Effect::Saved(call_id));
    }

    pub(super) fn rtc_left(
        &mut self,
        channel: &str,
        user: &str,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) {
        let Some(call_id) = self.channels.get(channel).cloned() else {
            return;
        };
        let joined = self
            .calls
            .get(&call_id)
            .filter(|c| !c.is_over())
            .and_then(|c| c.participants.get(user))
            .is_some_and(|p| p.state == PState::Joined);
        if joined {
            let _ = self.depart(&call_id, user, PState::Left, now, fx);
        }
    }

    /// Ends a call: everyone in it is told, invitees still ringing stop
    /// (and get a missed call), timers stop, the RTC channel closes.
    pub(super) fn end_call(
        &mut self,
        call_id: &str,
        reason: EndReason,
        now: Millis,
        fx: &mut Vec<Effect>,
    ) -> Result<(), CallError> {
        let (event_ttl, missed_ttl) = (self.rules.event_ttl, self.rules.missed_ttl);
        let c = self.calls.get(call_id).ok_or(CallError::NotFound)?;
        if c.is_over() {
            return Ok(());
        }
        let in_devices = Engine::in_devices(c, None);
        let pending: Vec<String> = c
            .participants
            .iter()
            .filter(|(_, p)| p.state.is_pending())
            .map(|(u, _)| u.clone())
            .collect();
        let instance = c.instance.clone();
        let (host, media, created, channel) =
            (c.host.clone(), c.media, c.created_at, c.channel.clone());
        for u in &pending {
            let devices = self.devices_of(&instance, u);
            self.notify(
                fx,
                devices.clone(),
                Event::Cancelled {
                    call_id: call_id.to_string(),
                    reason,
                },
                event_ttl,
            );
            let missed = Event::Missed {
                call_id: call_id.to_string(),
                from: host.clone(),
                at: created,
                media,
            };
            self.notify(fx, devices, missed, missed_ttl);
            fx.push(Effect::CancelTimer(Timer {
                call_id: call_id.to_string(),
                kind: TimerKind::Ring(u.clone()),
            }));
        }
        self.notify(
            fx,
            in_devices,
            Event::Ended {
                call_id: call_id.to_string(),
                reason,
            },
            event_ttl,
        );
        let c = self.call_mut(call_id)?;
        for u in &pending {
            if let Some(p) = c.participants.get_mut(u) {
                p.state = PState::NoAnswer;
                p.ring_until = None;
            }
        }
        c.state = CallState::Ended(reason);
        c.ended_at = Some(now);
        self.live.remove(call_id);
        fx.push(Effect::CancelTimer(Timer {
            call_id: call_id.to_string(),
            kind: TimerKind::MaxDuration,
        }));
        fx.push(Effect::CloseChannel { channel });
        fx.push(Effect::Saved(call_id.to_string()));
        Ok(())
    }
}
