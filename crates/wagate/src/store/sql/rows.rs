//! Row mapping shared by the aggregates (and by the backend's own
//! modules, e.g. SQLite's key store): text columns parsed into domain
//! types, a corrupt value reported as [`StoreError::Corrupt`].

use std::str::FromStr;

use sqlx::Row;

use super::DbRow;
use crate::domain::{Label, PerMinute, SessionBehaviour, SessionPace, StatusReason};
use crate::store::{Organization, SessionRecord, StoreError, from_millis};

pub(in crate::store) fn parse<T: FromStr>(column: &str, value: &str) -> Result<T, StoreError> {
    value
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("{column} = {value:?}")))
}

pub(in crate::store) fn organization(row: &DbRow) -> Result<Organization, StoreError> {
    Ok(Organization {
        id: parse("organizations.id", row.try_get("id")?)?,
        name: row.try_get("name")?,
        created_at: from_millis(row.try_get("created_at")?)?,
    })
}

pub(in crate::store) fn session(row: &DbRow) -> Result<SessionRecord, StoreError> {
    let label: Option<String> = row.try_get("label")?;
    let reason: Option<&str> = row.try_get("status_reason")?;
    Ok(SessionRecord {
        id: parse("sessions.id", row.try_get("id")?)?,
        org_id: parse("sessions.org_id", row.try_get("org_id")?)?,
        label: label
            .map(|label| {
                Label::try_from(label)
                    .map_err(|e| StoreError::Corrupt(format!("sessions.label: {e}")))
            })
            .transpose()?,
        status: parse("sessions.status", row.try_get("status")?)?,
        status_reason: reason
            .map(|reason| parse::<StatusReason>("sessions.status_reason", reason))
            .transpose()?,
        phone: row.try_get("phone")?,
        push_name: row.try_get("push_name")?,
        pace: SessionPace {
            per_minute: pace(row, "send_per_minute")?,
            new_chats_per_minute: pace(row, "send_new_chats_per_minute")?,
        },
        behaviour: SessionBehaviour {
            presence: parse("sessions.presence", row.try_get("presence")?)?,
            reject_calls: row.try_get("reject_calls")?,
            reject_calls_message: row.try_get("reject_calls_message")?,
            history: parse("sessions.history", row.try_get("history")?)?,
        },
        created_at: from_millis(row.try_get("created_at")?)?,
        updated_at: from_millis(row.try_get("updated_at")?)?,
    })
}

fn pace(row: &DbRow, column: &'static str) -> Result<Option<PerMinute>, StoreError> {
    let value: Option<i64> = row.try_get(column)?;
    value
        .map(|v| {
            u32::try_from(v)
                .ok()
                .and_then(|v| PerMinute::try_from(v).ok())
                .ok_or_else(|| StoreError::Corrupt(format!("sessions.{column}: {v}")))
        })
        .transpose()
}

pub(in crate::store) fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}
