//! The client SDK: what every app of the cloud conventions has to do, done
//! once. It builds and checks the client id, logs in with any of the three
//! auth modes, connects with cleanSession=false and QoS 1, subscribes to its
//! own P2P inboxes, reconnects with backoff and jitter, drops duplicate and
//! stale messages, syncs after every reconnect, retries requests with the
//! same request id until answered or expired, and turns the wire protocol of
//! `docs/protocol.md` into typed calls and a stream of typed events.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mqrtc::client::{Client, Event, Options};
//! let (alice, mut events) = Client::connect(Options::new("GID_demo@@@alice".parse()?, "127.0.0.1", 1883))?;
//! let started = alice.start_call(&["bob"], mqrtc::calls::Media::Video).await?;
//! println!("ringing bob in call {}", started.call.call_id);
//! while let Some(ev) = events.recv().await {
//!     if let Event::Call(e) = ev { println!("{e:?}") }
//! }
//! # Ok(()) }
//! ```

mod auth;
mod book;
mod clock;
mod dedup;
mod id;
pub mod rtc;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use rumqttc::{AsyncClient, EventLoop, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

pub use auth::Credentials;
pub use book::{CallBook, Missed};
pub use dedup::Dedup;
pub use id::{ClientId, IdError};

use crate::calls::{CallView, Kind, Media};
use crate::controller::protocol::Envelope;
use crate::rtc::token::JoinParams;

/// How to reach the broker and behave on it.
#[derive(Debug, Clone)]
pub struct Options {
    /// This device.
    pub client_id: ClientId,
    /// Broker host.
    pub host: String,
    /// MQTT (or MQTTS, with `tls`) port.
    pub port: u16,
    /// TLS: the CA certificate (PEM) to trust; `None` for plain TCP.
    pub tls_ca: Option<Vec<u8>>,
    /// Login.
    pub credentials: Credentials,
    /// Topic requests are published on (the instance's uplink parent topic).
    pub uplink_topic: String,
    /// Parent topic of the controller's downlink; answers and call events
    /// arrive on `{downlink_parent}/p2p/{client_id}`.
    pub downlink_parent: String,
    /// Other parent topics whose P2P inbox to subscribe to (device-to-device
    /// messages arrive as [`Event::Message`]).
    pub p2p_parents: Vec<String>,
    /// MQTT keepalive.
    pub keep_alive: Duration,
    /// A request's time to live: retried until answered or this old.
    pub request_ttl: Duration,
    /// Interval between retries of an unanswered request.
    pub retry_every: Duration,
    /// Clock difference tolerated when judging a message stale.
    pub clock_skew: Duration,
    /// Message ids remembered for dedup.
    pub dedup_capacity: usize,
    /// File that keeps the dedup store across app restarts.
    pub dedup_file: Option<PathBuf>,
    /// First reconnect delay; doubles up to `backoff_max`, with jitter.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// How long one attempt may take from TCP connect to CONNACK (whole
    /// seconds). An attempt given up on is work the broker did for nothing
    /// and a longer backoff for the device, so this is generous: after a
    /// restart the broker may be working through thousands of CONNECTs.
    pub connect_timeout: Duration,
    /// Send `call.ringing` automatically when an invitation is shown.
    pub auto_ringing: bool,
}

impl Options {
    /// Defaults for the appliance's demo tenant (`rtc_up/call`, `rtc_down`,
    /// `rtc_event`), no login.
    pub fn new(client_id: ClientId, host: &str, port: u16) -> Options {
        Options {
            client_id,
            host: host.to_string(),
            port,
            tls_ca: None,
            credentials: Credentials::None,
            uplink_topic: "rtc_up/call".into(),
            downlink_parent: "rtc_down".into(),
            p2p_parents: vec!["rtc_event".into()],
            keep_alive: Duration::from_secs(30),
            request_ttl: Duration::from_secs(30),
            retry_every: Duration::from_secs(3),
            clock_skew: Duration::from_secs(30),
            dedup_capacity: 4096,
            dedup_file: None,
            backoff_min: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            auto_ringing: true,
        }
    }

