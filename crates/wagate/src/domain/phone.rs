//! A phone number in the international format WhatsApp pairing expects.

use std::fmt;

use serde::{Deserialize, Serialize};

/// E.164 allows at most 15 digits; the shortest real numbers with a country
/// code have 8.
const MIN_DIGITS: usize = 8;
const MAX_DIGITS: usize = 15;
/// What [`Phone`] parses, as the OpenAPI document's pattern (a test holds
/// the two equal).
pub(crate) const PHONE_PATTERN: &str = "^[1-9][0-9]{7,14}$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "phone must be in international format: digits only, no '+' and no spaces, \
     {MIN_DIGITS} to {MAX_DIGITS} digits starting with the country code (for example 628123456789)"
)]
pub struct InvalidPhone;

/// A phone number as digits only, country code first: `628123456789`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Phone(String);

impl From<Phone> for String {
    fn from(phone: Phone) -> Self {
        phone.0
    }
}

impl Phone {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Phone {
    type Error = InvalidPhone;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        let well_formed = (MIN_DIGITS..=MAX_DIGITS).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_digit())
            // A leading zero is a national trunk prefix, never a country code.
            && !value.starts_with('0');
        if well_formed {
            Ok(Self(value))
        } else {
            Err(InvalidPhone)
        }
    }
}

impl TryFrom<&str> for Phone {
    type Error = InvalidPhone;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        Self::try_from(value.to_string())
    }
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_digits_in_international_format() {
        for ok in ["628123456789", "15551234567", "4915123456789", "12345678"] {
            assert_eq!(
                Phone::try_from(ok).map(|p| p.to_string()),
                Ok(ok.to_string())
            );
        }
    }

    #[test]
    fn the_pattern_is_the_parser() -> Result<(), regex::Error> {
        let pattern = regex::Regex::new(PHONE_PATTERN)?;
        for sample in [
            "628123456789",
            "12345678",
            "123456789012345",
            "1234567",
            "1234567890123456",
            "0812345678",
            "+628123456789",
            "62812345678a",
            "",
            "628123456789\n",
        ] {
            assert_eq!(
                pattern.is_match(sample),
                Phone::try_from(sample).is_ok(),
                "{sample:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn rejects_anything_but_bare_international_digits() {
        for bad in [
            "",
            "+628123456789",
            "62 812 3456 789",
            "62-812-3456-789",
            "0812345678",
            "1234567",
            "1234567890123456",
            "62812345678a",
            "６２８１２３４５６７８９",
        ] {
            assert_eq!(Phone::try_from(bad), Err(InvalidPhone), "{bad:?}");
        }
    }

    #[test]
    fn the_error_says_what_the_format_is() {
        let message = InvalidPhone.to_string();
        assert!(message.contains("digits only"));
        assert!(message.contains("no '+'"));
        assert!(message.contains("no spaces"));
    }
}
