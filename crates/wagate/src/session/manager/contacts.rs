//! The API's contacts: the stored ones (any status), and what only
//! WhatsApp knows (about text, profile picture, blocking) on a `working`
//! session.

use bytes::Bytes;
use whatsapp_rust::Jid;

use super::{ManagerError, SessionManager};
use crate::domain::{OrgId, SessionId};
use crate::session::messenger::{ContactProfile, SendFailure};
use crate::store::LidLookup;
use crate::store::contacts::{ContactQuery, ContactRecord, Person};

/// A contact's picture as the API serves it.
#[derive(Debug, Clone)]
pub enum Picture {
    /// The image, fetched now or kept from before.
    Image(Bytes),
    /// The contact has none, or does not show it to this number.
    None,
}

impl SessionManager {
    /// A page of the session's contacts.
    pub async fn contacts(
        &self,
        org: OrgId,
        session: SessionId,
        query: &ContactQuery,
    ) -> Result<Vec<ContactRecord>, ManagerError> {
        self.get(org, session).await?;
        Ok(self
            .inner
            .store
            .contacts()
            .list_contacts(session, query)
            .await?)
    }

    /// `person` with the id the session's LID mappings add to the one
    /// given.
    pub async fn resolve_person(
        &self,
        session: SessionId,
        mut person: Person,
    ) -> Result<Person, ManagerError> {
        let keys = self.inner.store.keys();
        let found = match (&person.phone, &person.lid) {
            (Some(phone), None) => keys.lid_pn(session, LidLookup::Phone(phone)).await?,
            (None, Some(lid)) => keys.lid_pn(session, LidLookup::Lid(lid)).await?,
            _ => None,
        };
        if let Some(found) = found {
            person.phone.get_or_insert(found.phone);
            person.lid.get_or_insert(found.lid);
        }
        Ok(person)
    }

    /// The session's contact that is `person` (by either id).
    pub async fn contact(
        &self,
        org: OrgId,
        session: SessionId,
        person: Person,
    ) -> Result<Option<ContactRecord>, ManagerError> {
        self.get(org, session).await?;
        let person = self.resolve_person(session, person).await?;
        Ok(self
            .inner
            .store
            .contacts()
            .get_contact(session, &person)
            .await?)
    }

    /// What WhatsApp says of `contact` now; the session must be `working`.
    pub async fn contact_profile(
        &self,
        org: OrgId,
        session: SessionId,
        contact: &ContactRecord,
    ) -> Result<ContactProfile, ManagerError> {
        let messenger = self.live_messenger(org, session).await?;
        messenger
            .contact_profile(&jid_of(contact)?)
            .await
            .map_err(ManagerError::Upstream)
    }

    /// `contact`'s profile picture: the current one when the session is
    /// `working` (from the cache while WhatsApp names the same picture),
    /// else the last one fetched, if any.
    pub async fn contact_picture(
        &self,
        org: OrgId,
        session: SessionId,
        contact: &ContactRecord,
    ) -> Result<Picture, ManagerError> {
        let pictures = &self.inner.pictures;
        let messenger = match self.live_messenger(org, session).await {
            Ok(messenger) => messenger,
            Err(error @ ManagerError::NotWorking(_)) => {
                return match pictures.last(session, &contact.jid) {
                    Some(bytes) => Ok(Picture::Image(bytes)),
                    None => Err(error),
                };
            }
            Err(error) => return Err(error),
        };
        let profile = messenger
            .contact_profile(&jid_of(contact)?)
            .await
            .map_err(ManagerError::Upstream)?;
        let Some(picture) = profile.picture else {
            pictures.forget(session, &contact.jid);
            return Ok(Picture::None);
        };
        if let Some(bytes) = pictures.get(session, &contact.jid, &picture.id) {
            return Ok(Picture::Image(bytes));
        }
        let bytes = match messenger.download_picture(&picture).await {
            Ok(bytes) => Bytes::from(bytes),
            // Changed or hidden since WhatsApp named it.
            Err(SendFailure::Invalid(_)) => return Ok(Picture::None),
            Err(failure) => return Err(ManagerError::Upstream(failure)),
        };
        pictures.put(session, &contact.jid, &picture.id, bytes.clone());
        Ok(Picture::Image(bytes))
    }

    /// Blocks or unblocks `person` on WhatsApp; the session must be
    /// `working`.
    pub async fn block(
        &self,
        org: OrgId,
        session: SessionId,
        contact: &Jid,
        block: bool,
    ) -> Result<(), ManagerError> {
        let messenger = self.live_messenger(org, session).await?;
        messenger
            .block(contact, block)
            .await
            .map_err(ManagerError::Upstream)
    }
}

/// The JID WhatsApp knows `contact` by: their number's when known.
fn jid_of(contact: &ContactRecord) -> Result<Jid, ManagerError> {
    match (&contact.phone, &contact.lid) {
        (Some(phone), _) => Ok(Jid::pn(phone.as_str())),
        (None, Some(lid)) => Ok(Jid::lid(lid.as_str())),
        (None, None) => Err(ManagerError::Upstream(SendFailure::Invalid(
            "the contact has no id".into(),
        ))),
    }
}

impl SessionManager {
    /// Records what a contact check answered, for the session's contacts
    /// with those numbers.
    pub async fn record_on_whatsapp(
        &self,
        session: SessionId,
        answers: &[(String, bool)],
    ) -> Result<(), ManagerError> {
        Ok(self
            .inner
            .store
            .contacts()
            .record_on_whatsapp(session, answers)
            .await?)
    }
}
