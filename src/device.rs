//! `mqrtc device`: a command-line device on the client SDK. Interactive
//! (commands typed on stdin, events printed as they come) or scripted
//! (`mqrtc device --id GID_demo@@@alice call bob`), with `--json` event lines
//! for scripts. It enters the mock RTC channel with its token when a call is
//! set up, and leaves it when the call ends.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::calls::{EndReason, Event as CallEvent, Media, PState};
use crate::client::rtc::{self, RtcSession};
use crate::client::{Client, ClientId, Credentials, Event, Join, Options};

/// Flags of `mqrtc device` (without a provisioning subcommand).
#[derive(Debug, Clone, Default, Args)]
pub struct DeviceArgs {
    /// This device's client id, `GroupID@@@DeviceID` (e.g. `GID_demo@@@alice`).
    #[arg(long, value_name = "CLIENT_ID")]
    pub id: Option<String>,
    /// Appliance (or broker) host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// MQTT port.
    #[arg(long, default_value_t = 1883)]
    pub mqtt_port: u16,
    /// HTTP port of the appliance (the mock RTC service).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// Connect over TLS to `--mqtts-port`.
    #[arg(long)]
    pub tls: bool,
    /// MQTTS port.
    #[arg(long, default_value_t = 8883)]
    pub mqtts_port: u16,
    /// CA certificate (PEM) to trust with `--tls` [default: DATA_DIR/certs/ca.pem].
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Instance id (for Signature, DeviceCredential and Token logins).
    #[arg(long)]
    pub instance: Option<String>,
    /// AccessKeyId (Signature or Token login).
    #[arg(long)]
    pub key_id: Option<String>,
    /// AccessKeySecret: log in with Signature.
    #[arg(long)]
    pub secret: Option<String>,
    /// DeviceAccessKeyId (DeviceCredential login).
    #[arg(long)]
    pub device_key_id: Option<String>,
    /// DeviceAccessKeySecret: log in with DeviceCredential.
    #[arg(long)]
    pub device_secret: Option<String>,
    /// `TYPE:TOKEN` (TYPE R, W or RW; repeat for R and W): log in with Token.
    #[arg(long, value_name = "TYPE:TOKEN")]
    pub token: Vec<String>,
    /// Plain username (for a standard broker).
    #[arg(long)]
    pub username: Option<String>,
    /// Plain password (for a standard broker).
    #[arg(long)]
    pub password: Option<String>,
    /// Uplink topic for requests.
    #[arg(long, default_value = "rtc_up/call")]
    pub uplink: String,
    /// Parent topic of the controller's downlink.
    #[arg(long, default_value = "rtc_down")]
    pub downlink: String,
    /// Mock RTC service [default: http://HOST:HTTP_PORT/rtc/v1].
    #[arg(long, value_name = "URL")]
    pub rtc_url: Option<String>,
    /// Accept every invitation.
    #[arg(long)]
    pub auto_answer: bool,
    /// Exit after the first call this device took part in ends.
    #[arg(long)]
    pub once: bool,
    /// Hang up this many seconds after a call became active.
    #[arg(long, value_name = "SECS")]
    pub hangup_after: Option<u64>,
    /// Start audio-only calls.
    #[arg(long)]
    pub audio: bool,
    /// Keep the dedup store in this file (drops duplicates across restarts).
    #[arg(long, value_name = "FILE")]
    pub dedup_file: Option<PathBuf>,
    /// Give up on a request after this many seconds without an answer.
    #[arg(long, default_value_t = 30)]
    pub request_ttl: u64,
    /// A command to run at start (e.g. `call bob`); with `call`, exits when that call ends.
    #[arg(trailing_var_arg = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

const HELP: &str = "commands: call <user>... | accept | decline | cancel | hangup | end | \
invite <user>... | mute [audio|video] [user] | unmute [audio|video] [user] | remove <user> | \
host <user> | send <client id> <text> | sync | status | quit";

/// Runs the device until `quit`, end of a scripted call, or Ctrl-C.
pub async fn run(args: DeviceArgs, json: bool, data_dir: &Path) -> anyhow::Result<()> {
    let id: ClientId = args
        .id
        .as_deref()
        .ok_or_else(|| {
            anyhow!("mqrtc device needs --id GroupID@@@DeviceID (e.g. --id GID_demo@@@alice)")
        })?
        .parse()?;
    let opts = options(&args, id.clone(), data_dir)?;
    let rtc = args
        .rtc_url
        .clone()
        .unwrap_or_else(|| format!("http://{}:{}/rtc/v1", args.host, args.http_port));
    let (client, events) = Client::connect(opts)?;
    let (lines_tx, lines) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut dev = Device {
        client,
        json,
        args: args.clone(),
        rtc,
        me: id.device().to_string(),
        invite: None,
        current: None,
        rtc_sessions: HashMap::new(),
        exit_after: None,
        quit: false,
        failed: false,
        hangup_at: None,
    };
    if !json {
        eprintln!("mqrtc device {id}: {HELP}");
    }
    dev.main(events, lines).await
}

fn options(args: &DeviceArgs, id: ClientId, data_dir: &Path) -> anyhow::Result<Options> {
    let port = if args.tls {
        args.mqtts_port
    } else {
        args.mqtt_port
    };
    let mut o = Options::new(id, &args.host, port);
    o.uplink_topic = args.uplink.clone();
    o.downlink_parent = args.downlink.clone();
    o.dedup_file = args.dedup_file.clone();
    o.request_ttl = Duration::from_secs(args.request_ttl.max(1));
    if args.tls {
        let ca = args
            .ca
            .clone()
            .unwrap_or_else(|| data_dir.join("certs").join("ca.pem"));
        o.tls_ca = Some(std::fs::read(&ca).with_context(|| {
            format!(
                "reading the CA certificate {} (use --ca FILE)",
                ca.display()
            )
        })?);
    }
    let instance = || {
        args.instance
            .clone()
            .ok_or_else(|| anyhow!("this login needs --instance INSTANCE_ID"))
    };
    let key_id = || {
        args.key_id
            .clone()
            .ok_or_else(|| anyhow!("this login needs --key-id ACCESS_KEY_ID"))
    };
    o.credentials = if let Some(secret) = &args.secret {
        Credentials::Signature {
            instance: instance()?,
            key_id: key_id()?,
            secret: secret.clone(),
        }
    } else if let Some(secret) = &args.device_secret {
        Credentials::DeviceCredential {
            instance: instance()?,
            key_id: args
                .device_key_id
                .clone()
                .ok_or_else(|| anyhow!("--device-secret needs --device-key-id"))?,
            secret: secret.clone(),
        }
    } else if !args.token.is_empty() {
        let tokens = args
            .token
            .iter()
            .map(|t| match t.split_once(':') {
                Some((k @ ("R" | "W" | "RW"), v)) if !v.is_empty() => {
                    Ok((k.to_string(), v.to_string()))
                }
                _ => Err(anyhow!(
                    "--token is TYPE:TOKEN with TYPE R, W or RW (got {t:?})"
                )),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Credentials::Token {
            instance: instance()?,
            key_id: key_id()?,
            tokens,
        }
    } else if let Some(u) = &args.username {
        Credentials::Plain {
            username: u.clone(),
            password: args.password.clone().unwrap_or_default(),
        }
    } else {
        Credentials::None
    };
    Ok(o)
}

struct Device {
    client: Client,
    json: bool,
    args: DeviceArgs,
    rtc: String,
    me: String,
    /// The invitation ringing now.
    invite: Option<String>,
    /// The call `hangup`, `mute` … act on.
    current: Option<String>,
    rtc_sessions: HashMap<String, RtcSession>,
    /// Exit when this call is over (a scripted `call`).
    exit_after: Option<String>,
    quit: bool,
    failed: bool,
    hangup_at: Option<(String, tokio::time::Instant)>,
}

impl Device {
    async fn main(
        &mut self,
        mut events: crate::client::Events,
        mut lines: mpsc::UnboundedReceiver<String>,
    ) -> anyhow::Result<()> {
        let script = self.args.command.join(" ");
        if !script.trim().is_empty() {
            let scripted_call = script.split_whitespace().next() == Some("call");
            self.command(&script).await;
            if self.failed {
                bail!("`{script}` failed");
            }
            if !scripted_call {
                self.client.close().await;
                return Ok(());
            }
        }
        let mut stdin_open = true;
        while !self.quit {
            let hangup = self.hangup_at.clone();
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(ev) => self.event(ev).await,
                    None => bail!("the client stopped"),
                },
                line = lines.recv(), if stdin_open => match line {
                    Some(l) => self.command(&l).await,
                    None => stdin_open = false,
                },
                _ = async {
                    match &hangup {
                        Some((_, at)) => tokio::time::sleep_until(*at).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some((call, _)) = self.hangup_at.take() {
                        self.command(&format!("hangup {call}")).await;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        // Quitting mid-call hangs up, as closing a calling app does.
        if let Some(id) = self.current.clone() {
            let _ = tokio::time::timeout(
                Duration::from_secs(5),
                self.command(&format!("hangup {id}")),
            )
            .await;
        }
        for (call_id, s) in std::mem::take(&mut self.rtc_sessions) {
            self.rtc_leave(&call_id, s).await;
        }
        self.client.close().await;
        Ok(())
    }

    fn say(&self, event: &str, mut fields: Value, human: String) {
        if self.json {
            fields["event"] = json!(event);
            println!("{fields}");
        } else {
            println!("{human}");
        }
    }

    fn error(&mut self, command: &str, e: impl std::fmt::Display, code: Option<&str>) {
        self.failed = true;
        self.say(
            "error",
            json!({ "command": command, "code": code, "message": e.to_string() }),
            format!("{command}: {e}"),
        );
    }

    /// The call a command without a call id means.
    fn pick(&self, arg: Option<&str>, prefer_invite: bool) -> Option<String> {
        arg.map(str::to_string).or_else(|| {
            if prefer_invite {
                self.invite.clone().or_else(|| self.current.clone())
            } else {
                self.current.clone().or_else(|| self.invite.clone())
            }
        })
    }

    async fn command(&mut self, line: &str) {
        self.failed = false;
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&verb, rest)) = words.split_first() else {
            return;
        };
        let c = self.client.clone();
        let call_arg = rest.first().copied();
        let result: Result<(), crate::client::Error> = match verb {
            "call" | "meeting" => {
                if rest.is_empty() {
                    return self.error(verb, "who? e.g. `call bob`", None);
                }
                let media = if self.args.audio {
                    Media::Audio
                } else {
                    Media::Video
                };
                let kind = (verb == "meeting").then_some(crate::calls::Kind::Meeting);
                match c.start(rest, kind, media, None).await {
                    Ok(j) => {
                        let id = j.call.call_id.clone();
                        self.current = Some(id.clone());
                        if !self.args.command.is_empty() && self.exit_after.is_none() {
                            self.exit_after = Some(id.clone());
                        }
                        self.say(
                            "calling",
                            json!({ "call_id": id, "to": rest, "unreachable": j.unreachable }),
                            format!("calling {} (call {id})", rest.join(", ")),
                        );
                        if !j.unreachable.is_empty() && !self.json {
                            println!("  not reachable: {}", j.unreachable.join(", "));
                        }
                        self.rtc_join(&j.join).await;
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
            "accept" | "answer" => match self.pick(call_arg, true) {
                Some(id) => match c.accept(&id).await {
                    Ok(j) => {
                        self.invite = None;
                        self.current = Some(id.clone());
                        self.say(
                            "accepted",
                            json!({ "call_id": id }),
                            format!("accepted call {id}"),
                        );
                        self.rtc_join(&j.join).await;
                        self.arm_hangup(&id);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
                None => return self.error(verb, "no call is ringing", None),
            },
            "decline" | "reject" => match self.pick(call_arg, true) {
                Some(id) => {
                    let r = c.decline(&id).await;
                    if r.is_ok() {
                        self.invite = None;
                        self.say(
                            "declined",
                            json!({ "call_id": id }),
                            format!("declined call {id}"),
                        );
                    }
                    r
                }
                None => return self.error(verb, "no call is ringing", None),
            },
            "cancel" | "hangup" | "leave" | "end" => match self.pick(call_arg, false) {
                Some(id) => {
                    // Signal first: leaving the RTC channel alone already
                    // counts as leaving the call for the controller.
                    let r = match verb {
                        "cancel" => c.cancel(&id).await,
                        "end" => c.end(&id).await,
                        _ => c.hangup(&id).await,
                    };
                    if r.is_ok() {
                        if let Some(session) = self.rtc_sessions.remove(&id) {
                            self.rtc_leave(&id, session).await;
                        }
                        self.say("left", json!({ "call_id": id }), format!("left call {id}"));
                        self.finished(&id).await;
                    }
                    r
                }
                None => return self.error(verb, "not in a call", None),
            },
            "invite" => match (&self.current, rest.is_empty()) {
                (Some(id), false) => {
                    let id = id.clone();
                    c.invite(&id, rest).await.map(|_| {
                        self.say(
                            "invited",
                            json!({ "call_id": id, "to": rest }),
                            format!("invited {}", rest.join(", ")),
                        )
                    })
                }
                _ => return self.error(verb, "usage: invite <user>... (during a call)", None),
            },
            "mute" | "unmute" => {
                let Some(id) = self.current.clone() else {
                    return self.error(verb, "not in a call", None);
                };
                let mut media = Media::Audio;
                let mut target = None;
                for w in rest {
                    match *w {
                        "audio" => media = Media::Audio,
                        "video" => media = Media::Video,
                        u => target = Some(u),
                    }
                }
                c.mute(&id, media, verb == "mute", target).await
            }
            "remove" | "host" => match (&self.current, call_arg) {
                (Some(id), Some(user)) => {
                    if verb == "remove" {
                        c.remove(id, user).await
                    } else {
                        c.transfer_host(id, user).await
                    }
                }
                _ => {
                    return self.error(verb, format!("usage: {verb} <user> (during a call)"), None)
                }
            },
            "send" => match (call_arg.map(str::parse::<ClientId>), rest.get(1..)) {
                (Some(Ok(to)), Some(text)) if !text.is_empty() => {
                    let text = text.join(" ");
                    c.send_p2p(
                        "rtc_event",
                        &to,
                        "message",
                        json!({ "text": text }),
                        Duration::from_secs(60),
                    )
                    .await
                    .map(|id| {
                        self.say(
                            "sent",
                            json!({ "to": to.to_string(), "id": id }),
                            format!("sent to {to}"),
                        )
                    })
                }
                _ => return self.error(verb, "usage: send GID_x@@@user <text>", None),
            },
            "sync" => match c.sync().await {
                Ok(s) => {
                    self.synced(&s).await;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            "status" => {
                let b = c.book();
                self.say(
                    "status",
                    json!({ "connected": c.is_connected(), "calls": b.calls, "invites": b.invites.keys().collect::<Vec<_>>() }),
                    format!(
                        "connected: {}; calls: {}; ringing: {}",
                        c.is_connected(),
                        b.calls
                            .values()
                            .map(|c| format!(
                                "{} [{}]",
                                c.call_id,
                                c.participants
                                    .iter()
                                    .map(|(u, p)| format!(
                                        "{u}: {}{}",
                                        state_name(p.state),
                                        if p.audio_muted { ", muted" } else { "" }
                                    ))
                                    .collect::<Vec<_>>()
                                    .join("; ")
                            ))
                            .collect::<Vec<_>>()
                            .join(" | "),
                        b.invites.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
                Ok(())
            }
            "help" | "?" => {
                eprintln!("{HELP}");
                Ok(())
            }
            "quit" | "exit" => {
                self.quit = true;
                Ok(())
            }
            other => return self.error(other, format!("unknown command; {HELP}"), None),
        };
        if let Err(e) = result {
            let code = match &e {
                crate::client::Error::Refused { code, .. } => Some(code.clone()),
                _ => None,
            };
            self.error(verb, &e, code.as_deref());
        }
    }

    fn arm_hangup(&mut self, call_id: &str) {
        if let Some(s) = self.args.hangup_after {
            if self.hangup_at.is_none() {
                self.hangup_at = Some((
                    call_id.to_string(),
                    tokio::time::Instant::now() + Duration::from_secs(s),
                ));
            }
        }
    }

    async fn event(&mut self, ev: Event) {
        match ev {
            Event::Connected { session_present } => self.say(
                "connected",
                json!({ "client_id": self.client.client_id().to_string(), "session_present": session_present }),
                format!("connected as {}", self.client.client_id()),
            ),
            Event::Disconnected { reason, retry_in } => self.say(
                "disconnected",
                json!({ "reason": reason, "retry_in_ms": retry_in.as_millis() as u64 }),
                format!("disconnected ({reason}); retrying in {} ms", retry_in.as_millis()),
            ),
            Event::Synced(s) => self.synced(&s).await,
            Event::Call(e) => self.call_event(e).await,
            Event::Unknown(env) => self.say(
                "unknown",
                json!({ "type": env.kind, "body": env.body }),
                format!("(unknown message {})", env.kind),
            ),
            Event::Message { topic, envelope, payload } => {
                let text = envelope
                    .as_ref()
                    .and_then(|e| e.body["text"].as_str().map(str::to_string))
                    .unwrap_or_else(|| String::from_utf8_lossy(&payload).into_owned());
                self.say(
                    "message",
                    json!({ "topic": topic, "text": text }),
                    format!("message on {topic}: {text}"),
                )
            }
            Event::TokenExpiring { kind, expire_time } => self.say(
                "token_expiring",
                json!({ "type": kind, "expire_time": expire_time }),
                format!("the {kind} token expires at {expire_time} (ms); present a fresh one"),
            ),
            Event::TokenInvalid { kind, code } => self.say(
                "token_invalid",
                json!({ "type": kind, "code": code }),
                format!("the {kind} token is no longer valid (code {code})"),
            ),
        }
    }

    async fn synced(&mut self, s: &crate::client::Snapshot) {
        self.say(
            "synced",
            json!({
                "calls": s.calls.iter().map(|c| &c.call_id).collect::<Vec<_>>(),
                "invites": s.invites.iter().map(|c| &c.call_id).collect::<Vec<_>>(),
            }),
            format!(
                "synced: in {} call(s), {} ringing",
                s.calls.len(),
                s.invites.len()
            ),
        );
        // Pick up where the snapshot says we are (e.g. after this device restarted).
        if let Some(c) = s.calls.first() {
            self.current = Some(c.call_id.clone());
        }
        if let Some(c) = s.invites.first() {
            self.invite = Some(c.call_id.clone());
        }
        for j in &s.joins {
            if !self.rtc_sessions.contains_key(&j.call_id) {
                self.rtc_join(j).await;
            }
        }
    }

    async fn call_event(&mut self, e: CallEvent) {
        match e {
            CallEvent::Invite { call, from, waiting } => {
                let id = call.call_id.clone();
                self.invite = Some(id.clone());
                self.say(
                    "invite",
                    json!({ "call_id": id, "from": from, "media": call.media, "kind": call.kind, "waiting": waiting }),
                    format!(
                        "ringing: {from} is calling ({}{}), call {id}; type accept or decline",
                        media_name(call.media),
                        if waiting { ", call waiting" } else { "" }
                    ),
                );
                if self.args.auto_answer {
                    self.command(&format!("accept {id}")).await;
                }
            }
            CallEvent::Participant { call_id, user, state } => {
                self.say(
                    "participant",
                    json!({ "call_id": call_id, "user": user, "state": state }),
                    match state {
                        PState::Ringing => format!("{user} is ringing"),
                        PState::Joined => format!("{user} joined the channel"),
                        s => format!("{user} {}", state_name(s).replace('_', " ")),
                    },
                );
                if matches!(state, PState::Accepted) {
                    self.arm_hangup(&call_id);
                }
            }
            CallEvent::AnsweredElsewhere { call_id, device } => {
                self.clear_invite(&call_id);
                self.say(
                    "answered_elsewhere",
                    json!({ "call_id": call_id, "device": device }),
                    format!("answered on your other device {device}"),
                );
            }
            CallEvent::Cancelled { call_id, reason } => {
                self.clear_invite(&call_id);
                self.say(
                    "cancelled",
                    json!({ "call_id": call_id, "reason": reason }),
                    format!("call {call_id} stopped ringing ({})", reason_name(reason)),
                );
            }
            CallEvent::Missed { call_id, from, at, media } => {
                self.clear_invite(&call_id);
                self.say(
                    "missed",
                    json!({ "call_id": call_id, "from": from, "at": at, "media": media }),
                    format!("missed call from {from}"),
                );
            }
            CallEvent::Ended { call_id, reason } => {
                self.say(
                    "ended",
                    json!({ "call_id": call_id, "reason": reason }),
                    format!("call {call_id} ended ({})", reason_name(reason)),
                );
                self.finished(&call_id).await;
            }
            CallEvent::Muted { call_id, user, media, muted, by } => self.say(
                "muted",
                json!({ "call_id": call_id, "user": user, "media": media, "muted": muted, "by": by }),
                format!(
                    "{} {} {}{}",
                    if user == self.me { "you" } else { &user },
                    if muted { "muted" } else { "unmuted" },
                    media_name(media),
                    if by != user { format!(" (by {by})") } else { String::new() }
                ),
            ),
            CallEvent::Removed { call_id, by } => {
                self.say(
                    "removed",
                    json!({ "call_id": call_id, "by": by }),
                    format!("{by} removed you from call {call_id}"),
                );
                self.finished(&call_id).await;
            }
            CallEvent::Host { call_id, user } => self.say(
                "host",
                json!({ "call_id": call_id, "user": user }),
                format!("{user} is now the host"),
            ),
        }
    }

    fn clear_invite(&mut self, call_id: &str) {
        if self.invite.as_deref() == Some(call_id) {
            self.invite = None;
        }
    }

    /// A call this device was in is over for it (the RTC service already
    /// closed the channel, or revoked this device's place in it).
    async fn finished(&mut self, call_id: &str) {
        self.clear_invite(call_id);
        self.rtc_sessions.remove(call_id);
        if self.current.as_deref() == Some(call_id) {
            self.current = None;
        }
        if self.hangup_at.as_ref().is_some_and(|(c, _)| c == call_id) {
            self.hangup_at = None;
        }
        if self.exit_after.as_deref() == Some(call_id) || self.args.once {
            self.quit = true;
        }
    }

    async fn rtc_join(&mut self, j: &Join) {
        match rtc::join(&self.rtc, j).await {
            Ok(session) => {
                self.say(
                    "joined",
                    json!({ "call_id": j.call_id, "channel": j.params.channel, "members": session.members }),
                    format!(
                        "in the RTC channel {} (members: {})",
                        j.params.channel,
                        session.members.join(", ")
                    ),
                );
                self.rtc_sessions.insert(j.call_id.clone(), session);
            }
            Err(e) => self.say(
                "rtc_error",
                json!({ "call_id": j.call_id, "message": e.to_string() }),
                format!("RTC join refused: {e}"),
            ),
        }
    }

    async fn rtc_leave(&mut self, call_id: &str, s: RtcSession) {
        match rtc::leave(&self.rtc, &s).await {
            Ok(()) => {}
            // Already out (the channel closed, or we were removed).
            Err(e @ rtc::RtcError::Refused { .. }) => tracing::debug!(call_id, "RTC leave: {e}"),
            Err(e) => tracing::warn!(call_id, "RTC leave failed: {e}"),
        }
    }
}

fn state_name(s: PState) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn media_name(m: Media) -> &'static str {
    match m {
        Media::Audio => "audio",
        Media::Video => "video",
    }
}

fn reason_name(r: EndReason) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}
