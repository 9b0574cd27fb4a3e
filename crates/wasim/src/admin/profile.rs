//! What a phone shows others of itself (about text, profile picture), whom
//! it blocked, and whom its user saved in the address book.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::{AdminError, Reply, handle};
use crate::error::SimError;
use crate::server::Server;

pub(super) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/admin/phones/{phone}/about", post(about))
        .route("/admin/phones/{phone}/picture", post(picture))
        .route("/admin/phones/{phone}/blocklist", get(blocklist))
        .route(
            "/admin/phones/{phone}/contacts/{contact}",
            post(save_contact),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AboutBody {
    /// `null`: none.
    about: Option<String>,
}

async fn about(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<AboutBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).set_about(&phone, body.about)?;
    super::ok()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PictureBody {
    /// The image, base64; `null` removes the picture.
    image_base64: Option<String>,
    /// Shown to nobody.
    #[serde(default)]
    hidden: bool,
    /// Phones whose companions get the `picture` notification.
    #[serde(default)]
    notify: Vec<String>,
}

async fn picture(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<PictureBody>, JsonRejection>,
) -> Reply {
    use base64::Engine as _;
    let Json(body) = body?;
    let image = body
        .image_base64
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|e| AdminError::from(SimError::Invalid(format!("image_base64: {e}"))))?
        .map(bytes::Bytes::from);
    let id = handle(s).set_picture(&phone, image, body.hidden, &body.notify)?;
    Ok(Json(json!({ "id": id.map(|id| id.to_string()) })))
}

async fn blocklist(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let blocked = handle(s).blocklist(&phone)?;
    Ok(Json(json!({ "blocked": blocked })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveContactBody {
    /// `null`: removes the name.
    name: Option<String>,
}

async fn save_contact(
    State(s): State<Arc<Server>>,
    Path((phone, contact)): Path<(String, String)>,
    body: Result<Json<SaveContactBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s)
        .phone_save_contact(&phone, &contact, body.name)
        .await?;
    super::ok()
}
