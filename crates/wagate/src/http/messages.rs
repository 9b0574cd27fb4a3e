//! `/sessions/{id}/messages`: send (into the durable outbox), read one with
//! its status history, list.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query, cut_page, page_limit};
use crate::app::AppState;
use crate::domain::{Direction, Failure, MessageId, MessageStatus, SessionId};
use crate::messages::{
    Content, MAX_TEXT_CHARS, MessageRef, OutgoingMessage, ParsedRequest, Recipient,
    SendMessageRequest, Sender, read_request,
};
use crate::session::manager::{ManagerError, Outgoing};
use crate::store::{IdempotencyClaim, MessageQuery, MessageRecord, StatusStep};

/// Printable ASCII, as most APIs that take the header accept.
const IDEMPOTENCY_KEY_MAX: usize = 255;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Message {
    #[schema(value_type = String, format = Uuid)]
    pub id: MessageId,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    pub direction: Direction,
    /// The WhatsApp message id.
    pub wa_id: String,
    /// The chat's JID.
    pub chat: String,
    pub kind: String,
    /// Outgoing: what was sent, as it was asked for (media as a
    /// reference, never the bytes). Incoming: what arrived, in the shape of
    /// [`IncomingContent`] (media is downloaded from `.../media`).
    #[schema(value_type = Object)]
    pub content: serde_json::Value,
    /// Incoming messages only: who wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<Sender>,
    /// Incoming messages only: the sender's profile name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push_name: Option<String>,
    /// Incoming messages only: written by this session's own account
    /// (from its phone or another linked device).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_me: Option<bool>,
    /// Incoming messages only: when the sender sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<DateTime<Utc>>,
    /// Incoming messages only: the WhatsApp id of the message it quotes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Incoming messages only: stored from the history the phone sent
    /// after a link (or that was asked for), not received live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_history: Option<bool>,
    /// Incoming messages are `delivered`.
    pub status: MessageStatus,
    pub failure: Option<Failure>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Every status the message went through, oldest first (only when
    /// reading one message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<Step>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Step {
    pub status: MessageStatus,
    pub failure: Option<Failure>,
    pub at: DateTime<Utc>,
}

impl From<MessageRecord> for Message {
    fn from(record: MessageRecord) -> Self {
        let received = record.received;
        Self {
            id: record.id,
            session_id: record.session_id,
            direction: record.direction,
            wa_id: record.wa_id,
            chat: record.chat,
            kind: record.kind,
            content: record.content,
            sender: received.as_ref().map(|r| r.sender.clone()),
            push_name: received.as_ref().and_then(|r| r.push_name.clone()),
            from_me: received.as_ref().map(|r| r.from_me),
            timestamp: received.as_ref().map(|r| r.sent_at),
            from_history: received.as_ref().map(|r| r.from_history),
            reply_to: received.and_then(|r| r.reply_to),
            status: record.status,
            failure: record.failure,
            created_at: record.created_at,
            updated_at: record.updated_at,
            history: None,
        }
    }
}

impl From<StatusStep> for Step {
    fn from(step: StatusStep) -> Self {
        Self {
            status: step.status,
            failure: step.failure,
            at: step.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct MessageList {
    pub data: Vec<Message>,
    /// Pass as `before` to get the next (older) page; `null` on the last.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub next_before: Option<MessageId>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// `next_before` from the previous page.
    #[param(value_type = Option<String>, format = Uuid)]
    pub before: Option<MessageId>,
    /// Only this chat (a JID).
    pub chat: Option<String>,
    /// Only messages in this status.
    pub status: Option<MessageStatus>,
    /// Only `outgoing` (sent through the API) or `incoming` (received,
    /// including what the session's own phone sent) messages.
    pub direction: Option<Direction>,
}

/// The `Idempotency-Key` header, if sent, as a claim on this request.
fn idempotency_claim(
    headers: &HeaderMap,
    session: SessionId,
    fingerprint: &[u8],
) -> Result<Option<IdempotencyClaim>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let invalid = || ApiError::Validation {
        code: "invalid_idempotency_key",
        field: "Idempotency-Key",
        message: format!(
            "the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters"
        ),
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
    {
        return Err(invalid());
    }
    let mut hasher = Sha256::new();
    hasher.update(session.to_string().as_bytes());
    hasher.update(fingerprint);
    Ok(Some(IdempotencyClaim {
        key: key.to_string(),
        request_hash: hex::encode(hasher.finalize()),
    }))
}

/// Accepts a validated message for `session`, honouring the request's
/// `Idempotency-Key`: a retry of the same request gets the first answer.
pub(crate) async fn accept(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    headers: &HeaderMap,
    outgoing: Outgoing,
    fingerprint: &[u8],
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let claim = idempotency_claim(headers, session, fingerprint)?;
    let (message, _replayed) = state
        .sessions
        .accept_message(auth.org_id(), session, outgoing, claim)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(message.into())))
}

/// Read a message with its status history.
#[utoipa::path(
    get,
    path = "/sessions/{id}/messages/{message_id}",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("message_id" = String, Path, format = Uuid, description = "Message id"),
    ),
    responses(
        (status = 200, body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session or message in this organization", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, id)): Path<(SessionId, MessageId)>,
) -> Result<Json<Message>, ApiError> {
    let (record, history) = state.sessions.message(auth.org_id(), session, id).await?;
    let mut message = Message::from(record);
    message.history = Some(history.into_iter().map(Step::from).collect());
    Ok(Json(message))
}

/// List a session's messages, newest first.
#[utoipa::path(
    get,
    path = "/sessions/{id}/messages",
    tag = "messages",
    params(("id" = String, Path, format = Uuid, description = "Session id"), ListParams),
    responses(
        (status = 200, body = MessageList),
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
) -> Result<Json<MessageList>, ApiError> {
    let limit = page_limit(params.limit)?;
    let records = state
        .sessions
        .messages(
            auth.org_id(),
            session,
            &MessageQuery {
                chat: params.chat,
                direction: params.direction,
                status: params.status,
                limit: limit + 1,
                before: params.before,
                after: None,
            },
        )
        .await?;
    let mut data: Vec<Message> = records.into_iter().map(Message::from).collect();
    let next_before = cut_page(&mut data, limit, |m| m.id);
    Ok(Json(MessageList { data, next_before }))
}

/// Looks up a message this session sent (or received) that a reply
/// quotes or a reaction points at.
async fn reference(
    state: &AppState,
    org: crate::domain::OrgId,
    session: SessionId,
    id: Option<uuid::Uuid>,
    field: &'static str,
) -> Result<Option<MessageRef>, ApiError> {
    let Some(id) = id else { return Ok(None) };
    // Well-formed, naming a message that is not there: a 404.
    let unknown = || ApiError::UnknownReference {
        code: "unknown_message",
        field,
        message: format!("{field} names no message of this session"),
    };
    let (record, _) = match state
        .sessions
        .message(org, session, MessageId::from(id))
        .await
    {
        Ok(found) => found,
        Err(ManagerError::MessageNotFound) => return Err(unknown()),
        Err(other) => return Err(other.into()),
    };
    let chat: Recipient = record.chat.parse().map_err(|_| unknown())?;
    // A received message may have been written by this account's own
    // phone; in a group, the quote or reaction must name its author.
    let (from_me, sender) = match &record.received {
        None => (record.direction == Direction::Outgoing, None),
        Some(received) => (
            received.from_me,
            received
                .sender
                .phone
                .as_ref()
                .map(|phone| format!("{phone}@s.whatsapp.net"))
                .or_else(|| received.sender.lid.as_ref().map(|lid| format!("{lid}@lid"))),
        ),
    };
    Ok(Some(MessageRef {
        wa_id: record.wa_id,
        chat,
        from_me,
        sender,
    }))
}

/// Send a message.
///
/// Answers once the message is durably stored in the session's outbox; it
/// is then sent while the session is `working`, paced, and retried with the
/// same WhatsApp id until WhatsApp acknowledges it. Watch `message.status`
/// events (or read the message) for what follows. With an
/// `Idempotency-Key`, a retried request returns the first answer and sends
/// nothing new.
#[utoipa::path(
    post,
    path = "/sessions/{id}/messages",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]([ -~]{0,253}[!-~])?$", description = "Makes retries safe: the same key (per organization, kept at least 24 h) returns the first answer; with a different request it is a 409 (`idempotency_key_reused`)"),
    ),
    request_body(
        content(
            (SendMessageRequest = "application/json"),
            (SendMessageRequest = "multipart/form-data"),
        ),
        description = "JSON; or multipart/form-data with the same JSON in a `message` part (its media object without `url` or `base64`) and the bytes in a `file` part"
    ),
    responses(
        (status = 202, description = "Stored, `pending`", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is `logged_out` or `stopped`", body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn send(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    headers: HeaderMap,
    request: Request,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let ParsedRequest { message, media } = read_request(request, &state.media_limits).await?;
    let org = auth.org_id();
    let reply_to = reference(&state, org, session, message.reply_to, "reply_to").await?;
    let target = reference(
        &state,
        org,
        session,
        message.content.target().copied(),
        "reaction.message_id",
    )
    .await?;
    let outgoing = message
        .resolve(reply_to, target)
        // A well-formed request whose target is in another chat: a
        // conflict with that message, not a bad body.
        .map_err(|e| ApiError::Conflict {
            code: e.code(),
            message: e.to_string(),
            status: None,
        })?;
    let content = serde_json::to_value(&outgoing).map_err(ApiError::internal)?;
    // What makes two requests "the same" for an Idempotency-Key: the
    // validated message and the media bytes.
    let mut fingerprint = content.to_string().into_bytes();
    if let Some(media) = &media {
        fingerprint.extend_from_slice(&Sha256::digest(media));
    }
    let outgoing = Outgoing {
        chat: outgoing.to.to_string(),
        kind: outgoing.content.kind().as_str().to_string(),
        content,
        media,
    };
    accept(&state, &auth, session, &headers, outgoing, &fingerprint).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditMessageRequest {
    /// The new text.
    #[schema(min_length = 1, max_length = 65536)]
    pub text: String,
}

/// A message this session sent, that an edit or a revoke acts on.
async fn own_message(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    id: MessageId,
) -> Result<(MessageRecord, MessageRef), ApiError> {
    let (record, _) = state.sessions.message(auth.org_id(), session, id).await?;
    if record.direction != Direction::Outgoing {
        return Err(ApiError::Conflict {
            code: "not_own_message",
            message: "only messages this session sent can be edited or deleted".into(),
            status: None,
        });
    }
    if record.status == MessageStatus::Failed {
        return Err(ApiError::Conflict {
            code: "message_failed",
            message: "the message was never delivered, so there is nothing to change".into(),
            status: None,
        });
    }
    let chat: Recipient = record
        .chat
        .parse()
        .map_err(|_| ApiError::internal(std::io::Error::other("a stored chat is not a JID")))?;
    let reference = MessageRef {
        wa_id: record.wa_id.clone(),
        chat,
        from_me: true,
        sender: None,
    };
    Ok((record, reference))
}

/// Queues `content` (an edit or a revoke of `target`) in the outbox, behind
/// whatever is still queued for that chat.
async fn accept_action(
    state: &AppState,
    auth: &Authenticated,
    session: SessionId,
    headers: &HeaderMap,
    content: Content,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let Some(target) = content.target() else {
        return Err(ApiError::internal(std::io::Error::other(
            "an edit or revoke without a target",
        )));
    };
    let outgoing = OutgoingMessage {
        to: target.chat.clone(),
        reply_to: None,
        content,
    };
    let value = serde_json::to_value(&outgoing).map_err(ApiError::internal)?;
    let fingerprint = value.to_string().into_bytes();
    let outgoing = Outgoing {
        chat: outgoing.to.to_string(),
        kind: outgoing.content.kind().as_str().to_string(),
        content: value,
        media: None,
    };
    accept(state, auth, session, headers, outgoing, &fingerprint).await
}

/// Edit a text message this session sent.
///
/// Queues the edit in the outbox, after anything still queued for the chat
/// (so an edit never overtakes its message); it is tracked as a message of
/// kind `edit` with statuses of its own. WhatsApp shows edits made within
/// 15 minutes of the original.
#[utoipa::path(
    post,
    path = "/sessions/{id}/messages/{message_id}/edit",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("message_id" = String, Path, format = Uuid, description = "The message to edit"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]([ -~]{0,253}[!-~])?$", description = "As for sending"),
    ),
    request_body = EditMessageRequest,
    responses(
        (status = 202, description = "The edit is stored, `pending`", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is `logged_out` or `stopped`, or the message is not this session's, or it failed, or it is not a text message (`not_editable`)", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "An empty or too long text", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn edit(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, id)): Path<(SessionId, MessageId)>,
    headers: HeaderMap,
    Json(body): Json<EditMessageRequest>,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let chars = body.text.chars().count();
    if chars == 0 || chars > MAX_TEXT_CHARS {
        return Err(ApiError::Validation {
            code: if chars == 0 {
                "empty_field"
            } else {
                "too_long"
            },
            field: "text",
            message: format!("text must be 1 to {MAX_TEXT_CHARS} characters"),
        });
    }
    let (record, target) = own_message(&state, &auth, session, id).await?;
    if record.kind != "text" {
        // The request is fine; the message it names is not one that can
        // be edited: a conflict with that message's state, not a bad body.
        return Err(ApiError::Conflict {
            code: "not_editable",
            status: None,
            message: format!(
                "only text messages can be edited, this one is {}",
                record.kind
            ),
        });
    }
    let content = Content::Edit {
        target,
        body: body.text,
    };
    accept_action(&state, &auth, session, &headers, content).await
}

/// Delete a message this session sent, for everyone.
///
/// Queues the revoke in the outbox, after anything still queued for the
/// chat; it is tracked as a message of kind `revoke`. The phone shows
/// "This message was deleted".
#[utoipa::path(
    delete,
    path = "/sessions/{id}/messages/{message_id}",
    tag = "messages",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("message_id" = String, Path, format = Uuid, description = "The message to delete"),
        ("Idempotency-Key" = Option<String>, Header, pattern = r"^[!-~]([ -~]{0,253}[!-~])?$", description = "As for sending"),
    ),
    responses(
        (status = 202, description = "The revoke is stored, `pending`", body = Message),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "The session is `logged_out` or `stopped`, or the message is not this session's, or it failed, or it is an edit, revoke or reaction (`not_revocable`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, id)): Path<(SessionId, MessageId)>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Message>), ApiError> {
    let (record, target) = own_message(&state, &auth, session, id).await?;
    if matches!(record.kind.as_str(), "edit" | "revoke" | "reaction") {
        return Err(ApiError::Conflict {
            code: "not_revocable",
            status: None,
            message: format!(
                "a {} cannot be deleted; delete the message itself",
                record.kind
            ),
        });
    }
    accept_action(&state, &auth, session, &headers, Content::Revoke { target }).await
}
