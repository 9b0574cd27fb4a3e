//! Turns an accepted message into the WhatsApp message to send: fetches a
//! `url` source, uploads media, builds the message. Done once per message;
//! the result is stored so every attempt sends the same bytes.

use whatsapp_rust::waproto::whatsapp as wa;

use crate::domain::{Failure, FailureReason};
use crate::messages::{
    Content, FetchError, MediaFetcher, MediaSource, OutgoingMessage, WireContext, build,
};
use crate::session::messenger::{Messenger, SendFailure};
use crate::store::OutboxItem;

/// Why a message could not be prepared.
#[derive(Debug)]
pub(super) enum PrepareError {
    /// It never will be: fail it with this reason.
    Fail(Failure),
    /// Try again later (the CDN or the media host is unreachable for now).
    Retry(String),
}

pub(super) async fn prepare(
    item: &OutboxItem,
    messenger: &dyn Messenger,
    fetcher: Option<&MediaFetcher>,
) -> Result<wa::Message, PrepareError> {
    let invalid = || PrepareError::Fail(Failure::new(FailureReason::Invalid));
    let outgoing: OutgoingMessage =
        serde_json::from_value(item.message.content.clone()).map_err(|_| invalid())?;
    let uploaded = match &outgoing.content {
        Content::Media {
            kind,
            source,
            mime_type,
            ..
        } => {
            let (bytes, mime_type) = match source {
                MediaSource::Stored => {
                    let bytes = item.media.clone().ok_or_else(invalid)?;
                    (
                        bytes,
                        mime_type
                            .clone()
                            .unwrap_or_else(|| kind.default_mime().to_string()),
                    )
                }
                MediaSource::Url(url) => {
                    let fetcher = fetcher.ok_or_else(|| {
                        PrepareError::Fail(Failure::new(FailureReason::MediaUnreachable))
                    })?;
                    let fetched = fetcher
                        .fetch(url, *kind, mime_type.as_deref())
                        .await
                        .map_err(|e| fetch_failure(e, item.attempts))?;
                    (fetched.bytes, fetched.mime_type)
                }
            };
            let uploaded = messenger
                .upload(bytes, *kind, mime_type)
                .await
                .map_err(|failure| match failure {
                    SendFailure::Transient(reason) | SendFailure::Invalid(reason) => {
                        PrepareError::Retry(reason)
                    }
                    SendFailure::OwnerUnreachable => PrepareError::Retry(failure.to_string()),
                })?;
            Some(uploaded)
        }
        _ => None,
    };
    let own_jid = messenger.own_jid();
    let built = build(
        &outgoing,
        &WireContext {
            media: uploaded.as_ref(),
            quoted: None,
            own_jid: own_jid.as_ref(),
        },
    )
    .map_err(|error| {
        tracing::warn!(%error, "the message cannot be built");
        invalid()
    })?;
    Ok(built.message)
}

/// A media host that times out may be back in a moment; one that answers
/// 404 will not. Either way the user hears within a few attempts.
const MEDIA_FETCH_ATTEMPTS: u32 = 3;

fn fetch_failure(error: FetchError, attempts: u32) -> PrepareError {
    match error {
        FetchError::TooLarge { .. } => {
            PrepareError::Fail(Failure::new(FailureReason::MediaTooLarge))
        }
        error if error.is_retriable() && attempts + 1 < MEDIA_FETCH_ATTEMPTS => {
            PrepareError::Retry(error.to_string())
        }
        _ => PrepareError::Fail(Failure::new(FailureReason::MediaUnreachable)),
    }
}
