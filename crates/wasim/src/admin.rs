//! The admin HTTP API: drive the fake phones and inject faults.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::SimHandle;
use crate::error::SimError;
use crate::server::Server;

mod chats;
mod groups;
mod profile;

pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/admin/phones/{phone}/register", post(register))
        .route("/admin/phones/{phone}/scan", post(scan))
        .route("/admin/phones/{phone}/ban", post(ban))
        .route("/admin/phones/{phone}/devices", post(provision))
        .route(
            "/admin/phones/{phone}/messages",
            get(phone_messages).post(phone_send),
        )
        .route(
            "/admin/phones/{phone}/messages/{id}/media",
            get(phone_media),
        )
        .route("/admin/phones/{phone}/media", post(phone_send_media))
        .route("/admin/media/expire", post(expire_media))
        .route("/admin/phones/{phone}/messages/{id}/play", post(phone_play))
        .route("/admin/phones/{phone}/read", post(phone_read))
        .route("/admin/phones/{phone}/receipts", get(phone_receipts))
        .route("/admin/phones/{phone}/chat-states", get(phone_chat_states))
        .route(
            "/admin/phones/{phone}/calls",
            get(phone_calls).post(phone_call),
        )
        .route(
            "/admin/phones/{phone}/calls/{call_id}/hang-up",
            post(phone_hang_up),
        )
        .route("/admin/phones/{phone}/presence", post(phone_presence))
        .route("/admin/phones/{phone}/typing", post(phone_typing))
        .route(
            "/admin/phones/{phone}/history",
            get(phone_history).post(seed_history),
        )
        .route("/admin/phones/{phone}/enter-code", post(enter_code))
        .route("/admin/devices", get(devices))
        .route("/admin/devices/{phone}/{device}/drop", post(drop_device))
        .route("/admin/devices/{phone}/{device}/stall", post(stall_device))
        .route(
            "/admin/devices/{phone}/{device}/stream-error",
            post(stream_error),
        )
        .route("/admin/devices/{phone}/{device}/logout", post(logout))
        .route("/admin/faults/drop-all", post(drop_all))
        .route("/admin/faults/outage", post(outage))
        .route("/admin/faults/delay", post(delay))
        .route("/admin/faults/nack", post(nack))
        .route("/admin/stats", get(stats))
        .merge(groups::routes())
        .merge(chats::routes())
        .merge(profile::routes())
}

fn handle(server: Arc<Server>) -> SimHandle {
    SimHandle { server }
}

/// Admin errors: `{"error": {"code", "message"}}` with a 4xx status.
pub(crate) struct AdminError(StatusCode, &'static str, String);

impl From<SimError> for AdminError {
    fn from(e: SimError) -> Self {
        let status = match e {
            SimError::NoSuchPhone
            | SimError::NoSuchDevice
            | SimError::NoPendingCode
            | SimError::NoSuchMessage
            | SimError::NoMedia => StatusCode::NOT_FOUND,
            SimError::StaleQr | SimError::QrAlreadyUsed | SimError::DeviceOffline => {
                StatusCode::CONFLICT
            }
            SimError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            SimError::GroupRefused { code, .. } => {
                StatusCode::from_u16(code).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
            }
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        Self(status, e.code(), e.to_string())
    }
}

impl From<JsonRejection> for AdminError {
    fn from(e: JsonRejection) -> Self {
        Self(e.status(), "invalid_body", e.body_text())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.1, "message": self.2}});
        (self.0, Json(body)).into_response()
    }
}

type Reply = Result<Json<serde_json::Value>, AdminError>;

fn ok() -> Reply {
    Ok(Json(json!({"ok": true})))
}

/// Adds chats to the phone's history, sent to companions linked later.
async fn seed_history(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<crate::HistorySeed>, JsonRejection>,
) -> Reply {
    let Json(seed) = body?;
    let messages = handle(s).seed_history(&phone, seed)?;
    Ok(Json(json!({ "messages": messages })))
}

/// The history chunks the phone sent its companions.
async fn phone_history(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let chunks = handle(s).history_chunks(&phone)?;
    Ok(Json(json!({ "chunks": chunks })))
}

async fn register(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    handle(s).register_phone(&phone)?;
    ok()
}

#[derive(Deserialize)]
struct ScanBody {
    qr: String,
}

async fn scan(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<ScanBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).scan_qr(&phone, &body.qr)?;
    ok()
}

#[derive(Deserialize)]
struct EnterCodeBody {
    code: String,
}

/// Answers once the phone knows the outcome: `{"ok": true, "outcome":
/// "accepted" | "wrong_code" | "no_answer"}`.
async fn enter_code(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<EnterCodeBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let outcome = handle(s).enter_code(&phone, &body.code).await?;
    Ok(Json(json!({ "ok": true, "outcome": outcome })))
}

