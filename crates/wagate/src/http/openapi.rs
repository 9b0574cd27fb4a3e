//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
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
        webhooks::retry_since,
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
        webhooks::RetryDeliveries,
        webhooks::RetriedDeliveries,
        crate::webhooks::DeliveryStatus,
        crate::webhooks::DisabledReason,
        crate::messages::IncomingMessage,
        crate::messages::IncomingContent,
        crate::messages::Sender,
        crate::messages::Target,
        qr::QrFormat,
    )),
    modifiers(&BearerAuth, &CommonResponses, &OneKindPerMessage),
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

/// The answers every operation can give before its handler runs, added
/// in one place rather than on each handler (where one would be
/// forgotten): the token check, the path's ids, and the JSON body's
/// extractor. Each is the error envelope; a handler's own description of
/// the same status wins.
struct CommonResponses;

impl CommonResponses {
    fn for_operation(operation: &mut Operation) {
        let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
        let params = operation.parameters.as_deref().unwrap_or_default();
        let in_path = params
            .iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Path));
        let in_query = params
            .iter()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query));
        let json_body = operation
            .request_body
            .as_ref()
            .is_some_and(|body| body.content.contains_key("application/json"));
        let mut add = |status: &str, description: &str| {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| RefOr::T(error_response(description)));
        };
        if secured {
            add(
                "401",
                "No token (`missing_token`), or one that is malformed, unknown or revoked                  (`invalid_token`)",
            );
        }
        if in_path || in_query || json_body {
            add(
                "400",
                "A path id that is not a UUID (`invalid_path`), a query string that does not                  parse (`invalid_query`), or a body that is not JSON (`malformed_json`)",
            );
        }
        if json_body {
            add(
                "413",
                "The body is larger than the gateway takes (`payload_too_large`)",
            );
            add(
                "415",
                "The body is not sent as `Content-Type: application/json`                  (`unsupported_media_type`)",
            );
            add(
                "422",
                "The body is JSON but not a valid request (`invalid_body`, or a code naming                  the field)",
            );
        }
    }
}

/// A message names exactly one kind; said in the schema as a `oneOf` of
/// "has this kind's key", one per kind of the request's table (utoipa has
/// no attribute for it).
struct OneKindPerMessage;

impl Modify for OneKindPerMessage {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(schemas) = openapi.components.as_mut().map(|c| &mut c.schemas) else {
            return;
        };
        let Some(request) = schemas.remove("SendMessageRequest") else {
            return;
        };
        let mut one_of = OneOfBuilder::new();
        for (key, _) in crate::messages::request::KINDS {
            one_of = one_of.item(ObjectBuilder::new().required(key));
        }
        let combined = AllOfBuilder::new()
            .item(request)
            .item(one_of)
            .description(Some(
                "Send a message: `to` and exactly one of the kinds' keys.",
            ))
            .build();
        schemas.insert(
            "SendMessageRequest".to_string(),
            RefOr::T(Schema::AllOf(combined)),
        );
    }
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                Self::for_operation(operation);
            }
        }
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

    /// Every `$ref` names a schema the document has: a dangling one makes
    /// client generators fail outright.
    #[test]
    fn every_reference_resolves() -> Result<(), serde_json::Error> {
        fn refs(value: &serde_json::Value, found: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, value) in map {
                        match (key.as_str(), value) {
                            ("$ref", serde_json::Value::String(target)) => {
                                found.push(target.clone())
                            }
                            _ => refs(value, found),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
                _ => {}
            }
        }
        let doc = serde_json::to_value(ApiDoc::openapi())?;
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for target in found {
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected reference {target}"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{target} does not exist"
            );
        }
        Ok(())
    }

    #[test]
    fn every_secured_operation_documents_401_and_every_json_body_415()
    -> Result<(), serde_json::Error> {
        let doc = serde_json::to_value(ApiDoc::openapi())?;
        let paths = doc["paths"].as_object().map(|p| p.len()).unwrap_or(0);
        assert!(paths > 10);
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                if op.get("security").is_some() {
                    assert!(
                        op["responses"].get("401").is_some(),
                        "{method} {path}: no 401"
                    );
                }
                if op["requestBody"]["content"]
                    .get("application/json")
                    .is_some()
                {
                    for status in ["400", "413", "415", "422"] {
                        assert!(
                            op["responses"].get(status).is_some(),
                            "{method} {path}: no {status}"
                        );
                    }
                }
            }
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
