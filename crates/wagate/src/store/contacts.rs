//! Contacts: the people a session's account knows, by phone number and
//! LID, with the name the user saved for them (WhatsApp's app state), the
//! name they gave themselves (push names, from live messages and history),
//! whether their number is on WhatsApp and their profile picture's id.
//! Each change a client hears about (`contact.updated`) is written with
//! its event in one transaction.

use async_trait::async_trait;

use super::StoreError;
use crate::domain::{OrgId, SessionId};
use crate::events::Envelope;

/// A person by either of their ids, as JIDs name them: `phone` digits
/// (`<phone>@s.whatsapp.net`) and `lid` digits (`<lid>@lid`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Person {
    pub phone: Option<String>,
    pub lid: Option<String>,
}

impl Person {
    /// A person from a JID of either kind; `None` for any other JID (a
    /// group, a broadcast list).
    pub fn from_jid(jid: &str) -> Option<Self> {
        let (user, server) = jid.split_once('@')?;
        // A device suffix (`:3`) or agent (`_1`) is not part of the user.
        let user = user.split([':', '_']).next().unwrap_or(user);
        if user.is_empty() || !user.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match server {
            "s.whatsapp.net" | "c.us" => Some(Self {
                phone: Some(user.to_owned()),
                lid: None,
            }),
            "lid" => Some(Self {
                phone: None,
                lid: Some(user.to_owned()),
            }),
            _ => None,
        }
    }

    /// The key a contact is stored under: the phone JID when the number
    /// is known, else the LID's.
    pub fn key(&self) -> Option<String> {
        match (&self.phone, &self.lid) {
            (Some(phone), _) => Some(format!("{phone}@s.whatsapp.net")),
            (None, Some(lid)) => Some(format!("{lid}@lid")),
            (None, None) => None,
        }
    }
}

/// One contact as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactRecord {
    /// Its key: `<phone>@s.whatsapp.net`, or `<lid>@lid` while the number
    /// is not known.
    pub jid: String,
    pub phone: Option<String>,
    pub lid: Option<String>,
    /// The name the account's user saved for them.
    pub saved_name: Option<String>,
    /// The name they gave themselves.
    pub push_name: Option<String>,
    /// `None` while not known.
    pub on_whatsapp: Option<bool>,
    /// Their profile picture's id as WhatsApp last reported it.
    pub picture_id: Option<String>,
}

/// What changed about a contact, as `contact.updated` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactChange {
    /// The account's user saved them under this name (`None`: removed).
    SavedName(Option<String>),
    /// Their profile picture changed to this id (`None`: removed).
    Picture(Option<String>),
}

/// A page of the contact list.
#[derive(Debug, Clone, Default)]
pub struct ContactQuery {
    /// Matches the saved name, the push name (case-insensitively) or the
    /// phone number (its digits).
    pub search: Option<String>,
    /// The key of the last contact of the previous page.
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait ContactStore: Send + Sync {
    /// A page of the session's contacts, by key.
    async fn list_contacts(
        &self,
        session: SessionId,
        query: &ContactQuery,
    ) -> Result<Vec<ContactRecord>, StoreError>;

    /// The contact that is `person` (by either id).
    async fn get_contact(
        &self,
        session: SessionId,
        person: &Person,
    ) -> Result<Option<ContactRecord>, StoreError>;

    /// Applies `change` to the contact that is `person` (adding it when
    /// the session has none) and logs the `contact.updated` event, in one
    /// transaction; `None` when nothing changed.
    async fn change_contact(
        &self,
        org: OrgId,
        session: SessionId,
        person: &Person,
        change: ContactChange,
    ) -> Result<Option<Envelope>, StoreError>;

    /// Records whether numbers (digits) are on WhatsApp, as a contact check
    /// answered, for the contacts the session has.
    async fn record_on_whatsapp(
        &self,
        session: SessionId,
        answers: &[(String, bool)],
    ) -> Result<(), StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_comes_from_a_jid_of_either_kind() {
        assert_eq!(
            Person::from_jid("15551234567@s.whatsapp.net"),
            Some(Person {
                phone: Some("15551234567".into()),
                lid: None
            })
        );
        assert_eq!(
            Person::from_jid("123456789012345:2@lid"),
            Some(Person {
                phone: None,
                lid: Some("123456789012345".into())
            })
        );
        assert_eq!(Person::from_jid("120363000000000001@g.us"), None);
        assert_eq!(Person::from_jid("status@broadcast"), None);
        assert_eq!(Person::from_jid("@lid"), None);
    }

    #[test]
    fn a_contact_is_keyed_by_number_when_known() {
        let both = Person {
            phone: Some("1555".into()),
            lid: Some("99".into()),
        };
        assert_eq!(both.key().as_deref(), Some("1555@s.whatsapp.net"));
        let lid = Person {
            phone: None,
            lid: Some("99".into()),
        };
        assert_eq!(lid.key().as_deref(), Some("99@lid"));
        assert_eq!(Person::default().key(), None);
    }
}