#[derive(Deserialize)]
struct SendBody {
    /// A phone number or JID.
    to: String,
    text: String,
}

/// `{"ok": true, "id": "<message id>"}` once the message is on its way.
async fn phone_send(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<SendBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let id = if body.to.ends_with("@g.us") {
        let text = waproto::whatsapp::Message {
            conversation: Some(body.text),
            ..Default::default()
        };
        handle(s).phone_send_group(&phone, &body.to, text).await?
    } else {
        handle(s)
            .phone_send_text(&phone, &body.to, &body.text)
            .await?
    };
    Ok(Json(json!({ "ok": true, "id": id })))
}

#[derive(Deserialize)]
struct SendMediaBody {
    /// A phone number or JID.
    to: String,
    kind: crate::AttachmentKind,
    /// The file, base64.
    base64: String,
    mimetype: String,
    caption: Option<String>,
    file_name: Option<String>,
}

/// `{"ok": true, "id": "<message id>", "direct_path": "..."}` once the
/// attachment is uploaded and the message on its way.
async fn phone_send_media(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<SendMediaBody>, JsonRejection>,
) -> Reply {
    use base64::Engine as _;
    let Json(body) = body?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body.base64.as_bytes())
        .map_err(|e| SimError::Invalid(format!("base64: {e}")))?;
    let attachment = crate::Attachment {
        kind: body.kind,
        bytes,
        mimetype: body.mimetype,
        caption: body.caption,
        file_name: body.file_name,
    };
    let sent = handle(s)
        .phone_send_media(&phone, &body.to, &attachment)
        .await?;
    Ok(Json(
        json!({ "ok": true, "id": sent.id, "direct_path": sent.direct_path }),
    ))
}

#[derive(Deserialize)]
struct ExpireBody {
    direct_path: String,
}

/// The blob store forgets a file: `{"ok": true, "expired": bool}`.
async fn expire_media(
    State(s): State<Arc<Server>>,
    body: Result<Json<ExpireBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let expired = handle(s).expire_media(&body.direct_path);
    Ok(Json(json!({ "ok": true, "expired": expired })))
}

/// `{"messages": [..]}`: what the phone received, decrypted, oldest first.
async fn phone_messages(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let messages = handle(s).phone_messages(&phone)?;
    Ok(Json(json!({ "messages": messages })))
}

/// The decrypted attachment, as `application/octet-stream` or its mimetype.
async fn phone_media(
    State(s): State<Arc<Server>>,
    Path((phone, id)): Path<(String, String)>,
) -> Result<Response, AdminError> {
    let h = handle(s);
    let bytes = h.phone_media(&phone, &id)?;
    let mimetype = h
        .phone_messages(&phone)?
        .into_iter()
        .find(|m| m.id == id)
        .and_then(|m| m.content["mimetype"].as_str().map(str::to_owned))
        .and_then(|m| axum::http::HeaderValue::from_str(&m).ok())
        .unwrap_or(axum::http::HeaderValue::from_static(
            "application/octet-stream",
        ));
    Ok(([(axum::http::header::CONTENT_TYPE, mimetype)], bytes).into_response())
}

async fn phone_play(
    State(s): State<Arc<Server>>,
    Path((phone, id)): Path<(String, String)>,
) -> Reply {
    handle(s).phone_play(&phone, &id)?;
    ok()
}

#[derive(Deserialize)]
struct ReadBody {
    /// Read these messages...
    #[serde(default)]
    ids: Option<Vec<String>>,
    /// ...or everything unread in this chat (a number or JID).
    #[serde(default)]
    chat: Option<String>,
}

/// `{"ok": true, "read": ["<id>", ..]}`: the ids a read receipt went out for.
async fn phone_read(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<ReadBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let h = handle(s);
    let read = match (body.ids, body.chat) {
        (Some(ids), None) => h.phone_read(&phone, &ids)?,
        (None, Some(chat)) => h.phone_read_chat(&phone, &chat)?,
        _ => {
            return Err(SimError::Invalid("give either \"ids\" or \"chat\"".into()).into());
        }
    };
    Ok(Json(json!({ "ok": true, "read": read })))
}

async fn phone_receipts(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let receipts = handle(s).phone_receipts(&phone)?;
    Ok(Json(json!({ "receipts": receipts })))
}

async fn phone_chat_states(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let states = handle(s).phone_chat_states(&phone)?;
    Ok(Json(json!({ "chat_states": states })))
}

#[derive(Deserialize)]
struct CallBody {
    /// A phone number or JID.
    to: String,
    #[serde(default)]
    video: bool,
}