    /// For a standard broker (`mqrtc controller` behind mosquitto or
    /// EMQX): requests go to `{uplink_topic}/{client_id}`, because such a
    /// broker does not tell the controller who published; its ACL lets a
    /// device publish there only under its own client id. The appliance
    /// accepts this topic as well.
    pub fn sender_in_topic(&mut self) -> &mut Options {
        let suffix = format!("/{}", self.client_id);
        if !self.uplink_topic.ends_with(&suffix) {
            self.uplink_topic.push_str(&suffix);
        }
        self
    }

    fn inbox(&self, parent: &str) -> String {
        format!("{parent}/p2p/{}", self.client_id)
    }
}

/// What the client reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Connected (or reconnected); a sync follows.
    Connected {
        /// The broker still had this device's session.
        session_present: bool,
    },
    /// The connection dropped; the client retries after `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The state after a (re)connect: the call book was replaced by it.
    Synced(Snapshot),
    /// A call event from the controller (`docs/protocol.md`, "Events").
    Call(crate::calls::Event),
    /// A downlink of a type this SDK does not know (a newer controller).
    Unknown(Envelope),
    /// A message on another P2P inbox (device-to-device), or a payload that
    /// is not a protocol envelope.
    Message {
        /// Topic it arrived on.
        topic: String,
        /// Its envelope, when it is one.
        envelope: Option<Envelope>,
        /// Raw payload.
        payload: Bytes,
    },
    /// `$SYS/tokenExpireNotice`: present a fresh token with [`Client::refresh_token`].
    TokenExpiring {
        /// Token type (`R`, `W`, `RW`).
        kind: String,
        /// When it expires, ms since the Unix epoch.
        expire_time: i64,
    },
    /// `$SYS/tokenInvalidNotice`: the broker closes the connection next.
    TokenInvalid {
        /// Token type.
        kind: String,
        /// 1 expired, 2 unknown or revoked, 3 wrong instance or type.
        code: i64,
    },
}

/// RTC join parameters for one call (`docs/protocol.md`, "Joining the RTC channel").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Join {
    /// The call they belong to.
    pub call_id: String,
    /// The ARTC parameters.
    #[serde(flatten)]
    pub params: JoinParams,
}

/// The answer to `call.start`, `call.accept` and `call.invite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Joined {
    /// The call as it now stands.
    pub call: CallView,
    /// Where to enter the RTC channel.
    pub join: Join,
    /// Invitees that cannot be reached or are busy.
    #[serde(default)]
    pub unreachable: Vec<String>,
}

/// The answer to `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Calls this user is in.
    pub calls: Vec<CallView>,
    /// Calls ringing for this user.
    pub invites: Vec<CallView>,
    /// Join parameters for each call this user is in.
    pub joins: Vec<Join>,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The controller answered with an error (`docs/protocol.md`, "Error codes").
    #[error("{code}: {message}")]
    Refused {
        /// Error code.
        code: String,
        /// Explanation.
        message: String,
    },
    /// No answer within the request's time to live.
    #[error("no answer from the controller within the request's time to live")]
    Timeout,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// The answer did not have the documented shape.
    #[error("unexpected answer: {0}")]
    BadAnswer(String),
    /// The options cannot work.
    #[error("{0}")]
    Config(String),
}

/// Counters of what the client dropped.
#[derive(Debug, Default)]
struct Counters {
    duplicates: AtomicU64,
    stale: AtomicU64,
    reconnects: AtomicU64,
}

/// Counters of what the client dropped, and reconnects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages dropped as duplicates.
    pub duplicates: u64,
    /// Messages dropped as stale.
    pub stale: u64,
    /// Reconnects after the first connect.
    pub reconnects: u64,
}

type Pending = HashMap<String, oneshot::Sender<Result<Value, Error>>>;

struct Inner {
    opts: Options,
    mqtt: AsyncClient,
    pending: Mutex<Pending>,
    book: Mutex<CallBook>,
    dedup: Mutex<Dedup>,
    counters: Counters,
    /// The appliance's clock, learned from answers.
    clock: clock::ApplianceClock,
    connected: AtomicBool,
    closing: AtomicBool,
    /// New login for the next reconnect (after a token refresh).
    login: Mutex<Option<(String, String)>>,
    /// Becomes true when the connection task has stopped.
    stopped: tokio::sync::watch::Sender<bool>,
    events: mpsc::UnboundedSender<Event>,
}

