//! Calls that go straight to WhatsApp on a `working` session, not through
//! the outbox: read receipts, typing, and which numbers have WhatsApp.
//! Nothing is stored, so there is nothing to retry later: a session that
//! is not `working` is a 409, WhatsApp failing or not answering a 502.

use std::future::Future;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use crate::app::AppState;
use crate::domain::{ChatChange, Phone, SessionId};
use crate::messages::Recipient;
use crate::session::messenger::{ContactCheck, SendFailure, Typing};
use crate::store::contacts::Person;

/// WhatsApp caps one read receipt at 256 ids (WhatsApp Web sends more as
/// several receipts; a caller can too).
pub(crate) const MAX_READ_IDS: usize = 256;
/// WhatsApp message ids are short (16 to 32 characters in practice).
pub(crate) const MAX_WA_ID_CHARS: usize = 128;
/// One usync query; WhatsApp Web checks contacts in batches of this size.
pub(crate) const MAX_CHECK_PHONES: usize = 50;
/// How long a call waits for WhatsApp before answering 502.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MarkReadRequest {
    /// The WhatsApp ids (`wa_id`) of the messages read: each 1 to 128
    /// printable ASCII characters.
    #[schema(min_items = 1, max_items = 256, value_type = Vec<String>)]
    pub message_ids: Vec<String>,
    /// In a group: the JID of who wrote them (required there). Not allowed
    /// otherwise.
    // Its pattern, `PERSON_PATTERN`, is written into the document by
    // `http::openapi` (utoipa's `pattern` takes only a literal).
    pub sender: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TypingRequest {
    pub state: Typing,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckContactsRequest {
    /// Numbers in international format, digits only (8 to 15, no leading
    /// zero).
    #[schema(min_items = 1, max_items = 50, value_type = Vec<String>)]
    pub phones: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CheckContactsResponse {
    /// One per distinct number asked, in the order asked.
    pub results: Vec<ContactCheck>,
}

fn invalid(code: &'static str, field: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Validation {
        code,
        field,
        message: message.into(),
    }
}

pub(super) fn parse_chat(chat: &str) -> Result<Recipient, ApiError> {
    chat.parse().map_err(|_| {
        invalid(
            "invalid_recipient",
            "chat",
            "chat must be a phone number in international format or a person's or group's JID",
        )
    })
}

/// The chat `chat` names as the session keeps it: a LID whose number the
/// session knows is that number's chat (one person, one chat, whichever
/// id names them).
pub(super) async fn stored_chat(
    state: &AppState,
    session: SessionId,
    chat: Recipient,
) -> Result<Recipient, ApiError> {
    let Some(person) = Person::from_jid(&chat.jid().to_string()).filter(|p| p.lid.is_some()) else {
        return Ok(chat);
    };
    match state.sessions.resolve_person(session, person).await?.phone {
        Some(phone) => parse_chat(&phone),
        None => Ok(chat),
    }
}

/// Runs one call on the live connection, bounded in time.
pub(super) async fn on_whatsapp<T>(
    call: impl Future<Output = Result<T, SendFailure>>,
) -> Result<T, ApiError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(SendFailure::OwnerUnreachable)) => Err(ApiError::OwnerUnreachable),
        Ok(Err(failure)) => Err(ApiError::Upstream(failure.to_string())),
        Err(_) => Err(ApiError::Upstream("WhatsApp did not answer in time".into())),
    }
}

