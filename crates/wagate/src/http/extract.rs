//! Axum's extractors with their rejections turned into [`ApiError`], so a
//! malformed body, path or query gets the same envelope as any other error.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::json::integral_floats;

/// A JSON request body. Every request body of the API is an object: serde
/// would also read a struct from an array of its fields in order
/// (`[null, null]`), which no client means, so anything but an object is
/// refused before it is deserialized.
#[derive(Debug)]
pub(crate) struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        // The content type is checked (by axum, below) before the body is
        // read; here only a body that is there is looked at.
        let json_content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<mime::Mime>().ok())
            .is_some_and(|m| {
                m.type_() == mime::APPLICATION
                    && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
            });
        if !json_content_type {
            return Err(ApiError::UnsupportedMediaType);
        }
        let request = Request::from_parts(parts, body);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge
                } else {
                    ApiError::MalformedJson(rejection.body_text())
                }
            })?;
        require_object(&bytes)?;
        // Syntax first (a 400 with where it failed), then the numbers,
        // then the shape (a 422).
        let mut value: serde_json::Value = axum::Json::<serde_json::Value>::from_bytes(&bytes)
            .map(|axum::Json(value)| value)
            .map_err(ApiError::from)?;
        integral_floats(&mut value);
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| ApiError::InvalidBody(e.to_string()))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Refuses a body that is JSON but not an object (a 422); one that is
/// not JSON at all is left for the deserializer to call malformed.
pub(crate) fn require_object(bytes: &[u8]) -> Result<(), ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{')
        && serde_json::from_slice::<serde_json::Value>(bytes).is_ok()
    {
        return Err(ApiError::InvalidBody(
            "the body must be a JSON object".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub T);

#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub T);

/// Page size when a list request gives none.
const DEFAULT_PAGE: u32 = 50;
/// The largest page any list returns.
const MAX_PAGE: u32 = 100;

/// A list request's `limit`, defaulted, or a 422 when out of range.
pub(crate) fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
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

/// Cuts a page read with one row more than `limit` back to `limit`, and
/// returns the next page's cursor: the last kept row's, when the extra row
/// shows there is more.
pub(crate) fn cut_page<T, C>(
    rows: &mut Vec<T>,
    limit: u32,
    cursor: impl FnOnce(&T) -> C,
) -> Option<C> {
    if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(cursor)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    /// A request with this body and content type.
    fn request(content_type: Option<&str>, body: &'static str) -> Request {
        let mut builder = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            builder = builder.header(axum::http::header::CONTENT_TYPE, content_type);
        }
        builder
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)] // Read by serde only.
    struct Body2 {
        a: Option<u32>,
        b: Option<u32>,
    }

    async fn extract(content_type: Option<&str>, body: &'static str) -> Result<Body2, ApiError> {
        Json::<Body2>::from_request(request(content_type, body), &())
            .await
            .map(|Json(v)| v)
    }

    #[tokio::test]
    async fn an_integer_may_be_written_as_a_float_with_no_fraction() {
        let json = Some("application/json");
        assert!(matches!(
            extract(json, r#"{"a": 15.0}"#).await,
            Ok(Body2 { a: Some(15), .. })
        ));
        assert!(matches!(
            extract(json, r#"{"a": 15.5}"#).await,
            Err(ApiError::InvalidBody(_))
        ));
        let mut value = serde_json::json!({"x": [-2.0, 1e30, 0.5]});
        integral_floats(&mut value);
        assert_eq!(value, serde_json::json!({"x": [-2, 1e30, 0.5]}));
    }

    #[tokio::test]
    async fn only_a_json_object_is_a_body() {
        let json = Some("application/json");
        assert!(extract(json, r#"{"a": 1}"#).await.is_ok());
        assert!(extract(Some("application/vnd.x+json"), " {}").await.is_ok());
        // serde reads a struct from an array of its fields: not here.
        for body in ["[null, null]", "[1, 2]", "null", "3", r#""x""#] {
            assert!(
                matches!(extract(json, body).await, Err(ApiError::InvalidBody(_))),
                "{body}"
            );
        }
        assert!(matches!(
            extract(json, "[1,").await,
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            extract(json, "").await,
            Err(ApiError::MalformedJson(_))
        ));
        assert!(matches!(
            extract(None, "{}").await,
            Err(ApiError::UnsupportedMediaType)
        ));
        assert!(matches!(
            extract(Some("text/plain"), "{}").await,
            Err(ApiError::UnsupportedMediaType)
        ));
    }
}
