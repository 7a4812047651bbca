//! Types of the call state machine: calls, participants, inputs, effects.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch (the only clock the core knows).
pub type Millis = i64;

/// A device: a client id, and the user (Device ID) and instance it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Device {
    /// `GroupID@@@DeviceID`.
    pub client_id: String,
    /// The Device ID part: the user (one user may use several Group IDs).
    pub user: String,
    /// The instance (tenant) of its group.
    pub instance: String,
}

/// 1:1 call or group meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Two people; ends when either leaves.
    Call,
    /// Any number; ends when the last participant leaves (or the host ends it).
    Meeting,
}

/// Audio only, or audio and video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Media {
    /// Audio only.
    Audio,
    /// Audio and video.
    Video,
}

/// Where a participant is in a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PState {
    /// Invited; no device has rung yet.
    Invited,
    /// At least one device rings.
    Ringing,
    /// Accepted on one device; not yet in the RTC channel.
    Accepted,
    /// In the RTC channel.
    Joined,
    /// Said no.
    Declined,
    /// Did not answer in time.
    NoAnswer,
    /// In another call (busy policy `reject`).
    Busy,
    /// Left the call.
    Left,
    /// Removed by the host.
    Removed,
}

impl PState {
    /// Still expected to take part (invited, ringing, accepted, joined).
    pub fn is_live(self) -> bool {
        matches!(
            self,
            PState::Invited | PState::Ringing | PState::Accepted | PState::Joined
        )
    }

    /// Answered and taking part.
    pub fn is_in(self) -> bool {
        matches!(self, PState::Accepted | PState::Joined)
    }

    /// Not answered yet.
    pub fn is_pending(self) -> bool {
        matches!(self, PState::Invited | PState::Ringing)
    }
}

/// One user's part in a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    /// Current state.
    pub state: PState,
    /// When the user was invited (or created the call).
    pub invited_at: Millis,
    /// When an invitation stops ringing.
    pub ring_until: Option<Millis>,
    /// The device that answered (or created the call).
    pub device: Option<String>,
    /// When the user entered the RTC channel.
    pub joined_at: Option<Millis>,
    /// Audio muted.
    pub audio_muted: bool,
    /// Video muted.
    pub video_muted: bool,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A party hung up (1:1) or the last participant left (meeting).
    Hangup,
    /// The host ended it for everyone.
    EndedByHost,
    /// The caller cancelled before anyone answered.
    Cancelled,
    /// Every invitee declined.
    Declined,
    /// Nobody answered in time.
    NoAnswer,
    /// Every invitee was busy.
    Busy,
    /// It reached the maximum duration.
    MaxDuration,
}

/// Whether a call is ringing, going on, or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "state", content = "reason")]
pub enum CallState {
    /// Nobody but the creator has answered yet.
    Ringing,
    /// At least two people are in.
    Active,
    /// Over.
    Ended(EndReason),
}

/// A call or meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// Call id.
    pub id: String,
    /// The instance it belongs to.
    pub instance: String,
    /// 1:1 or meeting.
    pub kind: Kind,
    /// Audio or video.
    pub media: Media,
    /// Optional title.
    pub title: Option<String>,
    /// The RTC channel id.
    pub channel: String,
    /// The host (creator unless transferred).
    pub host: String,
    /// Ringing, active or ended.
    pub state: CallState,
    /// Participants by user.
    pub participants: BTreeMap<String, Participant>,
    /// Created at.
    pub created_at: Millis,
    /// Ended at.
    pub ended_at: Option<Millis>,
    /// Automatic end.
    pub max_end_at: Millis,
}

impl Call {
    /// Whether the call is over.
    pub fn is_over(&self) -> bool {
        matches!(self.state, CallState::Ended(_))
    }
}

/// A request from a device, decoded at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Start a call or meeting and invite users.
    Start {
        /// Users (Device IDs) to invite.
        to: Vec<String>,
        /// 1:1 or meeting.
        kind: Kind,
        /// Audio or video.
        media: Media,
        /// Optional title.
        title: Option<String>,
    },
    /// The invitation rings on this device.
    Ringing {
        /// Call id.
        call_id: String,
    },
    /// Accept an invitation.
    Accept {
        /// Call id.
        call_id: String,
    },
    /// Decline an invitation.
    Decline {
        /// Call id.
        call_id: String,
    },
    /// The caller withdraws before anyone answered.
    Cancel {
        /// Call id.
        call_id: String,
    },
    /// Invite more users into a call or meeting.
    Invite {
        /// Call id.
        call_id: String,
        /// Users to add.
        to: Vec<String>,
    },
    /// Leave (hang up).
    Leave {
        /// Call id.
        call_id: String,
    },
    /// End for everyone (host).
    End {
        /// Call id.
        call_id: String,
    },
    /// Mute or unmute self, or (host) someone else.
    Mute {
        /// Call id.
        call_id: String,
        /// Someone else (host only); `None` is self.
        target: Option<String>,
        /// Which track.
        media: Media,
        /// Muted or not.
        muted: bool,
    },
    /// Remove a participant (host).
    Remove {
        /// Call id.
        call_id: String,
        /// The user to remove.
        target: String,
    },
    /// Make someone else host.
    TransferHost {
        /// Call id.
        call_id: String,
        /// New host.
        to: String,
    },
    /// The current state of the sender's calls.
    Sync,
    /// The users of the sender's instance the controller has seen, with
    /// whether one of their devices is connected.
    Contacts,
}

