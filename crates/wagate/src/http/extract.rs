//! Axum's extractors with their rejections turned into [`ApiError`], so a
//! malformed body, path or query gets the same envelope as any other error.

use axum::extract::{FromRequest, FromRequestParts};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::error::ApiError;

#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// Page size when a list request gives none.
const DEFAULT_PAGE: u32 = 50;
/// The largest page any list returns.
const MAX_PAGE: u32 = 100;

/// A list request's `limit`, defaulted, or a 422 when out of range.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::Validation {
            code: "invalid_limit",
            field: "limit",
            message: format!("limit must be between 1 and {MAX_PAGE}"),
        })
    }
}
