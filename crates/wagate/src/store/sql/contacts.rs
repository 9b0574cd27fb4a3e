//! Contacts' rows (migrations 0024, 0027): push names written with the
//! messages and history chunks that carry them (`note_push_names_in`),
//! saved names and pictures with their `contact.updated` events, read with
//! the ids the session's LID mappings add.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::Row;

use super::events::append_events_to;
use super::fences::check_fences;
use super::webhooks::WebhookTargets;
use super::{Backend, DbRow, WriteTx, begin_write};
use crate::domain::{ContactField, OrgId, SessionId};
use crate::events::{Envelope, EventData};
use crate::store::contacts::{ContactChange, ContactQuery, ContactRecord, ContactStore, Person};
use crate::store::{StoreError, millis, now};

/// A contact's columns, with the id its row lacks filled in from the
/// session's LID mappings (which the protocol keeps as it learns them).
macro_rules! select_contacts {
    ($($rest:literal)*) => {
        concat!(
            "SELECT c.jid, \
             COALESCE(c.phone, (SELECT m.phone_number FROM key_lid_pn_mappings m \
                 WHERE m.session_id = c.session_id AND m.lid = c.lid)) AS phone, \
             COALESCE(c.lid, (SELECT m.lid FROM key_lid_pn_mappings m \
                 WHERE m.session_id = c.session_id AND m.phone_number = c.phone \
                 ORDER BY m.updated_at DESC LIMIT 1)) AS lid, \
             c.saved_name, c.push_name, c.on_whatsapp, c.picture_id \
             FROM contacts c ",
            $($rest),*
        )
    };
}

fn contact(row: &DbRow) -> Result<ContactRecord, StoreError> {
    Ok(ContactRecord {
        jid: row.try_get("jid")?,
        phone: row.try_get("phone")?,
        lid: row.try_get("lid")?,
        saved_name: row.try_get("saved_name")?,
        push_name: row.try_get("push_name")?,
        on_whatsapp: row.try_get("on_whatsapp")?,
        picture_id: row.try_get("picture_id")?,
    })
}

/// `LIKE` pattern matching `text` anywhere, its own `%`, `_` and `\`
/// taken literally.
fn contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The session's row for `person`, by either id (the one keyed by number
/// first): inside a write (`&mut **tx`) or on the reader.
async fn find<'e, E>(
    executor: E,
    session: SessionId,
    person: &Person,
) -> Result<Option<ContactRecord>, StoreError>
where
    E: sqlx::Executor<'e, Database = super::Db>,
{
    sqlx::query(select_contacts!(
        "WHERE c.session_id = $1 AND (c.jid = $2 OR c.jid = $3 OR c.phone = $4 OR c.lid = $5) "
        "ORDER BY (CASE WHEN c.phone IS NULL THEN 1 ELSE 0 END), c.jid LIMIT 1"
    ))
    .bind(session.to_string())
    .bind(person.phone.as_ref().map(|p| format!("{p}@s.whatsapp.net")))
    .bind(person.lid.as_ref().map(|l| format!("{l}@lid")))
    .bind(person.phone.clone())
    .bind(person.lid.clone())
    .fetch_optional(executor)
    .await?
    .as_ref()
    .map(contact)
    .transpose()
}

async fn find_in(
    tx: &mut WriteTx,
    session: SessionId,
    person: &Person,
) -> Result<Option<ContactRecord>, StoreError> {
    find(&mut **tx, session, person).await
}

