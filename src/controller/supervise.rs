//! Starting, supervising and stopping the controller.
//!
//! The supervisor owns everything that must outlive one run of the state
//! machine: the bridge stream (uplinks already accepted wait there), the RTC
//! callbacks and the outbox sender. A run ends when its task panics or when
//! a commit fails; the supervisor then waits (with backoff), loads the last
//! committed state from SQLite again and starts a new run, so memory never
//! holds what the disk does not.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use futures::FutureExt;
use tokio::sync::mpsc;

use super::runtime::{Deps, Runtime, Settings};
use super::{now_ms, outbox};
use crate::bridge::{EventStream, MessageBridge, Topics};
use crate::calls::Engine;
use crate::rtc::{token::rtc_user_id, RtcEvent, RtcProvider};
use crate::store::{OutboxRow, StateStore};

/// Uplinks that may wait for the controller; more are refused (0x97).
pub(super) const UPLINK_QUEUE: usize = 4096;

/// Longest wait between two restarts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a run's inputs come from; kept across runs.
pub(super) struct Inputs {
    pub events: EventStream,
    pub rtc: mpsc::UnboundedReceiver<RtcEvent>,
    pub sent: mpsc::UnboundedReceiver<Vec<i64>>,
    pub control: mpsc::UnboundedReceiver<Control>,
    /// RTC callbacks and sent outbox rows of a batch that was not stored.
    pub retry_rtc: VecDeque<RtcEvent>,
    pub retry_done: Vec<i64>,
}

/// Requests to a running controller.
#[derive(Debug)]
pub(super) enum Control {
    /// Process what is queued, then stop.
    Drain(tokio::sync::oneshot::Sender<()>),
    /// Fault injection for tests: the run panics.
    Panic,
}

/// Why a run ended.
pub(super) enum Exit {
    /// Asked to stop, or the bridge closed.
    Stopped,
    /// A commit failed: the state in memory is ahead of the disk.
    StoreFailed(String),
}

/// How the controller is doing, for `/healthz` and the console.
#[derive(Debug, Default)]
pub struct Health {
    state: Mutex<(&'static str, Option<String>)>,
    restarts: AtomicU64,
}

impl Health {
    /// Sets the state; an error, once set, stays until the next one.
    fn set(&self, state: &'static str, error: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.0 = state;
        if error.is_some() {
            s.1 = error;
        }
    }

    /// `ok`, `restarting` (after a failure, until its state is loaded
    /// again) or `down` (stopped).
    pub fn state(&self) -> &'static str {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Why it last failed.
    pub fn last_error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .1
            .clone()
    }

    /// Restarts since the appliance started.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }
}

/// Fault injection for tests (`serve --fault-injection`).
#[derive(Clone)]
pub struct Faults {
    control: mpsc::UnboundedSender<Control>,
}

impl Faults {
    /// Makes the running state machine panic, as a bug would.
    pub fn panic_controller(&self) {
        let _ = self.control.send(Control::Panic);
    }
}

