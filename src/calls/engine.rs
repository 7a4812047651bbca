//! The engine: all calls, the devices of each user, remembered replies, and
//! `apply`, which dispatches an input to its handler.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::types::*;

/// What happens when an invitee is already in another call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BusyPolicy {
    /// Refuse: a 1:1 call gets `busy`, a meeting marks the invitee busy.
    Reject,
    /// Ring anyway, flagged as call waiting.
    Waiting,
}

/// Timing and policy of the state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// How long an invitation rings.
    pub ring_timeout: Millis,
    /// A call's longest life.
    pub max_duration: Millis,
    /// Busy callee handling.
    pub busy: BusyPolicy,
    /// How long a reply is remembered for retries of the same request.
    pub reply_memory: Millis,
    /// Time to live of call events (joined, muted, ended...).
    pub event_ttl: Millis,
    /// Time to live of a missed-call message.
    pub missed_ttl: Millis,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            ring_timeout: 30_000,
            max_duration: 4 * 3600 * 1000,
            busy: BusyPolicy::Reject,
            reply_memory: 10 * 60 * 1000,
            event_ttl: 5 * 60 * 1000,
            missed_ttl: 3 * 24 * 3600 * 1000,
        }
    }
}

/// All calls and what the state machine needs to run them.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    /// Timing and policy.
    pub rules: Rules,
    pub(super) calls: BTreeMap<String, Call>,
    /// Ids of the calls not over yet (busy checks and sync look only at these).
    pub(super) live: BTreeSet<String>,
    pub(super) channels: HashMap<String, String>,
    // A sorted Vec, not a BTreeSet: a user has a few devices, and a
    // one-element BTreeSet allocates a whole node (~280 bytes) per user.
    pub(super) devices: BTreeMap<(String, String), Vec<String>>,
    pub(super) replies: HashMap<(String, String), (Result<ReplyBody, CallError>, Millis)>,
    /// Client ids with an open connection.
    pub(super) online: std::collections::HashSet<String>,
}

impl Engine {
    /// An engine with no calls.
    pub fn new(rules: Rules) -> Engine {
        Engine {
            rules,
            ..Engine::default()
        }
    }

    /// Restores a call (after a restart).
    pub fn restore_call(&mut self, call: Call) {
        self.channels.insert(call.channel.clone(), call.id.clone());
        if call.is_over() {
            self.live.remove(&call.id);
        } else {
            self.live.insert(call.id.clone());
        }
        self.calls.insert(call.id.clone(), call);
    }

    /// Restores a known device.
    pub fn restore_device(&mut self, d: Device) {
        let ids = self
            .devices
            .entry((d.instance, d.user))
            .or_insert_with(|| Vec::with_capacity(1));
        if let Err(at) = ids.binary_search(&d.client_id) {
            ids.insert(at, d.client_id);
        }
    }

    /// Restores a remembered reply.
    pub fn restore_reply(
        &mut self,
        client_id: String,
        req: String,
        result: Result<ReplyBody, CallError>,
        until: Millis,
    ) {
        self.replies.insert((client_id, req), (result, until));
    }

    /// A call by id.
    pub fn call(&self, id: &str) -> Option<&Call> {
        self.calls.get(id)
    }

    /// The call an RTC channel belongs to.
    pub fn call_by_channel(&self, channel: &str) -> Option<&Call> {
        self.channels.get(channel).and_then(|id| self.calls.get(id))
    }

