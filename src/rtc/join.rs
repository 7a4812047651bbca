//! What a client sends to join a channel (`POST /rtc/v1/join`): the ARTC
//! fields, or the single-parameter token alone, read into one request.

use serde::Deserialize;

use super::mock::RtcError;
use super::token::decode_single;

/// A join request: the ARTC fields (or decoded from the single-parameter form).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct JoinRequest {
    /// AppID.
    pub appid: String,
    /// Channel id.
    pub channel: String,
    /// RTC user id.
    pub userid: String,
    /// Nonce.
    #[serde(default)]
    pub nonce: String,
    /// Expiry, Unix seconds.
    pub timestamp: i64,
    /// The token.
    pub token: String,
    /// The joining device's MQTT client id, so other members can reach it
    /// (WebRTC signaling as P2P messages); optional, not authenticated.
    #[serde(default)]
    pub client_id: Option<String>,
}

/// The body of `POST /rtc/v1/join`: the ARTC fields, or the single-parameter token alone.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum JoinBody {
    /// appid, channel, userid, nonce, timestamp, token.
    Fields(JoinRequest),
    /// `{"token": "<Base64(JSON)>"}`.
    Single {
        /// The single-parameter token.
        token: String,
        /// The joining device's client id (optional).
        #[serde(default)]
        client_id: Option<String>,
    },
}

impl JoinBody {
    /// The request this body stands for; a single-parameter token that is
    /// not Base64 of the ARTC JSON is an invalid token.
    pub fn into_request(self) -> Result<JoinRequest, RtcError> {
        match self {
            JoinBody::Fields(r) => Ok(r),
            JoinBody::Single { token, client_id } => {
                let p = decode_single(&token).ok_or(RtcError::InvalidToken)?;
                Ok(JoinRequest {
                    appid: p.appid,
                    channel: p.channelid,
                    userid: p.userid,
                    nonce: p.nonce,
                    timestamp: p.timestamp,
                    token: p.token,
                    client_id,
                })
            }
        }
    }
}
