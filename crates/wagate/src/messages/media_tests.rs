//! Against a local axum server on 127.0.0.1, port 0: no network.

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use futures::stream;

use super::*;

const CAP: usize = 1024;
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

/// Serves the test routes; returns the base URL. The server lives as long
/// as the test's runtime.
async fn serve() -> String {
    let app = Router::new()
        .route(
            "/photo",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], PNG) }),
        )
        .route("/unlabelled", get(|| async { PNG }))
        // Declares its length: refused before the body is read.
        .route("/big", get(|| async { vec![0u8; CAP + 1] }))
        // No length, chunks beyond the cap: refused while streaming.
        .route(
            "/stream",
            get(|| async {
                let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![0u8; CAP / 2]));
                Body::from_stream(stream::iter(chunks))
            }),
        )
        .route("/redirect", get(|| async { Redirect::temporary("/photo") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/to-file",
            get(|| async { Redirect::temporary("file:///etc/passwd") }),
        )
        .route(
            "/missing",
            get(|| async { StatusCode::NOT_FOUND.into_response() }),
        )
        .route("/hang", get(std::future::pending::<()>));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn fetcher() -> MediaFetcher {
    MediaFetcher::new(&FetchConfig {
        max_bytes: CAP,
        timeout: Duration::from_secs(10),
        max_redirects: 3,
        // The test server is on loopback.
        egress: EgressPolicy {
            allow_private_network: true,
            ..EgressPolicy::default()
        },
    })
    .unwrap()
}

fn url(base: &str, path: &str) -> Url {
    format!("{base}{path}").parse().unwrap()
}

#[tokio::test]
async fn fetches_bytes_with_the_servers_content_type() {
    let base = serve().await;
    let media = fetcher()
        .fetch(&url(&base, "/photo"), MediaKind::Image, None)
        .await
        .unwrap();
    assert_eq!(media.bytes, PNG);
    assert_eq!(media.mime_type, "image/png");
}

#[tokio::test]
async fn a_declared_type_wins_and_unlabelled_bytes_are_sniffed() {
    let base = serve().await;
    let declared = fetcher()
        .fetch(
            &url(&base, "/photo"),
            MediaKind::Document,
            Some("application/x-custom"),
        )
        .await
        .unwrap();
    assert_eq!(declared.mime_type, "application/x-custom");
    let sniffed = fetcher()
        .fetch(&url(&base, "/unlabelled"), MediaKind::Image, None)
        .await
        .unwrap();
    assert_eq!(sniffed.mime_type, "image/png");
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_whether_declared_or_streamed() {
    let base = serve().await;
    for path in ["/big", "/stream"] {
        assert_eq!(
            fetcher()
                .fetch(&url(&base, path), MediaKind::Document, None)
                .await,
            Err(FetchError::TooLarge { limit: CAP }),
            "{path}"
        );
    }
}

#[tokio::test]
async fn redirects_are_followed_a_few_times_and_only_to_http() {
    let base = serve().await;
    let media = fetcher()
        .fetch(&url(&base, "/redirect"), MediaKind::Image, None)
        .await
        .unwrap();
    assert_eq!(media.bytes, PNG);

    for path in ["/loop", "/to-file"] {
        match fetcher()
            .fetch(&url(&base, path), MediaKind::Image, None)
            .await
        {
            Err(FetchError::Unreachable(detail)) => {
                assert!(detail.starts_with("redirect refused"), "{path}: {detail}");
                assert!(
                    !detail.contains("127.0.0.1"),
                    "no URL in the detail: {detail}"
                );
            }
            other => panic!("{path}: expected Unreachable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_non_2xx_status_is_unreachable_and_retriable() {
    let base = serve().await;
    let error = fetcher()
        .fetch(&url(&base, "/missing"), MediaKind::Image, None)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        FetchError::Unreachable("the server answered 404 Not Found".into())
    );
    assert!(error.is_retriable());
    assert!(!FetchError::TooLarge { limit: 1 }.is_retriable());
}

#[tokio::test]
async fn a_closed_port_is_unreachable() {
    // Bind, note the port, close: nothing listens there any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    match fetcher()
        .fetch(
            &url(&format!("http://{addr}"), "/x"),
            MediaKind::Image,
            None,
        )
        .await
    {
        Err(FetchError::Unreachable(detail)) => {
            assert!(detail.starts_with("could not connect"), "{detail}")
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let base = serve().await;
    let impatient = MediaFetcher::new(&FetchConfig {
        max_bytes: CAP,
        timeout: Duration::from_millis(200),
        max_redirects: 0,
        egress: EgressPolicy {
            allow_private_network: true,
            ..EgressPolicy::default()
        },
    })
    .unwrap();
    match impatient
        .fetch(&url(&base, "/hang"), MediaKind::Image, None)
        .await
    {
        Err(FetchError::Unreachable(detail)) => {
            assert!(detail.starts_with("timed out"), "{detail}")
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

/// The default egress policy: loopback is refused whether named by
/// address or by a name that resolves to it, before anything is sent.
#[tokio::test]
async fn private_addresses_are_refused_by_default() {
    let base = serve().await;
    let guarded = MediaFetcher::new(&FetchConfig {
        max_bytes: CAP,
        ..FetchConfig::default()
    })
    .unwrap();
    let by_name = base.replace("127.0.0.1", "localhost");
    for target in [url(&base, "/photo"), url(&by_name, "/photo")] {
        let result = guarded.fetch(&target, MediaKind::Image, None).await;
        assert!(
            matches!(&result, Err(FetchError::Forbidden(_))),
            "{target}: {result:?}"
        );
        assert!(!result.unwrap_err().is_retriable());
    }
}

#[tokio::test]
async fn only_http_urls_are_fetched() {
    let ftp: Url = "ftp://127.0.0.1/x".parse().unwrap();
    assert_eq!(
        fetcher().fetch(&ftp, MediaKind::Image, None).await,
        Err(FetchError::UnsupportedUrl)
    );
}

#[test]
fn each_kind_uploads_to_its_bucket() {
    assert_eq!(media_type(MediaKind::Voice), MediaType::Audio);
    assert_eq!(media_type(MediaKind::Sticker), MediaType::Sticker);
    assert_eq!(media_type(MediaKind::Document), MediaType::Document);
    assert_eq!(media_type(MediaKind::Image), MediaType::Image);
    assert_eq!(media_type(MediaKind::Video), MediaType::Video);
    assert_eq!(media_type(MediaKind::Audio), MediaType::Audio);
}
