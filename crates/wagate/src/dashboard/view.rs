//! Small pieces of markup shared by several pages: status badges, times,
//! phone numbers, and what to tell the user about a status.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::domain::{SessionStatus, StatusReason};

pub(crate) fn status_label(status: SessionStatus) -> &'static str {
    match status {
        SessionStatus::Starting => "Starting",
        SessionStatus::ScanQrCode => "Waiting for phone",
        SessionStatus::Working => "Working",
        SessionStatus::Stopped => "Stopped",
        SessionStatus::Failed => "Failed",
        SessionStatus::LoggedOut => "Logged out",
    }
}

/// The badge carries the API's status name in `data-status` so scripts
/// and tests can read it, and a human label as its text.
pub(crate) fn badge(status: SessionStatus) -> Markup {
    let s = status.as_str();
    html! {
        span class={ "badge badge-" (s) } data-status=(s) title=(s) { (status_label(status)) }
    }
}

/// A timestamp the page script turns into the viewer's local time.
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) data-local { (at.format("%Y-%m-%d %H:%M UTC")) }
    }
}

/// `+628123456789`: the international number as people write it.
pub(crate) fn phone(digits: &str) -> String {
    format!("+{digits}")
}

/// A message written for the API ("url must be …") as a sentence for a
/// page: capitalised, with a full stop.
pub(crate) fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    chars.next().map_or_else(String::new, |first| {
        let rest = chars.as_str().trim_end_matches('.');
        format!("{}{rest}.", first.to_uppercase())
    })
}

/// What happened and what to do, for statuses that need a person.
pub(crate) fn explain(
    status: SessionStatus,
    reason: Option<StatusReason>,
) -> Option<(&'static str, &'static str)> {
    match (status, reason) {
        (SessionStatus::Failed, Some(StatusReason::LinkTimeout)) => Some((
            "Nobody linked a phone in time.",
            "The QR code and pairing code expired before a phone used them. Press Start to get a fresh code, then link within a few minutes.",
        )),
        (SessionStatus::Failed, Some(StatusReason::ClientOutdated)) => Some((
            "WhatsApp rejected this gateway's client version.",
            "Update wagate to a newer release, then press Start.",
        )),
        (SessionStatus::Failed, Some(StatusReason::Replaced)) => Some((
            "Another connection of this linked device logged in to WhatsApp, which closed this one.",
            "Another gateway process (or a copy of this one's database) is using the same device. Stop it, then press Start. Several gateway processes on one database need --nats.",
        )),
        (SessionStatus::Failed, Some(StatusReason::DeviceStoreUnavailable)) => Some((
            "The session's device keys could not be opened.",
            "Check that the gateway's data directory is readable and has free space, then press Start. If that does not help, delete the session and link again.",
        )),
        (SessionStatus::Failed, _) => Some((
            "The gateway could not reach WhatsApp and stopped retrying.",
            "Check the gateway's network connection, then press Start to try again. The link to the phone is kept.",
        )),
        (SessionStatus::LoggedOut, Some(StatusReason::LogoutRequested)) => Some((
            "This session was logged out from the gateway.",
            "The device was removed from the phone's linked devices. Press Start to link a phone again.",
        )),
        (SessionStatus::LoggedOut, Some(StatusReason::TemporarilyBanned)) => Some((
            "WhatsApp temporarily banned this number.",
            "Wait until the ban is lifted, then press Start and link the phone again.",
        )),
        (SessionStatus::LoggedOut, _) => Some((
            "The link was removed — from the phone's Linked devices, or by WhatsApp.",
            "Messages are no longer sent or received. Press Start to show a new QR code and link the phone again.",
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_and_logged_out_always_say_what_to_do() {
        for status in [SessionStatus::Failed, SessionStatus::LoggedOut] {
            assert!(explain(status, None).is_some());
        }
        assert!(explain(SessionStatus::Working, None).is_none());
    }
}
