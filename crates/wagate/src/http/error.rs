//! The one error type of the API. Every failure leaves as
//! `{"error": {"code", "message", "details"}}`; a 5xx never says why, the
//! cause is logged once by [`log_server_errors`].

use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::SessionStatus;
use crate::messages::RequestError;
use crate::session::manager::ManagerError;
use crate::session::messenger::SendFailure;
use crate::session::supervisor::CommandError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("invalid or revoked token")]
    InvalidToken,
    #[error("session not found")]
    SessionNotFound,
    #[error("message not found")]
    MessageNotFound,
    #[error("webhook not found")]
    WebhookNotFound,
    #[error("delivery not found")]
    DeliveryNotFound,
    #[error("this message has no media to download")]
    NoMedia,
    #[error("WhatsApp no longer has this media (it expires some weeks after it was sent)")]
    MediaExpired,
    #[error("no such route")]
    RouteNotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("invalid request body: {0}")]
    InvalidBody(String),
    #[error("expected a JSON body with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("{message}")]
    Validation {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// A well-formed request naming something (in its body) that does not
    /// exist: a 404 like a missing path id, with the field named.
    #[error("{message}")]
    UnknownReference {
        code: &'static str,
        field: &'static str,
        message: String,
    },
    /// WhatsApp refused: the number lacks the right (not a group admin).
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    Conflict {
        code: &'static str,
        message: String,
        status: Option<SessionStatus>,
    },
    #[error("too many realtime connections for this organization")]
    TooManyConnections,
    #[error("this endpoint only speaks WebSocket; send an upgrade request")]
    UpgradeRequired,
    #[error("WhatsApp did not complete the request: {0}")]
    Upstream(String),
    #[error("the gateway is shutting down")]
    Unavailable,
    /// Several nodes (`--nats`): the node that runs the session did not
    /// answer.
    #[error("the gateway node that runs this session did not answer; try again")]
    OwnerUnreachable,
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The wire shape, for the OpenAPI document.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable, machine-readable code, e.g. `session_not_found`.
    pub code: String,
    /// A sentence for humans.
    pub message: String,
    /// Structured context; an empty object when there is none.
    #[schema(value_type = Object)]
    pub details: Value,
}

