//! The bodies of the protocol's messages as Rust types. The decoder parses
//! request bodies with them (`protocol::decode`) and the JSON Schema is
//! generated from them, so the two cannot disagree; the answer types mirror
//! what the encoder writes (a test checks real answers against them).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::calls::{CallView, Kind, Media};

/// The request types: the `type` of a message a device publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum RequestType {
    /// Start a call or meeting and invite users.
    #[serde(rename = "call.start")]
    Start,
    /// The invitation rings on this device.
    #[serde(rename = "call.ringing")]
    Ringing,
    /// Accept an invitation (the first of the user's devices to accept wins).
    #[serde(rename = "call.accept")]
    Accept,
    /// Decline an invitation.
    #[serde(rename = "call.decline")]
    Decline,
    /// The caller (host) withdraws before anyone answered.
    #[serde(rename = "call.cancel")]
    Cancel,
    /// Invite more users (a 1:1 call becomes a meeting).
    #[serde(rename = "call.invite")]
    Invite,
    /// Leave the call.
    #[serde(rename = "call.leave")]
    Leave,
    /// Same as `call.leave`.
    #[serde(rename = "call.hangup")]
    Hangup,
    /// End the call for everyone (host only).
    #[serde(rename = "call.end")]
    End,
    /// Mute or unmute yourself, or (host only) someone else.
    #[serde(rename = "call.mute")]
    Mute,
    /// Remove a participant (host only).
    #[serde(rename = "call.remove")]
    Remove,
    /// Make another participant host (host only).
    #[serde(rename = "call.transfer_host")]
    TransferHost,
    /// The sender's current calls, invitations and fresh join parameters.
    #[serde(rename = "sync")]
    Sync,
    /// The users of the sender's instance, with their online state.
    #[serde(rename = "contacts")]
    Contacts,
}

/// One user (Device ID) or a list of users.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Users {
    /// One user.
    One(String),
    /// Several users (an empty list is answered `bad_request`).
    Many(Vec<String>),
}

impl From<Users> for Vec<String> {
    fn from(u: Users) -> Self {
        match u {
            Users::One(u) => vec![u],
            Users::Many(us) => us,
        }
    }
}

/// Body of `call.start`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct StartBody {
    /// Who to call: a user (Device ID) or a list of users.
    pub to: Users,
    /// `call` (1:1) or `meeting`; by default `call` for one invitee, `meeting` for several.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// `video` (default) or `audio`.
    #[serde(default)]
    pub media: Option<Media>,
    /// Optional title (longer ones are cut to 200 characters).
    #[serde(default)]
    pub title: Option<String>,
}

/// Body of requests that only name a call.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct CallIdBody {
    /// Call id.
    pub call_id: String,
}

/// Body of `call.invite`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct InviteBody {
    /// Call id.
    pub call_id: String,
    /// Who to add: a user (Device ID) or a list of users.
    pub to: Users,
}

/// Body of `call.mute`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct MuteBody {
    /// Call id.
    pub call_id: String,
    /// Muted (true) or not.
    pub muted: bool,
    /// Which track: `audio` (default) or `video`.
    #[serde(default)]
    pub media: Option<Media>,
    /// Whose track (Device ID): someone else is for the host only; default yourself.
    #[serde(default)]
    pub target: Option<String>,
}

/// Body of `call.remove`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct RemoveBody {
    /// Call id.
    pub call_id: String,
    /// The user (Device ID) to remove.
    pub target: String,
}

/// Body of `call.transfer_host`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
pub struct TransferHostBody {
    /// Call id.
    pub call_id: String,
    /// The new host (Device ID); must be in the call.
    pub to: String,
}

/// The `result` of a request that names a call and returns nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct CallIdReply {
    /// Call id.
    pub call_id: String,
}

/// The `result` of `call.start`, `call.accept` and `call.invite`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JoinReply {
    /// The call as it now stands.
    pub call: CallView,
    /// What the sender needs to enter the call's RTC channel.
    pub join: Join,
    /// Invitees that never connected, or are busy (busy policy `reject`); always `[]` for `call.accept`.
    pub unreachable: Vec<String>,
}

/// The `result` of `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SyncReply {
    /// Calls the sender's user is in (accepted or joined, on any of its devices), not ended.
    pub calls: Vec<CallView>,
    /// Calls still ringing for the sender's user (invited or ringing, ring time not over).
    pub invites: Vec<CallView>,
    /// Fresh join parameters, one per entry of `calls`, in the same order.
    pub joins: Vec<Join>,
}

/// The `result` of `contacts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ContactsReply {
    /// Users of the sender's instance the controller has seen (each has
    /// connected at least once), by Device ID, the sender's own left out.
    pub users: Vec<crate::calls::Contact>,
}

/// ARTC join parameters for one user in one call's RTC channel (the client SDK's type).
pub use crate::client::Join;

/// The body of an `error` answer: the request changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// Error code.
    #[schemars(schema_with = "super::error_codes")]
    pub code: String,
    /// Human-readable explanation (not stable: match on `code`).
    pub message: String,
}
