//! CSRF protection: every state-changing form carries the session's token
//! in a hidden `_csrf` field, checked before the handler runs. Together
//! with `SameSite=Lax` cookies this stops another site from submitting
//! forms with a signed-in user's cookie.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::auth::CurrentUser;
use super::error::DashError;
use crate::app::AppState;

pub(crate) const FIELD: &str = "_csrf";

/// A urlencoded form from a signed-in user whose CSRF token matched.
pub(crate) struct CsrfForm<T> {
    pub user: CurrentUser,
    pub form: T,
}

/// The form of a one-button action: nothing but the CSRF token.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct NoFields {}

/// Compares in time independent of where the first difference is.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Parses `application/x-www-form-urlencoded` into a flat JSON object of
/// strings (the last of repeated fields wins), then into `T`.
pub(crate) fn parse_form<T: DeserializeOwned>(body: &[u8]) -> Option<(Map<String, Value>, T)> {
    let mut fields = Map::new();
    for (key, value) in url::form_urlencoded::parse(body) {
        fields.insert(key.into_owned(), Value::String(value.into_owned()));
    }
    let form = serde_json::from_value(Value::Object(fields.clone())).ok()?;
    Some((fields, form))
}

impl<T: DeserializeOwned + Send> FromRequest<AppState> for CsrfForm<T> {
    type Rejection = DashError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let user = CurrentUser::from_request_parts(&mut parts, state).await?;
        let is_form = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(DashError::Csrf);
        }
        let bytes = axum::body::to_bytes(body, state.body_limit)
            .await
            .map_err(|_| DashError::Csrf)?;
        // The token is checked before the fields are interpreted.
        let (fields, form) = parse_form::<T>(&bytes).ok_or(DashError::Csrf)?;
        let presented = fields.get(FIELD).and_then(Value::as_str).unwrap_or("");
        if !same(presented, user.csrf()) {
            return Err(DashError::Csrf);
        }
        Ok(Self { user, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Label {
        label: String,
    }

    #[test]
    fn parses_forms_and_ignores_extra_fields() {
        let parsed = parse_form::<Label>(b"_csrf=abc&label=Sales+team%21");
        let Some((fields, form)) = parsed else {
            panic!("parse");
        };
        assert_eq!(form.label, "Sales team!");
        assert_eq!(fields.get(FIELD).and_then(Value::as_str), Some("abc"));
        assert!(parse_form::<Label>(b"_csrf=abc").is_none(), "missing field");
    }

    #[test]
    fn compares_tokens_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
