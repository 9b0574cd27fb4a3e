//! LID and phone number, one to the other: WhatsApp names many people by
//! their LID (a number-hiding id) alone, and the session learns which
//! number each stands for (whatsapp-rust's LID mappings, kept with the
//! session's keys). Served from the store, whatever the session's status.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use crate::app::AppState;
use crate::domain::{Phone, SessionId};
use crate::store::{LidLookup, LidPn};

/// What [`parse_lid`] takes, as the OpenAPI document's pattern for
/// `{lid}` (`http::openapi` writes it in; a test holds the two equal).
pub(crate) const LID_PATTERN: &str = "^[0-9]{1,20}(@lid)?$";

/// A LID and the phone number it stands for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LidMapping {
    /// `<digits>@lid`.
    pub lid: String,
    /// Digits only, country code first.
    pub phone: String,
}

impl From<LidPn> for LidMapping {
    fn from(found: LidPn) -> Self {
        Self {
            lid: format!("{}@lid", found.lid),
            phone: found.phone,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct LidQuery {
    /// The phone number, digits only, country code first.
    pub phone: String,
}

/// The LID's user part: `<digits>` or `<digits>@lid`.
fn parse_lid(lid: &str) -> Result<&str, ApiError> {
    let digits = lid.strip_suffix("@lid").unwrap_or(lid);
    if (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(ApiError::Validation {
            code: "invalid_lid",
            field: "lid",
            message: "lid must be a LID: its digits, with or without @lid".into(),
        })
    }
}

fn not_found(field: &'static str) -> ApiError {
    ApiError::UnknownReference {
        code: "lid_not_found",
        field,
        message: "the session knows no LID mapping for it".into(),
    }
}

/// The phone number a LID stands for.
#[utoipa::path(
    get,
    path = "/sessions/{id}/lids/{lid}",
    tag = "contacts",
    params(
        ("id" = String, Path, format = Uuid, description = "Session id"),
        ("lid" = String, Path, description = "A LID: `<digits>` or `<digits>@lid`"),
    ),
    responses(
        (status = 200, body = LidMapping),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session knows no number for this LID (`lid_not_found`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn by_lid(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((session, lid)): Path<(SessionId, String)>,
) -> Result<Json<LidMapping>, ApiError> {
    let lid = parse_lid(&lid)?;
    state
        .sessions
        .lid_pn(auth.org_id(), session, LidLookup::Lid(lid))
        .await?
        .map(|found| Json(found.into()))
        .ok_or_else(|| not_found("lid"))
}

/// The LID a phone number has.
#[utoipa::path(
    get,
    path = "/sessions/{id}/lids",
    tag = "contacts",
    params(("id" = String, Path, format = Uuid, description = "Session id"), LidQuery),
    responses(
        (status = 200, body = LidMapping),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such session, or the session knows no LID for this number (`lid_not_found`)", body = ErrorBody),
        (status = 422, body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn by_phone(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(session): Path<SessionId>,
    Query(query): Query<LidQuery>,
) -> Result<Json<LidMapping>, ApiError> {
    let phone = Phone::try_from(query.phone).map_err(|e| ApiError::Validation {
        code: "invalid_phone",
        field: "phone",
        message: e.to_string(),
    })?;
    state
        .sessions
        .lid_pn(auth.org_id(), session, LidLookup::Phone(phone.as_str()))
        .await?
        .map(|found| Json(found.into()))
        .ok_or_else(|| not_found("phone"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::groups::tests::agree;

    #[test]
    fn the_lid_pattern_is_the_parser() {
        agree(
            LID_PATTERN,
            |l| parse_lid(l).is_ok(),
            &[
                "123456789012345",
                "123456789012345@lid",
                "1",
                "12345678901234567890",
                "123456789012345678901",
                "",
                "@lid",
                "12a",
                "123@g.us",
                "123@s.whatsapp.net",
                "123@lid@lid",
                "+123",
            ],
        );
    }

    #[test]
    fn a_mapping_names_the_lid_as_a_jid() {
        let shown = LidMapping::from(LidPn {
            lid: "123".into(),
            phone: "15551234567".into(),
        });
        assert_eq!(shown.lid, "123@lid");
        assert_eq!(shown.phone, "15551234567");
    }
}
