//! The call controller runtime: uplinks from the bridge, timers and RTC
//! callbacks go into the state machine one at a time; each input's state,
//! timers and downlink messages are written in one SQLite transaction, then
//! the downlinks are handed to the broker and the RTC operations done.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::mpsc;

use crate::bridge::{BridgeEvent, MessageBridge, Uplink};
use crate::calls::{Device, Engine, Input, Millis, Rules, Timer};
use crate::directory::{SharedDirectory, TopicRole};
use crate::policy;
use crate::rtc::{token::rtc_user_id, RtcEvent, RtcProvider};
use crate::store::{Batch, Store, StoreError};

use super::{effects, new_id, now_ms, outbox, protocol};

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timing and policy of the state machine.
    pub rules: Rules,
    /// Largest uplink read.
    pub max_message_bytes: usize,
    /// Clock difference tolerated when judging a request's time to live (ms).
    pub clock_skew_ms: Millis,
}

/// What the runtime works with.
pub struct Deps {
    /// The broker.
    pub bridge: Arc<dyn MessageBridge>,
    /// SQLite.
    pub store: Arc<Store>,
    /// Provisioning (to find each instance's uplink and downlink topics).
    pub directory: Arc<SharedDirectory>,
    /// The RTC service.
    pub rtc: Arc<dyn RtcProvider>,
    /// Its join/leave callbacks.
    pub rtc_events: mpsc::UnboundedReceiver<RtcEvent>,
}

pub(super) struct Runtime {
    pub(super) settings: Settings,
    pub(super) engine: Engine,
    pub(super) store: Arc<Store>,
    pub(super) directory: Arc<SharedDirectory>,
    pub(super) rtc: Arc<dyn RtcProvider>,
    pub(super) timers: BTreeSet<(Millis, Timer)>,
    pub(super) due: HashMap<Timer, Millis>,
    pub(super) out: mpsc::UnboundedSender<crate::store::OutboxRow>,
}

/// Restores the controller's state and starts it; returns its task.
pub async fn start(settings: Settings, deps: Deps) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let store = deps.store.clone();
    let since = now_ms() - settings.rules.reply_memory;
    let loaded = tokio::task::spawn_blocking(move || store.load_controller(since))
        .await?
        .context("while loading the controller's state")?;
    let mut engine = Engine::new(settings.rules.clone());
    let mut devices = 0usize;
    for d in loaded.devices {
        devices += 1;
        engine.restore_device(d);
    }
    for c in loaded.calls {
        engine.restore_call(c);
    }
    for (c, q, result, until) in loaded.replies {
        engine.restore_reply(c, q, result, until);
    }
    let mut timers = BTreeSet::new();
    let mut due = HashMap::new();
    for (t, at) in loaded.timers {
        timers.insert((at, t.clone()));
        due.insert(t, at);
    }
    // The RTC service forgot its channels if it restarted with us.
    let now = now_ms();
    for c in engine.live_calls() {
        deps.rtc.open_channel(&c.channel, &c.id);
        for (user, p) in &c.participants {
            if matches!(p.state, crate::calls::PState::Removed) {
                deps.rtc.revoke(&c.channel, &rtc_user_id(user), now);
            }
        }
    }
    let (out, out_rx) = mpsc::unbounded_channel();
    for row in loaded.outbox {
        let _ = out.send(row);
    }
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    tokio::spawn(outbox::send(deps.bridge.clone(), out_rx, done_tx));
    let events = deps
        .bridge
        .subscribe(&["#"], 4096)
        .context("subscribing to uplinks")?;
    tracing::info!(
        calls = engine.live_calls().count(),
        timers = timers.len(),
        devices,
        "controller started"
    );
    let rt = Runtime {
        settings,
        engine,
        store: deps.store,
        directory: deps.directory,
        rtc: deps.rtc,
        timers,
        due,
        out,
    };
    Ok(tokio::spawn(rt.run(events, deps.rtc_events, done_rx)))
}

/// Inputs staged for one commit: their merged batch and RTC operations.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) batch: Batch,
    pub(super) rtc: Vec<effects::RtcOp>,
}

impl Staged {
    fn absorb(&mut self, (b, rtc): (Batch, Vec<effects::RtcOp>)) {
        let t = &mut self.batch;
        for c in b.calls {
            t.calls.retain(|x| x.id != c.id);
            t.calls.push(c);
        }
        t.timers.extend(b.timers);
        t.outbox.extend(b.outbox);
        t.replies.extend(b.replies);
        t.devices.extend(b.devices);
        t.events.extend(b.events);
        self.rtc.extend(rtc);
    }
}

