//! The document's shape: every endpoint, reference, common answer,
//! constraint and pattern where it belongs.

use super::*;

#[test]
fn the_document_is_openapi_3_1_and_lists_every_endpoint() -> Result<(), serde_json::Error> {
    let doc = document();
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

/// Every chat a body or path names carries the pattern of what the
/// parser takes (which `the_pattern_is_the_parser` holds it to).
#[test]
fn chats_carry_the_parsers_patterns() {
    let doc = document();
    for (pointer, pattern) in [
        (
            "/components/schemas/SendMessageRequest/allOf/0/properties/to/pattern",
            CHAT_PATTERN,
        ),
        (
            "/components/schemas/SendMediaFileRequest/properties/to/pattern",
            CHAT_PATTERN,
        ),
        (
            "/components/schemas/MarkReadRequest/properties/sender/pattern",
            PERSON_PATTERN,
        ),
        (
            "/paths/~1sessions~1{id}~1chats~1{chat}~1read/post/parameters/1/schema/pattern",
            CHAT_PATTERN,
        ),
        (
            "/paths/~1sessions~1{id}~1chats~1{chat}~1typing/post/parameters/1/schema/pattern",
            CHAT_PATTERN,
        ),
    ] {
        assert_eq!(doc.pointer(pointer), Some(&pattern.into()), "{pointer}");
    }
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
                        ("$ref", serde_json::Value::String(target)) => found.push(target.clone()),
                        _ => refs(value, found),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let doc = document();
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
fn every_secured_operation_documents_401_and_every_json_body_415() -> Result<(), serde_json::Error>
{
    let doc = document();
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
fn every_constraint_applies() -> Result<(), serde_json::Error> {
    let mut doc = serde_json::to_value(annotated(crate::http::api().split_for_parts().1))?;
    assert_eq!(Constraints::apply(&mut doc), Ok(()));
    assert_eq!(doc, document());
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["MarkReadRequest"]["properties"]["message_ids"]["items"]["maxLength"],
        128
    );
    assert_eq!(
        schemas["CreateWebhook"]["properties"]["events"]["items"]["enum"][0],
        "*"
    );
    let kinds = schemas["SendMessageRequest"]["allOf"][1]["oneOf"].to_string();
    assert!(
        kinds.contains(r#""text":{"not":{"type":"null"}}"#),
        "{kinds}"
    );
    Ok(())
}

#[test]
fn incoming_events_and_resume_are_described() -> Result<(), serde_json::Error> {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    for name in ["IncomingMessage", "IncomingContent", "Sender", "Target"] {
        assert!(schemas.get(name).is_some(), "missing schema {name}");
    }
    let events = schemas["EventType"].to_string();
    for name in [
        "message.received",
        "message.reaction",
        "message.poll_vote",
        "message.edited",
        "message.revoked",
    ] {
        assert!(events.contains(name), "EventType lacks {name}");
    }
    let ws = doc["paths"]["/ws"]["get"]["parameters"].to_string();
    assert!(ws.contains("since"), "the resume parameter: {ws}");
    Ok(())
}

#[test]
fn the_socket_filter_names_every_event_type() -> Result<(), regex::Error> {
    let doc = document();
    let pattern = doc["paths"]["/ws"]["get"]["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "events"))
        .and_then(|p| p["schema"]["pattern"].as_str())
        .unwrap_or_default()
        .to_string();
    let filter = regex::Regex::new(&pattern)?;
    for t in EventType::ALL {
        let name = t.as_str();
        assert!(filter.is_match(name), "{name} is not in {pattern}");
        assert!(filter.is_match(&format!(" session.status , {name},")));
    }
    for bad in ["nope", "session.status;message.status", "session.statusx"] {
        assert!(!filter.is_match(bad), "{bad:?}");
    }
    Ok(())
}
