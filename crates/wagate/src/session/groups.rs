//! Group calls on a live connection (whatsapp-rust's `groups()`): create,
//! the groups the number is in, a group's metadata, participant changes,
//! subject and settings, invites, join and leave. Every person is named by
//! phone number and LID where WhatsApp or the client's LID map knows them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::DateTime;
use serde::Serialize;
use utoipa::ToSchema;
use whatsapp_rust::request::IqError;
use whatsapp_rust::{
    Client, GroupCreateOptions, GroupDescription, GroupError, GroupMetadata, GroupSubject, Jid,
    JoinGroupResult, ParticipantChangeResponse,
};

pub(crate) use crate::domain::{GroupInfo, GroupMember, GroupSettings, JoinRequest};
use crate::domain::{GroupRole, ParticipantOutcome};

/// Why a group call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupFailure {
    /// WhatsApp's 404: no such group (or invite code).
    #[error("WhatsApp has no such group or invite")]
    NotFound,
    /// WhatsApp's 401/403: not an admin, or not in the group.
    #[error("WhatsApp refused: {0}")]
    Forbidden(String),
    /// WhatsApp's 406: the group is full.
    #[error("the group is full")]
    Full,
    /// WhatsApp's 409: something changed meanwhile (a description).
    #[error("the group changed meanwhile: {0}")]
    Conflict(String),
    /// WhatsApp's 400, or a request the client refused to send.
    #[error("WhatsApp refused the request: {0}")]
    Invalid(String),
    /// Anything else: the connection, a timeout, a server error.
    #[error("{0}")]
    Transient(String),
}

impl From<GroupError> for GroupFailure {
    fn from(e: GroupError) -> Self {
        match e {
            GroupError::Iq(IqError::ServerError { code, text, .. }) => match code {
                404 => Self::NotFound,
                401 | 403 => Self::Forbidden(text),
                406 => Self::Full,
                409 => Self::Conflict(text),
                400 => Self::Invalid(text),
                _ => Self::Transient(format!("WhatsApp answered {code} {text}")),
            },
            GroupError::InvalidRequest(reason) => Self::Invalid(reason),
            GroupError::DescriptionConflict => {
                Self::Conflict("the description changed since it was read".into())
            }
            other => Self::Transient(other.to_string()),
        }
    }
}

/// What became of one person named in a create or a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ParticipantResult {
    /// The number as asked.
    pub phone: String,
    pub lid: Option<String>,
    pub result: ParticipantOutcome,
    /// `privacy_restricted`: the invite code WhatsApp offers instead.
    pub invite_code: Option<String>,
    /// WhatsApp's code when it refused this person.
    pub error: Option<String>,
}

/// What a participant change does (the last two: to a request to join).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParticipantAction {
    Add,
    Remove,
    Promote,
    Demote,
    Approve,
    Reject,
}

/// A group's settings to change; what is `None` stays.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    pub subject: Option<String>,
    /// `Some("")` deletes the description.
    pub description: Option<String>,
    pub announce: Option<bool>,
    pub locked: Option<bool>,
    pub ephemeral: Option<u32>,
    pub approval: Option<bool>,
}

/// Joining through an invite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    Joined(String),
    PendingApproval(String),
}

#[async_trait]
pub trait GroupOps: Send + Sync {
    /// Creates a group with `subject` (and `description`), then adds
    /// `phones`, so each gets a result of their own.
    async fn create(
        &self,
        subject: &str,
        description: Option<&str>,
        phones: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), GroupFailure>;

    /// Every group the number is in.
    async fn participating(&self) -> Result<Vec<GroupInfo>, GroupFailure>;

    /// One group, asked of WhatsApp.
    async fn metadata(&self, group: &Jid) -> Result<GroupInfo, GroupFailure>;

