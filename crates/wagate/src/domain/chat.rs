//! A chat's settings as WhatsApp's app state holds them, and one change to
//! them: what the API asks for, what the account's other devices report,
//! and what the store applies.

use chrono::{DateTime, Utc};

/// WhatsApp's mark for "muted for ever" in a mute's end time.
pub(crate) const MUTED_FOREVER: i64 = -1;

/// How long a chat stays muted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Mute {
    /// Not muted.
    Off,
    Forever,
    Until(DateTime<Utc>),
}

impl Mute {
    /// The stored form: `None` not muted, [`MUTED_FOREVER`], or the end in
    /// unix milliseconds.
    pub(crate) fn to_millis(self) -> Option<i64> {
        match self {
            Self::Off => None,
            Self::Forever => Some(MUTED_FOREVER),
            Self::Until(at) => Some(at.timestamp_millis()),
        }
    }

    /// From the stored form, or from WhatsApp's mute end (any negative
    /// value is for ever, as WhatsApp writes -1; 0 is not muted).
    pub(crate) fn from_millis(millis: Option<i64>) -> Self {
        match millis {
            None | Some(0) => Self::Off,
            Some(m) if m < 0 => Self::Forever,
            Some(m) => DateTime::from_timestamp_millis(m).map_or(Self::Forever, Self::Until),
        }
    }

    /// Muted at `now`: for ever, or until a time still to come.
    pub(crate) fn is_muted(self, now: DateTime<Utc>) -> bool {
        match self {
            Self::Off => false,
            Self::Forever => true,
            Self::Until(at) => at > now,
        }
    }
}

super::named_enum! {
    /// Which of a chat's settings a change is about.
    pub enum ChatSetting {
        Archived = "archived",
        Pinned = "pinned",
        Muted = "muted",
        Read = "read",
    }
}

super::named_enum! {
    /// What about a contact changed (`contact.updated`).
    pub enum ContactField {
        /// The name they gave themselves.
        PushName = "push_name",
        /// The name the account's user saved for them.
        SavedName = "saved_name",
        /// Their profile picture.
        Picture = "picture",
    }
}

/// One change to a chat's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ChatChange {
    Archive(bool),
    Pin(bool),
    Mute(Mute),
    /// Read (`true`: nothing unread) or marked unread.
    Read(bool),
}

impl ChatChange {
    pub(crate) fn setting(self) -> ChatSetting {
        match self {
            Self::Archive(_) => ChatSetting::Archived,
            Self::Pin(_) => ChatSetting::Pinned,
            Self::Mute(_) => ChatSetting::Muted,
            Self::Read(_) => ChatSetting::Read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names_round_trip() {
        crate::domain::named::assert_names_round_trip::<ChatSetting>();
        crate::domain::named::assert_names_round_trip::<ContactField>();
    }

    #[test]
    fn mute_round_trips_through_its_stored_form() {
        let at = DateTime::from_timestamp_millis(1_900_000_000_000).expect("a valid time");
        for mute in [Mute::Off, Mute::Forever, Mute::Until(at)] {
            assert_eq!(Mute::from_millis(mute.to_millis()), mute);
        }
        assert_eq!(Mute::from_millis(Some(0)), Mute::Off);
        assert_eq!(Mute::from_millis(Some(-5)), Mute::Forever);
    }

    #[test]
    fn a_mute_that_ended_is_not_muted() {
        let now = Utc::now();
        assert!(!Mute::Until(now - chrono::Duration::seconds(1)).is_muted(now));
        assert!(Mute::Until(now + chrono::Duration::seconds(1)).is_muted(now));
        assert!(Mute::Forever.is_muted(now));
        assert!(!Mute::Off.is_muted(now));
    }
}
