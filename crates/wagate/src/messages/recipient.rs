//! Who a message goes to: a person by phone number, a group, or a person by
//! their LID. Parsed from the request's `to`, carried as a WhatsApp JID.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use whatsapp_rust::{Jid, Server};

/// E.164 allows at most 15 digits; the contract accepts numbers from 7.
const MIN_PHONE_DIGITS: usize = 7;
const MAX_PHONE_DIGITS: usize = 15;
/// Group ids are 18 digits today; legacy ones are `creator-timestamp`.
const MAX_GROUP_ID: usize = 40;
const MAX_LID_DIGITS: usize = 20;
/// A legacy group id's parts: the creator's number and a unix time.
const MAX_GROUP_CREATOR: usize = 20;
const MAX_GROUP_CREATED: usize = 19;

/// What [`Recipient`] parses, as the OpenAPI document's pattern (the
/// request's `to`, a chat in a path); written into the document by
/// `http::openapi`, and kept equal to the parser by
/// `the_pattern_is_the_parser` (in the tests).
pub(crate) const CHAT_PATTERN: &str = r"^([1-9][0-9]{6,14}(@s\.whatsapp\.net)?|[0-9]{1,40}@g\.us|[0-9]{1,20}-[0-9]{1,19}@g\.us|[0-9]{1,20}@lid)$";
/// What [`Recipient`] parses that is a person (not a group): a read
/// receipt's `sender`.
pub(crate) const PERSON_PATTERN: &str = r"^([1-9][0-9]{6,14}(@s\.whatsapp\.net)?|[0-9]{1,20}@lid)$";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`to` must be a phone number in international format (digits only, no '+', \
     {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits), or a JID ending in \
     @s.whatsapp.net, @g.us or @lid"
)]
pub(crate) struct InvalidRecipient;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RecipientKind {
    /// A person addressed by phone number (`@s.whatsapp.net`).
    Person,
    /// A group (`@g.us`).
    Group,
    /// A person addressed by their LID (`@lid`), WhatsApp's number-hiding id.
    Lid,
}

/// A chat a message can be sent to. Always a bare chat JID: no device, no
/// agent, so two spellings of the same chat compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Recipient {
    jid: Jid,
    kind: RecipientKind,
}

impl Recipient {
    pub(crate) fn jid(&self) -> &Jid {
        &self.jid
    }

    pub(crate) fn kind(&self) -> RecipientKind {
        self.kind
    }