    async fn change_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        phones: &[String],
    ) -> Result<Vec<ParticipantResult>, GroupFailure>;

    async fn update(&self, group: &Jid, changes: &GroupChanges) -> Result<(), GroupFailure>;

    /// The invite link (`reset`: a new one; the old stops working).
    async fn invite_link(&self, group: &Jid, reset: bool) -> Result<String, GroupFailure>;

    async fn join(&self, code: &str) -> Result<Joined, GroupFailure>;

    /// The group an invite code leads to, without joining.
    async fn preview(&self, code: &str) -> Result<GroupInfo, GroupFailure>;

    async fn leave(&self, group: &Jid) -> Result<(), GroupFailure>;

    /// Who asked to join (a group whose admins approve who joins).
    async fn requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, GroupFailure>;

    /// Approves (`approve`) or rejects the requests of `phones`; a result
    /// per number.
    async fn answer_requests(
        &self,
        group: &Jid,
        approve: bool,
        phones: &[String],
    ) -> Result<Vec<ParticipantResult>, GroupFailure>;

    /// Sets (`Some(jpeg)`) or removes the group's picture; the new
    /// picture's id (empty on removal).
    async fn set_picture(&self, group: &Jid, jpeg: Option<Vec<u8>>)
    -> Result<String, GroupFailure>;

    /// The phone number of a LID (`<digits>@lid`), from the client's LID
    /// map; `None` while unknown.
    async fn phone_of(&self, _lid: &str) -> Option<String> {
        None
    }

    /// The LID (`<digits>@lid`) of a phone number, from the client's LID
    /// map; `None` while unknown.
    async fn lid_of(&self, _phone: &str) -> Option<String> {
        None
    }
}

/// [`GroupOps`] on whatsapp-rust's client.
pub(crate) struct ClientGroups {
    client: Arc<Client>,
}

impl ClientGroups {
    pub(crate) fn new(client: Arc<Client>) -> Self {
        Self { client }
    }

    /// A member's phone number and LID, from what WhatsApp said and the
    /// client's LID map.
    async fn identify(
        &self,
        jid: &Jid,
        pn: Option<&Jid>,
        lid: Option<&Jid>,
    ) -> (Option<String>, Option<String>) {
        let mut phone = pn.map(|p| p.user.to_string());
        let mut lid_user = lid.map(|l| l.user.to_string());
        if jid.is_lid() {
            lid_user.get_or_insert_with(|| jid.user.to_string());
            if phone.is_none()
                && let Ok(Some(entry)) = self.client.get_lid_pn_entry(jid).await
            {
                phone = Some(entry.phone_number.to_string());
            }
        } else {
            phone.get_or_insert_with(|| jid.user.to_string());
        }
        (phone, lid_user.map(|l| format!("{l}@lid")))
    }

    /// A result per number asked, from WhatsApp's answer about each.
    async fn results(
        &self,
        action: ParticipantAction,
        phones: &[String],
        answers: &[ParticipantChangeResponse],
    ) -> Vec<ParticipantResult> {
        let mut results = Vec::with_capacity(phones.len());
        for phone in phones {
            let answer = answers.iter().find(|a| {
                a.jid.user == *phone || a.phone_number.as_ref().is_some_and(|p| p.user == *phone)
            });
            let lid = match answer {
                Some(a) if a.jid.is_lid() => Some(format!("{}@lid", a.jid.user)),
                _ => self.lid_of(phone).await,
            };
            let error = answer.and_then(|a| a.error.clone());
            results.push(match answer {
                Some(a) => ParticipantResult {
                    phone: phone.clone(),
                    lid,
                    result: outcome(action, error.as_deref()),
                    invite_code: a.add_request.as_ref().map(|r| r.code.clone()),
                    error,
                },
                // WhatsApp said nothing of them: not done.
                None => ParticipantResult {
                    phone: phone.clone(),
                    lid,
                    result: ParticipantOutcome::Refused,
                    invite_code: None,
                    error: None,
                },
            });
        }
        results
    }

    async fn info(&self, meta: GroupMetadata) -> GroupInfo {
        let mut participants = Vec::with_capacity(meta.participants.len());
        for p in &meta.participants {
            let (phone, lid) = self
                .identify(&p.jid, p.phone_number.as_ref(), p.lid.as_ref())
                .await;
            let role = if p.is_super_admin() {
                GroupRole::SuperAdmin
            } else if p.is_admin() {
                GroupRole::Admin
            } else {
                GroupRole::Member
            };
            participants.push(GroupMember { phone, lid, role });
        }
        let owner = match (&meta.creator_pn, &meta.creator) {
            (Some(pn), _) => Some(pn.user.to_string()),
            (None, Some(c)) => self.identify(c, None, None).await.0,
            (None, None) => None,
        };
        GroupInfo {
            id: meta.id.to_string(),
            subject: meta.subject,
            description: meta.description,
            owner,
            created_at: meta
                .creation_time
                .and_then(|t| i64::try_from(t).ok())
                .and_then(|t| DateTime::from_timestamp(t, 0)),
            settings: GroupSettings {
                announce: meta.is_announcement,
                locked: meta.is_locked,
                ephemeral: meta.ephemeral.and_then(|e| e.expiration).unwrap_or(0),
                approval: meta.membership_approval,
            },
            participants,
        }
    }
}

