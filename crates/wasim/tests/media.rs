//! Media through the simulator: upload to its blob store, send, download.

// The whole crate is test code: its helpers, too, may fail the test by
// panicking (clippy.toml only exempts `#[test]` functions and `cfg(test)`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use wacore::types::events::Event;
use whatsapp_rust::Jid;
use whatsapp_rust::waproto::whatsapp as wa;

const ALICE: &str = "15550001111";
const BOB: &str = "15550002222";

async fn linked(sim: &Simulator, phone: &str) -> TestClient {
    let mut client = TestClient::new(sim).await;
    client.link(&sim.handle(), phone).await;
    client
}

/// The image message a sender builds from its upload.
fn image_message(up: &whatsapp_rust::upload::UploadResponse, caption: &str) -> wa::Message {
    wa::Message {
        image_message: whatsapp_rust::buffa::MessageField::some(wa::message::ImageMessage {
            url: Some(up.url.clone()),
            direct_path: Some(up.direct_path.clone()),
            media_key: Some(up.media_key.to_vec()),
            file_enc_sha256: Some(up.file_enc_sha256.to_vec()),
            file_sha256: Some(up.file_sha256.to_vec()),
            file_length: Some(up.file_length),
            media_key_timestamp: Some(up.media_key_timestamp),
            mimetype: Some("image/jpeg".into()),
            caption: Some(caption.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_round_trips_through_the_media_endpoint() {
    let sim = simulator().await;
    let alice = linked(&sim, ALICE).await;
    let mut bob = linked(&sim, BOB).await;

    let picture: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let up = alice
        .client
        .upload(
            picture.clone(),
            wacore::download::MediaType::Image,
            whatsapp_rust::UploadOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("upload failed: {e}"));
    alice
        .client
        .send_message(Jid::pn(BOB), image_message(&up, "a picture"))
        .await
        .unwrap_or_else(|e| panic!("sending the image failed: {e}"));

    let image = bob
        .wait_for("the image message", |e| {
            let Event::Messages(batch) = e else {
                return None;
            };
            batch
                .iter()
                .find_map(|m| m.message.image_message.as_option().cloned())
        })
        .await;
    assert_eq!(image.caption.as_deref(), Some("a picture"));
    let downloaded = bob
        .client
        .download(&image)
        .await
        .unwrap_or_else(|e| panic!("download failed: {e}"));
    assert_eq!(downloaded.len(), picture.len());
    assert!(downloaded == picture, "the downloaded image differs");

    alice.stop().await;
    bob.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store_serves_uploads_and_404s_the_rest() {
    use wacore::net::{HttpClient, HttpRequest};
    let sim = simulator().await;
    let http = LoopbackHttpClient::new();
    // As the client builds it: https, which the loopback client turns into http.
    let base = format!("https://{}", sim.addr());

    let missing = http
        .execute(HttpRequest::get(format!(
            "{base}/v/t62.7118-24/nothing.enc?auth=x"
        )))
        .await
        .unwrap_or_else(|e| panic!("GET failed: {e}"));
    assert_eq!(missing.status_code, 404);

    let upload = HttpRequest::post(format!(
        "{base}/mms/image/abc_DEF-1?auth=wasim&token=abc_DEF-1"
    ))
    .with_body(b"encrypted bytes".to_vec());
    let answer = http
        .execute(upload)
        .await
        .unwrap_or_else(|e| panic!("POST failed: {e}"));
    assert_eq!(answer.status_code, 200);
    let answer: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("upload answer is not JSON: {e}"));
    let direct_path = answer["direct_path"]
        .as_str()
        .unwrap_or_else(|| panic!("no direct_path in {answer}"));
    assert_eq!(answer["url"], format!("{base}{direct_path}"));

    let blob = http
        .execute(HttpRequest::get(format!("{base}{direct_path}?auth=wasim")))
        .await
        .unwrap_or_else(|e| panic!("GET failed: {e}"));
    assert_eq!(blob.status_code, 200);
    assert_eq!(blob.body, b"encrypted bytes");
}
