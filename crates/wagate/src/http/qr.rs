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
pub(crate) enum QrFormat {
    #[default]
    Json,
    Png,
    Svg,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct QrParams {
    /// `json` (default), `png` or `svg`.
    pub format: Option<QrFormat>,
}

/// A code and when it stops being valid.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Code {
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
pub(crate) struct PairingCodeRequest {
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
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn qr(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<SessionId>,
    Query(params): Query<QrParams>,
) -> Result<Response, ApiError> {
    let current = state.sessions.qr(auth.org_id(), id).await?;
    match params.format.unwrap_or_default() {
        QrFormat::Json => Ok(Json(Code::from(current)).into_response()),
        QrFormat::Png => {
            Ok(qr_image(&current.code, QrImage::Png, QR_MIN_PIXELS).map_err(ApiError::internal)?)
        }
        QrFormat::Svg => {
            Ok(qr_image(&current.code, QrImage::Svg, QR_MIN_PIXELS).map_err(ApiError::internal)?)
        }
    }
}

/// The images a QR code is drawn as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QrImage {
    Png,
    Svg,
}

impl QrImage {
    fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Svg => "image/svg+xml",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenderError {
    #[error("could not encode the QR code: {0}")]
    Code(#[from] qrcode::types::QrError),
    #[error("could not write the PNG: {0}")]
    Png(#[from] image::ImageError),
}

/// `code` drawn at least `min_pixels` wide (quiet zone included), as the
/// API and the dashboard both serve it.
pub(crate) fn qr_image(
    code: &str,
    format: QrImage,
    min_pixels: u32,
) -> Result<Response, RenderError> {
    let qr = QrCode::new(code.as_bytes())?;
    let body = match format {
        QrImage::Png => {
            let image = qr
                .render::<Luma<u8>>()
                .min_dimensions(min_pixels, min_pixels)
                .build();
            let mut png = Cursor::new(Vec::new());
            DynamicImage::ImageLuma8(image).write_to(&mut png, ImageFormat::Png)?;
            png.into_inner()
        }
        QrImage::Svg => qr
            .render::<svg::Color<'_>>()
            .min_dimensions(min_pixels, min_pixels)
            .build()
            .into_bytes(),
    };
    // A QR code is a short-lived credential: never cache it.
    Ok((
        [
            (CONTENT_TYPE, format.content_type()),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
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
        (status = 503, description = "`owner_unreachable`: with several nodes (`--nats`), the node that runs the session did not answer; try again", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pairing_code(
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

    async fn body(response: Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn renders_a_png() -> Result<(), RenderError> {
        let response = qr_image("2@abcdef,ghijkl,mnopqr", QrImage::Png, QR_MIN_PIXELS)?;
        assert_eq!(response.headers()[CONTENT_TYPE], "image/png");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let png = body(response).await;
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        Ok(())
    }

    #[tokio::test]
    async fn renders_an_svg_at_least_as_large_as_asked() -> Result<(), RenderError> {
        let response = qr_image("2@abcdef,ghijkl,mnopqr", QrImage::Svg, 320)?;
        assert_eq!(response.headers()[CONTENT_TYPE], "image/svg+xml");
        assert_eq!(response.headers()[CACHE_CONTROL], "no-store");
        let svg = String::from_utf8(body(response).await).unwrap_or_default();
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap_or_default();
        assert!(width >= 320, "{svg:.200}");
        Ok(())
    }
}