fn outcome(action: ParticipantAction, error: Option<&str>) -> ParticipantOutcome {
    match (error, action) {
        (None, ParticipantAction::Approve) => ParticipantOutcome::Approved,
        (None, ParticipantAction::Reject) => ParticipantOutcome::Rejected,
        (Some("404"), ParticipantAction::Approve | ParticipantAction::Reject) => {
            ParticipantOutcome::NotRequested
        }
        (None, ParticipantAction::Add) => ParticipantOutcome::Added,
        (None, ParticipantAction::Remove) => ParticipantOutcome::Removed,
        (None, ParticipantAction::Promote) => ParticipantOutcome::Promoted,
        (None, ParticipantAction::Demote) => ParticipantOutcome::Demoted,
        (Some("409"), _) => ParticipantOutcome::AlreadyMember,
        (Some("403"), ParticipantAction::Add) => ParticipantOutcome::PrivacyRestricted,
        (Some("404"), ParticipantAction::Add) => ParticipantOutcome::NotOnWhatsapp,
        (Some("404"), _) => ParticipantOutcome::NotMember,
        (Some("406"), _) => ParticipantOutcome::GroupFull,
        (Some(_), _) => ParticipantOutcome::Refused,
    }
}

#[async_trait]
impl GroupOps for ClientGroups {
    async fn create(
        &self,
        subject: &str,
        description: Option<&str>,
        phones: &[String],
    ) -> Result<(GroupInfo, Vec<ParticipantResult>), GroupFailure> {
        let mut options = GroupCreateOptions::new(subject);
        if let Some(d) = description.filter(|d| !d.is_empty()) {
            options.description =
                Some(GroupDescription::new(d).map_err(|e| GroupFailure::Invalid(e.to_string()))?);
        }
        let created = self.client.groups().create_group(options).await?;
        let jid = created.metadata.id.clone();
        let results = if phones.is_empty() {
            Vec::new()
        } else {
            self.change_participants(&jid, ParticipantAction::Add, phones)
                .await?
        };
        let info = match self.client.groups().get_metadata(&jid).await {
            Ok(meta) => self.info(meta).await,
            Err(_) => self.info(created.metadata).await,
        };
        Ok((info, results))
    }

    async fn participating(&self) -> Result<Vec<GroupInfo>, GroupFailure> {
        let all = self.client.groups().get_participating().await?;
        let mut groups = Vec::with_capacity(all.len());
        for meta in all.into_values() {
            groups.push(self.info(meta).await);
        }
        groups.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(groups)
    }

    async fn metadata(&self, group: &Jid) -> Result<GroupInfo, GroupFailure> {
        let meta = self.client.groups().get_metadata(group).await?;
        Ok(self.info(meta).await)
    }

    async fn change_participants(
        &self,
        group: &Jid,
        action: ParticipantAction,
        phones: &[String],
    ) -> Result<Vec<ParticipantResult>, GroupFailure> {
        let jids: Vec<Jid> = phones.iter().map(|p| Jid::pn(p.as_str())).collect();
        let groups = self.client.groups();
        let answers = match action {
            ParticipantAction::Add => groups.add_participants(group.clone(), &jids).await?,
            ParticipantAction::Remove => groups.remove_participants(group.clone(), &jids).await?,
            ParticipantAction::Promote => groups.promote_participants(group.clone(), &jids).await?,
            ParticipantAction::Demote => groups.demote_participants(group.clone(), &jids).await?,
            ParticipantAction::Approve => {
                groups
                    .approve_membership_requests(group.clone(), &jids)
                    .await?
            }
            ParticipantAction::Reject => {
                groups
                    .reject_membership_requests(group.clone(), &jids)
                    .await?
            }
        };
        Ok(self.results(action, phones, &answers).await)
    }

