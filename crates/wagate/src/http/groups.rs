//! Groups: create, list, a group's metadata, participant changes with a
//! result per person, subject, description and settings, invites, join
//! and leave. Calls go to WhatsApp on a `working` session (409 otherwise);
//! bad input is a 422 before anything reaches it; WhatsApp's refusals are
//! 404 (no such group, or the number is not in it), 403 (not an admin) and
//! 409 (the group is full, or changed meanwhile).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use whatsapp_rust::Jid;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, cut_page, page_limit};
use crate::app::AppState;
use crate::domain::group::{DESCRIPTION_MAX_CHARS, PARTICIPANTS_MAX, SUBJECT_MAX_CHARS};
use crate::domain::{OrgId, Phone, SessionId};
use crate::messages::Recipient;
use crate::session::groups::{
    GroupChanges, GroupFailure, GroupInfo, GroupOps, Joined, ParticipantAction, ParticipantResult,
};
use crate::store::GroupEdit;

/// How long a call waits for WhatsApp before answering 502.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateGroupRequest {
    /// 1 to 100 characters, not all blank.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub subject: String,
    /// Phone numbers in international format, digits only; up to 1,024.
    #[schema(max_items = 1024, value_type = Vec<String>)]
    #[serde(default)]
    pub participants: Vec<String>,
    /// Up to 2,048 characters.
    #[schema(max_length = 2048)]
    pub description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedGroup {
    pub group: GroupInfo,
    /// One per number asked, in the order asked.
    pub participants: Vec<ParticipantResult>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct GroupList {
    /// By group id.
    pub data: Vec<GroupInfo>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct GetParams {
    /// Ask WhatsApp now (the session must be `working`) and store its
    /// answer; otherwise the group is read from the gateway's store.
    pub refresh: Option<bool>,
}

/// Exactly one of the four lists.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ParticipantsRequest {
    #[schema(max_items = 1024, value_type = Option<Vec<String>>)]
    pub add: Option<Vec<String>>,
    #[schema(max_items = 1024, value_type = Option<Vec<String>>)]
    pub remove: Option<Vec<String>>,
    #[schema(max_items = 1024, value_type = Option<Vec<String>>)]
    pub promote: Option<Vec<String>>,
    #[schema(max_items = 1024, value_type = Option<Vec<String>>)]
    pub demote: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParticipantsResponse {
    /// One per number asked, in the order asked.
    pub participants: Vec<ParticipantResult>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateGroupRequest {
    /// 1 to 100 characters, not all blank.
    #[schema(min_length = 1, max_length = 100, pattern = r"\S")]
    pub subject: Option<String>,
    /// An empty string deletes it.
    #[schema(max_length = 2048)]
    pub description: Option<String>,
    /// Only admins send messages.
    pub announce: Option<bool>,
    /// Only admins edit the group's info.
    pub locked: Option<bool>,
    /// Disappearing messages after this many seconds; 0 turns them off.
    #[schema(maximum = 31536000)]
    pub ephemeral: Option<u32>,
    /// Admins approve who joins by link.
    pub approval: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Invite {
    /// `https://chat.whatsapp.com/<code>`.
    pub link: String,
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct JoinRequest {
    // The patterns of both are written into the document by
    // `http::openapi` (utoipa's `pattern` takes only a literal).
    /// The invite code: letters, digits, `-` and `_`.
    pub code: Option<String>,
    /// The whole link, `https://chat.whatsapp.com/<code>`.
    pub link: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JoinResponse {
    /// The group's JID.
    pub group: String,
    /// `false`: an admin must approve the request first.
    pub joined: bool,
}

pub(super) fn invalid(
    code: &'static str,
    field: &'static str,
    message: impl Into<String>,
) -> ApiError {
    ApiError::Validation {
        code,
        field,
        message: message.into(),
    }
}

/// What [`parse_group`] takes, as the OpenAPI document's pattern for every
/// `{group}` (`http::openapi` writes it in; a test holds the two equal).
pub(crate) const GROUP_PATTERN: &str = r"^([0-9]{1,40}|[0-9]{1,20}-[0-9]{1,19})(@g\.us)?$";
/// What [`parse_code`] takes: an invite code, in a path or a body.
pub(crate) const INVITE_CODE_PATTERN: &str = "^[A-Za-z0-9_-]{1,200}$";
/// What [`parse_link`] takes.
pub(crate) const INVITE_LINK_PATTERN: &str =
    r"^([Hh][Tt][Tt][Pp][Ss]?://)?chat\.whatsapp\.com/[A-Za-z0-9_-]{1,200}/?$";
const INVITE_CODE_MAX: usize = 200;
/// Where an invite link leads, after its optional scheme.
const INVITE_HOST: &str = "chat.whatsapp.com/";

/// A group named in the path: its JID, or the digits before `@g.us`.
pub(super) fn parse_group(group: &str) -> Result<Jid, ApiError> {
    let jid = if group.contains('@') {
        group.to_owned()
    } else {
        format!("{group}@g.us")
    };
    jid.parse::<Recipient>()
        .ok()
        .filter(Recipient::is_group)
        .map(|r| r.jid().clone())
        .ok_or_else(|| {
            invalid(
                "invalid_group",
                "group",
                "group must be a group's JID (<digits>@g.us)",
            )
        })
}

fn parse_subject(subject: &str) -> Result<(), ApiError> {
    let chars = subject.chars().count();
    if subject.trim().is_empty() || chars > SUBJECT_MAX_CHARS {
        return Err(invalid(
            "invalid_subject",
            "subject",
            format!("subject must be 1 to {SUBJECT_MAX_CHARS} characters, not all blank"),
        ));
    }
    Ok(())
}

fn parse_description(description: &str) -> Result<(), ApiError> {
    if description.chars().count() > DESCRIPTION_MAX_CHARS {
        return Err(invalid(
            "invalid_description",
            "description",
            format!("description must be at most {DESCRIPTION_MAX_CHARS} characters"),
        ));
    }
    Ok(())
}

/// Distinct, valid numbers, in the order given.
pub(super) fn parse_phones(
    phones: Vec<String>,
    field: &'static str,
    allow_empty: bool,
) -> Result<Vec<String>, ApiError> {
    if (!allow_empty && phones.is_empty()) || phones.len() > PARTICIPANTS_MAX {
        return Err(invalid(
            "invalid_participants",
            field,
            format!("{field} must hold 1 to {PARTICIPANTS_MAX} numbers"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(phones.len());
    for phone in phones {
        let phone =
            Phone::try_from(phone).map_err(|e| invalid("invalid_phone", field, e.to_string()))?;
        if !out.iter().any(|p| p == phone.as_str()) {
            out.push(phone.as_str().to_owned());
        }
    }
    Ok(out)
}

pub(super) fn failure(error: GroupFailure) -> ApiError {
    match error {
        GroupFailure::NotFound => ApiError::UnknownReference {
            code: "group_not_found",
            field: "group",
            message: "WhatsApp has no such group, or the number is not in it".into(),
        },
        GroupFailure::Forbidden(reason) => ApiError::Forbidden {
            code: "not_group_admin",
            message: format!(
                "WhatsApp refused: the number is not an admin of this group, or not in it ({reason})"
            ),
        },
        GroupFailure::Full => ApiError::Conflict {
            code: "group_full",
            message: "the group is full".into(),
            status: None,
        },
        GroupFailure::Conflict(reason) => ApiError::Conflict {
            code: "group_changed",
            message: reason,
            status: None,
        },
        GroupFailure::Invalid(reason) => invalid("whatsapp_refused", "body", reason),
        GroupFailure::Transient(reason) => ApiError::Upstream(reason),
    }
}

/// Runs one group call on the live connection, bounded in time.
pub(super) async fn on_whatsapp<T>(
    call: impl Future<Output = Result<T, GroupFailure>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => result.map_err(failure),
        Err(_) => Err(ApiError::Upstream("WhatsApp did not answer in time".into())),
    }
}

pub(super) async fn groups_of(
    state: &AppState,
    org: OrgId,
    session: SessionId,
) -> Result<Arc<dyn GroupOps>, ApiError> {
    let messenger = state.sessions.live_messenger(org, session).await?;
    messenger
        .groups()
        .ok_or_else(|| ApiError::Upstream("this connection has no group calls".into()))
}

/// Create a group.
///
/// Creates the group, then adds each number: the answer says, per number,
/// whether they were `added` or why not (`privacy_restricted` comes with
/// the `invite_code` WhatsApp offers instead, `not_on_whatsapp`,
/// `already_member`, `group_full`, ...).
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups",
    tag = "groups",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = CreateGroupRequest,
    responses(
        (status = 201, body = CreatedGroup),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Empty or over-long subject, over-long description, over 1,024 or malformed numbers", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Json(body): Json<CreateGroupRequest>,
) -> Result<(StatusCode, Json<CreatedGroup>), ApiError> {
    parse_subject(&body.subject)?;
    if let Some(d) = &body.description {
        parse_description(d)?;
    }
    let phones = parse_phones(body.participants, "participants", true)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    let (group, participants) =
        on_whatsapp(groups.create(&body.subject, body.description.as_deref(), &phones)).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedGroup {
            group,
            participants,
        }),
    ))
}

/// List the groups the number is in.
///
/// From the gateway's store: read from WhatsApp on every connect and kept
/// current by its notifications (`group.*` events), so a session that is
/// not `working` lists the groups it last knew.
#[utoipa::path(
    get,
    path = "/sessions/{id}/groups",
    tag = "groups",
    params(("id" = String, Path, format = Uuid, description = "Session id"), ListParams),
    responses(
        (status = 200, body = GroupList),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Query(params): Query<ListParams>,
) -> Result<Json<GroupList>, ApiError> {
    let limit = page_limit(params.limit)?;
    state.sessions.get(auth.org_id(), session).await?;
    let mut data = state
        .store
        .groups()
        .list_groups(session, params.cursor.as_deref(), limit + 1)
        .await?;
    let next_cursor = cut_page(&mut data, limit, |g| g.id.clone());
    Ok(Json(GroupList { data, next_cursor }))
}

/// A group: subject, description, owner, creation time, settings and
/// participants (each with `phone`, `lid` and role).
///
/// From the gateway's store; `?refresh=true` asks WhatsApp (the session
/// must be `working`) and stores its answer.
#[utoipa::path(
    get,
    path = "/sessions/{id}/groups/{group}",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
        GetParams,
    ),
    responses(
        (status = 200, body = GroupInfo),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, no such group, or the number is not in it", body = ErrorBody),
        (status = 409, description = "`refresh=true` and the session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "`refresh=true` and WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    Query(params): Query<GetParams>,
) -> Result<Json<GroupInfo>, ApiError> {
    let group = parse_group(&group)?;
    if params.refresh != Some(true) {
        state.sessions.get(auth.org_id(), session).await?;
        return match state
            .store
            .groups()
            .get_group(session, &group.to_string())
            .await?
        {
            Some(info) => Ok(Json(info)),
            None => Err(failure(GroupFailure::NotFound)),
        };
    }
    let groups = groups_of(&state, auth.org_id(), session).await?;
    // A group the number is not in is, to it, no group at all.
    let info = match on_whatsapp(groups.metadata(&group)).await {
        Err(ApiError::Forbidden { .. }) => Err(failure(GroupFailure::NotFound)),
        other => other,
    }?;
    state
        .store
        .groups()
        .apply_group_edits(
            session,
            None,
            &[GroupEdit::Put(Box::new(info.clone()))],
            &mut [],
        )
        .await?;
    Ok(Json(info))
}

/// Add, remove, promote or demote participants.
///
/// Exactly one of `add`, `remove`, `promote`, `demote`; the answer has a
/// result per number.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/{group}/participants",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    request_body = ParticipantsRequest,
    responses(
        (status = 200, body = ParticipantsResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin of the group (`not_group_admin`)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`, or the group is full (`group_full`)", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Not exactly one list, or over 1,024 or malformed numbers", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn participants(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    Json(body): Json<ParticipantsRequest>,
) -> Result<Json<ParticipantsResponse>, ApiError> {
    let group = parse_group(&group)?;
    let lists = [
        (ParticipantAction::Add, "add", body.add),
        (ParticipantAction::Remove, "remove", body.remove),
        (ParticipantAction::Promote, "promote", body.promote),
        (ParticipantAction::Demote, "demote", body.demote),
    ];
    let mut given = lists
        .into_iter()
        .filter_map(|(a, f, l)| l.map(|l| (a, f, l)));
    let (Some((action, field, phones)), None) = (given.next(), given.next()) else {
        return Err(invalid(
            "invalid_participants",
            "body",
            "give exactly one of add, remove, promote, demote",
        ));
    };
    let phones = parse_phones(phones, field, false)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    let participants = on_whatsapp(groups.change_participants(&group, action, &phones)).await?;
    Ok(Json(ParticipantsResponse { participants }))
}

/// Change a group's subject, description or settings.
#[utoipa::path(
    patch,
    path = "/sessions/{id}/groups/{group}",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    request_body = UpdateGroupRequest,
    responses(
        (status = 200, body = GroupInfo),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin (or, for the subject and description of a locked group, not allowed)", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`, or the description changed meanwhile", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Empty or over-long subject, over-long description", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn update(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
    Json(body): Json<UpdateGroupRequest>,
) -> Result<Json<GroupInfo>, ApiError> {
    let group = parse_group(&group)?;
    if let Some(s) = &body.subject {
        parse_subject(s)?;
    }
    if let Some(d) = &body.description {
        parse_description(d)?;
    }
    if body.ephemeral.is_some_and(|e| e > 31_536_000) {
        return Err(invalid(
            "invalid_ephemeral",
            "ephemeral",
            "ephemeral must be at most 31536000 seconds (a year)",
        ));
    }
    let changes = GroupChanges {
        subject: body.subject,
        description: body.description,
        announce: body.announce,
        locked: body.locked,
        ephemeral: body.ephemeral,
        approval: body.approval,
    };
    let groups = groups_of(&state, auth.org_id(), session).await?;
    on_whatsapp(groups.update(&group, &changes)).await?;
    Ok(Json(on_whatsapp(groups.metadata(&group)).await?))
}

fn invite_of(link: String) -> Invite {
    let code = link.rsplit('/').next().unwrap_or_default().to_owned();
    Invite { link, code }
}

/// The group's invite link (admins only).
#[utoipa::path(
    get,
    path = "/sessions/{id}/groups/{group}/invite",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    responses(
        (status = 200, body = Invite),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn invite(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
) -> Result<Json<Invite>, ApiError> {
    let group = parse_group(&group)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    Ok(Json(invite_of(
        on_whatsapp(groups.invite_link(&group, false)).await?,
    )))
}

/// Make a new invite link; the old one stops working.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/{group}/invite/reset",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    responses(
        (status = 200, body = Invite),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not an admin", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reset_invite(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
) -> Result<Json<Invite>, ApiError> {
    let group = parse_group(&group)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    Ok(Json(invite_of(
        on_whatsapp(groups.invite_link(&group, true)).await?,
    )))
}

/// An invite code: 1 to 200 letters, digits, `-` and `_`.
fn parse_code(code: &str) -> Result<String, ApiError> {
    let well_formed = (1..=INVITE_CODE_MAX).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err(invalid(
            "invalid_invite",
            "code",
            format!("code must be 1 to {INVITE_CODE_MAX} letters, digits, '-' or '_'"),
        ));
    }
    Ok(code.to_owned())
}

/// The code of an invite link: `[http[s]://]chat.whatsapp.com/<code>[/]`.
fn parse_link(link: &str) -> Result<String, ApiError> {
    let refused = || {
        invalid(
            "invalid_invite",
            "link",
            "link must be https://chat.whatsapp.com/<code>",
        )
    };
    let rest = ["https://", "http://"]
        .iter()
        .find_map(|scheme| {
            link.get(..scheme.len())
                .filter(|start| start.eq_ignore_ascii_case(scheme))
                .and_then(|_| link.get(scheme.len()..))
        })
        .unwrap_or(link);
    let code = rest.strip_prefix(INVITE_HOST).ok_or_else(refused)?;
    let code = code.strip_suffix('/').unwrap_or(code);
    parse_code(code).map_err(|_| refused())
}

/// Join a group through an invite code or link.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/join",
    tag = "groups",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = JoinRequest,
    responses(
        (status = 200, body = JoinResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or no group has this invite", body = ErrorBody),
        (status = 409, description = "The session is not `working`, or the group is full", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Not exactly one of `code` and `link`, or a malformed one", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn join(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Json(body): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, ApiError> {
    let code = match (body.code, body.link) {
        (Some(code), None) => parse_code(&code)?,
        (None, Some(link)) => parse_link(&link)?,
        _ => {
            return Err(invalid(
                "invalid_invite",
                "code",
                "give exactly one of code and link",
            ));
        }
    };
    let groups = groups_of(&state, auth.org_id(), session).await?;
    Ok(Json(match on_whatsapp(groups.join(&code)).await? {
        Joined::Joined(group) => JoinResponse {
            group,
            joined: true,
        },
        Joined::PendingApproval(group) => JoinResponse {
            group,
            joined: false,
        },
    }))
}

/// The group an invite leads to, without joining.
#[utoipa::path(
    get,
    path = "/sessions/{id}/groups/invite/{code}",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("code" = String, Path, description = "The invite code"),
    ),
    responses(
        (status = 200, body = GroupInfo),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or no group has this invite", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn preview(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, code)): Path<(SessionId, String)>,
) -> Result<Json<GroupInfo>, ApiError> {
    let code = parse_code(&code)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    Ok(Json(on_whatsapp(groups.preview(&code)).await?))
}

/// Leave a group.
#[utoipa::path(
    post,
    path = "/sessions/{id}/groups/{group}/leave",
    tag = "groups",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("group" = String, Path, description = "The group's JID (`<digits>@g.us`) or its digits"),
    ),
    responses(
        (status = 204, description = "Left"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The number is not in the group", body = ErrorBody),
        (status = 404, description = "No such session, or no such group", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn leave(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, group)): Path<(SessionId, String)>,
) -> Result<StatusCode, ApiError> {
    let group = parse_group(&group)?;
    let groups = groups_of(&state, auth.org_id(), session).await?;
    on_whatsapp(groups.leave(&group)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Holds a pattern the document gives to what `parse` takes, on
    /// `samples`.
    pub(crate) fn agree(pattern: &str, parse: impl Fn(&str) -> bool, samples: &[&str]) {
        let regex = regex::Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        for sample in samples {
            assert_eq!(
                regex.is_match(sample),
                parse(sample),
                "{pattern} on {sample:?}"
            );
        }
    }

    #[test]
    fn the_group_pattern_is_the_parser() {
        agree(
            GROUP_PATTERN,
            |g| parse_group(g).is_ok(),
            &[
                "120363025246125486@g.us",
                "120363025246125486",
                "15551234567-1600000000@g.us",
                "15551234567-1600000000",
                "0",
                "",
                "@g.us",
                "123@s.whatsapp.net",
                "123@lid",
                "12a@g.us",
                "1-@g.us",
                "-1@g.us",
                "1234567890123456789012345678901234567890@g.us",
                "12345678901234567890123456789012345678901@g.us",
                "µ",
            ],
        );
    }

    #[test]
    fn the_invite_patterns_are_the_parsers() {
        let long = "a".repeat(201);
        let long_link = format!("https://chat.whatsapp.com/{long}");
        agree(
            INVITE_CODE_PATTERN,
            |c| parse_code(c).is_ok(),
            &["AbC_12-x", "", "a b", "a/b", "ä", &long],
        );
        agree(
            INVITE_LINK_PATTERN,
            |l| parse_link(l).is_ok(),
            &[
                "https://chat.whatsapp.com/AbC12",
                "HTTPS://chat.whatsapp.com/AbC12/",
                "http://chat.whatsapp.com/AbC12",
                "chat.whatsapp.com/AbC12",
                "https://chat.whatsapp.com/",
                "https://chat.whatsapp.com/a/b",
                "https://example.com/AbC12",
                "ftp://chat.whatsapp.com/AbC12",
                "AbC12",
                &long_link,
            ],
        );
        assert_eq!(
            parse_link("https://chat.whatsapp.com/AbC12/")
                .ok()
                .as_deref(),
            Some("AbC12")
        );
    }
}
