//! The session's contacts: the stored list (names, both ids), one contact
//! with what WhatsApp says of them now (about text, profile picture), the
//! picture itself, and blocking.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::chats::CALL_TIMEOUT;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, cut_page, page_limit};
use super::presence::parse_contact;
use crate::app::AppState;
use crate::domain::SessionId;
use crate::session::manager::ManagerError;
use crate::session::manager::contacts::Picture;
use crate::session::messenger::SendFailure;
use crate::store::contacts::{ContactQuery, ContactRecord, Person};

/// The longest `q` a search takes.
const MAX_SEARCH_CHARS: usize = 100;
/// The longest cursor: a contact's key (`<digits>@s.whatsapp.net`).
const MAX_CURSOR_CHARS: usize = 64;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Contact {
    /// The contact's key: `<phone>@s.whatsapp.net`, or `<lid>@lid` while
    /// the number is not known. Usable as `{contact}`.
    pub id: String,
    /// The phone number, digits only; `null` while not known.
    pub phone: Option<String>,
    /// The LID's digits; `null` while not known.
    pub lid: Option<String>,
    /// The name the account's user saved for them (their phone's address
    /// book, through WhatsApp's app state).
    pub saved_name: Option<String>,
    /// The name they gave themselves (from their messages, or history).
    pub push_name: Option<String>,
    /// Whether the number is on WhatsApp; `null` while not known (someone
    /// who wrote is; a contact check tells the rest).
    pub on_whatsapp: Option<bool>,
}