/// The cause of a 5xx, handed from the response to the logging middleware.
#[derive(Debug, Clone)]
struct InternalCause(String);

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::SessionNotFound
            | Self::MessageNotFound
            | Self::WebhookNotFound
            | Self::DeliveryNotFound
            | Self::NoMedia
            | Self::RouteNotFound
            | Self::UnknownReference { .. } => StatusCode::NOT_FOUND,
            Self::MediaExpired => StatusCode::GONE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InvalidPath(_) | Self::InvalidQuery(_) | Self::MalformedJson(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::InvalidBody(_) | Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::TooManyConnections => StatusCode::TOO_MANY_REQUESTS,
            Self::UpgradeRequired => StatusCode::UPGRADE_REQUIRED,
            Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable | Self::OwnerUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::MissingToken => "missing_token",
            Self::InvalidToken => "invalid_token",
            Self::SessionNotFound => "session_not_found",
            Self::MessageNotFound => "message_not_found",
            Self::WebhookNotFound => "webhook_not_found",
            Self::DeliveryNotFound => "delivery_not_found",
            Self::NoMedia => "no_media",
            Self::MediaExpired => "media_expired",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::InvalidPath(_) => "invalid_path",
            Self::InvalidQuery(_) => "invalid_query",
            Self::MalformedJson(_) => "malformed_json",
            Self::InvalidBody(_) => "invalid_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Validation { code, .. }
            | Self::Conflict { code, .. }
            | Self::Forbidden { code, .. }
            | Self::UnknownReference { code, .. } => code,
            Self::TooManyConnections => "too_many_connections",
            Self::UpgradeRequired => "upgrade_required",
            Self::Upstream(_) => "whatsapp_error",
            Self::Unavailable => "unavailable",
            Self::OwnerUnreachable => "owner_unreachable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn details(&self) -> Value {
        match self {
            Self::Validation { field, .. } | Self::UnknownReference { field, .. } => {
                json!({ "field": field })
            }
            Self::Conflict {
                status: Some(status),
                ..
            } => json!({ "status": status }),
            _ => json!({}),
        }
    }

    pub(crate) fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// A session that is not in the status an operation needs.
    fn wrong_status(status: SessionStatus, wanted: &str) -> Self {
        let (code, message) = match status {
            SessionStatus::Working => ("already_linked", "the session is already linked".into()),
            SessionStatus::Stopped => (
                "not_started",
                "the session is stopped; start it first".into(),
            ),
            SessionStatus::Starting => (
                "session_starting",
                "the session is still connecting; try again shortly".into(),
            ),
            SessionStatus::Failed => (
                "session_failed",
                "the session failed; start it again".into(),
            ),
            SessionStatus::LoggedOut => (
                "logged_out",
                "the session was logged out; start it to link again".into(),
            ),
            SessionStatus::ScanQrCode => ("invalid_state", format!("the session cannot {wanted}")),
        };
        Self::Conflict {
            code,
            message,
            status: Some(status),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = if status.is_server_error()
            && !matches!(
                self,
                Self::Unavailable | Self::OwnerUnreachable | Self::Upstream(_)
            ) {
            "internal error".to_string()
        } else {
            self.to_string()
        };
        let body = json!({
            "error": {
                "code": self.code(),
                "message": message,
                "details": self.details(),
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if let Self::Internal(cause) = &self {
            response
                .extensions_mut()
                .insert(InternalCause(format!("{cause:?}")));
        }
        response
    }
}

/// Logs each 5xx cause once, with the request it failed.
pub(crate) async fn log_server_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(%method, %path, status = %response.status(), %cause, "request failed");
    }
    response
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => Self::InvalidBody(e.body_text()),
            JsonRejection::JsonSyntaxError(e) => Self::MalformedJson(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType,
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            other => Self::MalformedJson(other.body_text()),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        match rejection {
            PathRejection::FailedToDeserializePathParams(_) => {
                Self::InvalidPath("the ids in the path must be UUIDs".into())
            }
            other => Self::InvalidPath(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::InvalidQuery(rejection.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        Self::internal(error)
    }
}

impl From<ManagerError> for ApiError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::NotFound => Self::SessionNotFound,
            ManagerError::NoQrCode(status) => Self::wrong_status(status, "show a QR code"),
            ManagerError::QrNotReady => Self::Conflict {
                code: "qr_not_ready",
                message: "the next QR code is being fetched; try again in a moment".into(),
                status: Some(SessionStatus::ScanQrCode),
            },
            ManagerError::Command(CommandError::NotLinked) => Self::Conflict {
                code: "not_linked",
                message: "the session has no linked device".into(),
                status: None,
            },
            ManagerError::Command(CommandError::NotLinking(status)) => {
                Self::wrong_status(status, "request a pairing code")
            }
            ManagerError::Command(CommandError::PairingCode(reason)) => Self::Upstream(reason),
            ManagerError::Command(CommandError::PairingCodeOutstanding) => Self::Conflict {
                code: "pairing_code_outstanding",
                message: "a pairing code requested earlier is still valid: enter that one, or \
                          request another once it has expired"
                    .into(),
                status: Some(SessionStatus::ScanQrCode),
            },
            ManagerError::Command(CommandError::ShuttingDown) => Self::Unavailable,
            ManagerError::Command(error @ CommandError::NotSaved) => Self::internal(error),
            ManagerError::Command(CommandError::NoSuchCall) => Self::UnknownReference {
                code: "call_not_found",
                field: "call",
                message: "no such call is ringing the session now".into(),
            },
            ManagerError::Command(CommandError::Upstream(reason)) => Self::Upstream(reason),
            ManagerError::NotSending(status) => Self::wrong_status(status, "send messages"),
            // Recorded `working` but between connections for a moment.
            ManagerError::NotWorking(SessionStatus::Working) => Self::Conflict {
                code: "session_reconnecting",
                message: "the session is reconnecting; try again shortly".into(),
                status: Some(SessionStatus::Working),
            },
            ManagerError::NotWorking(status) => Self::wrong_status(status, "do this until linked"),
            ManagerError::MessageNotFound => Self::MessageNotFound,
            // The key is bound to the request it first came with: a
            // conflict with that, as a retry still in flight would be.
            ManagerError::IdempotencyKeyReused => Self::Conflict {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was already used for a different request".into(),
                status: None,
            },
            ManagerError::Upstream(SendFailure::OwnerUnreachable)
            | ManagerError::OwnerUnreachable => Self::OwnerUnreachable,
            ManagerError::Upstream(failure) => Self::Upstream(failure.to_string()),
            ManagerError::Store(error) => Self::internal(error),
            error @ ManagerError::Remote(_) => Self::internal(error),
        }
    }
}

/// Into the API's one envelope. `ApiError` has no 413 that carries its own
/// code, so `media_too_large` leaves as `payload_too_large` until it gets
/// one; every 422 keeps its code and field.
impl From<RequestError> for ApiError {
    fn from(error: RequestError) -> Self {
        match error {
            RequestError::MalformedJson(detail) => Self::MalformedJson(detail),
            RequestError::InvalidMultipart(detail) => {
                Self::MalformedJson(format!("malformed multipart body: {detail}"))
            }
            RequestError::UnsupportedContentType => Self::UnsupportedMediaType,
            RequestError::MediaTooLarge { .. } | RequestError::BodyTooLarge => {
                Self::PayloadTooLarge
            }
            other => Self::Validation {
                code: other.code(),
                field: other.field(),
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::MediaKind;

    #[test]
    fn validation_errors_keep_their_code_and_field_in_the_envelope() {
        let api: ApiError = RequestError::CaptionNotAllowed(MediaKind::Voice).into();
        assert_eq!(api.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(api.code(), "caption_not_allowed");
        match api {
            ApiError::Validation { field, .. } => assert_eq!(field, "voice.caption"),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn size_and_envelope_errors_get_their_http_status() {
        let too_large = RequestError::MediaTooLarge { limit: 10 };
        assert_eq!(too_large.code(), "media_too_large");
        assert_eq!(
            ApiError::from(too_large).status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ApiError::from(RequestError::UnsupportedContentType).status(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            ApiError::from(RequestError::MalformedJson("x".into())).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