/// A connected device. Cheap to clone; every clone drives the same connection.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// The stream of [`Event`]s of one client.
pub type Events = mpsc::UnboundedReceiver<Event>;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    crate::controller::now_ms()
}

impl Client {
    /// Starts connecting (in the background, retrying until it succeeds) and
    /// returns the client and its events. Needs a tokio runtime.
    pub fn connect(opts: Options) -> Result<(Client, Events), Error> {
        let dedup = match &opts.dedup_file {
            Some(p) => Dedup::open(p, opts.dedup_capacity)
                .map_err(|e| Error::Config(format!("dedup file {}: {e}", p.display())))?,
            None => Dedup::new(opts.dedup_capacity),
        };
        let mut mo = MqttOptions::new(opts.client_id.to_string(), &opts.host, opts.port);
        mo.set_clean_session(false)
            .set_keep_alive(opts.keep_alive.max(Duration::from_secs(5)))
            .set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some((u, p)) = opts.credentials.login(&opts.client_id) {
            mo.set_credentials(u, p);
        }
        if let Some(ca) = &opts.tls_ca {
            // Two rustls providers are compiled in (ring and aws-lc-rs, via
            // different crates), so rustls cannot pick one by itself; an
            // app that already chose one keeps it.
            let _ = rustls::crypto::ring::default_provider().install_default();
            mo.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: ca.clone(),
                alpn: None,
                client_auth: None,
            }));
        }
        let (mqtt, mut el) = AsyncClient::new(mo, 256);
        let mut network = el.network_options();
        network.set_connection_timeout(opts.connect_timeout.as_secs().max(1));
        el.set_network_options(network);
        let (tx, rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            opts,
            mqtt,
            pending: Mutex::new(HashMap::new()),
            book: Mutex::new(CallBook::default()),
            dedup: Mutex::new(dedup),
            counters: Counters::default(),
            clock: clock::ApplianceClock::default(),
            connected: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            login: Mutex::new(None),
            stopped: tokio::sync::watch::channel(false).0,
            events: tx,
        });
        tokio::spawn(drive(inner.clone(), el));
        Ok((Client { inner }, rx))
    }

    /// This device's client id.
    pub fn client_id(&self) -> &ClientId {
        &self.inner.opts.client_id
    }

    /// True while connected.
    pub fn is_connected(&self) -> bool {
        self.inner.connected.load(Ordering::SeqCst)
    }

    /// The calls and invitations as this client knows them.
    pub fn book(&self) -> CallBook {
        lock(&self.inner.book).clone()
    }

    /// What was dropped so far.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        Stats {
            duplicates: c.duplicates.load(Ordering::Relaxed),
            stale: c.stale.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Calls `to` (one user: a 1:1 call; several: a meeting).
    pub async fn start_call(&self, to: &[&str], media: Media) -> Result<Joined, Error> {
        self.start(to, None, media, None).await
    }

    /// Starts a call or meeting with every option of `call.start`.
    pub async fn start(
        &self,
        to: &[&str],
        kind: Option<Kind>,
        media: Media,
        title: Option<&str>,
    ) -> Result<Joined, Error> {
        let mut body = json!({ "to": to, "media": media });
        if let Some(k) = kind {
            body["kind"] = json!(k);
        }
        if let Some(t) = title {
            body["title"] = json!(t);
        }
        let j: Joined = decode(self.request("call.start", body).await?)?;
        lock(&self.inner.book).joined(&j.call);
        Ok(j)
    }

    /// Accepts an invitation; the answer holds this device's join parameters.
    pub async fn accept(&self, call_id: &str) -> Result<Joined, Error> {
        let j: Joined = decode(
            self.request("call.accept", json!({ "call_id": call_id }))
                .await?,
        )?;
        lock(&self.inner.book).joined(&j.call);
        Ok(j)
    }

    /// Declines an invitation.
    pub async fn decline(&self, call_id: &str) -> Result<(), Error> {
        self.simple("call.decline", json!({ "call_id": call_id }))
            .await?;
        lock(&self.inner.book).forget(call_id);
        Ok(())
    }

    /// Withdraws a call nobody answered yet (caller only).
    pub async fn cancel(&self, call_id: &str) -> Result<(), Error> {
        self.simple("call.cancel", json!({ "call_id": call_id }))
            .await?;
        lock(&self.inner.book).forget(call_id);
        Ok(())
    }

    /// Leaves a call (a 1:1 call ends for both).
    pub async fn hangup(&self, call_id: &str) -> Result<(), Error> {
        self.simple("call.leave", json!({ "call_id": call_id }))
            .await?;
        lock(&self.inner.book).forget(call_id);
        Ok(())
    }

    /// Ends a meeting for everyone (host only).
    pub async fn end(&self, call_id: &str) -> Result<(), Error> {
        self.simple("call.end", json!({ "call_id": call_id }))
            .await?;
        lock(&self.inner.book).forget(call_id);
        Ok(())
    }

    /// Invites more people into a call (a 1:1 call becomes a meeting).
    pub async fn invite(&self, call_id: &str, to: &[&str]) -> Result<Joined, Error> {
        let j: Joined = decode(
            self.request("call.invite", json!({ "call_id": call_id, "to": to }))
                .await?,
        )?;
        lock(&self.inner.book).joined(&j.call);
        Ok(j)
    }

    /// Mutes or unmutes yourself, or (host) `target`.
    pub async fn mute(
        &self,
        call_id: &str,
        media: Media,
        muted: bool,
        target: Option<&str>,
    ) -> Result<(), Error> {
        let mut body = json!({ "call_id": call_id, "media": media, "muted": muted });
        if let Some(t) = target {
            body["target"] = json!(t);
        }
        self.simple("call.mute", body).await
    }

    /// Removes a participant (host only); their RTC token stops working.
    pub async fn remove(&self, call_id: &str, target: &str) -> Result<(), Error> {
        self.simple(
            "call.remove",
            json!({ "call_id": call_id, "target": target }),
        )
        .await
    }

    /// Makes `to` the host (host only).
    pub async fn transfer_host(&self, call_id: &str, to: &str) -> Result<(), Error> {
        self.simple(
            "call.transfer_host",
            json!({ "call_id": call_id, "to": to }),
        )
        .await
    }

    /// Tells the controller the invitation is shown (done automatically
    /// unless `auto_ringing` is off).
    pub async fn ringing(&self, call_id: &str) -> Result<(), Error> {
        self.simple("call.ringing", json!({ "call_id": call_id }))
            .await
    }

    /// The users of this instance the controller has seen, with whether one
    /// of their devices is connected now (`contacts`).
    pub async fn contacts(&self) -> Result<Vec<crate::calls::Contact>, Error> {
        #[derive(Deserialize)]
        struct Users {
            users: Vec<crate::calls::Contact>,
        }
        let u: Users = decode(self.request("contacts", json!({})).await?)?;
        Ok(u.users)
    }

    /// Asks for the current state and replaces the call book with it.
    pub async fn sync(&self) -> Result<Snapshot, Error> {
        self.inner.clone().sync().await
    }

    /// Sends a device-to-device P2P message (e.g. a WebRTC offer) to
    /// `{parent}/p2p/{target}`, QoS 1, wrapped in an envelope with a fresh
    /// message id so the receiver's SDK drops duplicates.
    pub async fn send_p2p(
        &self,
        parent: &str,
        target: &ClientId,
        kind: &str,
        body: Value,
        ttl: Duration,
    ) -> Result<String, Error> {
        let ts = self.inner.clock.now(now_ms());
        let env = envelope(kind, None, ts, ttl.as_millis() as i64, body);
        let id = env.id.clone();
        let payload = serde_json::to_vec(&env).map_err(|e| Error::Config(e.to_string()))?;
        self.inner
            .mqtt
            .publish(
                format!("{parent}/p2p/{target}"),
                QoS::AtLeastOnce,
                false,
                payload,
            )
            .await
            .map_err(|_| Error::Closed)?;
        Ok(id)
    }

    /// Presents a fresh token without reconnecting (`$SYS/uploadToken`, as
    /// in the cloud service) and uses it for later reconnects.
    pub async fn refresh_token(&self, kind: &str, token: &str) -> Result<(), Error> {
        let mut creds = self.inner.opts.credentials.clone();
        if !creds.set_token(kind, token) {
            return Err(Error::Config(
                "refresh_token needs Token credentials".into(),
            ));
        }
        let payload = json!({ "token": token, "type": kind }).to_string();
        self.inner
            .mqtt
            .publish("$SYS/uploadToken", QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|_| Error::Closed)?;
        *lock(&self.inner.login) = creds.login(&self.inner.opts.client_id);
        Ok(())
    }

    /// Sends any request of the protocol and waits for its answer's body,
    /// retrying with the same request id every `retry_every` until answered
    /// or `request_ttl` has passed.
    pub async fn request(&self, kind: &str, body: Value) -> Result<Value, Error> {
        self.inner.clone().request(kind, body).await
    }

    async fn simple(&self, kind: &str, body: Value) -> Result<(), Error> {
        self.request(kind, body).await.map(|_| ())
    }

    /// Disconnects cleanly after what was already published went out (the
    /// session stays on the broker: clean=false). Waits at most 2 s.
    pub async fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        for (_, tx) in lock(&self.inner.pending).drain() {
            let _ = tx.send(Err(Error::Closed));
        }
        let mut stopped = self.inner.stopped.subscribe();
        if self.inner.mqtt.disconnect().await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), stopped.wait_for(|s| *s)).await;
        }
    }
}

