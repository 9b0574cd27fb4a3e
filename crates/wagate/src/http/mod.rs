//! The HTTP API: routes, extractors and the error envelope.

pub mod auth;
pub mod chats;
pub mod error;
pub mod extract;
pub mod health;
pub mod media;
pub mod messages;
pub mod openapi;
pub mod qr;
pub mod sessions;
pub mod webhooks;
pub mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware;
use axum::routing::{get, post};
use tower_http::trace::TraceLayer;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use error::ApiError;

/// The whole HTTP surface, with no I/O of its own: tests drive it with
/// `oneshot`.
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/sessions", post(sessions::create).get(sessions::list))
        .route(
            "/sessions/{id}",
            get(sessions::get)
                .patch(sessions::update)
                .delete(sessions::delete),
        )
        .route("/sessions/{id}/start", post(sessions::start))
        .route("/sessions/{id}/stop", post(sessions::stop))
        .route("/sessions/{id}/restart", post(sessions::restart))
        .route("/sessions/{id}/logout", post(sessions::logout))
        .route("/sessions/{id}/qr", get(qr::qr))
        .route("/sessions/{id}/pairing-code", post(qr::pairing_code))
        .route(
            "/sessions/{id}/messages",
            // Media can come in the body; the handler caps it itself, as
            // it reads (see `messages::read_request`).
            post(messages::send)
                .layer(DefaultBodyLimit::disable())
                .get(messages::list),
        )
        .route(
            "/sessions/{id}/messages/{message_id}",
            get(messages::get).delete(messages::revoke),
        )
        .route(
            "/sessions/{id}/messages/{message_id}/edit",
            post(messages::edit),
        )
        .route("/sessions/{id}/chats/{chat}/read", post(chats::mark_read))
        .route("/sessions/{id}/chats/{chat}/typing", post(chats::typing))
        .route("/sessions/{id}/contacts/check", post(chats::check_contacts))
        .route(
            "/sessions/{id}/messages/{message_id}/media",
            get(media::download),
        )
        .route("/ws", get(ws::subscribe))
        .route("/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/webhooks/{id}",
            get(webhooks::get)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/webhooks/{id}/test", post(webhooks::test))
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route(
            "/webhooks/{id}/deliveries/retry",
            post(webhooks::retry_since),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/retry",
            post(webhooks::retry),
        );

    Router::new()
        .nest("/api/v1", api)
        // The docs page and its assets are compiled in: no CDN.
        .merge(
            SwaggerUi::new("/api/v1/docs")
                .external_url_unchecked("/api/v1/openapi.json", openapi::document()),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // The web dashboard, at `/`; its paths do not overlap the API's.
        .merge(crate::dashboard::router())
        .fallback(|| async { ApiError::RouteNotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.body_limit))
        .layer(middleware::from_fn(error::log_server_errors))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                // The query string can carry the WebSocket token: log the path only.
                tracing::info_span!(
                    "http",
                    method = %request.method(),
                    path = %request.uri().path(),
                    org_id = tracing::field::Empty,
                )
            }),
        )
        .with_state(state)
}
