//! What a session does on its own on WhatsApp, as its settings say: the
//! presence it shows after each connect, what it does with calls, and how
//! much of the history after a link it keeps.

use super::{HistoryScope, named_enum};

named_enum! {
    /// What the linked device tells WhatsApp about itself.
    pub enum PresenceState {
        /// Online. While a companion is online the phone stops showing its
        /// own notifications.
        Available = "available",
        /// Offline: the phone keeps ringing and notifying (the default).
        Unavailable = "unavailable",
    }
}

named_enum! {
    /// What a contact the session subscribed to is doing, as WhatsApp
    /// reports it (`presence.update`).
    pub enum ContactPresence {
        /// Online.
        Available = "available",
        /// Offline (with `last_seen`, when they share it).
        Unavailable = "unavailable",
        /// Typing in a chat.
        Composing = "composing",
        /// Recording a voice message in a chat.
        Recording = "recording",
        /// Stopped typing or recording.
        Paused = "paused",
    }
}

named_enum! {
    /// How a call that rang the session ended (`call.ended`).
    pub enum CallOutcome {
        /// The caller gave up before it was answered.
        Missed = "missed",
        /// It rang while the session was offline; reported when it came
        /// back.
        MissedOffline = "missed_offline",
        /// Another of the number's devices (the phone) answered it.
        AnsweredElsewhere = "answered_elsewhere",
        /// Another of the number's devices declined it.
        RejectedElsewhere = "rejected_elsewhere",
    }
}

/// The longest text a rejected caller is answered with, in characters.
pub(crate) const MAX_CALL_REPLY_CHARS: usize = 4096;

/// A session's own behaviour on WhatsApp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionBehaviour {
    /// Sent after every connect.
    pub presence: PresenceState,
    /// Every incoming call is rejected.
    pub reject_calls: bool,
    /// The text a rejected caller then gets, if any.
    pub reject_calls_message: Option<String>,
    /// How much of the history after a link it keeps.
    pub history: HistoryScope,
}

impl Default for SessionBehaviour {
    fn default() -> Self {
        Self {
            presence: PresenceState::Unavailable,
            reject_calls: false,
            reject_calls_message: None,
            history: HistoryScope::Recent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a call reply is 1 to {MAX_CALL_REPLY_CHARS} characters")]
pub(crate) struct InvalidCallReply;

/// Checks a reply text for rejected calls.
pub(crate) fn check_call_reply(text: &str) -> Result<(), InvalidCallReply> {
    let chars = text.chars().count();
    if chars == 0 || chars > MAX_CALL_REPLY_CHARS || text.trim().is_empty() {
        Err(InvalidCallReply)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_names_round_trip() {
        crate::domain::named::assert_names_round_trip::<PresenceState>();
        crate::domain::named::assert_names_round_trip::<ContactPresence>();
        crate::domain::named::assert_names_round_trip::<CallOutcome>();
    }

    #[test]
    fn the_default_keeps_the_phone_ringing() {
        assert_eq!(
            SessionBehaviour::default().presence,
            PresenceState::Unavailable
        );
    }

    #[test]
    fn call_replies_are_checked() {
        assert!(check_call_reply("busy, call later").is_ok());
        assert!(check_call_reply("").is_err());
        assert!(check_call_reply("   ").is_err());
        assert!(check_call_reply(&"x".repeat(MAX_CALL_REPLY_CHARS + 1)).is_err());
    }
}