fn decode<T: for<'de> Deserialize<'de>>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::BadAnswer(e.to_string()))
}

fn envelope(kind: &str, req: Option<&str>, ts: i64, ttl: i64, body: Value) -> Envelope {
    Envelope {
        v: crate::controller::protocol::VERSION,
        id: crate::controller::new_id(),
        kind: kind.to_string(),
        req: req.map(str::to_string),
        ts,
        ttl: Some(ttl),
        from: None,
        body,
    }
}

impl Inner {
    async fn request(self: Arc<Self>, kind: &str, body: Value) -> Result<Value, Error> {
        let mut req = crate::controller::new_id();
        let (tx, mut rx) = oneshot::channel();
        lock(&self.pending).insert(req.clone(), tx);
        let ttl = self.opts.request_ttl.as_millis() as i64;
        let deadline = now_ms() + ttl;
        let mut sent_once = false;
        let mut offset_sent = self.clock.offset();
        let mut clock_retry = true;
        let result = loop {
            if self.closing.load(Ordering::SeqCst) {
                break Err(Error::Closed);
            }
            let left = deadline - now_ms();
            if left <= 0 {
                break Err(Error::Timeout);
            }
            // While disconnected the first copy waits in the client's queue;
            // more copies would only pile up behind it.
            if !sent_once || self.connected.load(Ordering::SeqCst) {
                offset_sent = self.clock.offset();
                let ts = self.clock.now(now_ms());
                let env = envelope(kind, Some(&req), ts, left, body.clone());
                let payload = serde_json::to_vec(&env).map_err(|e| Error::Config(e.to_string()))?;
                if self
                    .mqtt
                    .publish(&self.opts.uplink_topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    break Err(Error::Closed);
                }
                sent_once = true;
            }
            let wait = self
                .opts
                .retry_every
                .min(Duration::from_millis(left as u64));
            match tokio::time::timeout(wait, &mut rx).await {
                // Judged stale by an appliance whose clock this answer just
                // taught us: once more, as a new request with its time.
                Ok(Ok(Err(Error::Refused { code, .. })))
                    if code == "stale" && clock_retry && self.clock.offset() != offset_sent =>
                {
                    clock_retry = false;
                    req = crate::controller::new_id();
                    let (tx, next) = oneshot::channel();
                    rx = next;
                    lock(&self.pending).insert(req.clone(), tx);
                    sent_once = false;
                }
                Ok(Ok(r)) => break r,
                Ok(Err(_)) => break Err(Error::Closed),
                Err(_) => continue,
            }
        };
        lock(&self.pending).remove(&req);
        result
    }

