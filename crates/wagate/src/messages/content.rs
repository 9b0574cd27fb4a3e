//! What a message says, validated, in the form the outbox persists (as JSON,
//! before the 202). Media bytes are not part of it: the lead's store keeps
//! them in a blob column and [`MediaSource::Stored`] points there.

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;
use uuid::Uuid;

use super::recipient::Recipient;
use crate::domain::named_enum;

named_enum! {
    /// The kinds of message the API sends, as named in the request and in
    /// `kind` columns.
    pub(crate) enum ContentKind {
        Text = "text",
        Image = "image",
        Video = "video",
        Audio = "audio",
        Voice = "voice",
        Document = "document",
        Sticker = "sticker",
        Location = "location",
        Contact = "contact",
        Reaction = "reaction",
        Poll = "poll",
        /// A new text for a message this session sent (its own endpoint).
        Edit = "edit",
        /// "Deleted for everyone" for a message this session sent (its own
        /// endpoint).
        Revoke = "revoke",
    }
}

impl ContentKind {
    /// Whether a message of this kind may quote another (`reply_to`).
    pub(crate) fn can_reply(self) -> bool {
        matches!(
            self,
            Self::Text
                | Self::Image
                | Self::Video
                | Self::Audio
                | Self::Voice
                | Self::Document
                | Self::Sticker
        )
    }
}

/// The media kinds: each is uploaded and sent differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    /// A voice note: audio played as push-to-talk.
    Voice,
    Document,
    Sticker,
}

impl MediaKind {
    pub const ALL: [Self; 6] = [
        Self::Image,
        Self::Video,
        Self::Audio,
        Self::Voice,
        Self::Document,
        Self::Sticker,
    ];

    pub fn as_str(self) -> &'static str {
        ContentKind::from(self).as_str()
    }

    /// Only these carry a caption on WhatsApp.
    pub fn allows_caption(self) -> bool {
        matches!(self, Self::Image | Self::Video | Self::Document)
    }

    pub fn allows_file_name(self) -> bool {
        self == Self::Document
    }

    /// What to call the bytes when neither the request, the transport nor
    /// the bytes themselves say.
    pub fn default_mime(self) -> &'static str {
        match self {
            Self::Image => "image/jpeg",
            Self::Video => "video/mp4",
            Self::Audio => "audio/mpeg",
            // WhatsApp clients play voice notes only as Opus in Ogg.
            Self::Voice => "audio/ogg; codecs=opus",
            Self::Document => "application/octet-stream",
            Self::Sticker => "image/webp",
        }
    }

    /// Whether a mime type can be sent as this kind: WhatsApp renders an
    /// image message only for images, and so on. Documents take anything.
    pub fn accepts_mime(self, mime: &mime::Mime) -> bool {
        match self {
            Self::Image => mime.type_() == mime::IMAGE,
            Self::Video => mime.type_() == mime::VIDEO,
            Self::Audio | Self::Voice => mime.type_() == mime::AUDIO,
            Self::Sticker => mime.type_() == mime::IMAGE && mime.subtype() == "webp",
            Self::Document => true,
        }
    }
}

impl From<MediaKind> for ContentKind {
    fn from(kind: MediaKind) -> Self {
        match kind {
            MediaKind::Image => Self::Image,
            MediaKind::Video => Self::Video,
            MediaKind::Audio => Self::Audio,
            MediaKind::Voice => Self::Voice,
            MediaKind::Document => Self::Document,
            MediaKind::Sticker => Self::Sticker,
        }
    }
}

/// Where a media message's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum MediaSource {
    /// Fetched by the outbox worker when it sends (http or https only).
    Url(Url),
    /// Sent in the request (base64 or a multipart file) and stored by the
    /// gateway beside the outbox row.
    Stored,
}

