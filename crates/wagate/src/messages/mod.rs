//! Message content: what a send request may say, validated into a
//! [`Content`] the outbox persists, and turned into a WhatsApp message when
//! the worker sends it.
//!
//! - [`request`]: the API's request body (serde + OpenAPI schema) and its
//!   validation; [`extract`] reads it from a JSON or multipart body.
//! - [`content`]: the validated domain types; [`recipient`]: the `to` JID.
//! - [`error`]: why a request was refused, each reason with its own code.
//! - [`media`]: the outbox worker's download of a `url` source and upload
//!   to WhatsApp; [`wire`]: the WhatsApp message for a [`Content`].
//! - [`incoming`]: what a received message says, decoded for the store and
//!   the events.

pub(crate) mod content;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod incoming;
pub(crate) mod media;
pub(crate) mod recipient;
pub(crate) mod request;
pub(crate) mod wire;

pub(crate) use content::{Content, MediaKind, MediaSource, MessageRef, OutgoingMessage};
pub(crate) use error::RequestError;
pub(crate) use extract::read_request;
pub(crate) use incoming::{Inbound, IncomingContent, IncomingMessage, MediaRef, Sender, Target};
pub(crate) use media::{FetchConfig, FetchError, MediaFetcher, upload};
pub(crate) use recipient::Recipient;
pub(crate) use request::{Limits, MAX_TEXT_CHARS, ParsedRequest, SendMessageRequest};
pub(crate) use wire::{UploadedMedia, WireContext, build};
