//! A session's human label.

use std::fmt;

use serde::Serialize;

const MAX_CHARS: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLabel {
    #[error("label must be at most {MAX_CHARS} characters")]
    TooLong,
    #[error("label must not contain control characters")]
    ControlCharacters,
}

/// A label of at most 100 characters with no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Label(String);

impl Label {
    pub const MAX_CHARS: usize = MAX_CHARS;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl TryFrom<String> for Label {
    type Error = InvalidLabel;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        if value.chars().count() > MAX_CHARS {
            return Err(InvalidLabel::TooLong);
        }
        if value.chars().any(char::is_control) {
            return Err(InvalidLabel::ControlCharacters);
        }
        Ok(Self(value))
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_up_to_100_characters_counting_unicode_scalars() {
        assert!(Label::try_from("é".repeat(100)).is_ok());
        assert_eq!(Label::try_from("a".repeat(101)), Err(InvalidLabel::TooLong));
    }

    #[test]
    fn rejects_control_characters() {
        assert_eq!(
            Label::try_from("sales\nteam".to_string()),
            Err(InvalidLabel::ControlCharacters)
        );
    }
}
