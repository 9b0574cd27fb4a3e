//! The groups each session's number is in (migration 0021): `groups`, their
//! members in `group_participants`, and the notification actions already
//! applied in `group_notifications`.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::events::append_events_to;
use super::fences::check_fences;
use super::webhooks::WebhookTargets;
use super::{Backend, DbRow, WriteTx, begin_write, parse};
use crate::domain::{GroupInfo, GroupMember, GroupSettings};
use crate::domain::{GroupRole, SessionId};
use crate::events::{Envelope, GroupUpdate};
use crate::store::groups::{GroupEdit, GroupStore, NoticeKey};
use crate::store::{StoreError, from_millis, millis, now};

/// Who a member is to the store: their LID once known, their number before.
fn member_key(member: &GroupMember) -> Option<String> {
    match (&member.lid, &member.phone) {
        (Some(lid), _) => Some(format!("lid:{lid}")),
        (None, Some(phone)) => Some(format!("pn:{phone}")),
        (None, None) => None,
    }
}

async fn group_exists(
    tx: &mut WriteTx,
    session: SessionId,
    group: &str,
) -> Result<bool, StoreError> {
    let found = sqlx::query("SELECT 1 FROM groups WHERE session_id = $1 AND jid = $2")
        .bind(session.to_string())
        .bind(group)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

async fn remove_members(
    tx: &mut WriteTx,
    session: SessionId,
    group: &str,
    members: &[GroupMember],
) -> Result<(), StoreError> {
    for member in members {
        sqlx::query(
            "DELETE FROM group_participants WHERE session_id = $1 AND group_jid = $2 \
             AND (phone = $3 OR lid = $4)",
        )
        .bind(session.to_string())
        .bind(group)
        .bind(member.phone.as_deref())
        .bind(member.lid.as_deref())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_members(
    tx: &mut WriteTx,
    session: SessionId,
    group: &str,
    members: &[GroupMember],
) -> Result<(), StoreError> {
    for member in members {
        let Some(key) = member_key(member) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO group_participants (session_id, group_jid, member, phone, lid, role) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (session_id, group_jid, member) DO UPDATE \
             SET phone = excluded.phone, lid = excluded.lid, role = excluded.role",
        )
        .bind(session.to_string())
        .bind(group)
        .bind(key)
        .bind(member.phone.as_deref())
        .bind(member.lid.as_deref())
        .bind(member.role.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn put_group(
    tx: &mut WriteTx,
    session: SessionId,
    info: &GroupInfo,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO groups (session_id, jid, subject, description, owner, created_at, \
         announce, locked, ephemeral, approval, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
         ON CONFLICT (session_id, jid) DO UPDATE SET subject = excluded.subject, \
         description = excluded.description, owner = excluded.owner, \
         created_at = excluded.created_at, announce = excluded.announce, \
         locked = excluded.locked, ephemeral = excluded.ephemeral, \
         approval = excluded.approval, updated_at = excluded.updated_at",
    )
    .bind(session.to_string())
    .bind(&info.id)
    .bind(&info.subject)
    .bind(info.description.as_deref())
    .bind(info.owner.as_deref())
    .bind(info.created_at.map(millis))
    .bind(info.settings.announce)
    .bind(info.settings.locked)
    .bind(i64::from(info.settings.ephemeral))
    .bind(info.settings.approval)
    .bind(millis(now()))
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM group_participants WHERE session_id = $1 AND group_jid = $2")
        .bind(session.to_string())
        .bind(&info.id)
        .execute(&mut **tx)
        .await?;
    insert_members(tx, session, &info.id, &info.participants).await
}

async fn drop_group(tx: &mut WriteTx, session: SessionId, group: &str) -> Result<(), StoreError> {
    // The members go with it (ON DELETE CASCADE).
    sqlx::query("DELETE FROM groups WHERE session_id = $1 AND jid = $2")
        .bind(session.to_string())
        .bind(group)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets the columns `update` names; the rest stay.
async fn update_group(
    tx: &mut WriteTx,
    session: SessionId,
    group: &str,
    update: &GroupUpdate,
) -> Result<(), StoreError> {
    let session = session.to_string();
    let at = millis(now());
    if let Some(subject) = &update.subject {
        sqlx::query(
            "UPDATE groups SET subject = $3, updated_at = $4 WHERE session_id = $1 AND jid = $2",
        )
        .bind(&session)
        .bind(group)
        .bind(subject)
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    if let Some(description) = &update.description {
        sqlx::query(
            "UPDATE groups SET description = $3, updated_at = $4 \
             WHERE session_id = $1 AND jid = $2",
        )
        .bind(&session)
        .bind(group)
        .bind((!description.is_empty()).then_some(description.as_str()))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    let flags = [
        (
            update.announce,
            "UPDATE groups SET announce = $3, updated_at = $4 WHERE session_id = $1 AND jid = $2",
        ),
        (
            update.locked,
            "UPDATE groups SET locked = $3, updated_at = $4 WHERE session_id = $1 AND jid = $2",
        ),
        (
            update.approval,
            "UPDATE groups SET approval = $3, updated_at = $4 WHERE session_id = $1 AND jid = $2",
        ),
    ];
    for (value, statement) in flags {
        if let Some(value) = value {
            sqlx::query(statement)
                .bind(&session)
                .bind(group)
                .bind(value)
                .bind(at)
                .execute(&mut **tx)
                .await?;
        }
    }
    if let Some(seconds) = update.ephemeral {
        sqlx::query(
            "UPDATE groups SET ephemeral = $3, updated_at = $4 WHERE session_id = $1 AND jid = $2",
        )
        .bind(&session)
        .bind(group)
        .bind(i64::from(seconds))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn apply(tx: &mut WriteTx, session: SessionId, edit: &GroupEdit) -> Result<(), StoreError> {
    match edit {
        GroupEdit::Put(info) => put_group(tx, session, info).await,
        GroupEdit::Drop { group } => drop_group(tx, session, group).await,
        GroupEdit::AddMembers { group, members } => {
            // A group the store does not have yet has nothing to add to;
            // it comes whole with the next connect or metadata read.
            if group_exists(tx, session, group).await? {
                remove_members(tx, session, group, members).await?;
                insert_members(tx, session, group, members).await?;
            }
            Ok(())
        }
        GroupEdit::RemoveMembers { group, members } => {
            remove_members(tx, session, group, members).await
        }
        GroupEdit::SetRole {
            group,
            members,
            role,
        } => {
            for member in members {
                sqlx::query(
                    "UPDATE group_participants SET role = $3 \
                     WHERE session_id = $1 AND group_jid = $2 AND (phone = $4 OR lid = $5)",
                )
                .bind(session.to_string())
                .bind(group)
                .bind(role.as_str())
                .bind(member.phone.as_deref())
                .bind(member.lid.as_deref())
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }
        GroupEdit::Update { group, update } => update_group(tx, session, group, update).await,
    }
}

fn group_row(row: &DbRow) -> Result<GroupInfo, StoreError> {
    let created_at: Option<i64> = row.try_get("created_at")?;
    let ephemeral: i64 = row.try_get("ephemeral")?;
    Ok(GroupInfo {
        id: row.try_get("jid")?,
        subject: row.try_get("subject")?,
        description: row.try_get("description")?,
        owner: row.try_get("owner")?,
        created_at: created_at.map(from_millis).transpose()?,
        settings: GroupSettings {
            announce: row.try_get("announce")?,
            locked: row.try_get("locked")?,
            ephemeral: u32::try_from(ephemeral)
                .map_err(|_| StoreError::Corrupt(format!("groups.ephemeral = {ephemeral}")))?,
            approval: row.try_get("approval")?,
        },
        participants: Vec::new(),
    })
}

fn member_row(row: &DbRow) -> Result<(String, GroupMember), StoreError> {
    let role: &str = row.try_get("role")?;
    Ok((
        row.try_get("group_jid")?,
        GroupMember {
            phone: row.try_get("phone")?,
            lid: row.try_get("lid")?,
            role: parse::<GroupRole>("group_participants.role", role)?,
        },
    ))
}

#[async_trait]
impl GroupStore for Backend {
    async fn replace_groups(
        &self,
        session: SessionId,
        groups: &[GroupInfo],
    ) -> Result<(), StoreError> {
        let mut tx = begin_write(self).await?;
        check_fences(&mut tx, &self.claims([session])).await?;
        let stored: Vec<(String,)> = sqlx::query_as("SELECT jid FROM groups WHERE session_id = $1")
            .bind(session.to_string())
            .fetch_all(&mut *tx)
            .await?;
        let now_in: HashSet<&str> = groups.iter().map(|g| g.id.as_str()).collect();
        for (jid,) in stored {
            if !now_in.contains(jid.as_str()) {
                drop_group(&mut tx, session, &jid).await?;
            }
        }
        for group in groups {
            put_group(&mut tx, session, group).await?;
        }
        tx.commit().await
    }

    async fn apply_group_edits(
        &self,
        session: SessionId,
        key: Option<&NoticeKey>,
        edits: &[GroupEdit],
        events: &mut [Envelope],
    ) -> Result<bool, StoreError> {
        let mut tx = begin_write(self).await?;
        check_fences(&mut tx, &self.claims([session])).await?;
        if let Some(key) = key {
            let fresh = sqlx::query(
                "INSERT INTO group_notifications (session_id, notification_id, action_index, \
                 created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (session_id, notification_id, action_index) DO NOTHING",
            )
            .bind(session.to_string())
            .bind(&key.notification)
            .bind(i64::from(key.action))
            .bind(millis(now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                return Ok(false);
            }
        }
        for edit in edits {
            apply(&mut tx, session, edit).await?;
        }
        if !events.is_empty() {
            append_events_to(&mut tx, events, &mut WebhookTargets::default()).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_groups(
        &self,
        session: SessionId,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<GroupInfo>, StoreError> {
        let after = after.unwrap_or_default();
        let rows = sqlx::query(
            "SELECT jid, subject, description, owner, created_at, announce, locked, ephemeral, \
             approval FROM groups WHERE session_id = $1 AND jid > $2 ORDER BY jid LIMIT $3",
        )
        .bind(session.to_string())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        let mut groups = rows.iter().map(group_row).collect::<Result<Vec<_>, _>>()?;
        let Some(last) = groups.last().map(|g| g.id.clone()) else {
            return Ok(groups);
        };
        let members = sqlx::query(
            "SELECT group_jid, phone, lid, role FROM group_participants \
             WHERE session_id = $1 AND group_jid > $2 AND group_jid <= $3 \
             ORDER BY group_jid, member",
        )
        .bind(session.to_string())
        .bind(after)
        .bind(&last)
        .fetch_all(&self.reader)
        .await?;
        let mut by_group: BTreeMap<String, Vec<GroupMember>> = BTreeMap::new();
        for row in &members {
            let (group, member) = member_row(row)?;
            by_group.entry(group).or_default().push(member);
        }
        for group in &mut groups {
            group.participants = by_group.remove(&group.id).unwrap_or_default();
        }
        Ok(groups)
    }

    async fn get_group(
        &self,
        session: SessionId,
        group: &str,
    ) -> Result<Option<GroupInfo>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT jid, subject, description, owner, created_at, announce, locked, ephemeral, \
             approval FROM groups WHERE session_id = $1 AND jid = $2",
        )
        .bind(session.to_string())
        .bind(group)
        .fetch_optional(&self.reader)
        .await?
        else {
            return Ok(None);
        };
        let mut info = group_row(&row)?;
        let members = sqlx::query(
            "SELECT group_jid, phone, lid, role FROM group_participants \
             WHERE session_id = $1 AND group_jid = $2 ORDER BY member",
        )
        .bind(session.to_string())
        .bind(group)
        .fetch_all(&self.reader)
        .await?;
        info.participants = members
            .iter()
            .map(|row| member_row(row).map(|(_, m)| m))
            .collect::<Result<_, _>>()?;
        Ok(Some(info))
    }

    async fn prune_group_notices(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM group_notifications WHERE created_at < $1")
            .bind(millis(before))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected())
    }
}
