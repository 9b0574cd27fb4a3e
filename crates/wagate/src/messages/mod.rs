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

pub mod content;
pub mod error;
pub mod extract;
pub mod incoming;
pub mod media;
pub mod recipient;
pub mod request;
pub mod wire;

pub use content::{
    Content, ContentKind, MediaKind, MediaSource, MessageRef, OutgoingMessage, ResolveError,
    ValidatedMessage,
};
pub use error::RequestError;
pub use extract::read_request;
pub use incoming::{
    Inbound, IncomingContent, IncomingMessage, MediaRef, Sender, Target, TargetKey,
};
pub use media::{FetchConfig, FetchError, FetchedMedia, MediaFetcher, UploadError, upload};
pub use recipient::{InvalidRecipient, Recipient, RecipientKind};
pub use request::{FilePart, Limits, MAX_TEXT_CHARS, ParsedRequest, SendMessageRequest};
pub use wire::{Built, UploadedMedia, WireContext, WireError, build, edit_text, reaction_key};