/// Writes `record` as the session's row under its key.
async fn upsert_in(
    tx: &mut WriteTx,
    session: SessionId,
    record: &ContactRecord,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO contacts (session_id, jid, push_name, updated_at, phone, lid, saved_name, \
         on_whatsapp, picture_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (session_id, jid) DO UPDATE SET push_name = excluded.push_name, \
         updated_at = excluded.updated_at, phone = excluded.phone, lid = excluded.lid, \
         saved_name = excluded.saved_name, on_whatsapp = excluded.on_whatsapp, \
         picture_id = excluded.picture_id",
    )
    .bind(session.to_string())
    .bind(&record.jid)
    .bind(&record.push_name)
    .bind(millis(now()))
    .bind(&record.phone)
    .bind(&record.lid)
    .bind(&record.saved_name)
    .bind(record.on_whatsapp)
    .bind(&record.picture_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The event reporting `record`'s `changed`.
fn updated(
    org: OrgId,
    session: SessionId,
    record: &ContactRecord,
    changed: ContactField,
) -> Envelope {
    Envelope::new(
        org,
        session,
        EventData::ContactUpdated {
            contact: record.jid.clone(),
            phone: record.phone.clone(),
            lid: record.lid.clone(),
            changed,
            saved_name: record.saved_name.clone(),
            push_name: record.push_name.clone(),
            picture_id: record.picture_id.clone(),
        },
    )
}

/// The contact `person` is, as found (merged with what `person` adds) or
/// new.
fn merged(found: Option<ContactRecord>, person: &Person) -> Option<ContactRecord> {
    let phone = person
        .phone
        .clone()
        .or_else(|| found.as_ref().and_then(|f| f.phone.clone()));
    let lid = person
        .lid
        .clone()
        .or_else(|| found.as_ref().and_then(|f| f.lid.clone()));
    let jid = Person {
        phone: phone.clone(),
        lid: lid.clone(),
    }
    .key()?;
    Some(match found {
        Some(found) => ContactRecord {
            jid,
            phone,
            lid,
            ..found
        },
        None => ContactRecord {
            jid,
            phone,
            lid,
            saved_name: None,
            push_name: None,
            on_whatsapp: None,
            picture_id: None,
        },
    })
}

/// Moves the row `from` (keyed by LID) to `to`'s key, when `to` names it
/// by number now: one row per person.
async fn rekey_in(
    tx: &mut WriteTx,
    session: SessionId,
    from: &str,
    to: &str,
) -> Result<(), StoreError> {
    if from != to {
        sqlx::query("DELETE FROM contacts WHERE session_id = $1 AND jid = $2")
            .bind(session.to_string())
            .bind(from)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One push name a stored message or history chunk carried.
pub(super) struct PushName<'a> {
    pub org: OrgId,
    pub session: SessionId,
    pub person: Person,
    pub name: &'a str,
    /// Where the caller keeps the event: its batch, say.
    pub tag: usize,
    /// Carried by a live message (so the number is on WhatsApp).
    pub live: bool,
}

/// Stores `names` (the last one of a person wins) and the
/// `contact.updated` events of the contacts whose push name changed. A new
/// contact's first name is no change: it came with the message (or the
/// history chunk) that carried it. Returns each event with its tag.
pub(super) async fn note_push_names_in(
    tx: &mut WriteTx,
    names: &[PushName<'_>],
) -> Result<Vec<(usize, Envelope)>, StoreError> {
    let mut order: Vec<(SessionId, String)> = Vec::new();
    let mut last: HashMap<(SessionId, String), &PushName<'_>> = HashMap::new();
    for name in names {
        let Some(key) = name.person.key() else {
            continue;
        };
        let key = (name.session, key);
        if last.insert(key.clone(), name).is_none() {
            order.push(key);
        }
    }
    let mut events = Vec::new();
    for key in order {
        let Some(name) = last.get(&key) else {
            continue;
        };
        let found = find_in(tx, name.session, &name.person).await?;
        let before = found.clone();
        let Some(mut record) = merged(found, &name.person) else {
            continue;
        };
        record.push_name = Some(name.name.to_owned());
        if name.live {
            record.on_whatsapp = Some(true);
        }
        if before.as_ref() == Some(&record) {
            continue;
        }
        if let Some(before) = &before {
            rekey_in(tx, name.session, &before.jid, &record.jid).await?;
        }
        upsert_in(tx, name.session, &record).await?;
        let renamed = before
            .as_ref()
            .is_some_and(|b| b.push_name.as_deref() != Some(name.name));
        if renamed {
            events.push((
                name.tag,
                updated(name.org, name.session, &record, ContactField::PushName),
            ));
        }
    }
    Ok(events)
}

#[async_trait]
impl ContactStore for Backend {
    async fn list_contacts(
        &self,
        session: SessionId,
        query: &ContactQuery,
    ) -> Result<Vec<ContactRecord>, StoreError> {
        let search = query
            .search
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let names = search.map(|s| contains(&s.to_lowercase()));
        let digits = search
            .map(|s| s.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|d| !d.is_empty())
            .map(|d| contains(&d));
        sqlx::query(select_contacts!(
            "WHERE c.session_id = $1 AND ($2 IS NULL OR c.jid > $2) "
            "AND ($3 IS NULL OR LOWER(COALESCE(c.saved_name, '')) LIKE $3 ESCAPE '\\' "
            "OR LOWER(COALESCE(c.push_name, '')) LIKE $3 ESCAPE '\\' "
            "OR COALESCE(c.phone, '') LIKE $4 ESCAPE '\\') "
            "ORDER BY c.jid LIMIT $5"
        ))
        .bind(session.to_string())
        .bind(query.after.clone())
        .bind(names)
        .bind(digits)
        .bind(i64::from(query.limit))
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(contact)
        .collect()
    }

    async fn get_contact(
        &self,
        session: SessionId,
        person: &Person,
    ) -> Result<Option<ContactRecord>, StoreError> {
        find(&self.reader, session, person).await
    }

    async fn change_contact(
        &self,
        org: OrgId,
        session: SessionId,
        person: &Person,
        change: ContactChange,
    ) -> Result<Option<Envelope>, StoreError> {
        let mut tx = begin_write(self).await?;
        check_fences(&mut tx, &self.claims([session])).await?;
        let found = find_in(&mut tx, session, person).await?;
        let before = found.clone();
        let Some(mut record) = merged(found, person) else {
            return Ok(None);
        };
        let changed = match change {
            ContactChange::SavedName(name) => {
                record.saved_name = name;
                ContactField::SavedName
            }
            ContactChange::Picture(id) => {
                record.picture_id = id;
                ContactField::Picture
            }
        };
        if before.as_ref() == Some(&record) {
            return Ok(None);
        }
        if let Some(before) = &before {
            rekey_in(&mut tx, session, &before.jid, &record.jid).await?;
        }
        upsert_in(&mut tx, session, &record).await?;
        let what_changed = match changed {
            ContactField::SavedName => {
                before.as_ref().and_then(|b| b.saved_name.as_ref()) != record.saved_name.as_ref()
            }
            ContactField::Picture => {
                before.as_ref().and_then(|b| b.picture_id.as_ref()) != record.picture_id.as_ref()
            }
            ContactField::PushName => false,
        };
        if !what_changed {
            // Only an id was learned: stored, nothing to report.
            tx.commit().await?;
            return Ok(None);
        }
        let mut event = updated(org, session, &record, changed);
        append_events_to(
            &mut tx,
            std::slice::from_mut(&mut event),
            &mut WebhookTargets::default(),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    async fn record_on_whatsapp(
        &self,
        session: SessionId,
        answers: &[(String, bool)],
    ) -> Result<(), StoreError> {
        if answers.is_empty() {
            return Ok(());
        }
        let mut tx = begin_write(self).await?;
        for (phone, on) in answers {
            sqlx::query(
                "UPDATE contacts SET on_whatsapp = $3 WHERE session_id = $1 AND phone = $2",
            )
            .bind(session.to_string())
            .bind(phone)
            .bind(*on)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "contacts_tests.rs"]
mod contacts_tests;
