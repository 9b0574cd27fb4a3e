//! A group's picture end to end: the session sets one (a JPEG body) and
//! removes it, a member's phone sets another; the simulator keeps what was
//! sent and every change reaches the session as `group.updated` with
//! `picture`; what is not a JPEG, too large, or not allowed is refused.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::messaging::has_whatsapp;

const ANNA: &str = "15550009001";
const BEN: &str = "15550009002";

/// A JPEG as far as anyone checks before decoding it: the start-of-image
/// and JFIF markers, some data, the end-of-image marker.
fn jpeg(fill: u8, len: usize) -> Vec<u8> {
    let mut bytes = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    bytes.resize(len.saturating_sub(2), fill);
    bytes.extend([0xFF, 0xD9]);
    bytes
}

async fn put_picture(
    gateway: &Gateway,
    uri: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let response = gateway
        .http
        .put(format!("{}{uri}", gateway.base))
        .bearer_auth(&gateway.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{uri}: {e}"));
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_picture_is_set_and_removed_and_every_change_is_an_event() {
    let (sim, _dir, gateway, mut events) = world(Limits::default()).await;
    let session = link_by_qr(&gateway, &mut events, &sim, ANNA).await;
    has_whatsapp(&sim, BEN);
    let handle = sim.handle();
    let groups = format!("/sessions/{session}/groups");
    let (status, created) = gateway
        .call(
            Method::POST,
            &groups,
            Some(json!({ "subject": "Pictures", "participants": [BEN] })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let group = created["group"]["id"].as_str().unwrap().to_owned();
    let picture = format!("{groups}/{group}/picture");

    // The session sets one: WhatsApp keeps those bytes, the session hears
    // of it.
    let first = jpeg(1, 2048);
    let (status, set) = put_picture(&gateway, &picture, "image/jpeg", first.clone()).await;
    assert_eq!(status, 200, "{set}");
    let id = set["picture_id"].as_str().unwrap().to_owned();
    assert!(!id.is_empty(), "{set}");
    assert_eq!(handle.group_picture(&group), Some(first));
    let updated = events
        .wait("picture set", &session, |e| {
            e["event"] == "group.updated" && e["data"]["changes"]["picture"] == "set"
        })
        .await;
    assert_eq!(updated["data"]["group"], group.as_str(), "{updated}");
    assert_eq!(updated["data"]["by"]["phone"], ANNA, "{updated}");

    // Ben, a member, changes it from his phone.
    let second = jpeg(2, 4096);
    handle
        .group_set_picture(&group, BEN, Some(second.clone()))
        .unwrap();
    events
        .wait("ben's picture", &session, |e| {
            e["event"] == "group.updated"
                && e["data"]["changes"]["picture"] == "set"
                && e["data"]["by"]["phone"] == BEN
        })
        .await;
    assert_eq!(handle.group_picture(&group), Some(second));

    // Removed.
    let (status, body) = gateway.call(Method::DELETE, &picture, None).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(handle.group_picture(&group), None);
    events
        .wait("picture removed", &session, |e| {
            e["event"] == "group.updated" && e["data"]["changes"]["picture"] == "removed"
        })
        .await;

    // Refusals: not a JPEG, not sent as one, too large, no such group, and
    // a locked group of Ben's where the session is no admin.
    let (status, error) =
        put_picture(&gateway, &picture, "image/jpeg", b"GIF89a....".to_vec()).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (422, &json!("invalid_picture")),
        "{error}"
    );
    let (status, error) = put_picture(&gateway, &picture, "image/png", jpeg(3, 100)).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (422, &json!("invalid_picture")),
        "{error}"
    );
    let (status, error) =
        put_picture(&gateway, &picture, "image/jpeg", jpeg(4, 1024 * 1024 + 1)).await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (413, &json!("payload_too_large")),
        "{error}"
    );
    let (status, error) = put_picture(
        &gateway,
        &format!("{groups}/120363099999999999@g.us/picture"),
        "image/jpeg",
        jpeg(5, 100),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (404, &json!("group_not_found")),
        "{error}"
    );
    let (theirs, _) = handle.group_create(BEN, "Ben's", &[ANNA]).unwrap();
    events
        .wait("ben's group joined", &session, |e| {
            e["event"] == "group.joined" && e["data"]["group"] == theirs.as_str()
        })
        .await;
    handle.group_set(&theirs, BEN, None, Some(true)).unwrap();
    events
        .wait("ben's group locked", &session, |e| {
            e["event"] == "group.updated" && e["data"]["group"] == theirs.as_str()
        })
        .await;
    let (status, error) = put_picture(
        &gateway,
        &format!("{groups}/{theirs}/picture"),
        "image/jpeg",
        jpeg(6, 100),
    )
    .await;
    assert_eq!(
        (status, &error["error"]["code"]),
        (403, &json!("not_group_admin")),
        "{error}"
    );
    assert_eq!(handle.group_picture(&theirs), None);

    // Not working: a 409 naming the status.
    let (status, _) = gateway
        .call(Method::POST, &format!("/sessions/{session}/stop"), None)
        .await;
    assert_eq!(status, 200);
    let (status, error) = gateway.call(Method::DELETE, &picture, None).await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(error["error"]["details"]["status"], "stopped", "{error}");
    gateway.stop().await;
}