/// What the state machine is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A device's request.
    Request {
        /// The authenticated sender.
        from: Device,
        /// Request id (retries carry the same).
        req: String,
        /// When the sender sent it and how long it is valid.
        sent_at: Millis,
        /// Time to live in ms.
        ttl: Millis,
        /// What it asks.
        cmd: Command,
    },
    /// A device connected (it can be reached from now on).
    DeviceSeen(Device),
    /// A device's connection opened (`true`) or closed (`false`).
    Presence(Device, bool),
    /// A timer fired.
    Timer(Timer),
    /// The RTC service reports a user entered a channel.
    RtcJoined {
        /// Channel id.
        channel: String,
        /// RTC user id.
        user: String,
    },
    /// The RTC service reports a user left a channel.
    RtcLeft {
        /// Channel id.
        channel: String,
        /// RTC user id.
        user: String,
    },
}

/// A timer of a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Timer {
    /// Call id.
    pub call_id: String,
    /// Which timer.
    pub kind: TimerKind,
}

/// What a timer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "user")]
pub enum TimerKind {
    /// The invitation of this user stops ringing.
    Ring(String),
    /// The call's maximum duration.
    MaxDuration,
}

/// Errors a request can get (codes of `docs/protocol.md`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    thiserror::Error,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CallError {
    /// No such call (or not the sender's instance).
    #[error("no such call")]
    NotFound,
    /// The call is over.
    #[error("the call has ended")]
    Ended,
    /// The sender is not taking part.
    #[error("not a participant of this call")]
    NotParticipant,
    /// Only the host may do that.
    #[error("only the host may do that")]
    NotHost,
    /// Not possible in the current state.
    #[error("not possible in the call's current state")]
    InvalidState,
    /// Another device of the user answered first.
    #[error("answered on another device")]
    AnsweredElsewhere,
    /// The callee is in another call.
    #[error("the callee is busy")]
    Busy,
    /// No invitee can be reached (never connected).
    #[error("unknown user")]
    UnknownUser,
    /// The request makes no sense (empty invitee list, self-invite...).
    #[error("bad request")]
    BadRequest,
    /// The request arrived after its time to live.
    #[error("the request expired before it arrived")]
    Stale,
}

/// Something to tell devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "type", content = "body")]
pub enum Event {
    /// You are invited (sent to every device of the invitee; `ttl` = ring time left).
    #[serde(rename = "call.invite")]
    Invite {
        /// The call as it stands (you are `invited` in it).
        call: CallView,
        /// Who invites: the Device ID of the caller, or of the participant who added you.
        from: String,
        /// Another call of yours is going on (call waiting).
        waiting: bool,
    },
    /// A participant's state changed (sent to the others in the call, not to that user).
    #[serde(rename = "call.participant")]
    Participant {
        /// Call id.
        call_id: String,
        /// The user (Device ID).
        user: String,
        /// New state.
        state: PState,
    },
    /// Your other device answered (sent to the invitee's other devices).
    #[serde(rename = "call.answered_elsewhere")]
    AnsweredElsewhere {
        /// Call id.
        call_id: String,
        /// The full client id (`GroupID@@@DeviceID`) of the device that answered.
        device: String,
    },
    /// The call is over (sent to those still in it: not to whoever left or was removed).
    #[serde(rename = "call.ended")]
    Ended {
        /// Call id.
        call_id: String,
        /// Why.
        reason: EndReason,
    },
    /// The invitation to you stopped ringing: you declined (every device of
    /// yours gets it), nobody answered in time, or the call was cancelled or
    /// ended. Every reason but `declined` is followed by `call.missed`.
    #[serde(rename = "call.cancelled")]
    Cancelled {
        /// Call id.
        call_id: String,
        /// Why.
        reason: EndReason,
    },
    /// You missed a call: it stopped ringing before you answered (not after declining).
    #[serde(rename = "call.missed")]
    Missed {
        /// Call id.
        call_id: String,
        /// The call's host at that moment (the caller, unless the host changed).
        from: String,
        /// When the call was created, ms since the Unix epoch.
        at: Millis,
        /// Audio or video.
        media: Media,
    },
    /// Someone's mute state changed.
    #[serde(rename = "call.muted")]
    Muted {
        /// Call id.
        call_id: String,
        /// Whose.
        user: String,
        /// Which track.
        media: Media,
        /// Muted or not.
        muted: bool,
        /// Who did it: the user themselves, or the host.
        by: String,
    },
    /// You were removed from the call.
    #[serde(rename = "call.removed")]
    Removed {
        /// Call id.
        call_id: String,
        /// By whom.
        by: String,
    },
    /// The host changed (transferred, or the host left a meeting).
    #[serde(rename = "call.host")]
    Host {
        /// Call id.
        call_id: String,
        /// The new host (Device ID).
        user: String,
    },
}

