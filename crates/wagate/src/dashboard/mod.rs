//! The web dashboard, served at `/`: server-rendered pages with a little
//! vanilla JavaScript for the live parts, everything embedded in the
//! binary (no CDN, no fonts, works offline).
//!
//! - [`auth`]: cookie sessions and the [`auth::CurrentUser`] /
//!   [`auth::Manager`] extractors; [`csrf`]: the form token check;
//!   [`ratelimit`]: failed sign-in limiting; [`password`]: argon2id.
//! - Markup is `maud` (escapes every spliced value): the frame and form
//!   pieces in [`html`], small shared pieces in [`view`], each page's own
//!   markup next to its handlers.
//! - Pages, one file each: [`login`], [`sessions`] (the list),
//!   [`session`] (one session, linking and actions) with [`messages`]
//!   (its recent messages), [`tokens`], [`members`]; [`live`] holds what
//!   the page script fetches (the realtime socket, fragments, the QR
//!   image); [`webhooks`] (list, create, test, deliveries).
//! - [`sandbox`]: the simulated phone's buttons, in `sandbox` builds.
//! - [`accounts`]: creating users, shared with the CLI and the bootstrap.

pub mod accounts;
mod assets;
pub mod auth;
pub mod csrf;
pub mod error;
pub mod html;
mod live;
mod login;
mod members;
mod messages;
pub mod password;
pub mod ratelimit;
#[cfg(feature = "sandbox")]
pub mod sandbox;
mod session;
mod sessions;
mod tokens;
pub mod view;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::app::AppState;
use ratelimit::SignInLimiter;

/// The dashboard's own state, carried in [`AppState`].
#[derive(Clone, Default)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    limiter: SignInLimiter,
    #[cfg(feature = "sandbox")]
    sandbox: Option<wasim::SimHandle>,
}

impl std::fmt::Debug for Dashboard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dashboard")
            .field("sandbox", &self.is_sandbox())
            .finish_non_exhaustive()
    }
}

impl Dashboard {
    /// A dashboard whose session pages drive `sim`'s phones.
    #[cfg(feature = "sandbox")]
    pub fn with_sandbox(sim: wasim::SimHandle) -> Self {
        Self {
            inner: Arc::new(Inner {
                limiter: SignInLimiter::default(),
                sandbox: Some(sim),
            }),
        }
    }

    pub fn is_sandbox(&self) -> bool {
        #[cfg(feature = "sandbox")]
        {
            self.inner.sandbox.is_some()
        }
        #[cfg(not(feature = "sandbox"))]
        {
            false
        }
    }

    #[cfg(feature = "sandbox")]
    pub(crate) fn sim(&self) -> Option<&wasim::SimHandle> {
        self.inner.sandbox.as_ref()
    }

    pub(crate) fn limiter(&self) -> &SignInLimiter {
        &self.inner.limiter
    }
}

/// The dashboard's routes, merged into the HTTP router at `/`.
pub fn router() -> Router<AppState> {
    let router = Router::new()
        .route("/", get(|| async { Redirect::to("/sessions") }))
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::sign_out))
        .route("/org", post(login::switch_org))
        .route("/sessions", get(sessions::list).post(sessions::create))
        .route("/sessions/{id}", get(session::show))
        .route("/sessions/{id}/action/{action}", post(session::action))
        .route("/sessions/{id}/pairing-code", post(session::pairing_code))
        .route("/sessions/{id}/live", get(live::fragment))
        .route("/sessions/{id}/row", get(live::row))
        .route("/sessions/{id}/messages", get(messages::fragment))
        .route("/sessions/{id}/qr.svg", get(live::qr_svg))
        .route("/ui/events", get(live::events))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}/action/{action}", post(webhooks::action))
        .route("/tokens", get(tokens::list).post(tokens::create))
        .route("/tokens/{id}/revoke", post(tokens::revoke))
        .route("/members", get(members::list).post(members::add))
        .route("/assets/{file}", get(assets::serve));
    #[cfg(feature = "sandbox")]
    let router = router
        .route("/sessions/{id}/sandbox/scan", post(sandbox::scan))
        .route(
            "/sessions/{id}/sandbox/enter-code",
            post(sandbox::enter_code),
        )
        .route("/sessions/{id}/sandbox/message", post(sandbox::message));
    router
}