    /// Every call it holds (live ones, and ended ones not yet pruned).
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.values()
    }

    /// Calls not over yet.
    pub fn live_calls(&self) -> impl Iterator<Item = &Call> {
        self.live.iter().filter_map(|id| self.calls.get(id))
    }

    /// Forgets replies and ended calls older than the reply memory.
    pub fn prune(&mut self, now: Millis) -> Vec<String> {
        self.replies.retain(|_, (_, until)| *until > now);
        let memory = self.rules.reply_memory;
        let old: Vec<String> = self
            .calls
            .values()
            .filter(|c| c.ended_at.is_some_and(|t| t + memory < now))
            .map(|c| c.id.clone())
            .collect();
        for id in &old {
            if let Some(c) = self.calls.remove(id) {
                self.channels.remove(&c.channel);
            }
        }
        old
    }

    /// Replaces who is online (after reading it from the broker).
    pub fn set_online(&mut self, online: std::collections::HashSet<String>) {
        self.online = online;
    }

    /// Applies one input at time `now`; `fresh_id` names a call if one is created.
    pub fn apply(&mut self, input: Input, now: Millis, fresh_id: &str) -> Vec<Effect> {
        match input {
            Input::Request {
                from,
                req,
                sent_at,
                ttl,
                cmd,
            } => self.request(from, req, sent_at, ttl, cmd, now, fresh_id),
            Input::DeviceSeen(d) => {
                self.restore_device(d);
                vec![]
            }
            Input::Presence(d, online) => {
                if online {
                    self.online.insert(d.client_id.clone());
                    self.restore_device(d);
                } else {
                    self.online.remove(&d.client_id);
                }
                vec![]
            }
            Input::Timer(t) => {
                let mut fx = Vec::new();
                self.timer(t, now, &mut fx);
                fx
            }
            Input::RtcJoined { channel, user } => {
                let mut fx = Vec::new();
                self.rtc_joined(&channel, &user, now, &mut fx);
                fx
            }
            Input::RtcLeft { channel, user } => {
                let mut fx = Vec::new();
                self.rtc_left(&channel, &user, now, &mut fx);
                fx
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        from: Device,
        req: String,
        sent_at: Millis,
        ttl: Millis,
        cmd: Command,
        now: Millis,
        fresh_id: &str,
    ) -> Vec<Effect> {
        let key = (from.client_id.clone(), req.clone());
        if let Some((result, _)) = self.replies.get(&key) {
            return vec![Effect::Reply {
                to: from.client_id,
                req,
                result: result.clone(),
            }];
        }
        self.restore_device(from.clone());
        let mut fx = Vec::new();
        // A read-only listing is not remembered: a retry just reads again.
        let remember = cmd != Command::Contacts;
        let result = if sent_at.saturating_add(ttl) < now {
            Err(CallError::Stale)
        } else {
            self.command(&from, cmd, now, fresh_id, &mut fx)
        };
        if remember {
            self.replies
                .insert(key, (result.clone(), now + self.rules.reply_memory));
        }
        fx.push(Effect::Reply {
            to: from.client_id,
            req,
            result,
        });
        fx
    }

    fn command(
        &mut self,
        from: &Device,
        cmd: Command,
        now: Millis,
        fresh_id: &str,
        fx: &mut Vec<Effect>,
    ) -> Result<ReplyBody, CallError> {
        match cmd {
            Command::Start {
                to,
                kind,
                media,
                title,
            } => self.start(from, to, kind, media, title, now, fresh_id, fx),
            Command::Ringing { call_id } => self.ringing(from, &call_id, fx),
            Command::Accept { call_id } => self.accept(from, &call_id, now, fx),
            Command::Decline { call_id } => self.decline(from, &call_id, now, fx),
            Command::Cancel { call_id } => self.cancel(from, &call_id, now, fx),
            Command::Invite { call_id, to } => self.invite(from, &call_id, to, now, fx),
            Command::Leave { call_id } => self.leave(from, &call_id, now, fx),
            Command::End { call_id } => self.end(from, &call_id, now, fx),
            Command::Mute {
                call_id,
                target,
                media,
                muted,
            } => self.mute(from, &call_id, target, media, muted, fx),
            Command::Remove { call_id, target } => self.remove(from, &call_id, &target, now, fx),
            Command::TransferHost { call_id, to } => self.transfer_host(from, &call_id, &to, fx),
            Command::Sync => Ok(self.sync(from, now)),
            Command::Contacts => Ok(self.contacts(from)),
        }
    }

    /// The users of the sender's instance, with their online state.
    fn contacts(&self, from: &Device) -> ReplyBody {
        let users = self
            .devices
            .range((from.instance.clone(), String::new())..)
            .take_while(|((instance, _), _)| *instance == from.instance)
            .filter(|((_, user), _)| *user != from.user)
            .map(|((_, user), ids)| crate::calls::Contact {
                user: user.clone(),
                online: ids.iter().any(|id| self.online.contains(id)),
                devices: ids.len(),
            })
            .collect();
        ReplyBody::Contacts { users }
    }

    /// Whether the engine knows this device already.
    pub fn knows(&self, d: &Device) -> bool {
        self.devices
            .get(&(d.instance.clone(), d.user.clone()))
            .is_some_and(|ids| ids.binary_search(&d.client_id).is_ok())
    }

    /// The client ids of a user in an instance.
    pub(super) fn devices_of(&self, instance: &str, user: &str) -> Vec<String> {
        self.devices
            .get(&(instance.to_string(), user.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Whether `user` is taking part in a call other than `except`.
    pub(super) fn in_other_call(&self, instance: &str, user: &str, except: &str) -> bool {
        self.live_calls().any(|c| {
            c.id != except
                && c.instance == instance
                && c.participants.get(user).is_some_and(|p| p.state.is_in())
        })
    }

    /// A live call of the sender's instance, or the error to answer.
    pub(super) fn call_for(&self, from: &Device, call_id: &str) -> Result<&Call, CallError> {
        let c = self
            .calls
            .get(call_id)
            .filter(|c| c.instance == from.instance)
            .ok_or(CallError::NotFound)?;
        if c.is_over() {
            return Err(CallError::Ended);
        }
        Ok(c)
    }

    /// The sender's call and its own place in it.
    pub(super) fn own_part(
        &self,
        from: &Device,
        call_id: &str,
    ) -> Result<(&Call, &Participant), CallError> {
        let c = self.call_for(from, call_id)?;
        let p = c
            .participants
            .get(&from.user)
            .ok_or(CallError::NotParticipant)?;
        Ok((c, p))
    }

    pub(super) fn call_mut(&mut self, call_id: &str) -> Result<&mut Call, CallError> {
        self.calls.get_mut(call_id).ok_or(CallError::NotFound)
    }

    /// The answering devices of everyone in the call, except `except`.
    pub(super) fn in_devices(call: &Call, except: Option<&str>) -> Vec<String> {
        call.participants
            .iter()
            .filter(|(u, p)| p.state.is_in() && Some(u.as_str()) != except)
            .filter_map(|(_, p)| p.device.clone())
            .collect()
    }

    pub(super) fn notify(&self, fx: &mut Vec<Effect>, to: Vec<String>, event: Event, ttl: Millis) {
        if !to.is_empty() {
            fx.push(Effect::Notify { to, event, ttl });
        }
    }

    /// The current state of `from`'s calls (reply to `sync`).
    fn sync(&self, from: &Device, now: Millis) -> ReplyBody {
        let (mut calls, mut invites, mut joins) = (Vec::new(), Vec::new(), Vec::new());
        for c in self.live_calls().filter(|c| c.instance == from.instance) {
            let Some(p) = c.participants.get(&from.user) else {
                continue;
            };
            if p.state.is_in() {
                calls.push(CallView::from(c));
                joins.push(JoinFor {
                    call_id: c.id.clone(),
                    channel: c.channel.clone(),
                    user: from.user.clone(),
                    issued_at: now,
                });
            } else if p.state.is_pending() && p.ring_until.is_some_and(|t| t > now) {
                invites.push(CallView::from(c));
            }
        }
        ReplyBody::Snapshot {
            calls,
            invites,
            joins,
        }
    }
}
