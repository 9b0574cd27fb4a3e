//! The HTTP API: routes, extractors and the error envelope.

pub(crate) mod auth;
pub(crate) mod calls;
pub(crate) mod chat_history;
pub(crate) mod chat_list;
pub(crate) mod chat_state;
pub(crate) mod chats;
pub(crate) mod contacts;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod group_picture;
pub(crate) mod group_requests;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod lids;
pub(crate) mod media;
pub(crate) mod messages;
pub(crate) mod openapi;
pub(crate) mod presence;
pub(crate) mod qr;
pub(crate) mod sessions;
pub(crate) mod webhooks;
pub(crate) mod ws;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use error::ApiError;

/// Every API operation, each routed at the path its `#[utoipa::path]`
/// annotation documents (below `/api/v1`, the document's server): the one
/// route list, from which the OpenAPI document's paths come too. Handlers
/// of one path share one `routes!`.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(sessions::create, sessions::list))
        .routes(routes!(sessions::get, sessions::update, sessions::delete))
        .routes(routes!(sessions::start))
        .routes(routes!(sessions::stop))
        .routes(routes!(sessions::restart))
        .routes(routes!(sessions::logout))
        .routes(routes!(presence::set))
        .routes(routes!(qr::qr))
        .routes(routes!(qr::pairing_code))
        // Media can come in the body; the handler caps it itself, as it
        // reads (see `messages::read_request`). The limit is lifted for
        // the send only, so it has its own `routes!` (axum merges the
        // method routers of one path).
        .routes(routes!(messages::send).map(|send| send.layer(DefaultBodyLimit::disable())))
        .routes(routes!(messages::list))
        .routes(routes!(messages::get, messages::revoke))
        .routes(routes!(messages::edit))
        .routes(routes!(chat_list::list))
        .routes(routes!(chat_list::messages))
        .routes(routes!(chats::mark_read))
        .routes(routes!(chats::typing))
        .routes(routes!(chat_state::archive))
        .routes(routes!(chat_state::unarchive))
        .routes(routes!(chat_state::pin))
        .routes(routes!(chat_state::unpin))
        .routes(routes!(chat_state::mute))
        .routes(routes!(chat_state::unmute))
        .routes(routes!(chat_history::request_history))
        .routes(routes!(chats::check_contacts))
        .routes(routes!(contacts::list))
        .routes(routes!(contacts::get))
        .routes(routes!(contacts::picture))
        .routes(routes!(contacts::block))
        .routes(routes!(contacts::unblock))
        .routes(routes!(lids::by_lid))
        .routes(routes!(lids::by_phone))
        .routes(routes!(presence::subscribe))
        .routes(routes!(presence::unsubscribe))
        .routes(routes!(calls::reject))
        .routes(routes!(groups::create, groups::list))
        .routes(routes!(groups::get, groups::update))
        .routes(routes!(groups::participants))
        .routes(routes!(groups::invite))
        .routes(routes!(groups::reset_invite))
        .routes(routes!(groups::join))
        .routes(routes!(groups::preview))
        .routes(routes!(groups::leave))
        // A group's picture is a JPEG body of its own limit, whatever the
        // configured one for JSON bodies.
        .routes(
            routes!(group_picture::set, group_picture::remove)
                .map(|r| r.layer(DefaultBodyLimit::max(group_picture::PICTURE_MAX_BYTES))),
        )
        .routes(routes!(group_requests::list))
        .routes(routes!(group_requests::approve))
        .routes(routes!(group_requests::reject))
        .routes(routes!(media::download))
        .routes(routes!(ws::subscribe))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::retry_since))
        .routes(routes!(webhooks::retry))
}

/// The whole HTTP surface, with no I/O of its own: tests drive it with
/// `oneshot`.
pub(crate) fn router(state: AppState) -> Router {
    let (api, annotated) = api().split_for_parts();
    Router::new()
        .nest("/api/v1", api)
        // The docs page and its assets are compiled in: no CDN.
        .merge(
            SwaggerUi::new("/api/v1/docs")
                .external_url_unchecked("/api/v1/openapi.json", openapi::served(annotated)),
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