    pub(crate) fn is_group(&self) -> bool {
        self.kind == RecipientKind::Group
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn valid_phone(user: &str) -> bool {
    (MIN_PHONE_DIGITS..=MAX_PHONE_DIGITS).contains(&user.len())
        && all_digits(user)
        // A leading zero is a national trunk prefix, never a country code:
        // such a number would reach the wrong person.
        && !user.starts_with('0')
}

fn valid_group(user: &str) -> bool {
    user.len() <= MAX_GROUP_ID
        && match user.split_once('-') {
            Some((creator, created)) => {
                all_digits(creator)
                    && all_digits(created)
                    && creator.len() <= MAX_GROUP_CREATOR
                    && created.len() <= MAX_GROUP_CREATED
            }
            None => all_digits(user),
        }
}

fn valid_lid(user: &str) -> bool {
    user.len() <= MAX_LID_DIGITS && all_digits(user)
}

impl FromStr for Recipient {
    type Err = InvalidRecipient;

    fn from_str(to: &str) -> Result<Self, Self::Err> {
        if !to.contains('@') {
            return if valid_phone(to) {
                Ok(Self {
                    jid: Jid::pn(to),
                    kind: RecipientKind::Person,
                })
            } else {
                Err(InvalidRecipient)
            };
        }
        let jid: Jid = to.parse().map_err(|_| InvalidRecipient)?;
        // A device or agent suffix addresses one device, not a chat.
        if jid.device != 0 || jid.agent != 0 || jid.integrator != 0 {
            return Err(InvalidRecipient);
        }
        let kind = match jid.server {
            Server::Pn if valid_phone(&jid.user) => RecipientKind::Person,
            Server::Group if valid_group(&jid.user) => RecipientKind::Group,
            Server::Lid if valid_lid(&jid.user) => RecipientKind::Lid,
            _ => return Err(InvalidRecipient),
        };
        // The parser is lenient (e.g. about a `:0` device); only the
        // canonical spelling is accepted so what is stored is what was sent.
        if jid.to_string() != to {
            return Err(InvalidRecipient);
        }
        Ok(Self { jid, kind })
    }
}

impl TryFrom<&str> for Recipient {
    type Error = InvalidRecipient;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.jid.fmt(f)
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Recipient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<(String, RecipientKind), InvalidRecipient> {
        s.parse::<Recipient>().map(|r| (r.to_string(), r.kind()))
    }

    #[test]
    fn a_bare_number_is_a_person_on_the_phone_number_server() {
        assert_eq!(
            parse("15551234567"),
            Ok((
                "15551234567@s.whatsapp.net".to_string(),
                RecipientKind::Person
            ))
        );
        assert_eq!(
            parse("1234567").map(|r| r.1),
            Ok(RecipientKind::Person),
            "7 digits is the contract's minimum"
        );
        assert!(
            parse("123456789012345").is_ok(),
            "15 digits is E.164's maximum"
        );
    }

    #[test]
    fn jids_of_each_kind_are_accepted_as_written() {
        for (to, kind) in [
            ("15551234567@s.whatsapp.net", RecipientKind::Person),
            ("120363025246125888@g.us", RecipientKind::Group),
            ("15551234567-1441234567@g.us", RecipientKind::Group),
            ("123456789012345@lid", RecipientKind::Lid),
        ] {
            assert_eq!(parse(to), Ok((to.to_string(), kind)), "{to}");
        }
        assert!(
            "120363025246125888@g.us"
                .parse::<Recipient>()
                .is_ok_and(|r| r.is_group())
        );
    }

    #[test]
    fn malformed_numbers_and_foreign_jids_are_rejected() {
        for bad in [
            "",
            "+15551234567",
            "1555 123 4567",
            "155-5123-4567",
            "123456",
            "1234567890123456",
            "05551234567",
            "1555123456a",
            "１５５５１２３４５６７",
            "+15551234567@s.whatsapp.net",
            "abc@s.whatsapp.net",
            "15551234567:3@s.whatsapp.net",
            "15551234567@c.us",
            "status@broadcast",
            "120363025246125888@newsletter",
            "abc@g.us",
            "@g.us",
            "12345@lid:2",
            "15551234567@",
            "15551234567@s.whatsapp.net ",
        ] {
            assert_eq!(parse(bad), Err(InvalidRecipient), "{bad:?}");
        }
    }

    #[test]
    fn serde_round_trips_through_the_jid_string_and_validates() {
        let r: Recipient = "15551234567".parse().unwrap();
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, "\"15551234567@s.whatsapp.net\"");
        assert_eq!(serde_json::from_str::<Recipient>(&json).unwrap(), r);
        assert!(serde_json::from_str::<Recipient>("\"nope@g.us\"").is_err());
    }

    /// The OpenAPI patterns accept exactly what the parser does: every
    /// sample either matches and parses, or neither.
    #[test]
    fn the_pattern_is_the_parser() -> Result<(), regex::Error> {
        let chat = regex::Regex::new(CHAT_PATTERN)?;
        let person = regex::Regex::new(PERSON_PATTERN)?;
        let samples = [
            // Phone numbers: 7 to 15 digits, no leading zero.
            "1234567",
            "123456",
            "15551234567",
            "123456789012345",
            "1234567890123456",
            "05551234567",
            "+15551234567",
            "1555 123 4567",
            "1555123456a",
            "１５５５１２３４５６７",
            "15551234567@s.whatsapp.net",
            "123456@s.whatsapp.net",
            "05551234567@s.whatsapp.net",
            "+15551234567@s.whatsapp.net",
            "15551234567:3@s.whatsapp.net",
            "15551234567.0:3@s.whatsapp.net",
            "15551234567@c.us",
            "15551234567@",
            "15551234567@s.whatsapp.net ",
            " 15551234567",
            "15551234567\n",
            // Groups: up to 40 digits, or creator-timestamp.
            "120363025246125888@g.us",
            "1@g.us",
            "0@g.us",
            "1234567890123456789012345678901234567890@g.us",
            "12345678901234567890123456789012345678901@g.us",
            "15551234567-1441234567@g.us",
            "12345678901234567890-1234567890123456789@g.us",
            "123456789012345678901-1@g.us",
            "1-12345678901234567890@g.us",
            "-1@g.us",
            "1-@g.us",
            "1-2-3@g.us",
            "abc@g.us",
            "@g.us",
            "120363025246125888",
            "120363025246125888@newsletter",
            // LIDs: up to 20 digits.
            "123456789012345@lid",
            "0@lid",
            "12345678901234567890@lid",
            "123456789012345678901@lid",
            "12345@lid:2",
            "12345:2@lid",
            "@lid",
            "a1@lid",
            // Neither.
            "",
            "status@broadcast",
            "@",
            "15551234567@s.whatsapp.net@lid",
        ];
        for sample in samples {
            let parsed = sample.parse::<Recipient>();
            assert_eq!(
                chat.is_match(sample),
                parsed.is_ok(),
                "CHAT_PATTERN and the parser disagree on {sample:?}"
            );
            assert_eq!(
                person.is_match(sample),
                parsed.is_ok_and(|r| !r.is_group()),
                "PERSON_PATTERN and the parser disagree on {sample:?}"
            );
        }
        Ok(())
    }
}
