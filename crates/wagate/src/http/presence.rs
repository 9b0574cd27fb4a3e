//! `POST /sessions/{id}/presence`: what the linked device tells WhatsApp
//! about itself, now and after every later connect; and the contacts whose
//! presence the session follows.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path};
use super::sessions::Session;
use crate::app::AppState;
use crate::domain::{PresenceState, SessionId};
use crate::messages::Recipient;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PresenceRequest {
    /// `available` shows the account online (the phone then holds back
    /// its own notifications); `unavailable` (the default setting) keeps
    /// the phone ringing.
    pub state: PresenceState,
}

/// Set the session's presence.
///
/// Kept as the session's `presence` setting, said after every connect,
/// and told WhatsApp right away when the session is `working`.
#[utoipa::path(
    post,
    path = "/sessions/{id}/presence",
    tag = "sessions",
    params(("id" = String, Path, format = Uuid, description = "Session id")),
    request_body = PresenceRequest,
    responses(
        (status = 200, description = "Kept (and told WhatsApp, if `working`)", body = Session),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "Kept, but WhatsApp could not be told now", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn set(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Json(body): Json<PresenceRequest>,
) -> Result<Json<Session>, ApiError> {
    let record = state
        .sessions
        .set_presence(auth.org_id(), id, body.state)
        .await?;
    Ok(Json(record.into()))
}

/// A presence subscription, as it stands after the call.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PresenceSubscription {
    /// The contact's JID.
    pub contact: String,
    pub subscribed: bool,
    /// Whether this call changed it (`false`: it already was so).
    pub changed: bool,
}

/// The person in `{contact}`: a phone number or a person's JID.
pub(super) fn parse_contact(contact: &str) -> Result<Recipient, ApiError> {
    contact
        .parse::<Recipient>()
        .ok()
        .filter(|r| !r.is_group())
        .ok_or_else(|| ApiError::Validation {
            code: "invalid_contact",
            field: "contact",
            message: "contact must be a phone number in international format or a person's JID"
                .into(),
        })
}

async fn subscription(
    state: &AppState,
    auth: &Authenticated,
    id: SessionId,
    contact: &str,
    subscribe: bool,
) -> Result<Json<PresenceSubscription>, ApiError> {
    let contact = parse_contact(contact)?;
    let changed = state
        .sessions
        .subscribe_presence(auth.org_id(), id, contact.jid(), subscribe)
        .await?;
    Ok(Json(PresenceSubscription {
        contact: contact.jid().to_string(),
        subscribed: subscribe,
        changed,
    }))
}

/// Subscribe to a contact's presence.
///
/// `presence.update` events then report when they come online, go offline
/// (with their last seen, when they share it) and type or record in a
/// chat. Kept across reconnects and restarts, and told WhatsApp right away
/// when the session is `working`.
#[utoipa::path(
    post,
    path = "/sessions/{id}/contacts/{contact}/presence/subscribe",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID"),
    ),
    responses(
        (status = 200, description = "Subscribed (and told WhatsApp, if `working`)", body = PresenceSubscription),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "Kept, but WhatsApp could not be told now (it is on the next connect)", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, contact)): Path<(SessionId, String)>,
) -> Result<Json<PresenceSubscription>, ApiError> {
    subscription(&state, &auth, id, &contact, true).await
}

/// Unsubscribe from a contact's presence.
#[utoipa::path(
    post,
    path = "/sessions/{id}/contacts/{contact}/presence/unsubscribe",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("contact" = String, Path, description = "A phone number in international format, or a person's JID"),
    ),
    responses(
        (status = 200, description = "Forgotten (and told WhatsApp, if `working`)", body = PresenceSubscription),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "Forgotten, but WhatsApp could not be told now", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn unsubscribe(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, contact)): Path<(SessionId, String)>,
) -> Result<Json<PresenceSubscription>, ApiError> {
    subscription(&state, &auth, id, &contact, false).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::groups::tests::agree;
    use crate::messages::recipient::PERSON_PATTERN;

    #[test]
    fn the_contact_pattern_is_the_parser() {
        agree(
            PERSON_PATTERN,
            |c| parse_contact(c).is_ok(),
            &[
                "15551234567",
                "15551234567@s.whatsapp.net",
                "123456789012345@lid",
                "120363025246125486@g.us",
                "+15551234567",
                "0555123456",
                "",
                "abc",
            ],
        );
    }
}
