//! The call controller runtime: uplinks from the bridge, timers and RTC
//! callbacks go into the state machine one at a time; each input's state,
//! timers and downlink messages are written in one SQLite transaction, then
//! the downlinks are handed to the broker and the RTC operations done.

mod effects;
mod outbox;
pub mod protocol;

use std::collections::{BTreeSet, HashMap, HashSet};
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

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or_default()
}

/// A new unique, time-ordered id.
pub fn new_id() -> String {
    ulid::Ulid::new().to_string()
}

struct Runtime {
    settings: Settings,
    engine: Engine,
    store: Arc<Store>,
    directory: Arc<SharedDirectory>,
    rtc: Arc<dyn RtcProvider>,
    timers: BTreeSet<(Millis, Timer)>,
    due: HashMap<Timer, Millis>,
    known: HashSet<String>,
    out: mpsc::UnboundedSender<crate::store::OutboxRow>,
}

/// Restores the controller's state and starts it; returns its task.
pub async fn start(settings: Settings, deps: Deps) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let store = deps.store.clone();
    let since = now_ms() - settings.rules.reply_memory;
    let loaded = tokio::task::spawn_blocking(move || store.load_controller(since))
        .await?
        .context("while loading the controller's state")?;
    let mut engine = Engine::new(settings.rules.clone());
    let mut known = HashSet::new();
    for d in loaded.devices {
        known.insert(d.client_id.clone());
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
    tokio::spawn(outbox::send(
        deps.bridge.clone(),
        deps.store.clone(),
        out_rx,
    ));
    let events = deps
        .bridge
        .subscribe(&["#"], 4096)
        .context("subscribing to uplinks")?;
    tracing::info!(
        calls = engine.live_calls().count(),
        timers = timers.len(),
        devices = known.len(),
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
        known,
        out,
    };
    Ok(tokio::spawn(rt.run(events, deps.rtc_events)))
}

impl Runtime {
    async fn run(
        mut self,
        mut events: mpsc::Receiver<BridgeEvent>,
        mut rtc: mpsc::UnboundedReceiver<RtcEvent>,
    ) {
        let mut prune = tokio::time::interval(Duration::from_secs(60));
        loop {
            let next = self.timers.first().map(|(at, _)| *at);
            let sleep = next
                .map(|at| Duration::from_millis((at - now_ms()).max(0) as u64))
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.bridge_event(ev).await,
                    None => {
                        tracing::warn!("bridge closed: controller stops");
                        return;
                    }
                },
                Some(ev) = rtc.recv() => self.rtc_event(ev).await,
                _ = tokio::time::sleep(sleep), if next.is_some() => self.fire_timers().await,
                _ = prune.tick() => self.prune().await,
            }
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

    async fn bridge_event(&mut self, ev: BridgeEvent) {
        match ev {
            BridgeEvent::Connected { client_id, .. } => {
                if self.known.contains(&client_id) {
                    return;
                }
                let Some(d) = self.device(&client_id) else {
                    return;
                };
                self.known.insert(client_id);
                let mut batch = Batch::default();
                batch.devices.push((d.clone(), now_ms()));
                self.engine.apply(Input::DeviceSeen(d), now_ms(), "-");
                self.commit(batch, vec![]).await;
            }
            BridgeEvent::Uplink(up) => self.uplink(up).await,
            BridgeEvent::Disconnected { .. } => {}
        }
    }

    async fn uplink(&mut self, up: Uplink) {
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
        if self.known.insert(from.client_id.clone()) {
            let mut b = Batch::default();
            b.devices.push((from.clone(), now));
            self.commit(b, vec![]).await;
        }
        match protocol::decode(
            &up.payload,
            &from.client_id,
            self.settings.max_message_bytes,
        ) {
            Err((e, req)) => {
                tracing::info!(client_id = %from.client_id, code = e.code(), "uplink refused: {e}");
                let mut fx = effects::Fx::new(self, now);
                fx.wire_error(&from, req.as_deref(), e);
                let (batch, rtc) = fx.finish();
                self.commit(batch, rtc).await;
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
                self.process(
                    input,
                    now,
                    Some((from, r.envelope.kind.clone(), r.cmd, logged)),
                )
                .await;
            }
        }
    }

    async fn rtc_event(&mut self, ev: RtcEvent) {
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
        let input = if joined {
            Input::RtcJoined { channel, user }
        } else {
            Input::RtcLeft { channel, user }
        };
        self.process(input, now_ms(), None).await;
    }

    async fn fire_timers(&mut self) {
        let now = now_ms();
        while let Some((at, t)) = self.timers.first().cloned() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, t.clone()));
            self.due.remove(&t);
            let mut fired = Batch::default();
            fired.cancel_timers.push(t.clone());
            self.process_with(Input::Timer(t), now, None, fired).await;
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

    async fn process(&mut self, input: Input, now: Millis, request: Option<effects::RequestMeta>) {
        self.process_with(input, now, request, Batch::default())
            .await;
    }

    async fn process_with(
        &mut self,
        input: Input,
        now: Millis,
        request: Option<effects::RequestMeta>,
        base: Batch,
    ) {
        let fresh = new_id();
        let produced = self.engine.apply(input, now, &fresh);
        let mut fx = effects::Fx::with_batch(self, now, base);
        if let Some(meta) = &request {
            fx.log_request(meta, &produced);
        }
        for e in produced {
            fx.effect(e);
        }
        let (batch, rtc) = fx.finish();
        for (t, at) in &batch.set_timers {
            if let Some(old) = self.due.insert(t.clone(), *at) {
                self.timers.remove(&(old, t.clone()));
            }
            self.timers.insert((*at, t.clone()));
        }
        for t in &batch.cancel_timers {
            if let Some(old) = self.due.remove(t) {
                self.timers.remove(&(old, t.clone()));
            }
        }
        self.commit(batch, rtc).await;
    }

    /// Writes a batch, then hands its downlinks to the sender and does its RTC operations.
    async fn commit(&mut self, batch: Batch, rtc: Vec<effects::RtcOp>) {
        let store = self.store.clone();
        let written: Result<Result<_, StoreError>, _> =
            tokio::task::spawn_blocking(move || store.apply_batch(&batch)).await;
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
        match written {
            Ok(Ok(rows)) => {
                for row in rows {
                    let _ = self.out.send(row);
                }
            }
            Ok(Err(e)) => tracing::error!("controller state not saved: {e}"),
            Err(e) => tracing::error!("controller state not saved: {e}"),
        }
    }
}