/// A call as devices see it (in invitations, replies and sync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CallView {
    /// Call id.
    pub call_id: String,
    /// 1:1 or meeting.
    pub kind: Kind,
    /// Audio or video.
    pub media: Media,
    /// Title, or null.
    pub title: Option<String>,
    /// Host (Device ID).
    pub host: String,
    /// `state`, and `reason` once ended.
    #[serde(flatten)]
    pub state: CallState,
    /// Participants by user (Device ID), whatever their state: state and mute flags.
    pub participants: BTreeMap<String, ParticipantView>,
    /// Created at, ms since the Unix epoch.
    pub created_at: Millis,
}

/// A participant as devices see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ParticipantView {
    /// State.
    pub state: PState,
    /// Audio muted.
    pub audio_muted: bool,
    /// Video muted.
    pub video_muted: bool,
}

impl From<&Call> for CallView {
    fn from(c: &Call) -> Self {
        CallView {
            call_id: c.id.clone(),
            kind: c.kind,
            media: c.media,
            title: c.title.clone(),
            host: c.host.clone(),
            state: c.state,
            participants: c
                .participants
                .iter()
                .map(|(u, p)| {
                    (
                        u.clone(),
                        ParticipantView {
                            state: p.state,
                            audio_muted: p.audio_muted,
                            video_muted: p.video_muted,
                        },
                    )
                })
                .collect(),
            created_at: c.created_at,
        }
    }
}

/// The body of a successful reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReplyBody {
    /// Done; nothing to add.
    Done {
        /// The call concerned.
        call_id: String,
    },
    /// The call as it now stands, and RTC join parameters for the sender.
    Joined {
        /// The call.
        call: CallView,
        /// The RTC channel to join.
        join: JoinFor,
        /// Invitees that cannot be reached (never connected) or are busy.
        #[serde(skip_serializing_if = "Vec::is_empty", default)]
        unreachable: Vec<String>,
    },
    /// The sender's current calls and pending invitations.
    Snapshot {
        /// Calls the sender is in.
        calls: Vec<CallView>,
        /// Calls ringing for the sender.
        invites: Vec<CallView>,
        /// Join parameters for each call the sender is in.
        joins: Vec<JoinFor>,
    },
    /// The users of the sender's instance.
    Contacts {
        /// By Device ID, the sender left out.
        users: Vec<Contact>,
    },
}

/// A user of the instance, as `contacts` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    /// Device ID.
    pub user: String,
    /// Whether one of the user's devices is connected now.
    pub online: bool,
    /// How many devices (client ids) of the user the controller has seen.
    pub devices: usize,
}

/// A channel and user that need RTC join parameters (the runtime issues the token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinFor {
    /// Call id.
    pub call_id: String,
    /// RTC channel id.
    pub channel: String,
    /// RTC user id.
    pub user: String,
    /// When the parameters are issued (a retry of the request gets the same ones).
    pub issued_at: Millis,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Answer a request (to the device that sent it).
    Reply {
        /// The device.
        to: String,
        /// Request id.
        req: String,
        /// The answer.
        result: Result<ReplyBody, CallError>,
    },
    /// Tell devices something, valid for `ttl` ms.
    Notify {
        /// Client ids.
        to: Vec<String>,
        /// What.
        event: Event,
        /// Time to live.
        ttl: Millis,
    },
    /// Create the call's RTC channel.
    OpenChannel {
        /// Channel id.
        channel: String,
        /// Call id.
        call_id: String,
    },
    /// Close an RTC channel (every token stops working).
    CloseChannel {
        /// Channel id.
        channel: String,
    },
    /// Stop a user's RTC access to a channel (and drop them from it).
    RevokeRtc {
        /// Channel id.
        channel: String,
        /// RTC user id.
        user: String,
    },
    /// Fire `timer` at `at` (replacing an earlier setting).
    SetTimer {
        /// Which.
        timer: Timer,
        /// When.
        at: Millis,
    },
    /// Forget a timer.
    CancelTimer(Timer),
    /// The call changed (persist it; ended calls may be archived).
    Saved(String),
}