    async fn update(&self, group: &Jid, changes: &GroupChanges) -> Result<(), GroupFailure> {
        let groups = self.client.groups();
        if let Some(subject) = &changes.subject {
            let subject =
                GroupSubject::new(subject).map_err(|e| GroupFailure::Invalid(e.to_string()))?;
            groups.set_subject(group.clone(), subject).await?;
        }
        if let Some(description) = &changes.description {
            let description = if description.is_empty() {
                None
            } else {
                Some(
                    GroupDescription::new(description)
                        .map_err(|e| GroupFailure::Invalid(e.to_string()))?,
                )
            };
            groups
                .set_description(group.clone(), description, Default::default())
                .await?;
        }
        if let Some(on) = changes.announce {
            groups.set_announce(group.clone(), on).await?;
        }
        if let Some(on) = changes.locked {
            groups.set_locked(group.clone(), on).await?;
        }
        if let Some(secs) = changes.ephemeral {
            groups.set_ephemeral(group.clone(), secs).await?;
        }
        if let Some(on) = changes.approval {
            let mode = if on {
                whatsapp_rust::MembershipApprovalMode::On
            } else {
                whatsapp_rust::MembershipApprovalMode::Off
            };
            groups.set_membership_approval(group.clone(), mode).await?;
        }
        Ok(())
    }

    async fn invite_link(&self, group: &Jid, reset: bool) -> Result<String, GroupFailure> {
        Ok(self
            .client
            .groups()
            .get_invite_link(group.clone(), reset)
            .await?)
    }

    async fn join(&self, code: &str) -> Result<Joined, GroupFailure> {
        Ok(
            match self.client.groups().join_with_invite_code(code).await? {
                JoinGroupResult::Joined(jid) => Joined::Joined(jid.to_string()),
                JoinGroupResult::PendingApproval(jid) => Joined::PendingApproval(jid.to_string()),
            },
        )
    }

    async fn preview(&self, code: &str) -> Result<GroupInfo, GroupFailure> {
        let meta = self.client.groups().get_invite_info(code).await?;
        Ok(self.info(meta).await)
    }

    async fn leave(&self, group: &Jid) -> Result<(), GroupFailure> {
        Ok(self.client.groups().leave(group.clone()).await?)
    }

    async fn requests(&self, group: &Jid) -> Result<Vec<JoinRequest>, GroupFailure> {
        let asked = self.client.groups().get_membership_requests(group).await?;
        let mut requests = Vec::with_capacity(asked.len());
        for request in asked {
            let (phone, mut lid) = self.identify(&request.jid, None, None).await;
            if lid.is_none()
                && let Some(phone) = &phone
            {
                lid = self.lid_of(phone).await;
            }
            requests.push(JoinRequest {
                phone,
                lid,
                requested_at: request
                    .request_time
                    .and_then(|t| i64::try_from(t).ok())
                    .and_then(|t| DateTime::from_timestamp(t, 0)),
            });
        }
        Ok(requests)
    }

    async fn answer_requests(
        &self,
        group: &Jid,
        approve: bool,
        phones: &[String],
    ) -> Result<Vec<ParticipantResult>, GroupFailure> {
        let action = if approve {
            ParticipantAction::Approve
        } else {
            ParticipantAction::Reject
        };
        self.change_participants(group, action, phones).await
    }

    async fn set_picture(
        &self,
        group: &Jid,
        jpeg: Option<Vec<u8>>,
    ) -> Result<String, GroupFailure> {
        let groups = self.client.groups();
        let answer = match jpeg.filter(|j| !j.is_empty()) {
            Some(jpeg) => groups.set_profile_picture(group.clone(), jpeg).await?,
            None => groups.remove_profile_picture(group.clone()).await?,
        };
        Ok(answer.id)
    }

    async fn lid_of(&self, phone: &str) -> Option<String> {
        self.client
            .get_lid_pn_entry(&Jid::pn(phone))
            .await
            .ok()
            .flatten()
            .map(|entry| format!("{}@lid", entry.lid))
    }

    async fn phone_of(&self, lid: &str) -> Option<String> {
        let user = lid.strip_suffix("@lid").unwrap_or(lid);
        self.client
            .get_lid_pn_entry(&Jid::lid(user))
            .await
            .ok()
            .flatten()
            .map(|entry| entry.phone_number.to_string())
    }
}
