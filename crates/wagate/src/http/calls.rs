//! `POST /sessions/{id}/calls/{call}/reject`: a call that rings the
//! session now, declined (the caller sees it so).

use axum::extract::State;
use axum::http::StatusCode;

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::Path;
use crate::app::AppState;
use crate::domain::SessionId;

/// What [`parse_call`] takes, as the OpenAPI document's pattern for
/// `{call}` (`http::openapi` writes it in; a test holds the two equal).
pub(crate) const CALL_PATTERN: &str = "^[A-Za-z0-9]{1,64}$";

/// A call id as WhatsApp makes them (32 hexadecimal digits), or close.
fn parse_call(call: &str) -> Result<String, ApiError> {
    if (1..=64).contains(&call.len()) && call.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(call.to_owned())
    } else {
        Err(ApiError::Validation {
            code: "invalid_call",
            field: "call",
            message: "call must be a call id, as call.received gives it".into(),
        })
    }
}

/// Reject a ringing call.
///
/// The call (from `call.received`) must ring now; the caller sees it
/// declined, and `call.rejected` reports it.
#[utoipa::path(
    post,
    path = "/sessions/{id}/calls/{call}/reject",
    tag = "calls",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("call" = String, Path, description = "The call id, as `call.received` gives it"),
    ),
    responses(
        (status = 204, description = "Rejected"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or no such call rings it now (`call_not_found`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 502, description = "WhatsApp did not take the reject; the call rings on", body = ErrorBody),
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn reject(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, call)): Path<(SessionId, String)>,
) -> Result<StatusCode, ApiError> {
    let call = parse_call(&call)?;
    state.sessions.reject_call(auth.org_id(), id, call).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::groups::tests::agree;

    #[test]
    fn the_call_pattern_is_the_parser() {
        agree(
            CALL_PATTERN,
            |c| parse_call(c).is_ok(),
            &[
                "8D3F6A1B2C4E5F60718293A4B5C6D7E8",
                "a",
                "",
                "8D3F-6A1B",
                "x".repeat(64).as_str(),
                "x".repeat(65).as_str(),
                "café",
            ],
        );
    }
}
