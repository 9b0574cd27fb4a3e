//! The admin API's group calls: a phone creates a group, changes its
//! members, subject and settings, shares or resets its invite, joins by
//! code and leaves; and a phone's privacy setting for being added.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use super::{AdminError, Reply, handle, ok};
use crate::error::SimError;
use crate::server::Server;

pub(super) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/admin/groups", post(create))
        .route("/admin/groups/join", post(join))
        .route("/admin/groups/{jid}", get(info))
        .route("/admin/groups/{jid}/participants", post(participants))
        .route("/admin/groups/{jid}/subject", post(subject))
        .route("/admin/groups/{jid}/settings", post(settings))
        .route("/admin/groups/{jid}/invite", post(invite))
        .route("/admin/groups/{jid}/leave", post(leave))
        .route("/admin/groups/{jid}/requests", post(requests))
        .route("/admin/groups/{jid}/picture", post(picture))
        .route("/admin/phones/{phone}/group-privacy", post(privacy))
}

#[derive(Deserialize)]
struct CreateBody {
    creator: String,
    subject: String,
    #[serde(default)]
    participants: Vec<String>,
}

/// `{"jid", "participants": [{"jid", "phone", "error", "add_request"}]}`.
async fn create(
    State(s): State<Arc<Server>>,
    body: Result<Json<CreateBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let members: Vec<&str> = body.participants.iter().map(String::as_str).collect();
    let (jid, results) = handle(s).group_create(&body.creator, &body.subject, &members)?;
    Ok(Json(json!({ "jid": jid, "participants": results })))
}

async fn info(State(s): State<Arc<Server>>, Path(jid): Path<String>) -> Reply {
    let info = handle(s).group_info(&jid).ok_or(SimError::GroupRefused {
        code: 404,
        text: "item-not-found",
    })?;
    Ok(Json(json!(info)))
}

#[derive(Deserialize)]
struct ParticipantsBody {
    /// The phone making the change (an admin).
    by: String,
    /// `add`, `remove`, `promote` or `demote`.
    action: String,
    participants: Vec<String>,
}

async fn participants(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<ParticipantsBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let people: Vec<&str> = body.participants.iter().map(String::as_str).collect();
    let results = handle(s).group_change(&jid, &body.by, &body.action, &people)?;
    Ok(Json(json!({ "participants": results })))
}

#[derive(Deserialize)]
struct SubjectBody {
    by: String,
    subject: String,
}

async fn subject(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<SubjectBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).group_set_subject(&jid, &body.by, &body.subject)?;
    ok()
}

#[derive(Deserialize)]
struct SettingsBody {
    by: String,
    announce: Option<bool>,
    locked: Option<bool>,
}

async fn settings(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<SettingsBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).group_set(&jid, &body.by, body.announce, body.locked)?;
    ok()
}

#[derive(Deserialize)]
struct InviteBody {
    by: String,
    #[serde(default)]
    reset: bool,
}

/// `{"code"}`.
async fn invite(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<InviteBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let code = handle(s).group_invite(&jid, &body.by, body.reset)?;
    Ok(Json(json!({ "code": code })))
}

#[derive(Deserialize)]
struct PhoneBody {
    phone: String,
}

async fn leave(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<PhoneBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).group_leave(&jid, &body.phone)?;
    ok()
}

#[derive(Deserialize)]
struct JoinBody {
    phone: String,
    code: String,
}

/// `{"jid", "joined"}`: `joined` is false in an approval-mode group,
/// where the phone has asked to join instead.
async fn join(State(s): State<Arc<Server>>, body: Result<Json<JoinBody>, JsonRejection>) -> Reply {
    let Json(body) = body?;
    let (jid, joined) = handle(s).group_join_or_ask(&body.phone, &body.code)?;
    Ok(Json(json!({ "jid": jid, "joined": joined })))
}

#[derive(Deserialize)]
struct RequestsBody {
    /// The phone answering (an admin).
    by: String,
    approve: bool,
    participants: Vec<String>,
}

/// `{"participants": [...]}`: a result per person.
async fn requests(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<RequestsBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let people: Vec<&str> = body.participants.iter().map(String::as_str).collect();
    let results = handle(s).group_answer_requests(&jid, &body.by, body.approve, &people)?;
    Ok(Json(json!({ "participants": results })))
}

#[derive(Deserialize)]
struct PrivacyBody {
    /// Refuse being added to groups (an add gets an invite instead).
    restricted: bool,
}

async fn privacy(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<PrivacyBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, AdminError> {
    let Json(body) = body?;
    handle(s).set_group_add_restricted(&phone, body.restricted)?;
    ok()
}

#[derive(Deserialize)]
struct PictureBody {
    by: String,
    /// The JPEG, base64; `null` removes the picture.
    jpeg: Option<String>,
}

/// `{"id"}`: the new picture's id (empty on removal).
async fn picture(
    State(s): State<Arc<Server>>,
    Path(jid): Path<String>,
    body: Result<Json<PictureBody>, JsonRejection>,
) -> Reply {
    use base64::Engine;
    let Json(body) = body?;
    let jpeg = body
        .jpeg
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b))
        .transpose()
        .map_err(|e| SimError::Invalid(format!("jpeg is not base64: {e}")))?;
    let id = handle(s).group_set_picture(&jid, &body.by, jpeg)?;
    Ok(Json(json!({ "id": id })))
}
