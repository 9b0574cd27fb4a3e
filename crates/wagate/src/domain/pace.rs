//! A session's own send pace: what it overrides of the gateway's.

use serde::{Deserialize, Serialize};

/// The most a pace may allow. A number sending ten messages a second is
/// banned within the hour; anything above this is a typo, not a plan.
pub(crate) const MAX_PER_MINUTE: u32 = 600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a send pace is 0 (off) to {MAX_PER_MINUTE} messages per minute")]
pub struct InvalidPace;

/// Messages per minute, 0 meaning "no limit", at most [`MAX_PER_MINUTE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
// Read through a JSON number: JSON Schema counts `30.0` as an integer,
// so a request valid by the document may carry one.
#[serde(try_from = "serde_json::Number", into = "u32")]
pub struct PerMinute(u32);

impl PerMinute {
    pub fn get(self) -> u32 {
        self.0
    }
}

impl TryFrom<u32> for PerMinute {
    type Error = InvalidPace;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        (value <= MAX_PER_MINUTE)
            .then_some(Self(value))
            .ok_or(InvalidPace)
    }
}

impl TryFrom<serde_json::Number> for PerMinute {
    type Error = InvalidPace;

    fn try_from(value: serde_json::Number) -> Result<Self, Self::Error> {
        let whole = match value.as_u64() {
            Some(n) => n,
            None => match value.as_f64() {
                Some(f) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => f as u64,
                _ => return Err(InvalidPace),
            },
        };
        u32::try_from(whole)
            .map_err(|_| InvalidPace)
            .and_then(Self::try_from)
    }
}

impl From<PerMinute> for u32 {
    fn from(value: PerMinute) -> Self {
        value.0
    }
}

/// What a session overrides of the gateway's pace; `None` follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionPace {
    /// All sends.
    pub per_minute: Option<PerMinute>,
    /// Sends to chats the number never messaged.
    pub new_chats_per_minute: Option<PerMinute>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_number_written_as_a_float_is_read_and_a_fraction_is_not() {
        let read = |json: &str| {
            serde_json::from_str::<PerMinute>(json)
                .map(PerMinute::get)
                .ok()
        };
        assert_eq!(read("30"), Some(30));
        assert_eq!(read("30.0"), Some(30));
        assert_eq!(read("600"), Some(600));
        assert_eq!(read("601"), None);
        assert_eq!(read("30.5"), None);
        assert_eq!(read("-1"), None);
        assert_eq!(read("1e30"), None);
    }

    #[test]
    fn a_pace_is_bounded() {
        assert_eq!(PerMinute::try_from(0).map(PerMinute::get), Ok(0));
        assert_eq!(
            PerMinute::try_from(MAX_PER_MINUTE).map(PerMinute::get),
            Ok(MAX_PER_MINUTE)
        );
        assert_eq!(PerMinute::try_from(MAX_PER_MINUTE + 1), Err(InvalidPace));
        assert!(serde_json::from_str::<PerMinute>("601").is_err());
    }
}
