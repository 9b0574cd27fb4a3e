//! Where an outgoing message is, and why one failed. Statuses only move
//! forward: `pending → sent → delivered → read → played`, or from
//! `pending` to `failed`. Receipts can arrive out of order (a read receipt
//! before the delivery one) and are then a jump forward; a late, lower one
//! changes nothing.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::named_enum;

named_enum! {
    /// An outgoing message's progress.
    pub enum MessageStatus {
        /// Accepted and stored; not yet acknowledged by WhatsApp.
        Pending = "pending",
        /// WhatsApp's server acknowledged it.
        Sent = "sent",
        /// It reached the recipient's phone.
        Delivered = "delivered",
        /// The recipient read it.
        Read = "read",
        /// The recipient played the voice note or video.
        Played = "played",
        /// It will not be sent; `failure` says why.
        Failed = "failed",
    }
}

named_enum! {
    /// Why a message failed, machine-readable.
    pub enum FailureReason {
        /// The recipient has no WhatsApp account.
        NotOnWhatsapp = "not_on_whatsapp",
        /// The media URL could not be fetched.
        MediaUnreachable = "media_unreachable",
        /// The media is over the size limit.
        MediaTooLarge = "media_too_large",
        /// The session was logged out before the message was sent.
        SessionLoggedOut = "session_logged_out",
        /// WhatsApp refused the message; `code` is its error code.
        Rejected = "rejected",
        /// Still unsent after the expiry time.
        Expired = "expired",
        /// The message could not be built or uploaded (e.g. a reply to a
        /// message that no longer exists).
        Invalid = "invalid",
    }
}

named_enum! {
    /// Which way a message went.
    pub enum Direction {
        Outgoing = "outgoing",
        Incoming = "incoming",
    }
}

impl MessageStatus {
    /// Position on the way to the recipient; `failed` is off that way.
    fn rank(self) -> Option<u8> {
        match self {
            Self::Pending => Some(0),
            Self::Sent => Some(1),
            Self::Delivered => Some(2),
            Self::Read => Some(3),
            Self::Played => Some(4),
            Self::Failed => None,
        }
    }

    /// Whether a message in this status may move to `next`: forward only,
    /// and only an unsent message may fail.
    pub fn can_become(self, next: Self) -> bool {
        match (self.rank(), next.rank()) {
            (Some(now), Some(then)) => then > now,
            (Some(0), None) => true,
            _ => false,
        }
    }

    /// The statuses a move from `self` to `next` passes through, `next`
    /// last: a read receipt that arrives before the server's ack still
    /// means the message was sent and delivered, and every step is
    /// reported in order. Empty when the move is not forward.
    pub fn steps_to(self, next: Self) -> Vec<Self> {
        if !self.can_become(next) {
            return Vec::new();
        }
        match (self.rank(), next.rank()) {
            (Some(now), Some(then)) => Self::ALL
                .iter()
                .copied()
                .filter(|s| s.rank().is_some_and(|r| r > now && r <= then))
                .collect(),
            _ => vec![next],
        }
    }
}

/// Why a message failed, with WhatsApp's code when it gave one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Failure {
    pub reason: FailureReason,
    /// WhatsApp's error code, for `rejected` (e.g. 463).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub code: Option<u16>,
}

impl Failure {
    pub fn new(reason: FailureReason) -> Self {
        Self { reason, code: None }
    }

    pub fn rejected(code: u16) -> Self {
        Self {
            reason: FailureReason::Rejected,
            code: Some(code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::named::assert_names_round_trip;

    #[test]
    fn names_round_trip() {
        assert_names_round_trip::<MessageStatus>();
        assert_names_round_trip::<FailureReason>();
        assert_names_round_trip::<Direction>();
    }

    #[test]
    fn statuses_only_move_forward_and_only_pending_fails() {
        use MessageStatus::*;
        assert!(Pending.can_become(Sent));
        assert!(Pending.can_become(Read), "a read receipt before the ack");
        assert!(Sent.can_become(Delivered));
        assert!(Read.can_become(Played));
        assert!(!Read.can_become(Delivered), "a late delivery receipt");
        assert!(!Sent.can_become(Sent));
        assert!(Pending.can_become(Failed));
        assert!(!Sent.can_become(Failed));
        assert!(!Failed.can_become(Sent));
    }

    #[test]
    fn a_jump_forward_passes_through_every_status_between() {
        use MessageStatus::*;
        assert_eq!(Pending.steps_to(Read), [Sent, Delivered, Read]);
        assert_eq!(Sent.steps_to(Delivered), [Delivered]);
        assert_eq!(Pending.steps_to(Failed), [Failed]);
        assert!(Read.steps_to(Delivered).is_empty());
    }
}
