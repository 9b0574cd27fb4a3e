//! Media for the outbox worker: download a `url` source (capped while it
//! streams, so a huge file is cut off, not buffered), then upload the bytes
//! to WhatsApp's CDN for [`super::wire::build`].
//!
//! The SSRF guard (`crate::egress`) applies: unless configuration allows
//! private networks, a URL (or any redirect hop) whose host is or resolves
//! to a loopback, private or link-local address is refused.

use std::time::Duration;

use reqwest::redirect;
use url::Url;
use whatsapp_rust::Client;
use whatsapp_rust::download::MediaType;
use whatsapp_rust::upload::UploadOptions;

use super::content::MediaKind;
use super::request::resolve_mime;
use super::wire::UploadedMedia;
use crate::egress::{self, EgressPolicy, describe};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FetchConfig {
    /// The largest download; a longer body is refused while it streams.
    pub max_bytes: usize,
    /// The whole download: connect, redirects, headers and body.
    pub timeout: Duration,
    pub max_redirects: usize,
    pub egress: EgressPolicy,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            // WhatsApp's own cap for video; documents may be larger, but a
            // gateway that buffers the file in memory should not be.
            max_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            max_redirects: 3,
            egress: EgressPolicy::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FetchError {
    /// DNS, connect, TLS, timeout, a refused redirect or a non-2xx status.
    #[error("the media URL could not be fetched: {0}")]
    Unreachable(String),
    #[error("the media at the URL is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("only http and https URLs can be fetched")]
    UnsupportedUrl,
    /// The host is, or resolves to, an address the egress policy refuses.
    #[error("the media URL points at a non-public address: {0}")]
    Forbidden(String),
    #[error("the HTTP client could not be set up: {0}")]
    Setup(String),
}

impl FetchError {
    /// Whether trying again later may succeed: a network failure may pass,
    /// the size of a file or the scheme of a URL will not.
    pub(crate) fn is_retriable(&self) -> bool {
        matches!(self, Self::Unreachable(_))
    }
}

/// Downloaded media and its resolved mime type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FetchedMedia {
    pub bytes: Vec<u8>,
    pub mime_type: String,
}

/// Downloads media sources; one per worker, it pools connections.
#[derive(Debug, Clone)]
pub(crate) struct MediaFetcher {
    client: reqwest::Client,
    max_bytes: usize,
    egress: EgressPolicy,
}

impl MediaFetcher {
    pub(crate) fn new(config: &FetchConfig) -> Result<Self, FetchError> {
        let max_redirects = config.max_redirects;
        let egress = config.egress;
        // Every hop is checked again: a public https URL must not bounce the
        // gateway into `file:`, some other scheme, or a private address.
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                attempt.error(format!("more than {max_redirects} redirects"))
            } else if !is_http(attempt.url()) {
                attempt.error("redirect to a URL that is not http or https")
            } else if let Err(refused) = egress.check_destination(attempt.url()) {
                attempt.error(refused)
            } else {
                attempt.follow()
            }
        });
        let client = egress
            .client_builder()
            .redirect(policy)
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Setup(describe(&e)))?;
        Ok(Self {
            client,
            max_bytes: config.max_bytes,
            egress,
        })
    }

    /// Downloads `url`. The mime type is `declared` if given, else the
    /// response's Content-Type if it fits `kind`, else what the bytes look
    /// like, else the kind's default.
    pub(crate) async fn fetch(
        &self,
        url: &Url,
        kind: MediaKind,
        declared: Option<&str>,
    ) -> Result<FetchedMedia, FetchError> {
        if !is_http(url) {
            return Err(FetchError::UnsupportedUrl);
        }
        self.egress
            .check_destination(url)
            .map_err(|refused| FetchError::Forbidden(refused.to_string()))?;
        let too_large = FetchError::TooLarge {
            limit: self.max_bytes,
        };
        let mut response =
            self.client
                .get(url.clone())
                .send()
                .await
                .map_err(|e| match egress::refusal(&e) {
                    Some(refused) => FetchError::Forbidden(refused.to_string()),
                    None => FetchError::Unreachable(describe(&e)),
                })?;
        let status = response.status();
        if status.is_redirection() {
            // reqwest hands back, unfollowed, a redirect to a non-http URL.
            return Err(FetchError::Unreachable(format!(
                "redirect refused: the server answered {status} towards a URL that is not http or https"
            )));
        }
        if !status.is_success() {
            return Err(FetchError::Unreachable(format!(
                "the server answered {status}"
            )));
        }
        if response
            .content_length()
            .is_some_and(|length| length > self.max_bytes as u64)
        {
            return Err(too_large);
        }
        let transport = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Unreachable(describe(&e)))?
        {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        let mime_type = match declared {
            Some(declared) => declared.to_string(),
            None => resolve_mime(kind, transport.as_deref(), &bytes),
        };
        Ok(FetchedMedia { bytes, mime_type })
    }
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// The CDN bucket each kind is uploaded to.
pub(crate) fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio | MediaKind::Voice => MediaType::Audio,
        MediaKind::Document => MediaType::Document,
        MediaKind::Sticker => MediaType::Sticker,
    }
}

#[derive(Debug, thiserror::Error)]
#[error("uploading the media to WhatsApp failed: {0}")]
pub(crate) struct UploadError(String);

/// Encrypts and uploads `bytes` with the session's client.
pub(crate) async fn upload(
    client: &Client,
    bytes: Vec<u8>,
    kind: MediaKind,
    mime_type: String,
) -> Result<UploadedMedia, UploadError> {
    let response = client
        .upload(bytes, media_type(kind), UploadOptions::default())
        .await
        .map_err(|e| UploadError(format!("{e:#}")))?;
    Ok(UploadedMedia {
        url: response.url,
        direct_path: response.direct_path,
        media_key: response.media_key,
        file_sha256: response.file_sha256,
        file_enc_sha256: response.file_enc_sha256,
        file_length: response.file_length,
        media_key_timestamp: response.media_key_timestamp,
        streaming_sidecar: response.streaming_sidecar,
        mimetype: mime_type,
    })
}

#[cfg(test)]
#[path = "media_tests.rs"]
mod tests;
