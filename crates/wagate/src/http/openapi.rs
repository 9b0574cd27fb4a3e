//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{chats, error, media, messages, qr, sessions, webhooks, ws};
use crate::domain::{
    Direction, Failure, FailureReason, MessageStatus, SessionStatus, StatusReason,
};
use crate::events::{Envelope, EventData, EventType};

#[derive(OpenApi)]
#[openapi(
    info(title = "wagate", description = "Self-hosted WhatsApp gateway"),
    servers((url = "/api/v1")),
    paths(
        sessions::create,
        sessions::list,
        sessions::get,
        sessions::update,
        sessions::delete,
        sessions::start,
        sessions::stop,
        sessions::restart,
        sessions::logout,
        qr::qr,
        qr::pairing_code,
        messages::send,
        messages::list,
        messages::get,
        media::download,
        messages::edit,
        messages::revoke,
        chats::mark_read,
        chats::typing,
        chats::check_contacts,
        ws::subscribe,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::deliveries,
        webhooks::retry,
        webhooks::test,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorDetail,
        SessionStatus,
        StatusReason,
        Envelope,
        EventData,
        EventType,
        MessageStatus,
        FailureReason,
        Failure,
        Direction,
        crate::messages::SendMessageRequest,
        webhooks::Webhook,
        webhooks::WebhookWithSecret,
        webhooks::CreateWebhook,
        webhooks::UpdateWebhook,
        webhooks::RotateSecret,
        webhooks::WebhookList,
        webhooks::Delivery,
        webhooks::DeliveryList,
        crate::webhooks::DeliveryStatus,
        crate::webhooks::DisabledReason,
        crate::messages::IncomingMessage,
        crate::messages::IncomingContent,
        crate::messages::Sender,
        crate::messages::Target,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "sessions", description = "Sessions: one linked WhatsApp number each"),
        (name = "linking", description = "Linking a phone by QR code or pairing code"),
        (name = "messages", description = "Messages sent through a linked session and received by it"),
        (name = "chats", description = "Read receipts, typing and contact checks, straight on a `working` session"),
        (name = "realtime", description = "Live events over WebSocket, resumable from the event log"),
        (name = "webhooks", description = "Webhooks: every event POSTed to your URL, signed as the \
Standard Webhooks specification says, in order per session, retried for at least 24 hours.\n\n\
Each delivery is `POST <url>` with `Content-Type: application/json`, the event envelope as body \
(the same JSON as the realtime WebSocket), and the headers:\n\
- `webhook-id`: the event id; the same on every retry, so duplicates are recognisable.\n\
- `webhook-timestamp`: unix seconds of the attempt.\n\
- `webhook-signature`: `v1,<base64 HMAC-SHA256 of \"{webhook-id}.{webhook-timestamp}.{body}\">`, \
keyed with the base64-decoded part of the secret after `whsec_`; during a secret rotation's \
grace period, one such signature per secret, separated by a space.\n\n\
A 2xx answer delivers; `410 Gone` disables the webhook (a `webhook.disabled` event follows); \
anything else is retried with exponential backoff. Redirects are not followed."),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_lists_every_endpoint() -> Result<(), serde_json::Error> {
        let doc = serde_json::to_value(ApiDoc::openapi())?;
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        for path in [
            "/sessions",
            "/sessions/{id}",
            "/sessions/{id}/start",
            "/sessions/{id}/stop",
            "/sessions/{id}/restart",
            "/sessions/{id}/logout",
            "/sessions/{id}/qr",
            "/sessions/{id}/pairing-code",
            "/sessions/{id}/messages/{message_id}/media",
            "/ws",
            "/webhooks",
            "/webhooks/{id}",
            "/webhooks/{id}/rotate-secret",
            "/webhooks/{id}/deliveries",
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
        ] {
            assert!(doc["paths"].get(path).is_some(), "missing {path}");
        }
        Ok(())
    }

    #[test]
    fn incoming_events_and_resume_are_described() -> Result<(), serde_json::Error> {
        let doc = serde_json::to_value(ApiDoc::openapi())?;
        let schemas = &doc["components"]["schemas"];
        for name in ["IncomingMessage", "IncomingContent", "Sender", "Target"] {
            assert!(schemas.get(name).is_some(), "missing schema {name}");
        }
        let events = schemas["EventType"].to_string();
        for name in [
            "message.received",
            "message.reaction",
            "message.edited",
            "message.revoked",
        ] {
            assert!(events.contains(name), "EventType lacks {name}");
        }
        let ws = doc["paths"]["/ws"]["get"]["parameters"].to_string();
        assert!(ws.contains("since"), "the resume parameter: {ws}");
        Ok(())
    }
}