/// Most uplinks processed together, in one SQLite transaction.
const GROUP: usize = 64;

impl Runtime {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<BridgeEvent>,
        mut rtc: mpsc::UnboundedReceiver<RtcEvent>,
        mut sent: mpsc::UnboundedReceiver<Vec<i64>>,
    ) {
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            let next = self.timers.first().map(|(at, _)| *at);
            let sleep = next
                .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            let mut staged = Staged::default();
            tokio::select! {
                ev = events.recv() => {
                    let Some(ev) = ev else {
                        tracing::warn!("bridge closed: controller stops");
                        return;
                    };
                    // Group commit: what queued up meanwhile goes in the same transaction.
                    self.bridge_event(ev, &mut staged);
                    for _ in 1..GROUP {
                        match events.try_recv() {
                            Ok(ev) => self.bridge_event(ev, &mut staged),
                            Err(_) => break,
                        }
                    }
                }
                Some(ev) = rtc.recv() => self.rtc_event(ev, &mut staged),
                _ = tokio::time::sleep(sleep), if next.is_some() => self.fire_timers(&mut staged),
                _ = prune.tick() => self.prune().await,
                Some(done) = sent.recv() => staged.batch.outbox_done.extend(done),
            }
            // Outbox rows the broker took are forgotten in the same transaction.
            while let Ok(done) = sent.try_recv() {
                staged.batch.outbox_done.extend(done);
            }
            self.commit(staged).await;
        }
    }

    /// The device behind a client id, if it is one of a provisioned group.
    fn device(&self, client_id: &str) -> Option<Device> {
        let parts = policy::parse_client_id(client_id, usize::MAX).ok()?;
        let instance = self
            .directory
            .get()
            .group_instance(parts.group)?
            .to_string();
        Some(Device {
            client_id: client_id.to_string(),
            user: parts.device.to_string(),
            instance,
        })
    }

    /// Remembers a device the first time it is seen.
    fn seen(&mut self, d: &Device, now: Millis, staged: &mut Staged) {
        if !self.engine.knows(d) {
            staged.batch.devices.push((d.clone(), now));
            self.engine.apply(Input::DeviceSeen(d.clone()), now, "-");
        }
    }

    pub(super) fn bridge_event(&mut self, ev: BridgeEvent, staged: &mut Staged) {
        match ev {
            BridgeEvent::Connected { client_id, .. } => {
                if let Some(d) = self.device(&client_id) {
                    self.seen(&d, now_ms(), staged);
                    self.engine.apply(Input::Presence(d, true), now_ms(), "-");
                }
            }
            BridgeEvent::Uplink(up) => self.uplink(up, staged),
            BridgeEvent::Disconnected { client_id, .. } => {
                if let Some(d) = self.device(&client_id) {
                    self.engine.apply(Input::Presence(d, false), now_ms(), "-");
                }
            }
        }
    }

    pub(super) fn uplink(&mut self, up: Uplink, staged: &mut Staged) {
        let dir = self.directory.get();
        let parent = up.topic.split('/').next().unwrap_or_default();
        let Some(topic) = dir.topic(parent).filter(|t| t.role == TopicRole::Uplink) else {
            return;
        };
        let Some(from) = self
            .device(&up.sender)
            .filter(|d| d.instance == topic.instance)
        else {
            return;
        };
        drop(dir);
        let now = now_ms();
        self.seen(&from, now, staged);
        match protocol::decode(
            &up.payload,
            &from.client_id,
            self.settings.max_message_bytes,
        ) {
            Err((e, req)) => {
                tracing::info!(client_id = %from.client_id, code = e.code(), "uplink refused: {e}");
                let mut fx = effects::Fx::new(self, now);
                fx.wire_error(&from, req.as_deref(), e);
                staged.absorb(fx.finish());
            }
            Ok(r) => {
                let ttl = r
                    .envelope
                    .ttl
                    .unwrap_or(protocol::DEFAULT_TTL)
                    .clamp(0, protocol::MAX_TTL);
                let logged = serde_json::to_value(&r.envelope).unwrap_or_default();
                let input = Input::Request {
                    from: from.clone(),
                    req: r.req.clone(),
                    sent_at: r.envelope.ts,
                    ttl: ttl + self.settings.clock_skew_ms,
                    cmd: r.cmd.clone(),
                };
                self.stage(
                    input,
                    now,
                    Some((from, r.envelope.kind.clone(), r.cmd, logged)),
                    staged,
                );
            }
        }
    }

    fn rtc_event(&mut self, ev: RtcEvent, staged: &mut Staged) {
        let (channel, rtc_user, joined) = match ev {
            RtcEvent::Joined { channel, user } => (channel, user, true),
            RtcEvent::Left { channel, user } => (channel, user, false),
        };
        let Some(call) = self.engine.call_by_channel(&channel) else {
            return;
        };
        let Some(user) = call
            .participants
            .keys()
            .find(|u| rtc_user_id(u) == rtc_user)
            .cloned()
        else {
            return;
        };
        let device = call
            .participants
            .get(&user)
            .and_then(|p| p.device.clone())
            .unwrap_or_else(|| user.clone());
        let kind = if joined { "rtc.joined" } else { "rtc.left" };
        let entry = crate::store::TimelineEntry {
            at: now_ms(),
            direction: "rtc".into(),
            client_id: device,
            kind: kind.into(),
            message: serde_json::json!({ "channel": channel, "user": rtc_user }),
        };
        staged.batch.events.push((call.id.clone(), entry));
        let input = if joined {
            Input::RtcJoined { channel, user }
        } else {
            Input::RtcLeft { channel, user }
        };
        self.stage(input, now_ms(), None, staged);
    }

    fn fire_timers(&mut self, staged: &mut Staged) {
        let now = now_ms();
        while let Some((at, t)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t.clone()));
            self.due.remove(&t);
            staged.batch.timers.push((t.clone(), None));
            self.stage(Input::Timer(t), now, None, staged);
        }
    }

    async fn prune(&mut self) {
        let now = now_ms();
        self.engine.prune(now);
        let store = self.store.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || store.prune_replies(now)).await {
            tracing::warn!("pruning replies: {e}");
        }
    }

    /// Applies one input to the state machine and stages what it produced.
    fn stage(
        &mut self,
        input: Input,
        now: Millis,
        request: Option<effects::RequestMeta>,
        staged: &mut Staged,
    ) {
        let fresh = new_id();
        let produced = self.engine.apply(input, now, &fresh);
        let mut fx = effects::Fx::new(self, now);
        if let Some(meta) = &request {
            fx.log_request(meta, &produced);
        }
        for e in produced {
            fx.effect(e);
        }
        let (batch, rtc) = fx.finish();
        for (t, due) in &batch.timers {
            if let Some(old) = self.due.remove(t) {
                self.timers.remove(&(old, t.clone()));
            }
            if let Some(at) = due {
                self.due.insert(t.clone(), *at);
                self.timers.insert((*at, t.clone()));
            }
        }
        staged.absorb((batch, rtc));
    }

    /// Writes the staged batch, does its RTC operations, then hands its
    /// downlinks to the sender.
    async fn commit(&mut self, staged: Staged) {
        let Staged { batch, rtc } = staged;
        let empty = batch.calls.is_empty()
            && batch.timers.is_empty()
            && batch.outbox.is_empty()
            && batch.replies.is_empty()
            && batch.devices.is_empty()
            && batch.events.is_empty()
            && batch.outbox_done.is_empty();
        let rows = if empty {
            Vec::new()
        } else {
            let store = self.store.clone();
            let written: Result<Result<_, StoreError>, _> =
                tokio::task::spawn_blocking(move || store.apply_batch(&batch)).await;
            match written {
                Ok(Ok(rows)) => rows,
                Ok(Err(e)) => {
                    tracing::error!("controller state not saved: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::error!("controller state not saved: {e}");
                    Vec::new()
                }
            }
        };
        // RTC first: a reply with join parameters must find its channel open.
        let now = now_ms();
        for op in rtc {
            match op {
                effects::RtcOp::Open { channel, call_id } => {
                    self.rtc.open_channel(&channel, &call_id)
                }
                effects::RtcOp::Close { channel } => self.rtc.close_channel(&channel),
                effects::RtcOp::Revoke { channel, user } => {
                    self.rtc.revoke(&channel, &rtc_user_id(&user), now)
                }
            }
        }
        for row in rows {
            let _ = self.out.send(row);
        }
    }
}