    async fn sync(self: Arc<Self>) -> Result<Snapshot, Error> {
        let s: Snapshot = decode(self.clone().request("sync", json!({})).await?)?;
        lock(&self.book).replace(&s);
        Ok(s)
    }

    fn emit(&self, e: Event) {
        let _ = self.events.send(e);
    }

    /// Dedup and staleness: true if the message should be handled.
    fn admit(&self, env: &Envelope) -> bool {
        let ttl = env.ttl.unwrap_or(crate::controller::protocol::DEFAULT_TTL);
        let skew = self.opts.clock_skew.as_millis() as i64;
        if env.ts.saturating_add(ttl).saturating_add(skew) < self.clock.now(now_ms()) {
            self.counters.stale.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id = %env.id, kind = %env.kind, "stale message dropped");
            return false;
        }
        if !lock(&self.dedup).first(&env.id) {
            self.counters.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(id = %env.id, kind = %env.kind, "duplicate message dropped");
            return false;
        }
        true
    }

    fn publish(self: &Arc<Self>, topic: &str, payload: Bytes) {
        if let Some(kind) = topic.strip_prefix("$SYS/") {
            return self.notice(kind, &payload);
        }
        let env: Option<Envelope> = serde_json::from_slice(&payload).ok();
        let from_controller = topic == self.opts.inbox(&self.opts.downlink_parent);
        let Some(env) = env else {
            return self.emit(Event::Message {
                topic: topic.to_string(),
                envelope: None,
                payload,
            });
        };
        // An answer to a request still waiting is fresh by construction:
        // its stamp tells the appliance's clock.
        let answer = from_controller
            && matches!(env.kind.as_str(), "result" | "error")
            && env
                .req
                .as_deref()
                .is_some_and(|r| lock(&self.pending).contains_key(r));
        if answer {
            let tolerance = self.opts.clock_skew.as_millis() as i64 / 2;
            if self.clock.learn(env.ts, now_ms(), tolerance) {
                tracing::info!(
                    offset_ms = self.clock.offset(),
                    "the appliance's clock differs from ours: adjusted"
                );
            }
        }
        if !self.admit(&env) {
            return;
        }
        // Only the controller's inbox carries answers and call events: a
        // device-to-device message cannot impersonate the controller.
        if !from_controller {
            return self.emit(Event::Message {
                topic: topic.to_string(),
                envelope: Some(env),
                payload,
            });
        }
        match env.kind.as_str() {
            "result" | "error" => {
                let Some(req) = env.req.as_deref() else {
                    return;
                };
                // Not stored (the appliance's disk or database failed):
                // the next retry, with the same `req`, may be.
                if env.kind == "error"
                    && env.body["code"] == crate::controller::protocol::UNAVAILABLE
                {
                    return;
                }
                let Some(tx) = lock(&self.pending).remove(req) else {
                    return; // an answer to a retry already answered
                };
                let r = if env.kind == "result" {
                    Ok(env.body)
                } else {
                    Err(Error::Refused {
                        code: env.body["code"].as_str().unwrap_or("unknown").to_string(),
                        message: env.body["message"].as_str().unwrap_or_default().to_string(),
                    })
                };
                let _ = tx.send(r);
            }
            kind => {
                let typed = serde_json::from_value::<crate::calls::Event>(
                    json!({ "type": kind, "body": env.body }),
                );
                match typed {
                    Ok(e) => {
                        lock(&self.book).apply(&e);
                        if let crate::calls::Event::Invite { call, .. } = &e {
                            if self.opts.auto_ringing {
                                let me = self.clone();
                                let id = call.call_id.clone();
                                tokio::spawn(async move {
                                    let _ =
                                        me.request("call.ringing", json!({ "call_id": id })).await;
                                });
                            }
                        }
                        self.emit(Event::Call(e));
                    }
                    Err(_) => self.emit(Event::Unknown(env)),
                }
            }
        }
    }

    fn notice(&self, kind: &str, payload: &[u8]) {
        let v: Value = serde_json::from_slice(payload).unwrap_or_default();
        let t = v["type"].as_str().unwrap_or_default().to_string();
        match kind {
            "tokenExpireNotice" => self.emit(Event::TokenExpiring {
                kind: t,
                expire_time: v["expireTime"].as_i64().unwrap_or_default(),
            }),
            "tokenInvalidNotice" => self.emit(Event::TokenInvalid {
                kind: t,
                code: v["code"].as_i64().unwrap_or_default(),
            }),
            _ => {}
        }
    }
}