/// `{"ok": true, "call_id": "..."}` once the offer is on its way to every
/// linked device of `to`.
async fn phone_call(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<CallBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let call_id = handle(s).phone_call(&phone, &body.to, body.video)?;
    Ok(Json(json!({ "ok": true, "call_id": call_id })))
}

/// The phone hangs up a call it placed, before it was answered.
async fn phone_hang_up(
    State(s): State<Arc<Server>>,
    Path((phone, call_id)): Path<(String, String)>,
) -> Reply {
    handle(s).phone_hang_up(&phone, &call_id)?;
    ok()
}

#[derive(Deserialize)]
struct PresenceBody {
    online: bool,
}

/// The phone's user comes online or goes offline.
async fn phone_presence(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<PresenceBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).set_phone_presence(&phone, body.online)?;
    ok()
}

#[derive(Deserialize)]
struct TypingBody {
    /// A phone number or JID.
    to: String,
    /// `composing`, `recording` or `paused`.
    state: String,
}

/// The phone's user types, records or stops in a chat.
async fn phone_typing(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<TypingBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    let typing = body.state.parse()?;
    handle(s).phone_typing(&phone, &body.to, typing)?;
    ok()
}

async fn phone_calls(State(s): State<Arc<Server>>, Path(phone): Path<String>) -> Reply {
    let calls = handle(s).phone_calls(&phone)?;
    Ok(Json(json!({ "calls": calls })))
}

#[derive(Deserialize)]
struct NackBody {
    phone: String,
    count: u32,
    /// WhatsApp's nack code; 463 (missing trusted-contact token) unless given.
    #[serde(default = "default_nack_code")]
    code: u16,
}

fn default_nack_code() -> u16 {
    463
}

async fn nack(State(s): State<Arc<Server>>, body: Result<Json<NackBody>, JsonRejection>) -> Reply {
    let Json(body) = body?;
    handle(s).nack_messages_to(&body.phone, body.count, body.code)?;
    ok()
}

#[derive(Deserialize)]
struct BanBody {
    /// How long the ban lasts; null lifts it.
    seconds: Option<u64>,
}

async fn ban(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<BanBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).ban(&phone, body.seconds)?;
    ok()
}

async fn devices(State(s): State<Arc<Server>>) -> Json<serde_json::Value> {
    Json(json!({ "devices": handle(s).devices() }))
}

async fn stats(State(s): State<Arc<Server>>) -> Json<serde_json::Value> {
    Json(json!(handle(s).stats()))
}

async fn drop_device(
    State(s): State<Arc<Server>>,
    Path((phone, device)): Path<(String, u16)>,
) -> Reply {
    handle(s).drop_device(&phone, device)?;
    ok()
}

async fn stall_device(
    State(s): State<Arc<Server>>,
    Path((phone, device)): Path<(String, u16)>,
) -> Reply {
    handle(s).stall_device(&phone, device)?;
    ok()
}

#[derive(Deserialize)]
struct StreamErrorBody {
    code: u16,
}

async fn stream_error(
    State(s): State<Arc<Server>>,
    Path((phone, device)): Path<(String, u16)>,
    body: Result<Json<StreamErrorBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).stream_error(&phone, device, body.code)?;
    ok()
}

async fn logout(State(s): State<Arc<Server>>, Path((phone, device)): Path<(String, u16)>) -> Reply {
    handle(s).logout_device(&phone, device)?;
    ok()
}

async fn drop_all(State(s): State<Arc<Server>>) -> Reply {
    let dropped = handle(s).drop_all();
    Ok(Json(json!({ "dropped": dropped })))
}

#[derive(Deserialize)]
struct MillisBody {
    millis: u64,
}

async fn outage(
    State(s): State<Arc<Server>>,
    body: Result<Json<MillisBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).outage(Duration::from_millis(body.millis));
    ok()
}

#[derive(Deserialize)]
struct LatencyBody {
    millis: u64,
    #[serde(default)]
    jitter_millis: u64,
}

async fn delay(
    State(s): State<Arc<Server>>,
    body: Result<Json<LatencyBody>, JsonRejection>,
) -> Reply {
    let Json(body) = body?;
    handle(s).set_latency(
        Duration::from_millis(body.millis),
        Duration::from_millis(body.jitter_millis),
    );
    ok()
}

#[derive(Deserialize)]
struct ProvisionBody {
    /// The device's Noise static public key, base64.
    noise_pub: String,
}

async fn provision(
    State(s): State<Arc<Server>>,
    Path(phone): Path<String>,
    body: Result<Json<ProvisionBody>, JsonRejection>,
) -> Reply {
    use base64::Engine as _;
    let Json(body) = body?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(body.noise_pub.as_bytes())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| SimError::Invalid("noise_pub must be a base64 32-byte key".into()))?;
    let device = handle(s).provision_device(&phone, key)?;
    Ok(Json(json!({ "device": device })))
}