/// A running controller.
pub struct Controller {
    health: Arc<Health>,
    control: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Controller {
    /// Its health.
    pub fn health(&self) -> Arc<Health> {
        self.health.clone()
    }

    /// Switches for fault-injection tests.
    pub fn faults(&self) -> Faults {
        Faults {
            control: self.control.clone(),
        }
    }

    /// Processes the uplinks already queued, commits, and stops.
    pub async fn stop(self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.control.send(Control::Drain(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
        }
        self.task.abort();
    }
}

/// Restores the controller's state and starts it.
pub async fn start(settings: Settings, deps: Deps) -> anyhow::Result<Controller> {
    let first = restore(&settings, &deps.store, deps.rtc.as_ref()).await?;
    let (out, out_rx) = mpsc::unbounded_channel();
    for row in first.1.iter().cloned() {
        let _ = out.send(row);
    }
    let (done_tx, sent) = mpsc::unbounded_channel();
    tokio::spawn(outbox::send(deps.bridge.clone(), out_rx, done_tx));
    let events = deps
        .bridge
        .subscribe(Topics::Uplinks, UPLINK_QUEUE)
        .context("subscribing to uplinks")?;
    let (control_tx, control) = mpsc::unbounded_channel();
    let inputs = Inputs {
        events,
        rtc: deps.rtc_events,
        sent,
        control,
        retry_rtc: VecDeque::new(),
        retry_done: Vec::new(),
    };
    let health = Arc::new(Health::default());
    health.set("ok", None);
    let sup = Supervisor {
        settings,
        bridge: deps.bridge,
        store: deps.store,
        directory: deps.directory,
        rtc: deps.rtc,
        out,
        health: health.clone(),
    };
    let task = tokio::spawn(sup.run(first.0, inputs));
    Ok(Controller {
        health,
        control: control_tx,
        task,
    })
}

struct Supervisor {
    settings: Settings,
    bridge: Arc<dyn MessageBridge>,
    store: Arc<dyn StateStore>,
    directory: Arc<crate::directory::SharedDirectory>,
    rtc: Arc<dyn RtcProvider>,
    out: mpsc::UnboundedSender<OutboxRow>,
    health: Arc<Health>,
}

/// State loaded from SQLite: the engine with its timers, and the outbox.
type Restored = ((Engine, Vec<(crate::calls::Timer, i64)>), Vec<OutboxRow>);

impl Supervisor {
    async fn run(self, first: (Engine, Vec<(crate::calls::Timer, i64)>), mut inputs: Inputs) {
        let mut loaded = Some(first);
        let mut backoff = Duration::from_millis(100);
        loop {
            let (engine, timers) = match loaded.take() {
                Some(l) => l,
                None => match restore(&self.settings, &self.store, self.rtc.as_ref()).await {
                    Ok((l, _outbox)) => {
                        // Its outbox rows were handed to the sender when they were committed.
                        self.health.set("ok", None);
                        l
                    }
                    Err(e) => {
                        tracing::error!("controller state not loaded: {e:#}; retrying");
                        self.health.set("restarting", Some(format!("{e:#}")));
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                },
            };
            let rt = Runtime::new(
                self.settings.clone(),
                engine,
                timers,
                Arc::clone(&self.bridge),
                Arc::clone(&self.store),
                Arc::clone(&self.directory),
                Arc::clone(&self.rtc),
                self.out.clone(),
            );
            let started = tokio::time::Instant::now();
            let why = match AssertUnwindSafe(rt.run(&mut inputs)).catch_unwind().await {
                Ok(Exit::Stopped) => {
                    self.health.set("down", None);
                    return;
                }
                Ok(Exit::StoreFailed(e)) => e,
                Err(panic) => panic_message(panic.as_ref()),
            };
            let n = self.health.restarts.fetch_add(1, Ordering::Relaxed) + 1;
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_millis(100);
            }
            tracing::error!(
                restarts = n,
                ?backoff,
                "controller failed: {why}; restarting from the stored state"
            );
            self.health.set("restarting", Some(why));
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// Loads the last committed state and reopens the RTC channels of live calls.
async fn restore(
    settings: &Settings,
    store: &Arc<dyn StateStore>,
    rtc: &dyn RtcProvider,
) -> anyhow::Result<Restored> {
    let store = store.clone();
    let since = now_ms() - settings.rules.reply_memory;
    let loaded = tokio::task::spawn_blocking(move || store.load_controller(since))
        .await?
        .context("while loading the controller's state")?;
    let mut engine = Engine::new(settings.rules.clone());
    let devices = loaded.devices.len();
    for d in loaded.devices {
        engine.restore_device(d);
    }
    for c in loaded.calls {
        engine.restore_call(c);
    }
    for (c, q, result, until) in loaded.replies {
        engine.restore_reply(c, q, result, until);
    }
    // The RTC service forgot its channels if it restarted with us.
    let now = now_ms();
    for c in engine.live_calls() {
        rtc.open_channel(&c.channel, &c.id);
        for (user, p) in &c.participants {
            if matches!(p.state, crate::calls::PState::Removed) {
                rtc.revoke(&c.channel, &rtc_user_id(user), now);
            }
        }
    }
    tracing::info!(
        calls = engine.live_calls().count(),
        timers = loaded.timers.len(),
        devices,
        "controller state loaded"
    );
    Ok(((engine, loaded.timers), loaded.outbox))
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let text = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown".into());
    format!("panicked: {text}")
}