/// Mark messages read.
///
/// Sends read receipts (the sender sees blue ticks) for messages received
/// in a chat, and reads the chat as a whole: marked read in WhatsApp's app
/// state (the phone shows it read) and nothing unread in the chat list
/// (with a `chat.updated` event when its count was not zero).
#[utoipa::path(
    post,
    path = "/sessions/{id}/chats/{chat}/read",
    tag = "chats",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("chat" = String, Path, description = "The chat: a phone number in international format, or a JID"),
    ),
    request_body = MarkReadRequest,
    responses(
        (status = 204, description = "WhatsApp has the receipt"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "Invalid `message_ids` or `sender`; also `sender_required` in a group chat without `sender`, and `sender_not_allowed` with `sender` in a person's chat (which the body's schema cannot say, the chat being in the path)", body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn mark_read(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, chat)): Path<(SessionId, String)>,
    Json(body): Json<MarkReadRequest>,
) -> Result<StatusCode, ApiError> {
    let chat = parse_chat(&chat)?;
    if body.message_ids.is_empty() || body.message_ids.len() > MAX_READ_IDS {
        return Err(invalid(
            "invalid_message_ids",
            "message_ids",
            format!("message_ids must hold 1 to {MAX_READ_IDS} ids"),
        ));
    }
    if body.message_ids.iter().any(|id| {
        id.is_empty() || id.len() > MAX_WA_ID_CHARS || !id.bytes().all(|b| b.is_ascii_graphic())
    }) {
        return Err(invalid(
            "invalid_message_ids",
            "message_ids",
            format!("each message id is 1 to {MAX_WA_ID_CHARS} printable characters"),
        ));
    }
    let sender: Option<Recipient> = match (&body.sender, chat.is_group()) {
        (Some(sender), true) => Some(
            sender
                .parse()
                .ok()
                .filter(|s: &Recipient| !s.is_group())
                .ok_or_else(|| {
                    invalid(
                        "invalid_sender",
                        "sender",
                        "sender must be a person's JID or phone number",
                    )
                })?,
        ),
        (None, true) => {
            return Err(invalid(
                "sender_required",
                "sender",
                "in a group, say who wrote the messages",
            ));
        }
        (Some(_), false) => {
            return Err(invalid(
                "sender_not_allowed",
                "sender",
                "sender is only for group chats",
            ));
        }
        (None, false) => None,
    };
    let messenger = state
        .sessions
        .live_messenger(auth.org_id(), session)
        .await?;
    on_whatsapp(messenger.mark_read(
        chat.jid(),
        sender.as_ref().map(Recipient::jid),
        &body.message_ids,
    ))
    .await?;
    // The chat is read as a whole: on the account's other devices through
    // the app state, and in the chat list (nothing unread, `chat.updated`).
    // The receipts are what was asked for and they went out, so an app
    // state that cannot take the mark yet (no app-state key shared so soon
    // after linking, say) does not fail the request.
    if let Err(error) = on_whatsapp(messenger.change_chat(chat.jid(), ChatChange::Read(true))).await
    {
        tracing::warn!(?error, "the chat was not marked read in the app state");
    }
    state
        .sessions
        .change_chat(
            auth.org_id(),
            session,
            &chat.jid().to_string(),
            ChatChange::Read(true),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Show typing or recording in a chat.
///
/// `composing` shows "typing…", `recording` "recording audio…", `paused`
/// stops either. WhatsApp clears it by itself after a while.
#[utoipa::path(
    post,
    path = "/sessions/{id}/chats/{chat}/typing",
    tag = "chats",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("chat" = String, Path, description = "The chat: a phone number in international format, or a JID"),
    ),
    request_body = TypingRequest,
    responses(
        (status = 204, description = "Sent"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn typing(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, chat)): Path<(SessionId, String)>,
    Json(body): Json<TypingRequest>,
) -> Result<StatusCode, ApiError> {
    let chat = parse_chat(&chat)?;
    let messenger = state
        .sessions
        .live_messenger(auth.org_id(), session)
        .await?;
    on_whatsapp(messenger.typing(chat.jid(), body.state)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check which numbers have WhatsApp.
#[utoipa::path(
    post,
    path = "/sessions/{id}/contacts/check",
    tag = "chats",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = CheckContactsRequest,
    responses(
        (status = 200, body = CheckContactsResponse),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is not `working`", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp failed or did not answer", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn check_contacts(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Json(body): Json<CheckContactsRequest>,
) -> Result<Json<CheckContactsResponse>, ApiError> {
    if body.phones.is_empty() || body.phones.len() > MAX_CHECK_PHONES {
        return Err(invalid(
            "invalid_phones",
            "phones",
            format!("phones must hold 1 to {MAX_CHECK_PHONES} numbers"),
        ));
    }
    let mut phones: Vec<String> = Vec::with_capacity(body.phones.len());
    for phone in body.phones {
        let phone = Phone::try_from(phone)
            .map_err(|e| invalid("invalid_phone", "phones", e.to_string()))?;
        if !phones.iter().any(|p| p == phone.as_str()) {
            phones.push(phone.to_string());
        }
    }
    let messenger = state
        .sessions
        .live_messenger(auth.org_id(), session)
        .await?;
    let results = on_whatsapp(messenger.check_contacts(&phones)).await?;
    let answers: Vec<(String, bool)> = results
        .iter()
        .map(|r| (r.phone.clone(), r.on_whatsapp))
        .collect();
    state.sessions.record_on_whatsapp(session, &answers).await?;
    Ok(Json(CheckContactsResponse { results }))
}
