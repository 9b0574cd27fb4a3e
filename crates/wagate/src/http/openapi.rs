//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::schema::{AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::calls::CALL_PATTERN;
use super::groups::{GROUP_PATTERN, INVITE_CODE_PATTERN, INVITE_LINK_PATTERN};
use super::lids::LID_PATTERN;
use super::{error, qr, webhooks};
use crate::domain::{
    Direction, Failure, FailureReason, MessageStatus, PHONE_PATTERN, SessionStatus, StatusReason,
};
use crate::events::{Envelope, EventData, EventType};
use crate::messages::recipient::{CHAT_PATTERN, PERSON_PATTERN};

#[derive(OpenApi)]
#[openapi(
    info(title = "wagate", description = "Self-hosted WhatsApp gateway"),
    servers((url = "/api/v1")),
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
        crate::domain::DeliveryStatus,
        crate::domain::DisabledReason,
        crate::messages::IncomingMessage,
        crate::messages::IncomingContent,
        crate::messages::Sender,
        crate::messages::Target,
        qr::QrFormat,
    )),
    tags(
        (name = "sessions", description = "Sessions: one linked WhatsApp number each"),
        (name = "linking", description = "Linking a phone by QR code or pairing code"),
        (name = "messages", description = "Messages sent through a linked session and received by it"),
        (name = "chats", description = "The chat list and each chat's messages, from what the session stored; read receipts, typing and contact checks, straight on a `working` session"),
        (name = "calls", description = "Calls ringing a `working` session"),
        (name = "contacts", description = "The people a session knows: names, phone numbers and LIDs, about texts and profile pictures; a LID's phone number and a number's LID; blocking; whose presence it follows"),
        (name = "groups", description = "Groups: create, list, participants, membership requests, settings, invites, join and leave, straight on a `working` session"),
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
pub(crate) struct ApiDoc;

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
                "No token (`missing_token`), or one that is malformed, unknown or revoked (`invalid_token`)",
            );
        }
        if in_query {
            add(
                "422",
                "A query parameter out of its range (`invalid_limit`, `invalid_cursor`)",
            );
        }
        if in_path || in_query || json_body {
            add(
                "400",
                "A path id that is not a UUID (`invalid_path`), a query string that does not parse (`invalid_query`), or a body that is not JSON (`malformed_json`)",
            );
        }
        if json_body {
            add(
                "413",
                "The body is larger than the gateway takes (`payload_too_large`)",
            );
            add(
                "415",
                "The body is not sent as `Content-Type: application/json` (`unsupported_media_type`)",
            );
            add(
                "422",
                "The body is JSON but not a valid request (`invalid_body`, or a code naming the field)",
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

/// What utoipa's attributes cannot say about items of arrays and the
/// kinds of a message, written into the document as JSON: each entry is a
/// JSON pointer into the document and the keys to set there. A pointer
/// that finds nothing is a bug, caught by `every_constraint_applies`.
const CONSTRAINTS: &[(&str, &str)] = &[
    (
        "/components/schemas/MarkReadRequest/properties/message_ids/items",
        r#"{"type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[!-~]+$"}"#,
    ),
    (
        "/components/schemas/CreateWebhook/properties/events",
        r#"{"minItems": 1, "maxItems": 32}"#,
    ),
    (
        "/components/schemas/CreateWebhook/properties/sessions",
        r#"{"minItems": 1, "maxItems": 100}"#,
    ),
    (
        "/components/schemas/UpdateWebhook/properties/events",
        r#"{"minItems": 1, "maxItems": 32}"#,
    ),
    (
        "/components/schemas/UpdateWebhook/properties/sessions",
        r#"{"minItems": 1, "maxItems": 100}"#,
    ),
    (
        "/components/schemas/RetryDeliveries/properties",
        r#"{"status": {"type": ["string", "null"], "enum": ["failed", "delivered", null]}}"#,
    ),
    (
        "/paths/~1webhooks~1{id}~1rotate-secret/post/requestBody",
        r#"{"required": false}"#,
    ),
    (
        "/paths/~1sessions~1{id}~1qr/get/responses/200/content/image~1png",
        r#"{"schema": {"type": "string", "contentMediaType": "image/png"}}"#,
    ),
    (
        "/components/schemas/PollPayload/properties/options",
        r#"{"uniqueItems": true, "items": {"type": "string", "minLength": 1, "maxLength": 100}}"#,
    ),
    (
        "/components/schemas/ContactPayload/properties/vcards/items",
        r#"{"maxLength": 65536, "pattern": "^[Bb][Ee][Gg][Ii][Nn]:[Vv][Cc][Aa][Rr][Dd]"}"#,
    ),
    (
        "/components/schemas/ReactionPayload/properties/emoji",
        r#"{"pattern": "^[^\\sA-Za-z\\u0000-\\u001F\\u007F-\\u009F]*$"}"#,
    ),
    (
        "/components/schemas/CreateWebhook/properties/sessions/items",
        r#"{"format": "uuid"}"#,
    ),
    (
        "/components/schemas/UpdateWebhook/properties/sessions/items",
        r#"{"format": "uuid"}"#,
    ),
];

/// Event types a webhook filter may name: `*` or one of the types.
fn webhook_event_items() -> serde_json::Value {
    let mut names = vec![serde_json::Value::from(crate::webhooks::manage::ALL_EVENTS)];
    names.extend(
        EventType::ALL
            .iter()
            .map(|t| serde_json::Value::from(t.as_str())),
    );
    serde_json::json!({ "type": "string", "enum": names })
}

struct Constraints;

impl Constraints {
    fn apply(doc: &mut serde_json::Value) -> Result<(), String> {
        let set = |doc: &mut serde_json::Value, pointer: &str, keys: serde_json::Value| {
            let target = doc
                .pointer_mut(pointer)
                .and_then(serde_json::Value::as_object_mut)
                .ok_or_else(|| format!("no object at {pointer}"))?;
            for (key, value) in keys.as_object().into_iter().flatten() {
                target.insert(key.clone(), value.clone());
            }
            Ok::<(), String>(())
        };
        for (pointer, keys) in CONSTRAINTS {
            let keys = serde_json::from_str(keys).map_err(|e| format!("{pointer}: {e}"))?;
            set(doc, pointer, keys)?;
        }
        // The chats' patterns are the parser's (`messages::recipient`, where
        // a test holds them to it); utoipa's `pattern` takes only a literal.
        // (The request's `to` has its own in its schema.)
        set(
            doc,
            "/components/schemas/MarkReadRequest/properties/sender",
            serde_json::json!({ "pattern": PERSON_PATTERN }),
        )?;
        pattern_params(doc, "path", "chat", CHAT_PATTERN)?;
        pattern_params(doc, "path", "group", GROUP_PATTERN)?;
        pattern_params(doc, "path", "code", INVITE_CODE_PATTERN)?;
        pattern_params(doc, "path", "lid", LID_PATTERN)?;
        pattern_params(doc, "path", "contact", PERSON_PATTERN)?;
        pattern_params(doc, "path", "call", CALL_PATTERN)?;
        pattern_params(doc, "query", "phone", PHONE_PATTERN)?;
        shape_groups(doc)?;
        for schema in ["CreateWebhook", "UpdateWebhook"] {
            set(
                doc,
                &format!("/components/schemas/{schema}/properties/events/items"),
                webhook_event_items(),
            )?;
        }
        name_events(doc)?;
        pattern_ws_events(doc)?;
        for schema in ["CreateWebhook", "UpdateWebhook"] {
            set(
                doc,
                &format!("/components/schemas/{schema}/properties/url"),
                serde_json::json!({ "format": "uri", "pattern": URL_PATTERN }),
            )?;
        }
        shape_messages(doc)?;
        // A poll's voters may pick at most as many options as it has:
        // `selectable_count` of k wants k options.
        let at_most_options: Vec<serde_json::Value> = (3..=12)
            .map(|k| {
                serde_json::json!({
                    "if": { "required": ["selectable_count"], "properties": { "selectable_count": { "minimum": k } }
                    },
                    "then": { "properties": { "options": { "minItems": k } } }
                })
            })
            .collect();
        set(
            doc,
            "/components/schemas/PollPayload",
            serde_json::json!({ "allOf": at_most_options }),
        )?;
        // A kind's key with `null` is no kind: each alternative of the
        // message's `oneOf` wants its key present and not null.
        let kinds = doc
            .pointer_mut("/components/schemas/SendMessageRequest/allOf/1/oneOf")
            .and_then(serde_json::Value::as_array_mut)
            .ok_or("no oneOf of message kinds")?;
        for kind in kinds.iter_mut() {
            let key = kind["required"][0]
                .as_str()
                .ok_or("a kind without its key")?
                .to_string();
            kind["properties"][key.as_str()] = serde_json::json!({ "not": { "type": "null" } });
        }
        Ok(())
    }
}

/// Gives every parameter `name` in `location` (`path`, `query`) the
/// pattern of what its parser takes.
fn pattern_params(
    doc: &mut serde_json::Value,
    location: &str,
    name: &str,
    pattern: &str,
) -> Result<(), String> {
    let paths = doc
        .pointer_mut("/paths")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("no paths")?;
    let mut found = false;
    let operations = paths
        .values_mut()
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        // `get_mut`, not indexing: indexing a missing key would write a
        // `null` `parameters` into every operation without any.
        let parameters = operation
            .get_mut("parameters")
            .and_then(serde_json::Value::as_array_mut)
            .into_iter()
            .flatten();
        for param in parameters.filter(|p| p["name"] == name && p["in"] == location) {
            param["schema"]["pattern"] = serde_json::Value::from(pattern);
            found = true;
        }
    }
    if found {
        Ok(())
    } else {
        Err(format!("no {location} parameter {name}"))
    }
}

/// The realtime socket's `events` filter: a comma-separated list of event
/// types, blanks and spaces around them allowed, as `ws::parse_types`
/// reads it.
fn pattern_ws_events(doc: &mut serde_json::Value) -> Result<(), String> {
    let names: Vec<String> = EventType::ALL
        .iter()
        .map(|t| t.as_str().replace('.', r"\."))
        .collect();
    let one = format!("({})?", names.join("|"));
    let pattern = format!("^ *{one} *(, *{one} *)*$");
    let parameters = doc
        .pointer_mut("/paths/~1ws/get/parameters")
        .and_then(serde_json::Value::as_array_mut)
        .ok_or("no parameters on /ws")?;
    let events = parameters
        .iter_mut()
        .find(|p| p["name"] == "events" && p["in"] == "query")
        .ok_or("no events parameter on /ws")?;
    events["schema"]["pattern"] = serde_json::Value::from(pattern);
    Ok(())
}

/// What the group requests' schemas (and the contact check's) cannot say
/// through utoipa: the numbers' pattern, and "exactly one of" for the participant lists and
/// for an invite's code or link (the other keys absent or `null`).
fn shape_groups(doc: &mut serde_json::Value) -> Result<(), String> {
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("no schemas")?;
    let phone = serde_json::json!({ "type": "string", "pattern": PHONE_PATTERN });
    // Exactly one key present and not null: each alternative wants its
    // own, and `oneOf` refuses a body that two alternatives take. (In the
    // shape of `SendMessageRequest`'s kinds, which client generators read.)
    let exactly_one = |keys: &[&str]| {
        let alternatives: Vec<serde_json::Value> = keys
            .iter()
            .map(|key| {
                serde_json::json!({
                    "type": "object",
                    "required": [key],
                    "properties": { *key: { "not": { "type": "null" } } },
                })
            })
            .collect();
        serde_json::Value::from(alternatives)
    };
    let check = schemas
        .get_mut("CheckContactsRequest")
        .ok_or("no CheckContactsRequest")?;
    check["properties"]["phones"]["items"] = phone.clone();
    let create = schemas
        .get_mut("CreateGroupRequest")
        .ok_or("no CreateGroupRequest")?;
    create["properties"]["participants"]["items"] = phone.clone();
    let answer = schemas
        .get_mut("AnswerRequestsRequest")
        .ok_or("no AnswerRequestsRequest")?;
    answer["properties"]["participants"]["items"] = phone.clone();

    const LISTS: [&str; 4] = ["add", "remove", "promote", "demote"];
    let participants = schemas
        .get_mut("ParticipantsRequest")
        .ok_or("no ParticipantsRequest")?;
    for list in LISTS {
        participants["properties"][list]["items"] = phone.clone();
        participants["properties"][list]["minItems"] = serde_json::Value::from(1);
    }
    participants["oneOf"] = exactly_one(&LISTS);

    let join = schemas.get_mut("JoinRequest").ok_or("no JoinRequest")?;
    join["properties"]["code"]["pattern"] = serde_json::Value::from(INVITE_CODE_PATTERN);
    join["properties"]["link"]["pattern"] = serde_json::Value::from(INVITE_LINK_PATTERN);
    join["oneOf"] = exactly_one(&["code", "link"]);
    Ok(())
}

/// An `http` or `https` URL whose host is a name or an IPv4 address: what
/// the gateway accepts for webhooks and media (and a little less: it also
/// takes IPv6 literals and names the URL standard rewrites).
const URL_PATTERN: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3})(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?([/?#][!-~]*)?$";
/// Standard base64 with padding, canonical (the decoder refuses stray
/// bits in the last character) and not empty.
const BASE64_PATTERN: &str = r"^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)$";
/// A document's name: 1 to 255 characters, no slash, backslash or control
/// character, not `.` or `..`.
const FILE_NAME_PATTERN: &str = r"^([^/\\\u0000-\u001F\u007F-\u009F.][^/\\\u0000-\u001F\u007F-\u009F]{0,254}|\.[^/\\\u0000-\u001F\u007F-\u009F.][^/\\\u0000-\u001F\u007F-\u009F]{0,253}|\.\.[^/\\\u0000-\u001F\u007F-\u009F]{1,253})$";

/// The media kinds, with the mime types each takes (`MediaKind::accepts_mime`,
/// written as `type/subtype` tokens) and whether it takes a caption.
const MEDIA_KINDS: [(&str, &str, bool); 6] = [
    ("image", r"^image/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$", true),
    ("video", r"^video/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$", true),
    ("audio", r"^audio/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$", false),
    ("voice", r"^audio/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$", false),
    (
        "document",
        r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$",
        true,
    ),
    ("sticker", r"^image/webp$", false),
];

/// What a send request's rules between fields are, as schemas: each media
/// kind its own payload (caption and file name only where the kind takes
/// them, its mime types, exactly one of `url` and `base64`), `reply_to`
/// only with text and media, and the multipart form: a media message
/// whose bytes are the `file` part, or any message without one.
fn shape_messages(doc: &mut serde_json::Value) -> Result<(), String> {
    use serde_json::{Value, json};
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
        .ok_or("no schemas")?;
    let media = schemas
        .get("MediaPayload")
        .cloned()
        .ok_or("no MediaPayload")?;
    let null = json!({ "type": "null" });
    for (kind, mime, caption) in MEDIA_KINDS {
        let name = format!("{}{}", kind[..1].to_ascii_uppercase(), &kind[1..]);
        let mut payload = media.clone();
        let props = payload
            .get_mut("properties")
            .and_then(Value::as_object_mut)
            .ok_or("MediaPayload without properties")?;
        if !caption {
            props.insert("caption".into(), null.clone());
        }
        if kind == "document" {
            props["file_name"]["pattern"] = Value::from(FILE_NAME_PATTERN);
        } else {
            props.insert("file_name".into(), null.clone());
        }
        props["mime_type"]["pattern"] = Value::from(mime);
        props["url"]["pattern"] = Value::from(URL_PATTERN);
        props["url"]["format"] = Value::from("uri");
        props["base64"]["pattern"] = Value::from(BASE64_PATTERN);
        let mut from_file = payload.clone();
        if let Some(props) = from_file
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        {
            props.insert("url".into(), null.clone());
            props.insert("base64".into(), null.clone());
        }
        from_file["description"] = Value::from(format!(
            "A {kind} whose bytes are the multipart request's `file` part."
        ));
        payload["oneOf"] = json!([
            { "required": ["url"], "properties": { "url": { "type": "string" }, "base64": { "type": "null" } } },
            { "required": ["base64"], "properties": { "base64": { "type": "string" }, "url": { "type": "null" } } },
        ]);
        payload["description"] = Value::from(format!(
            "A {kind}: its bytes from exactly one of `url` and `base64`."
        ));
        schemas.insert(format!("{name}Payload"), payload);
        schemas.insert(format!("{name}FilePayload"), from_file);
    }
    let request = schemas
        .get_mut("SendMessageRequest")
        .ok_or("no SendMessageRequest")?;
    let fields = request
        .pointer_mut("/allOf/0/properties")
        .and_then(Value::as_object_mut)
        .ok_or("SendMessageRequest without properties")?;
    let (to, reply_to) = (fields["to"].clone(), fields["reply_to"].clone());
    for (kind, _, _) in MEDIA_KINDS {
        let name = format!("{}{}", kind[..1].to_ascii_uppercase(), &kind[1..]);
        fields.insert(
            kind.into(),
            json!({ "oneOf": [{ "type": "null" }, { "$ref": format!("#/components/schemas/{name}Payload") }] }),
        );
    }
    // Only text and media quote a message.
    for kind in request
        .pointer_mut("/allOf/1/oneOf")
        .and_then(Value::as_array_mut)
        .ok_or("no oneOf of message kinds")?
    {
        let key = kind["required"][0].as_str().unwrap_or_default().to_string();
        if matches!(key.as_str(), "location" | "contact" | "reaction" | "poll") {
            kind["properties"]["reply_to"] = null.clone();
        }
    }
    let mut file_fields = serde_json::Map::new();
    file_fields.insert("to".into(), to);
    file_fields.insert("reply_to".into(), reply_to);
    let mut one_media = Vec::new();
    for (kind, _, _) in MEDIA_KINDS {
        let name = format!("{}{}", kind[..1].to_ascii_uppercase(), &kind[1..]);
        file_fields.insert(
            kind.into(),
            json!({ "oneOf": [{ "type": "null" }, { "$ref": format!("#/components/schemas/{name}FilePayload") }] }),
        );
        one_media.push(json!({
            "required": [kind],
            "properties": { kind: { "not": { "type": "null" } } }
        }));
    }
    schemas.insert(
        "SendMediaFileRequest".into(),
        json!({
            "description": "The `message` part of a multipart send: `to` and one media kind, \
                            whose bytes are the `file` part.",
            "type": "object",
            "additionalProperties": false,
            "required": ["to"],
            "properties": Value::Object(file_fields),
            "oneOf": one_media,
        }),
    );
    let multipart = doc
        .pointer_mut(
            "/paths/~1sessions~1{id}~1messages/post/requestBody/content/multipart~1form-data",
        )
        .ok_or("no multipart send")?;
    *multipart = json!({
        "schema": {
            "type": "object",
            "required": ["message"],
            "additionalProperties": false,
            "properties": {
                "message": {},
                "file": {
                    "type": "string",
                    "contentMediaType": "application/octet-stream",
                    "minLength": 1
                }
            },
            "oneOf": [
                {
                    "required": ["file"],
                    "properties": { "message": { "$ref": "#/components/schemas/SendMediaFileRequest" } }
                },
                {
                    "not": { "required": ["file"] },
                    "properties": { "message": { "$ref": "#/components/schemas/SendMessageRequest" } }
                }
            ]
        },
        "encoding": { "message": { "contentType": "application/json" } }
    });
    Ok(())
}

/// Gives each event of `EventData` (and its `data`) a schema of its own,
/// named after the event (`session.status`: `SessionStatusEvent`,
/// `SessionStatusData`), and makes `Envelope` the envelope's own fields
/// (`EnvelopeFields`) plus one of the events. Client generators name
/// inline schemas by position and cannot take `allOf` of a `oneOf`;
/// openapi-python-client dropped both schemas as utoipa writes them.
fn name_events(doc: &mut serde_json::Value) -> Result<(), String> {
    let schemas = doc
        .pointer_mut("/components/schemas")
        .and_then(serde_json::Value::as_object_mut)
        .ok_or("no schemas")?;
    let variants = schemas
        .get_mut("EventData")
        .and_then(|e| e.get_mut("oneOf"))
        .and_then(serde_json::Value::as_array_mut)
        .map(std::mem::take)
        .ok_or("EventData is not a oneOf")?;
    let mut refs = Vec::new();
    for mut variant in variants {
        let event = variant
            .pointer("/properties/event/enum/0")
            .and_then(serde_json::Value::as_str)
            .ok_or("an event without its name")?;
        let name: String = event
            .split(['.', '_'])
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        if let Some(data) = variant.pointer_mut("/properties/data")
            && data.get("$ref").is_none()
        {
            let inline = std::mem::replace(
                data,
                serde_json::json!({ "$ref": format!("#/components/schemas/{name}Data") }),
            );
            schemas.insert(format!("{name}Data"), inline);
        }
        variant["title"] = serde_json::Value::from(format!("{name}Event"));
        schemas.insert(format!("{name}Event"), variant);
        refs.push(serde_json::json!({ "$ref": format!("#/components/schemas/{name}Event") }));
    }
    if let Some(event_data) = schemas.get_mut("EventData") {
        event_data["oneOf"] = serde_json::Value::Array(refs.clone());
    }
    let envelope = schemas.get_mut("Envelope").ok_or("no Envelope")?;
    let fields = envelope
        .pointer_mut("/allOf/1")
        .map(serde_json::Value::take)
        .ok_or("Envelope is not allOf of the event and its fields")?;
    envelope["allOf"] = serde_json::json!([{ "$ref": "#/components/schemas/EnvelopeFields" }]);
    envelope["oneOf"] = serde_json::Value::Array(refs);
    schemas.insert("EnvelopeFields".into(), fields);
    Ok(())
}

/// The document served at `/api/v1/openapi.json`: what the handlers'
/// annotations say, with [`CONSTRAINTS`] written in. Built as JSON, since
/// utoipa's types have no place for some of what is written (`not`).
#[cfg(test)]
pub(crate) fn document() -> serde_json::Value {
    served(super::api().split_for_parts().1)
}

/// The document as the annotations say it: [`ApiDoc`] with the paths
/// that `http::api` routes, and the modifiers, which need those paths
/// (so they run here, not in the derive, which sees no paths).
fn annotated(mut openapi: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let modifiers: [&dyn Modify; 3] = [&BearerAuth, &CommonResponses, &OneKindPerMessage];
    for modifier in modifiers {
        modifier.modify(&mut openapi);
    }
    openapi
}

/// [`document`], from the paths of the router that serves it.
pub(crate) fn served(routed: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(annotated(routed)).unwrap_or_default();
    if let Err(error) = Constraints::apply(&mut doc) {
        // The tests apply every constraint; a release cannot get here.
        tracing::error!(%error, "the OpenAPI document's constraints did not apply");
    }
    doc
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
mod tests;