/// A message already in WhatsApp, as the lead's store resolves it from a
/// gateway message id: what a reply quotes and a reaction points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MessageRef {
    /// The WhatsApp message id (the stanza id).
    pub wa_id: String,
    /// The chat it is in.
    pub chat: Recipient,
    /// Whether this session's account sent it.
    pub from_me: bool,
    /// The JID of its author; in a group, who wrote it. `None` for a
    /// message in a one-to-one chat, whose author is the chat (or, when
    /// `from_me`, this session's account).
    pub sender: Option<String>,
}

/// The validated content of a message. `T` is how a reaction names its
/// target: a gateway message id ([`Uuid`]) straight out of the request, a
/// [`MessageRef`] once the store has resolved it (see
/// [`Content::resolve_target`]).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Content<T = MessageRef> {
    Text {
        body: String,
        link_preview: bool,
    },
    Media {
        kind: MediaKind,
        source: MediaSource,
        caption: Option<String>,
        file_name: Option<String>,
        /// Always set for [`MediaSource::Stored`] (resolved at validation);
        /// for a URL, the declared type if any, else resolved when fetched.
        mime_type: Option<String>,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
    Contacts {
        vcards: Vec<String>,
    },
    Reaction {
        target: T,
        /// Empty removes this account's reaction.
        emoji: String,
    },
    Poll {
        question: String,
        options: Vec<String>,
        selectable_count: u32,
    },
    /// Replaces the text of `target`, a text message this session sent.
    Edit {
        target: T,
        body: String,
    },
    /// Deletes `target`, a message this session sent, for everyone.
    Revoke {
        target: T,
    },
}

impl<T> Content<T> {
    pub(crate) fn kind(&self) -> ContentKind {
        match self {
            Self::Text { .. } => ContentKind::Text,
            Self::Media { kind, .. } => (*kind).into(),
            Self::Location { .. } => ContentKind::Location,
            Self::Contacts { .. } => ContentKind::Contact,
            Self::Reaction { .. } => ContentKind::Reaction,
            Self::Poll { .. } => ContentKind::Poll,
            Self::Edit { .. } => ContentKind::Edit,
            Self::Revoke { .. } => ContentKind::Revoke,
        }
    }

    /// The message a reaction, an edit or a revoke points at, for the
    /// store to resolve.
    pub(crate) fn target(&self) -> Option<&T> {
        match self {
            Self::Reaction { target, .. } | Self::Edit { target, .. } | Self::Revoke { target } => {
                Some(target)
            }
            _ => None,
        }
    }

    /// Replaces a reaction's target by what `resolve` makes of it; every
    /// other kind passes through unchanged.
    pub(crate) fn resolve_target<U, E>(
        self,
        resolve: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Content<U>, E> {
        Ok(match self {
            Self::Reaction { target, emoji } => Content::Reaction {
                target: resolve(target)?,
                emoji,
            },
            Self::Edit { target, body } => Content::Edit {
                target: resolve(target)?,
                body,
            },
            Self::Revoke { target } => Content::Revoke {
                target: resolve(target)?,
            },
            Self::Text { body, link_preview } => Content::Text { body, link_preview },
            Self::Media {
                kind,
                source,
                caption,
                file_name,
                mime_type,
            } => Content::Media {
                kind,
                source,
                caption,
                file_name,
                mime_type,
            },
            Self::Location {
                latitude,
                longitude,
                name,
                address,
            } => Content::Location {
                latitude,
                longitude,
                name,
                address,
            },
            Self::Contacts { vcards } => Content::Contacts { vcards },
            Self::Poll {
                question,
                options,
                selectable_count,
            } => Content::Poll {
                question,
                options,
                selectable_count,
            },
        })
    }
}

/// Says what a message is without what it says: bodies, captions, vcards and
/// poll texts are private, and a `{:?}` ends up in logs.
impl<T> fmt::Debug for Content<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Content");
        d.field("kind", &self.kind());
        match self {
            Self::Text { body, link_preview } => d
                .field("body_chars", &body.chars().count())
                .field("link_preview", link_preview),
            Self::Edit { body, .. } => d.field("body_chars", &body.chars().count()),
            Self::Media {
                source,
                caption,
                mime_type,
                ..
            } => d
                .field(
                    "source",
                    &match source {
                        MediaSource::Url(_) => "url",
                        MediaSource::Stored => "stored",
                    },
                )
                .field("has_caption", &caption.is_some())
                .field("mime_type", mime_type),
            Self::Contacts { vcards } => d.field("vcards", &vcards.len()),
            Self::Poll { options, .. } => d.field("options", &options.len()),
            Self::Location { .. } | Self::Reaction { .. } | Self::Revoke { .. } => &mut d,
        };
        d.finish_non_exhaustive()
    }
}

