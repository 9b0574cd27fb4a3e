//! Media: the `media_conn` answer pointing clients at the simulator itself,
//! the blob store behind it (upload and download over HTTP), and an
//! `HttpClient` for clients that must reach it over plain http.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use wacore::net::{HttpClient, HttpRequest, HttpResponse, StreamingHttpResponse, UploadBody};
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use whatsapp_rust_ureq_http_client::UreqHttpClient;

use crate::server::Server;
use crate::stanza::iq_result;
use crate::world::World;

/// WhatsApp's own limit for documents; anything bigger is a client bug here.
const MAX_UPLOAD: usize = 100 << 20;

pub(crate) fn media_conn(w: &World, id: &str) -> Node {
    iq_result(
        id,
        vec![
            NodeBuilder::new("media_conn")
                .attr("auth", "wasim")
                .attr("ttl", "3600")
                .children([NodeBuilder::new("host")
                    .attr("hostname", w.media_host.clone())
                    .build()])
                .build(),
        ],
    )
}

pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route(
            "/mms/{kind}/{token}",
            post(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)),
        )
        .route("/v/{dir}/{file}", get(download))
}

/// The client names the blob by the base64url SHA-256 of its encrypted
/// bytes; the direct path keeps that name, so equal uploads share a blob.
/// The `auth` and `token` query parameters are not checked: the simulator
/// trusts loopback.
async fn upload(
    State(server): State<Arc<Server>>,
    Path((kind, token)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !safe(&kind) || !safe(&token) {
        return (StatusCode::BAD_REQUEST, "bad media kind or token").into_response();
    }
    let direct_path = format!("/v/t62.7118-24/{token}.enc");
    let mut w = server.world();
    let url = format!("https://{}{direct_path}", w.media_host);
    w.blobs.insert(direct_path.clone(), body);
    axum::Json(json!({ "url": url, "direct_path": direct_path })).into_response()
}

async fn download(
    State(server): State<Arc<Server>>,
    Path((dir, file)): Path<(String, String)>,
) -> Response {
    let blob = server
        .world()
        .blobs
        .get(&format!("/v/{dir}/{file}"))
        .cloned();
    match blob {
        Some(bytes) => {
            ([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such media").into_response(),
    }
}

/// An `HttpClient` for clients talking to a simulator: whatsapp-rust builds
/// every media URL with `https://`, and the simulator serves plain http, so
/// requests to a loopback host are rewritten to `http://` and everything
/// else goes out unchanged through ureq.
pub struct LoopbackHttpClient {
    inner: UreqHttpClient,
}

impl LoopbackHttpClient {
    pub fn new() -> Self {
        Self {
            inner: UreqHttpClient::new(),
        }
    }
}

impl Default for LoopbackHttpClient {
    fn default() -> Self {
        Self::new()
    }
}

fn to_loopback(mut request: HttpRequest) -> HttpRequest {
    for host in ["127.0.0.1", "localhost", "[::1]"] {
        if let Some(rest) = request.url.strip_prefix(&format!("https://{host}")) {
            // Only the host itself: `https://127.0.0.1.example.com` is not loopback.
            if rest.is_empty() || rest.starts_with([':', '/', '?']) {
                request.url = format!("http://{host}{rest}");
                break;
            }
        }
    }
    request
}

#[async_trait::async_trait]
impl HttpClient for LoopbackHttpClient {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.inner.execute(to_loopback(request)).await
    }

    fn supports_streaming(&self) -> bool {
        self.inner.supports_streaming()
    }

    fn execute_streaming(&self, request: HttpRequest) -> anyhow::Result<StreamingHttpResponse> {
        self.inner.execute_streaming(to_loopback(request))
    }

    fn supports_upload_streaming(&self) -> bool {
        self.inner.supports_upload_streaming()
    }

    fn execute_upload(
        &self,
        request: HttpRequest,
        body: UploadBody,
        content_length: u64,
    ) -> anyhow::Result<HttpResponse> {
        self.inner
            .execute_upload(to_loopback(request), body, content_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_rewritten() {
        let url = |u: &str| to_loopback(HttpRequest::get(u)).url;
        assert_eq!(
            url("https://127.0.0.1:9400/mms/image/abc?auth=x"),
            "http://127.0.0.1:9400/mms/image/abc?auth=x"
        );
        assert_eq!(url("https://localhost/v/x"), "http://localhost/v/x");
        assert_eq!(
            url("https://127.0.0.1.example.com/x"),
            "https://127.0.0.1.example.com/x"
        );
        assert_eq!(
            url("https://web.whatsapp.com/sw.js"),
            "https://web.whatsapp.com/sw.js"
        );
    }
}