/// Reconnect delay after `failures` consecutive failures: exponential from
/// `min` to `max`, then a random factor in [0.5, 1) so a fleet that lost the
/// broker together does not come back together.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(max);
    base.mul_f64(rand::rng().random_range(0.5..1.0))
}

/// Polls the connection until closed: reconnects, subscribes, syncs.
async fn drive(inner: Arc<Inner>, el: EventLoop) {
    drive_loop(&inner, el).await;
    inner.connected.store(false, Ordering::SeqCst);
    inner.stopped.send_replace(true);
}

async fn drive_loop(inner: &Arc<Inner>, mut el: EventLoop) {
    let mut failures = 0u32;
    let mut ever = false;
    // Set between a CONNACK and the SUBACK of the inbox subscription.
    let mut pending_ready: Option<bool> = None;
    loop {
        match el.poll().await {
            Ok(rumqttc::Event::Incoming(Packet::ConnAck(ack))) => {
                failures = 0;
                inner.connected.store(true, Ordering::SeqCst);
                if ever {
                    inner.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                }
                ever = true;
                // One SUBSCRIBE for the inboxes; "connected" (and the sync,
                // whose answer arrives on the inbox) waits for its SUBACK so
                // that on a standard broker nothing sent to us is missed.
                // try_: the request queue is drained by this very loop.
                let mut inboxes = vec![inner.opts.inbox(&inner.opts.downlink_parent)];
                inboxes.extend(inner.opts.p2p_parents.iter().map(|p| inner.opts.inbox(p)));
                let filters = inboxes
                    .into_iter()
                    .map(|t| rumqttc::SubscribeFilter::new(t, QoS::AtLeastOnce));
                pending_ready = Some(ack.session_present);
                if let Err(e) = inner.mqtt.try_subscribe_many(filters) {
                    tracing::warn!("inbox subscription not sent: {e}");
                    ready(inner, ack.session_present);
                    pending_ready = None;
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::SubAck(sa))) => {
                if let Some(session_present) = pending_ready.take() {
                    if sa
                        .return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        tracing::warn!("the broker refused an inbox subscription");
                    }
                    ready(inner, session_present);
                }
            }
            Ok(rumqttc::Event::Incoming(Packet::Publish(p))) => {
                let topic = p.topic.clone();
                tracing::debug!(client_id = %inner.opts.client_id, %topic, pkid = p.pkid, "incoming publish");
                inner.publish(&topic, p.payload);
            }
            Ok(rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect)) => {
                // MQTT-3.14.4-1: close the connection right after DISCONNECT
                // (dropping the event loop does). Keeping it open would let
                // the broker hand this closed client messages meant for the
                // next session, which it would acknowledge and lose.
                return;
            }
            Ok(_) => {}
            Err(e) => {
                inner.connected.store(false, Ordering::SeqCst);
                if inner.closing.load(Ordering::SeqCst) {
                    return;
                }
                if let Some((u, p)) = lock(&inner.login).clone() {
                    el.mqtt_options.set_credentials(u, p);
                }
                failures = failures.saturating_add(1);
                let retry_in = backoff(failures, inner.opts.backoff_min, inner.opts.backoff_max);
                inner.emit(Event::Disconnected {
                    reason: e.to_string(),
                    retry_in,
                });
                tokio::time::sleep(retry_in).await;
            }
        }
    }
}

/// Connected and subscribed: report it and sync.
fn ready(inner: &Arc<Inner>, session_present: bool) {
    inner.emit(Event::Connected { session_present });
    let me = inner.clone();
    tokio::spawn(async move {
        match me.clone().sync().await {
            Ok(s) => me.emit(Event::Synced(s)),
            Err(e) => tracing::warn!("sync after connect failed: {e}"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for _ in 0..50 {
            let d1 = backoff(1, min, max);
            assert!(d1 >= Duration::from_millis(50) && d1 < min);
            let d4 = backoff(4, min, max);
            assert!(d4 >= Duration::from_millis(400) && d4 < Duration::from_millis(800));
            let d30 = backoff(30, min, max);
            assert!(d30 >= max / 2 && d30 < max);
        }
    }
}
