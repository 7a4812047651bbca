//! The call controller runtime: uplinks from the bridge, timers and RTC
//! callbacks go into the state machine one at a time; each input's state,
//! timers and downlink messages are written in one SQLite transaction, then
//! the downlinks are handed to the broker and the RTC operations done.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::mpsc;

use crate::bridge::{BridgeEvent, MessageBridge, Uplink};
use crate::calls::{Device, Engine, Input, Millis, Rules, Timer};
use crate::directory::{SharedDirectory, TopicRole};
use crate::metrics;
use crate::policy;
use crate::rtc::{token::rtc_user_id, RtcEvent, RtcProvider};
use crate::store::{Batch, StateStore};

use super::supervise::{Control, Exit, Inputs};
use super::{effects, new_id, now_ms, protocol};

/// Settings of the controller.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Timing and policy of the state machine.
    pub rules: Rules,
    /// Largest uplink read.
    pub max_message_bytes: usize,
    /// Clock difference tolerated when judging a request's time to live (ms).
    pub clock_skew_ms: Millis,
    /// Ended calls older than this are deleted (ms; 0 keeps them).
    pub retention_ms: Millis,
}

/// What the runtime works with.
pub struct Deps {
    /// The broker.
    pub bridge: Arc<dyn MessageBridge>,
    /// Its durable state (SQLite, or PostgreSQL for `mqrtc controller`).
    pub store: Arc<dyn StateStore>,
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
    pub(super) bridge: Arc<dyn MessageBridge>,
    pub(super) store: Arc<dyn StateStore>,
    pub(super) directory: Arc<SharedDirectory>,
    pub(super) rtc: Arc<dyn RtcProvider>,
    /// Pending timers on the monotonic clock (a wall-clock jump moves no
    /// timer), with their due time on the wall clock as stored.
    pub(super) timers: BTreeSet<(Instant, Timer)>,
    pub(super) due: HashMap<Timer, (Instant, Millis)>,
    pub(super) out: mpsc::UnboundedSender<crate::store::OutboxRow>,
    /// Presence must be read again from the broker.
    pub(super) resync: bool,
    /// The calls' phases, for webhook events.
    pub(super) phases: super::events::Phases,
}

/// Inputs staged for one commit: their merged batch and RTC operations,
/// and what to do again or answer if the commit fails.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) batch: Batch,
    pub(super) rtc: Vec<effects::RtcOp>,
    /// Requests in this batch: sender and `req` (answered `unavailable`
    /// if the batch cannot be stored).
    pub(super) requests: Vec<(String, Option<String>)>,
    /// RTC callbacks in this batch (fed again if it cannot be stored).
    pub(super) rtc_events: Vec<RtcEvent>,
    /// When the broker received each call set up in this batch.
    pub(super) setups: Vec<std::time::SystemTime>,
    /// Uplinks of an external broker to acknowledge once the batch is
    /// stored or answered.
    pub(super) acks: Vec<crate::bridge::Ack>,
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
        t.webhooks.extend(b.webhooks);
        self.rtc.extend(rtc);
    }
}

/// Most uplinks processed together, in one SQLite transaction.
const GROUP: usize = 64;

