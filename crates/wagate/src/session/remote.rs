//! What one node asks of the node that owns a session, when several
//! serve one database (`--nats`): the wire form of the calls that need a
//! session's live supervisor or connection, their answers, and the
//! [`Peers`] seam the manager sends them through. The manager knows
//! nothing of NATS; `cluster/` implements [`Peers`] over it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::messenger::{
    ContactCheck, ContactProfile, OldestMessage, ProfilePicture, SendFailure, Typing,
};
use super::supervisor::{CommandError, Expiring};
use crate::domain::{ChatChange, OrgId, Phone, PresenceState, SessionId, SessionStatus};

/// One call for a session's owner. JIDs travel as text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
pub(crate) enum Call {
    Start,
    Stop,
    Restart,
    Logout,
    /// Unlinks and wipes the keys; the asking node deletes the row.
    Delete,
    Qr,
    PairingCode {
        phone: Phone,
    },
    /// Rejects a ringing call.
    Reject {
        call_id: String,
    },
    /// The session's settings changed: read its pace and behaviour again.
    Refresh,
    /// Messages were accepted for it: its outbox worker looks now. Sent
    /// without waiting for an answer.
    WakeOutbox,
    MarkRead {
        chat: String,
        sender: Option<String>,
        wa_ids: Vec<String>,
    },
    Typing {
        chat: String,
        typing: Typing,
    },
    CheckContacts {
        phones: Vec<String>,
    },
    ChangeChat {
        chat: String,
        change: ChatChange,
    },
    RequestHistory {
        chat: String,
        oldest: OldestMessage,
        count: u32,
    },
    SetPresence {
        presence: PresenceState,
    },
    SubscribePresence {
        contact: String,
        subscribe: bool,
    },
    /// A contact's about text and picture, as WhatsApp answers now.
    ContactProfile {
        contact: String,
    },
    /// A profile picture's bytes, fetched by the owner's connection.
    DownloadPicture {
        picture: ProfilePicture,
    },
    Block {
        contact: String,
        block: bool,
    },
}

/// A call with the session it is for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Request {
    pub(crate) org: OrgId,
    pub(crate) session: SessionId,
    pub(crate) call: Call,
}

/// What a call gives back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", content = "value", rename_all = "snake_case")]
pub(crate) enum Reply {
    Done,
    Code(Expiring),
    Contacts(Vec<ContactCheck>),
    Profile(ContactProfile),
    /// A picture's bytes, base64 (standard, padded): JSON would carry
    /// bytes as an array of numbers, three to four times the size.
    Picture(String),
}

/// Why the owner refused a call: the manager's errors that cross nodes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub(crate) enum RemoteError {
    /// The node asked does not run the session (any more): look the owner
    /// up again.
    #[error("the session does not run on that node")]
    NotHere,
    #[error("session not found")]
    NotFound,
    #[error(transparent)]
    Command(CommandError),
    #[error("the session is {0}, so it has no QR code")]
    NoQrCode(SessionStatus),
    #[error("the next QR code is not ready yet")]
    QrNotReady,
    #[error("the session is {0}, not working")]
    NotWorking(SessionStatus),
    #[error("WhatsApp: {0}")]
    Upstream(SendFailure),
    /// Anything else (a store error on the owner), as text.
    #[error("{0}")]
    Internal(String),
}

/// The owner's answer.
pub(crate) type Answer = Result<Reply, RemoteError>;

/// Why a call got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PeerError {
    /// Nobody answers for that node (it is gone), or not in time.
    #[error("the node did not answer")]
    Unreachable,
    /// An answer came that is not one.
    #[error("the node's answer could not be read: {0}")]
    Garbled(String),
}

/// The other nodes, as the manager reaches them.
#[async_trait]
pub(crate) trait Peers: Send + Sync + 'static {
    /// Sends `request` to `node` (the session's owner) and waits for its
    /// answer, within a timeout.
    async fn call(&self, node: &str, request: &Request) -> Result<Answer, PeerError>;

    /// Sends `request` to `node` without waiting for an answer.
    async fn tell(&self, node: &str, request: &Request);

    /// Tells every node that sessions wait for an owner: each keeper takes
    /// what it has room for now rather than at its next pass.
    async fn unowned(&self);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call and answer survives the trip as JSON (what NATS carries).
    #[test]
    fn calls_and_answers_round_trip() -> Result<(), serde_json::Error> {
        let request = Request {
            org: OrgId::new(),
            session: SessionId::new(),
            call: Call::ChangeChat {
                chat: "15551234567@s.whatsapp.net".into(),
                change: ChatChange::Pin(true),
            },
        };
        let json = serde_json::to_string(&request)?;
        assert_eq!(serde_json::from_str::<Request>(&json)?, request);
        let answers: Vec<Answer> = vec![
            Ok(Reply::Done),
            Err(RemoteError::NotWorking(SessionStatus::Starting)),
            Err(RemoteError::Command(CommandError::NotLinked)),
            Err(RemoteError::Upstream(SendFailure::Transient("gone".into()))),
        ];
        for answer in answers {
            let json = serde_json::to_string(&answer)?;
            assert_eq!(serde_json::from_str::<Answer>(&json)?, answer);
        }
        Ok(())
    }
}
