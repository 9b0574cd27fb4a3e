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
//!   (its recent messages) and [`groups`] (its groups, a group's
//!   participants), [`tokens`], [`members`]; [`live`] holds what
//!   the page script fetches (the realtime socket, fragments, the QR
//!   image); [`webhooks`] (list, create, test, deliveries).
//! - [`sandbox`]: the simulated phone's buttons, in `sandbox` builds.
//! - [`accounts`]: creating users, shared with the CLI and the bootstrap.
//! - [`state`]: the dashboard's own state (the sign-in limiter, the
//!   sandbox), which [`AppState`] carries; with [`ratelimit`] it sits below
//!   `app`, so it names nothing above.

pub mod accounts;
mod assets;
pub(crate) mod auth;
mod chats;
pub(crate) mod csrf;
pub(crate) mod error;
mod groups;
pub(crate) mod html;
mod live;
mod login;
mod members;
mod messages;
pub(crate) mod password;
pub(crate) mod ratelimit;
#[cfg(feature = "sandbox")]
pub(crate) mod sandbox;
mod session;
mod sessions;
pub(crate) mod state;
mod tokens;
pub(crate) mod view;
mod webhooks;

use axum::Router;
use axum::response::Redirect;
use axum::routing::{get, post};

use crate::app::AppState;

/// The dashboard's routes, merged into the HTTP router at `/`.
pub(crate) fn router() -> Router<AppState> {
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
        .route("/sessions/{id}/groups", get(groups::list))
        .route("/sessions/{id}/groups/{group}", get(groups::show))
        .route("/sessions/{id}/chats", get(chats::list))
        .route("/sessions/{id}/chats/{chat}", get(chats::messages))
        .route("/sessions/{id}/chats/{chat}/reply", post(chats::reply))
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
