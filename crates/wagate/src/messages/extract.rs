//! Reads a send request off the wire: a JSON body, or multipart/form-data
//! with a `message` part (the JSON) and an optional `file` part (the bytes).
//! The caps are enforced while reading, so an oversized body is refused
//! before it is all in memory; the router's `DefaultBodyLimit` does not
//! apply here, [`Limits`] does.

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use futures::{Stream, StreamExt};

use super::error::RequestError;
use super::request::{FilePart, Limits, ParsedRequest, parse_json, validate};

/// Reads, parses and validates a send request, JSON or multipart.
pub(crate) async fn read_request(
    request: Request,
    limits: &Limits,
) -> Result<ParsedRequest, RequestError> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .ok_or(RequestError::UnsupportedContentType)?;
    let body = request.into_body();
    if is_json(&content_type) {
        let bytes = read_capped(body.into_data_stream(), limits.max_json_bytes(), |e| {
            RequestError::MalformedJson(format!("could not read the body: {e}"))
        })
        .await?
        .ok_or(RequestError::BodyTooLarge)?;
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| RequestError::MalformedJson(e.to_string()))?;
        validate(parse_json(value)?, None, limits)
    } else if content_type.essence_str() == mime::MULTIPART_FORM_DATA.essence_str() {
        let boundary = content_type
            .get_param(mime::BOUNDARY)
            .ok_or_else(|| RequestError::InvalidMultipart("no boundary".to_string()))?
            .as_str()
            .to_string();
        read_multipart(body, boundary, limits).await
    } else {
        Err(RequestError::UnsupportedContentType)
    }
}

fn is_json(content_type: &mime::Mime) -> bool {
    content_type.type_() == mime::APPLICATION
        && (content_type.subtype() == mime::JSON || content_type.suffix() == Some(mime::JSON))
}

/// Collects a byte stream, or `None` as soon as it passes `limit`.
async fn read_capped<S, E>(
    stream: S,
    limit: usize,
    read_error: impl Fn(E) -> RequestError,
) -> Result<Option<Vec<u8>>, RequestError>
where
    S: Stream<Item = Result<Bytes, E>>,
{
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(&read_error)?;
        if bytes.len() + chunk.len() > limit {
            return Ok(None);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Some(bytes))
}

async fn read_multipart(
    body: Body,
    boundary: String,
    limits: &Limits,
) -> Result<ParsedRequest, RequestError> {
    // The whole body: the file, the message part and the part headers.
    let whole = limits
        .max_media_bytes
        .saturating_add(limits.max_message_part_bytes())
        .saturating_add(64 * 1024);
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(whole as u64));
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);

    let mut message = None;
    let mut file = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("message") => {
                if message.is_some() {
                    return Err(RequestError::DuplicatePart("message"));
                }
                let bytes = read_capped(field, limits.max_message_part_bytes(), multipart_error)
                    .await?
                    .ok_or(RequestError::BodyTooLarge)?;
                message = Some(
                    serde_json::from_slice::<serde_json::Value>(&bytes)
                        .map_err(|e| RequestError::MalformedJson(e.to_string()))?,
                );
            }
            Some("file") => {
                if file.is_some() {
                    return Err(RequestError::DuplicatePart("file"));
                }
                let content_type = field.content_type().map(|m| m.to_string());
                let file_name = field.file_name().map(str::to_string);
                let bytes = read_capped(field, limits.max_media_bytes, multipart_error)
                    .await?
                    .ok_or(RequestError::MediaTooLarge {
                        limit: limits.max_media_bytes,
                    })?;
                file = Some(FilePart {
                    bytes,
                    content_type,
                    file_name,
                });
            }
            other => {
                return Err(RequestError::UnexpectedPart(
                    other.unwrap_or_default().to_string(),
                ));
            }
        }
    }
    let message = message.ok_or(RequestError::MissingMessagePart)?;
    validate(parse_json(message)?, file, limits)
}

fn multipart_error(error: multer::Error) -> RequestError {
    match error {
        multer::Error::StreamSizeExceeded { .. } => RequestError::BodyTooLarge,
        other => RequestError::InvalidMultipart(other.to_string()),
    }
}

#[cfg(test)]
#[path = "extract_tests.rs"]
mod tests;