impl Runtime {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        settings: Settings,
        engine: Engine,
        timers: Vec<(Timer, Millis)>,
        bridge: Arc<dyn MessageBridge>,
        store: Arc<dyn StateStore>,
        directory: Arc<SharedDirectory>,
        rtc: Arc<dyn RtcProvider>,
        out: mpsc::UnboundedSender<crate::store::OutboxRow>,
    ) -> Runtime {
        let phases = super::events::Phases::of(engine.calls());
        let mut rt = Runtime {
            phases,
            settings,
            engine,
            bridge,
            store,
            directory,
            rtc,
            timers: BTreeSet::new(),
            due: HashMap::new(),
            out,
            resync: true,
        };
        for (t, at) in timers {
            rt.schedule(t, at);
        }
        rt
    }

    /// Runs until asked to stop or until a commit fails.
    pub(super) async fn run(mut self, inputs: &mut Inputs) -> Exit {
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        let mut draining: Option<tokio::sync::oneshot::Sender<()>> = None;
        loop {
            if self.resync {
                self.resync_presence().await;
            }
            let next = self.timers.first().map(|(at, _)| *at);
            let wake = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            let mut staged = Staged::default();
            staged.batch.outbox_done = std::mem::take(&mut inputs.retry_done);
            if let Some(ev) = inputs.retry_rtc.pop_front() {
                self.rtc_event(ev, &mut staged);
            } else if draining.is_some() {
                // Stopping: what is queued now is processed, nothing waits for more.
                let mut n = 0;
                while let Some(ev) = inputs.events.try_recv() {
                    self.bridge_event(ev, &mut staged);
                    n += 1;
                    if n == GROUP {
                        break;
                    }
                }
                if n == 0 {
                    if let Some(e) = self.commit(staged, inputs).await {
                        return e;
                    }
                    if let Some(tx) = draining.take() {
                        let _ = tx.send(());
                    }
                    return Exit::Stopped;
                }
            } else {
                tokio::select! {
                    ev = inputs.events.recv() => {
                        let Some(ev) = ev else {
                            tracing::warn!("bridge closed: controller stops");
                            return Exit::Stopped;
                        };
                        // Group commit: what queued up meanwhile goes in the same transaction.
                        self.bridge_event(ev, &mut staged);
                        for _ in 1..GROUP {
                            match inputs.events.try_recv() {
                                Some(ev) => self.bridge_event(ev, &mut staged),
                                None => break,
                            }
                        }
                    }
                    Some(ev) = inputs.rtc.recv() => self.rtc_event(ev, &mut staged),
                    _ = tokio::time::sleep_until(wake), if next.is_some() => self.fire_timers(&mut staged),
                    _ = prune.tick() => self.prune().await,
                    Some(done) = inputs.sent.recv() => staged.batch.outbox_done.extend(done),
                    Some(c) = inputs.control.recv() => match c {
                        Control::Drain(tx) => draining = Some(tx),
                        Control::Panic => panic!("fault injected"),
                    },
                }
            }
            metrics::get()
                .queue_depth
                .set(inputs.events.queued() as i64);
            // Outbox rows the broker took are forgotten in the same transaction.
            while let Ok(done) = inputs.sent.try_recv() {
                staged.batch.outbox_done.extend(done);
            }
            if let Some(exit) = self.commit(staged, inputs).await {
                return exit;
            }
        }
    }

    /// Reads who is connected from the broker (after missed presence
    /// changes, and when a run starts).
    async fn resync_presence(&mut self) {
        match self.bridge.connected_clients().await {
            Ok(ids) => {
                let online = ids.into_iter().filter(|id| self.device(id).is_some());
                self.engine.set_online(online.collect());
                self.resync = false;
            }
            Err(e) => tracing::warn!("presence not read from the broker: {e}"),
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
                    let ev = super::events::presence(&d, true, "", now_ms());
                    staged.batch.webhooks.push(ev);
                    self.seen(&d, now_ms(), staged);
                    self.engine.apply(Input::Presence(d, true), now_ms(), "-");
                }
            }
            BridgeEvent::Uplink(up) => self.uplink(up, staged),
            BridgeEvent::Disconnected {
                client_id, reason, ..
            } => {
                if let Some(d) = self.device(&client_id) {
                    let ev = super::events::presence(&d, false, &reason, now_ms());
                    staged.batch.webhooks.push(ev);
                    self.engine.apply(Input::Presence(d, false), now_ms(), "-");
                }
            }
            BridgeEvent::Resync => {
                tracing::warn!("presence changes were dropped: reading them from the broker");
                self.resync = true;
            }
        }
    }

    pub(super) fn uplink(&mut self, up: Uplink, staged: &mut Staged) {
        staged.acks.extend(up.ack.clone());
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
                staged.requests.push((from.client_id.clone(), req.clone()));
                tracing::info!(client_id = %from.client_id, code = e.code(), "uplink refused: {e}");
                metrics::get()
                    .requests
                    .with_label_values(&["invalid", e.code()])
                    .inc();
                let mut fx = effects::Fx::new(self, now);
                fx.wire_error(&from, req.as_deref(), e);
                staged.absorb(fx.finish());
            }
            Ok(r) => {
                staged
                    .requests
                    .push((from.client_id.clone(), Some(r.req.clone())));
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
                let kind = r.envelope.kind.clone();
                let client_id = from.client_id.clone();
                let meta = Some((from, kind.clone(), r.cmd, logged));
                let (result, call_id) = self.stage(input, now, meta, staged);
                tracing::info!(
                    client_id,
                    req = r.req,
                    call_id = call_id.as_deref().unwrap_or(""),
                    kind,
                    result,
                    "request"
                );
                metrics::get()
                    .requests
                    .with_label_values(&[kind.as_str(), result])
                    .inc();
                if kind == "call.start" && result == "ok" {
                    staged.setups.push(up.received_at);
                }
            }
        }
    }

    fn rtc_event(&mut self, ev: RtcEvent, staged: &mut Staged) {
        staged.rtc_events.push(ev.clone());
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

    /// Fires the timers whose monotonic time has come. The state machine
    /// sees at least the stored due time, so a wall clock set back does not
    /// make it think the timer came early.
    fn fire_timers(&mut self, staged: &mut Staged) {
        let now = Instant::now();
        while let Some((at, t)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t.clone()));
            let wall_due = self.due.remove(&t).map(|(_, d)| d).unwrap_or_default();
            staged.batch.timers.push((t.clone(), None));
            if matches!(t.kind, crate::calls::TimerKind::Ring(_)) {
                metrics::get().ring_timeouts.inc();
            }
            self.stage(Input::Timer(t), now_ms().max(wall_due), None, staged);
        }
    }

    /// Sets timer `t` for wall time `at`, counted on the monotonic clock from now.
    fn schedule(&mut self, t: Timer, at: Millis) {
        let wait = Duration::from_millis((at - now_ms()).max(0) as u64);
        let when = Instant::now() + wait;
        self.timers.insert((when, t.clone()));
        self.due.insert(t, (when, at));
    }

    /// Forgets old replies and, a small batch at a time so commits never
    /// wait long, ended calls past the retention.
    async fn prune(&mut self) {
        let now = now_ms();
        let gone = self.engine.prune(now);
        self.phases.forget(&gone);
        let store = self.store.clone();
        let retention = self.settings.retention_ms;
        let pruned = tokio::task::spawn_blocking(move || {
            store.prune_replies(now)?;
            let mut calls = 0;
            // At most 2,000 a minute, 200 per transaction: a backlog (a
            // first start with a lower retention) is cleared over minutes.
            for _ in 0..10 {
                if retention == 0 {
                    break;
                }
                let n = store.prune_calls(now - retention, 200)?;
                calls += n;
                if n < 200 {
                    break;
                }
            }
            Ok::<_, crate::store::StoreError>(calls)
        })
        .await;
        match pruned {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::info!(calls = n, "calls past the retention deleted"),
            Ok(Err(e)) => tracing::warn!("pruning: {e}"),
            Err(e) => tracing::warn!("pruning: {e}"),
        }
    }

    /// Applies one input to the state machine and stages what it produced.
    fn stage(
        &mut self,
        input: Input,
        now: Millis,
        request: Option<effects::RequestMeta>,
        staged: &mut Staged,
    ) -> (&'static str, Option<String>) {
        let fresh = new_id();
        let produced = self.engine.apply(input, now, &fresh);
        let result = reply_result(&produced);
        let engine = &self.engine;
        let hooks = self.phases.changed(&produced, |id| engine.call(id), now);
        staged.batch.webhooks.extend(hooks);
        let mut fx = effects::Fx::new(self, now);
        let call_id = request.as_ref().and_then(|m| fx.log_request(m, &produced));
        for e in produced {
            fx.effect(e);
        }
        let (batch, rtc) = fx.finish();
        for (t, due) in &batch.timers {
            if let Some((old, _)) = self.due.remove(t) {
                self.timers.remove(&(old, t.clone()));
            }
            if let Some(at) = due {
                self.schedule(t.clone(), *at);
            }
        }
        staged.absorb((batch, rtc));
        (result, call_id)
    }
}

/// How the request an input carried was answered: `ok` or the error code.
fn reply_result(produced: &[crate::calls::Effect]) -> &'static str {
    produced
        .iter()
        .find_map(|e| match e {
            crate::calls::Effect::Reply { result, .. } => Some(match result {
                Ok(_) => "ok",
                Err(e) => protocol::call_error_code(*e),
            }),
            _ => None,
        })
        .unwrap_or("ok")
}
