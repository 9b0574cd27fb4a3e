//! What a dashboard request can fail with, as a page rather than JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;

use super::html::{Frame, Nav, page};
use crate::session::manager::ManagerError;
use crate::store::StoreError;
use crate::webhooks::manage::WebhookError;

#[derive(Debug, thiserror::Error)]
pub enum DashError {
    #[error("not signed in")]
    SignedOut,
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("not found")]
    NotFound,
    #[error("the form was stale")]
    Csrf,
    #[error("internal error")]
    Internal(String),
}

impl From<StoreError> for DashError {
    fn from(error: StoreError) -> Self {
        Self::Internal(format!("{error:?}"))
    }
}

impl From<super::password::HashError> for DashError {
    fn from(error: super::password::HashError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<WebhookError> for DashError {
    fn from(error: WebhookError) -> Self {
        match error {
            WebhookError::NotFound => Self::NotFound,
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl From<ManagerError> for DashError {
    fn from(error: ManagerError) -> Self {
        match error {
            ManagerError::NotFound => Self::NotFound,
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            Self::SignedOut => return Redirect::to("/login").into_response(),
            Self::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", *message),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or it belongs to another organization.",
            ),
            Self::Csrf => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form was opened in an earlier sign-in. Go back, reload the page and try again.",
            ),
            Self::Internal(cause) => {
                // Logged once here; the page says nothing internal.
                tracing::error!(%cause, "dashboard request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The gateway could not complete this request. Try again; if it keeps happening, check the gateway's log.",
                )
            }
        };
        let body = html! {
            section.card.narrow.error-page {
                h1 { (title) }
                p { (message) }
                p { a.button href="/sessions" { "Back to sessions" } }
            }
        };
        let frame = Frame {
            title,
            nav: Nav::None,
            user: None,
            sandbox: false,
        };
        (status, page(&frame, body)).into_response()
    }
}