/// A request, validated: what the lead's handler gets before it resolves the
/// gateway ids (`reply_to`, a reaction's target) into [`MessageRef`]s.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ValidatedMessage {
    pub to: Recipient,
    /// A gateway message id to quote.
    pub reply_to: Option<Uuid>,
    pub content: Content<Uuid>,
}

/// What the outbox persists (as JSON) and the worker turns into a WhatsApp
/// message: every reference resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OutgoingMessage {
    pub to: Recipient,
    pub reply_to: Option<MessageRef>,
    pub content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// A reaction can only be sent in the chat of the message it reacts to.
    #[error("the reaction's message is in another chat than `to`")]
    ReactionChatMismatch,
}

impl ResolveError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::ReactionChatMismatch => "reaction_chat_mismatch",
        }
    }
}

impl ValidatedMessage {
    /// Builds what the outbox stores once the store has resolved
    /// `reply_to` and the reaction's target (`None` where there is none).
    pub(crate) fn resolve(
        self,
        reply_to: Option<MessageRef>,
        target: Option<MessageRef>,
    ) -> Result<OutgoingMessage, ResolveError> {
        let content = self
            .content
            .resolve_target(|_| target.ok_or(ResolveError::ReactionChatMismatch))?;
        if let Some(target) = content.target()
            && target.chat != self.to
        {
            return Err(ResolveError::ReactionChatMismatch);
        }
        Ok(OutgoingMessage {
            to: self.to,
            reply_to,
            content,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bob() -> Recipient {
        "15551234567".parse().unwrap()
    }

    fn reference(chat: Recipient) -> MessageRef {
        MessageRef {
            wa_id: "3EB0AAAA".into(),
            chat,
            from_me: false,
            sender: None,
        }
    }

    #[test]
    fn kinds_have_the_contract_names_and_only_text_and_media_reply() {
        // Edits and revokes have endpoints of their own; a send request
        // names the rest.
        let sendable = || {
            ContentKind::ALL
                .into_iter()
                .filter(|k| !matches!(k, ContentKind::Edit | ContentKind::Revoke))
        };
        let names: Vec<_> = sendable().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "text", "image", "video", "audio", "voice", "document", "sticker", "location",
                "contact", "reaction", "poll"
            ]
        );
        for kind in ContentKind::ALL {
            assert_eq!(
                serde_json::to_value(kind).ok(),
                Some(serde_json::Value::String(kind.as_str().into()))
            );
        }
        crate::domain::named::assert_names_round_trip::<ContentKind>();
        let replying: Vec<_> = sendable().filter(|k| k.can_reply()).collect();
        assert_eq!(replying.len(), 7);
        assert!(!ContentKind::Reaction.can_reply());
        assert!(!ContentKind::Poll.can_reply());
    }

    #[test]
    fn media_kinds_know_their_captions_names_and_mime_types() {
        let captioned: Vec<_> = MediaKind::ALL
            .into_iter()
            .filter(|k| k.allows_caption())
            .collect();
        assert_eq!(
            captioned,
            [MediaKind::Image, MediaKind::Video, MediaKind::Document]
        );
        assert!(MediaKind::Document.allows_file_name());
        assert!(!MediaKind::Image.allows_file_name());
        assert_eq!(MediaKind::Voice.default_mime(), "audio/ogg; codecs=opus");
        let webp: mime::Mime = "image/webp".parse().unwrap();
        let png: mime::Mime = "image/png".parse().unwrap();
        let pdf: mime::Mime = "application/pdf".parse().unwrap();
        assert!(MediaKind::Sticker.accepts_mime(&webp));
        assert!(!MediaKind::Sticker.accepts_mime(&png));
        assert!(MediaKind::Image.accepts_mime(&png));
        assert!(!MediaKind::Image.accepts_mime(&pdf));
        assert!(MediaKind::Document.accepts_mime(&pdf));
        for kind in MediaKind::ALL {
            // A media kind's name is its content kind's, in serde too.
            let json = serde_json::to_value(kind).ok();
            assert_eq!(json, Some(serde_json::Value::String(kind.as_str().into())));
            assert_eq!(
                serde_json::from_value(json.unwrap_or_default()).ok(),
                Some(kind)
            );
            let default: mime::Mime = kind.default_mime().parse().unwrap();
            assert!(kind.accepts_mime(&default), "{kind:?}");
        }
    }

    #[test]
    fn content_round_trips_as_tagged_json_without_bytes() {
        let content: Content = Content::Media {
            kind: MediaKind::Image,
            source: MediaSource::Url("https://example.com/a.jpg".parse().unwrap()),
            caption: Some("hi".into()),
            file_name: None,
            mime_type: None,
        };
        let json = serde_json::to_value(&content).unwrap();
        assert_eq!(json["type"], "media");
        assert_eq!(json["kind"], "image");
        assert_eq!(json["source"]["url"], "https://example.com/a.jpg");
        assert_eq!(serde_json::from_value::<Content>(json).unwrap(), content);

        let stored: Content = Content::Media {
            kind: MediaKind::Voice,
            source: MediaSource::Stored,
            caption: None,
            file_name: None,
            mime_type: Some("audio/ogg".into()),
        };
        let json = serde_json::to_value(&stored).unwrap();
        assert_eq!(json["source"], "stored");
        assert_eq!(serde_json::from_value::<Content>(json).unwrap(), stored);
    }

    #[test]
    fn debug_never_shows_what_the_message_says() {
        let text: Content = Content::Text {
            body: "the secret plan".into(),
            link_preview: false,
        };
        let shown = format!("{text:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("Text"));
        let poll: Content = Content::Poll {
            question: "secret question".into(),
            options: vec!["hidden a".into(), "hidden b".into()],
            selectable_count: 1,
        };
        assert!(!format!("{poll:?}").contains("secret"));
        assert!(!format!("{poll:?}").contains("hidden"));
    }

    #[test]
    fn resolving_a_reaction_fills_its_target_and_checks_the_chat() {
        let id = Uuid::now_v7();
        let message = ValidatedMessage {
            to: bob(),
            reply_to: None,
            content: Content::Reaction {
                target: id,
                emoji: "👍".into(),
            },
        };
        let out = message
            .clone()
            .resolve(None, Some(reference(bob())))
            .unwrap();
        assert_eq!(out.content.target(), Some(&reference(bob())));

        let group: Recipient = "120363025246125888@g.us".parse().unwrap();
        assert_eq!(
            message.clone().resolve(None, Some(reference(group))),
            Err(ResolveError::ReactionChatMismatch)
        );
        assert_eq!(
            message.resolve(None, None),
            Err(ResolveError::ReactionChatMismatch)
        );
    }

    #[test]
    fn resolving_other_content_keeps_it_and_carries_the_reply() {
        let reply = Uuid::now_v7();
        let message = ValidatedMessage {
            to: bob(),
            reply_to: Some(reply),
            content: Content::Text {
                body: "hi".into(),
                link_preview: true,
            },
        };
        let out = message.resolve(Some(reference(bob())), None).unwrap();
        assert_eq!(out.reply_to, Some(reference(bob())));
        assert_eq!(
            out.content,
            Content::Text {
                body: "hi".into(),
                link_preview: true
            }
        );
    }
}