impl From<ContactRecord> for Contact {
    fn from(record: ContactRecord) -> Self {
        Self {
            id: record.jid,
            phone: record.phone,
            lid: record.lid,
            saved_name: record.saved_name,
            push_name: record.push_name,
            on_whatsapp: record.on_whatsapp,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactList {
    /// By `id`.
    pub data: Vec<Contact>,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ContactListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_cursor` from the previous page.
    #[param(max_length = 64)]
    pub cursor: Option<String>,
    /// Only contacts whose saved name or push name contains this
    /// (case-insensitively), or whose number contains its digits.
    #[param(max_length = 100)]
    pub q: Option<String>,
}

/// A profile picture as WhatsApp names it now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactPicture {
    /// Changes with the picture.
    pub id: String,
    /// WhatsApp's address for it (short-lived); the gateway serves it at
    /// `GET /sessions/{id}/contacts/{contact}/picture`.
    pub url: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ContactDetails {
    pub id: String,
    pub phone: Option<String>,
    pub lid: Option<String>,
    pub saved_name: Option<String>,
    pub push_name: Option<String>,
    pub on_whatsapp: Option<bool>,
    /// Their about text; `null` when they have none or do not share it.
    pub about: Option<String>,
    /// `null` when they have none or do not show it to this number.
    pub picture: Option<ContactPicture>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BlockResult {
    /// The contact as WhatsApp was told (a JID).
    pub contact: String,
    pub blocked: bool,
}

fn not_found() -> ApiError {
    ApiError::UnknownReference {
        code: "contact_not_found",
        field: "contact",
        message: "the session has no such contact".into(),
    }
}

/// A call that waits on WhatsApp failed, or took too long.
enum LiveError {
    Manager(ManagerError),
    TimedOut,
}

impl From<LiveError> for ApiError {
    fn from(error: LiveError) -> Self {
        match error {
            LiveError::Manager(error) => error.into(),
            LiveError::TimedOut => ApiError::Upstream("WhatsApp did not answer in time".into()),
        }
    }
}

/// Runs a call that waits on WhatsApp, bounded in time.
async fn live<T>(
    call: impl std::future::Future<Output = Result<T, ManagerError>>,
) -> Result<T, LiveError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(done) => done.map_err(LiveError::Manager),
        Err(_) => Err(LiveError::TimedOut),
    }
}

/// The stored contact `{contact}` names (a number or a person's JID).
async fn stored(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    contact: &str,
) -> Result<ContactRecord, ApiError> {
    let jid = parse_contact(contact)?.jid().to_string();
    let person = Person::from_jid(&jid).ok_or_else(not_found)?;
    state
        .sessions
        .contact(auth.org_id(), session, person)
        .await?
        .ok_or_else(not_found)
}

/// List a session's contacts.
///
/// Everyone the session's account knows: who wrote to it, who history
/// named, whom the user saved in their phone's address book. Each with
/// both ids where known, by key.
#[utoipa::path(
    get,
    path = "/sessions/{id}/contacts",
    tag = "contacts",
    params(("id" = String, Path, format = Uuid, description = "Session id"), ContactListParams),
    responses(
        (status = 200, body = ContactList),
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
    Query(params): Query<ContactListParams>,
) -> Result<Json<ContactList>, ApiError> {
    let limit = page_limit(params.limit)?;
    if params
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(ApiError::Validation {
            code: "invalid_query",
            field: "q",
            message: format!("q is at most {MAX_SEARCH_CHARS} characters"),
        });
    }
    if params
        .cursor
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_CURSOR_CHARS)
    {
        return Err(ApiError::Validation {
            code: "invalid_cursor",
            field: "cursor",
            message: "cursor must be a next_cursor this endpoint returned".into(),
        });
    }
    let mut records = state
        .sessions
        .contacts(
            auth.org_id(),
            session,
            &ContactQuery {
                search: params.q,
                after: params.cursor,
                limit: limit + 1,
            },
        )
        .await?;
    let next_cursor = cut_page(&mut records, limit, |last| last.jid.clone());
    Ok(Json(ContactList {
        data: records.into_iter().map(Contact::from).collect(),
        next_cursor,
    }))
}

/// One contact, with their about text and profile picture.
///
/// The stored contact, and what WhatsApp says of them now: the session
/// must be `working`.
#[utoipa::path(
    get,
    path = "/sessions/{id}/contacts/{contact}",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID (by number or LID)"),
    ),
    responses(
        (status = 200, body = ContactDetails),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session has no such contact (`contact_not_found`)", body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, contact)): Path<(SessionId, String)>,
) -> Result<Json<ContactDetails>, ApiError> {
    let record = stored(&state, &auth, session, &contact).await?;
    let profile = live(
        state
            .sessions
            .contact_profile(auth.org_id(), session, &record),
    )
    .await?;
    Ok(Json(ContactDetails {
        id: record.jid,
        phone: record.phone,
        lid: record.lid,
        saved_name: record.saved_name,
        push_name: record.push_name,
        on_whatsapp: record.on_whatsapp,
        about: profile.about,
        picture: profile.picture.map(|p| ContactPicture {
            id: p.id,
            url: p.url,
        }),
    }))
}

/// A contact's profile picture.
///
/// The image as WhatsApp serves it (JPEG), fetched through the
/// session and kept by the gateway while the picture stays the same. When
/// the session is not `working`, the last one fetched is served, if any.
#[utoipa::path(
    get,
    path = "/sessions/{id}/contacts/{contact}/picture",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID (by number or LID)"),
    ),
    responses(
        (status = 200, description = "The image, with its `Content-Type`", content_type = "image/jpeg", body = Vec<u8>),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session or contact (`contact_not_found`), or the contact has no picture or does not show it (`picture_not_found`)", body = ErrorBody),
        (status = 409, description = "The session is not `working`, and no picture was fetched before", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn picture(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, contact)): Path<(SessionId, String)>,
) -> Result<Response, ApiError> {
    let record = stored(&state, &auth, session, &contact).await?;
    let picture = live(
        state
            .sessions
            .contact_picture(auth.org_id(), session, &record),
    )
    .await?;
    match picture {
        Picture::Image(bytes) => Ok((
            [
                // WhatsApp's profile pictures are JPEG.
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            bytes,
        )
            .into_response()),
        Picture::None => Err(ApiError::UnknownReference {
            code: "picture_not_found",
            field: "contact",
            message: "the contact has no profile picture, or does not show it".into(),
        }),
    }
}

async fn blocking(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    contact: &str,
    block: bool,
) -> Result<Json<BlockResult>, ApiError> {
    let recipient = parse_contact(contact)?;
    let done = live(
        state
            .sessions
            .block(auth.org_id(), session, recipient.jid(), block),
    )
    .await;
    match done {
        Ok(()) => {}
        Err(LiveError::Manager(ManagerError::Upstream(SendFailure::Invalid(reason)))) => {
            return Err(ApiError::Validation {
                code: "contact_unresolved",
                field: "contact",
                message: format!("WhatsApp cannot take this block: {reason}"),
            });
        }
        Err(error) => return Err(error.into()),
    }
    Ok(Json(BlockResult {
        contact: recipient.jid().to_string(),
        blocked: block,
    }))
}

/// Block a contact.
///
/// They can no longer write to or call the number. WhatsApp takes a block
/// only when the session knows both the contact's number and LID (`lids`
/// resolves it; a contact check or a message from them teaches it):
/// `contact_unresolved` otherwise.
#[utoipa::path(
    post,
    path = "/sessions/{id}/contacts/{contact}/block",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID (by number or LID)"),
    ),
    responses(
        (status = 200, description = "WhatsApp took it", body = BlockResult),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, description = "Not a person, or `contact_unresolved`: the session does not know both of their ids", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn block(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, contact)): Path<(SessionId, String)>,
) -> Result<Json<BlockResult>, ApiError> {
    blocking(&state, &auth, session, &contact, true).await
}

/// Unblock a contact.
#[utoipa::path(
    post,
    path = "/sessions/{id}/contacts/{contact}/unblock",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID (by number or LID)"),
    ),
    responses(
        (status = 200, description = "WhatsApp took it", body = BlockResult),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 422, description = "Not a person, or `contact_unresolved`: the session does not know both of their ids", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn unblock(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, contact)): Path<(SessionId, String)>,
) -> Result<Json<BlockResult>, ApiError> {
    blocking(&state, &auth, session, &contact, false).await
}
