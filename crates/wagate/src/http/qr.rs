//! Linking: the current QR code (as JSON, PNG or SVG) and pairing codes.

use std::io::Cursor;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use image::{DynamicImage, ImageFormat, Luma};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::Authenticated;
use super::error::{ApiError, ErrorBody};
use super::extract::{Json, Path, Query};
use crate::app::AppState;
use crate::domain::{Phone, SessionId};
use crate::session::Expiring;

/// Large enough to scan from a screen at arm's length.
const QR_MIN_PIXELS: u32 = 256;

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QrFormat {
    #[default]
    Json,
    Png,
    Svg,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct QrParams {
    /// `json` (default), `png` or `svg`.
    pub format: Option<QrFormat>,
}

/// A code and when it stops being valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct Code {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

impl From<Expiring> for Code {
    fn from(value: Expiring) -> Self {
        Self {
            code: value.code,
            expires_at: value.expires_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PairingCodeRequest {
    /// International format, digits only, no `+` and no spaces: `628123456789`.
    #[schema(pattern = "^[1-9][0-9]{7,14}$")]
    pub phone: String,
}

/// The current QR code. It rotates about every 20 seconds.
#[utoipa::path(
    get,
    path = "/sessions/{id}/qr",
    tag = "linking",
    params(("id" = String, Path, format = Uuid), QrParams),
    responses(
        (status = 200, description = "JSON, or the image with format=png|svg", content(
            (Code = "application/json"),
            (Vec<u8> = "image/png"),
            (String = "image/svg+xml"),
        )),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not waiting for a scan: `already_linked`, `not_started`, `session_starting`, `session_failed`, `logged_out`, `qr_not_ready`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn qr(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Query(params): Query<QrParams>,
) -> Result<Response, ApiError> {
    let current = state.sessions.qr(auth.org_id(), id).await?;
    match params.format.unwrap_or_default() {
        QrFormat::Json => Ok(Json(Code::from(current)).into_response()),
        QrFormat::Png => {
            let png = render_png(&current.code)?;
            Ok(image_response("image/png", png))
        }
        QrFormat::Svg => {
            let svg = QrCode::new(current.code.as_bytes())
                .map_err(ApiError::internal)?
                .render::<svg::Color<'_>>()
                .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
                .build();
            Ok(image_response("image/svg+xml", svg.into_bytes()))
        }
    }
}

fn render_png(code: &str) -> Result<Vec<u8>, ApiError> {
    let image = QrCode::new(code.as_bytes())
        .map_err(ApiError::internal)?
        .render::<Luma<u8>>()
        .min_dimensions(QR_MIN_PIXELS, QR_MIN_PIXELS)
        .build();
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageLuma8(image)
        .write_to(&mut png, ImageFormat::Png)
        .map_err(ApiError::internal)?;
    Ok(png.into_inner())
}

fn image_response(content_type: &'static str, body: Vec<u8>) -> Response {
    // A QR code is a short-lived credential: never cache it.
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-store")],
        body,
    )
        .into_response()
}

/// Request a pairing code to type into the phone instead of scanning.
#[utoipa::path(
    post,
    path = "/sessions/{id}/pairing-code",
    tag = "linking",
    params(("id" = String, Path, format = Uuid)),
    request_body = PairingCodeRequest,
    responses(
        (status = 200, body = Code),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Not waiting for a link, or `pairing_code_outstanding`: a code requested earlier is still valid", body = ErrorBody),
        (status = 422, description = "`invalid_phone`", body = ErrorBody),
        (status = 502, description = "WhatsApp refused", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn pairing_code(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Json(body): Json<PairingCodeRequest>,
) -> Result<Json<Code>, ApiError> {
    let phone = Phone::try_from(body.phone).map_err(|e| ApiError::Validation {
        code: "invalid_phone",
        field: "phone",
        message: e.to_string(),
    })?;
    let code = state
        .sessions
        .pairing_code(auth.org_id(), id, phone)
        .await?;
    Ok(Json(code.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png() -> Result<(), ApiError> {
        let png = render_png("2@abcdef,ghijkl,mnopqr")?;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        Ok(())
    }
}
