//! History after linking: how much of it a session keeps, and the kinds of
//! chunk WhatsApp sends it in.

use super::named_enum;

named_enum! {
    /// How much of the history the phone sends after a link a session keeps.
    #[derive(Default)]
    pub enum HistoryScope {
        /// Nothing: history chunks are acknowledged and dropped.
        None = "none",
        /// The initial bootstrap, recent chunks, push names and history
        /// asked for on demand (the default).
        #[default]
        Recent = "recent",
        /// Everything, the full-history chunks too.
        Full = "full",
    }
}

named_enum! {
    /// The kind of a history-sync chunk, as WhatsApp names it.
    pub enum HistorySyncType {
        InitialBootstrap = "initial_bootstrap",
        InitialStatusV3 = "initial_status_v3",
        Full = "full",
        Recent = "recent",
        PushName = "push_name",
        NonBlockingData = "non_blocking_data",
        OnDemand = "on_demand",
        /// A kind this gateway does not know.
        Other = "other",
    }
}

impl HistorySyncType {
    /// The protobuf's `HistorySyncType` number.
    pub fn from_wire(value: i32) -> Self {
        match value {
            0 => Self::InitialBootstrap,
            1 => Self::InitialStatusV3,
            2 => Self::Full,
            3 => Self::Recent,
            4 => Self::PushName,
            5 => Self::NonBlockingData,
            6 => Self::OnDemand,
            _ => Self::Other,
        }
    }
}

impl HistoryScope {
    /// Whether a chunk of `kind` is kept at all.
    pub fn keeps(self, kind: HistorySyncType) -> bool {
        match self {
            Self::None => false,
            Self::Recent => kind != HistorySyncType::Full,
            Self::Full => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        crate::domain::named::assert_names_round_trip::<HistoryScope>();
        crate::domain::named::assert_names_round_trip::<HistorySyncType>();
    }

    #[test]
    fn recent_keeps_all_but_full_history() {
        assert!(HistoryScope::Recent.keeps(HistorySyncType::InitialBootstrap));
        assert!(HistoryScope::Recent.keeps(HistorySyncType::OnDemand));
        assert!(!HistoryScope::Recent.keeps(HistorySyncType::Full));
        assert!(HistoryScope::Full.keeps(HistorySyncType::Full));
        assert!(!HistoryScope::None.keeps(HistorySyncType::PushName));
        assert_eq!(HistoryScope::default(), HistoryScope::Recent);
        assert_eq!(HistorySyncType::from_wire(3), HistorySyncType::Recent);
        assert_eq!(HistorySyncType::from_wire(42), HistorySyncType::Other);
    }
}
