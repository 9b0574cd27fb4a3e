//! Where an outgoing message is, and why one failed. Statuses only move
//! forward: `pending → sent → delivered → read → played`, or from
//! `pending` to `failed`. Receipts can arrive out of order (a read receipt
//! before the delivery one) and are then a jump forward; a late, lower one
//! changes nothing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::UnknownStatus;

/// Declares a string-valued enum once: the variants, their wire names, and
/// `as_str`/`Display`/`FromStr` derived from that one table.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        // utoipa does not see a variant's `rename` when the name comes
        // through this macro, so the schema takes its names from here; the
        // names are the variants' in snake case (a test checks they agree).
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownStatus;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| UnknownStatus(s.to_string()))
            }
        }
    };
}

named_enum!(
    /// An outgoing message's progress.
    MessageStatus {
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
);

named_enum!(
    /// Why a message failed, machine-readable.
    FailureReason {
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
);

named_enum!(
    /// Which way a message went.
    Direction {
        Outgoing = "outgoing",
        Incoming = "incoming",
    }
);

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

    /// The OpenAPI schema's names are the ones the API speaks.
    fn schema_names<T: utoipa::PartialSchema>() -> Vec<String> {
        let schema = serde_json::to_value(T::schema()).unwrap_or_default();
        schema["enum"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn the_documented_names_are_the_serialized_ones() {
        fn names<T: Serialize>(all: &[T], as_str: fn(&T) -> &'static str) -> Vec<String> {
            all.iter()
                .map(|v| {
                    let json = serde_json::to_value(v).unwrap_or_default();
                    assert_eq!(json, as_str(v), "serde and as_str disagree");
                    as_str(v).to_string()
                })
                .collect()
        }
        assert_eq!(
            schema_names::<MessageStatus>(),
            names(MessageStatus::ALL, |v| v.as_str())
        );
        assert_eq!(
            schema_names::<FailureReason>(),
            names(FailureReason::ALL, |v| v.as_str())
        );
        assert_eq!(
            schema_names::<Direction>(),
            names(Direction::ALL, |v| v.as_str())
        );
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

    #[test]
    fn names_round_trip() {
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>().ok(), Some(*status));
        }
        for reason in FailureReason::ALL {
            assert_eq!(reason.as_str().parse::<FailureReason>().ok(), Some(*reason));
        }
    }
}
