//! The state of a session that is meant to be connected, as types: where
//! its connection is ([`Phase`]), how a `working` connection is watched
//! ([`Liveness`]) and how far a phone's linking has come ([`Linking`]).
//! Each piece of state lives in the variant that gives it meaning, so
//! leaving a variant drops it: nothing is reset by hand.

use std::sync::Arc;

use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::super::backoff::Retry;
use super::super::engine::{EngineEvent, Link, NoAnswer};
use super::super::liveness::Watchdog;
use crate::metrics::{LinkMethod, ReconnectReason};

/// Where an active session's connection is. One phase at a time, so a
/// connection and a pending retry can never both exist.
pub(super) enum Phase {
    /// A connection is open or being opened.
    Connected {
        connection: BoxFuture<'static, ()>,
        /// Whether the device was linked when this connection began. One
        /// that starts unlinked and ends linked ended in the stream restart
        /// that follows pairing, which is no failure. Asked of the device
        /// rather than left to the `Paired` event: the client reports
        /// pairing from another task, and the restart can end the
        /// connection before that event arrives.
        began_linked: bool,
        /// This connection is ending by design, and why (its QR codes ran
        /// out; the liveness watch dropped it): reconnect at once, no
        /// failure.
        ends_by_design: Option<ReconnectReason>,
        /// The watch over this connection once it works; it ends with it.
        liveness: Liveness,
    },
    /// Waiting out a backoff before the next attempt.
    Backoff { until: Instant },
    /// The phone linked and the connection ended in the restart that
    /// follows. The client marks its next connection end as expected just
    /// before it reports `PairSuccess`, from another task; a connection
    /// opened before that mark would be cut by it, so the next one waits
    /// for the report (or `until`).
    AwaitingPairReport { until: Instant },
}

impl Phase {
    /// A new connection on `link`.
    pub(super) fn connect(link: &Arc<dyn Link>) -> Self {
        Self::Connected {
            began_linked: link.identity().phone.is_some(),
            connection: link.connect(),
            ends_by_design: None,
            liveness: Liveness::Unwatched,
        }
    }

    /// When the next connection attempt is due, unless one is open.
    pub(super) fn next_attempt(&self) -> Option<Instant> {
        match self {
            Self::Connected { .. } => None,
            Self::Backoff { until } | Self::AwaitingPairReport { until } => Some(*until),
        }
    }

    /// When the watchdog next looks at the connection; never while a ping
    /// is out (its answer or timeout comes first) nor without a watch.
    pub(super) fn next_liveness_check(&self) -> Option<Instant> {
        match self {
            Self::Connected {
                liveness: Liveness::Watched(dog),
                ..
            } => Some(dog.next_check()),
            _ => None,
        }
    }

    /// Marks the open connection's coming end as ours, with its reason;
    /// nothing when none is open.
    pub(super) fn end_by_design(&mut self, reason: ReconnectReason) {
        if let Self::Connected { ends_by_design, .. } = self {
            *ends_by_design = Some(reason);
        }
    }

    /// The watch over the open connection; `None` when none is open.
    pub(super) fn liveness(&mut self) -> Option<&mut Liveness> {
        match self {
            Self::Connected { liveness, .. } => Some(liveness),
            Self::Backoff { .. } | Self::AwaitingPairReport { .. } => None,
        }
    }
}

/// The liveness watch over one connection.
pub(super) enum Liveness {
    /// Not `working` yet, or the link cannot count the frames it receives.
    Unwatched,
    /// `working`: the watchdog looks at the frame counter now and then.
    Watched(Watchdog),
    /// A silent connection was pinged; the answer (or its timeout) is
    /// awaited before the next look.
    Pinging {
        dog: Watchdog,
        ping: BoxFuture<'static, Result<(), NoAnswer>>,
    },
}

/// When a phone began to link, and how: the link time `/metrics` shows
/// runs from the first QR code of a link until it is working.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkStart {
    pub(super) at: Instant,
    pub(super) method: LinkMethod,
}

/// How far a phone's linking has come on this link; it spans connections
/// (a round of QR codes running out, a dropped connection).
pub(super) enum Linking {
    /// No code has been shown: the device was linked already, or WhatsApp
    /// has not sent one yet; and again once the session works.
    Idle,
    /// Codes are showing: a phone may link until `deadline`.
    Open { deadline: Instant, start: LinkStart },
    /// A phone linked; the link time runs on until the session works.
    Linked {
        /// `None` when no code was shown on this link.
        start: Option<LinkStart>,
        /// The client has reported `PairSuccess` on this link.
        reported: bool,
    },
}

impl Linking {
    /// When the link times out unless a phone links.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self {
            Self::Open { deadline, .. } => Some(*deadline),
            Self::Idle | Self::Linked { .. } => None,
        }
    }

    /// A QR code arrived: the linking opens (at the first one) with a
    /// deadline `timeout` away; later codes change nothing.
    pub(super) fn code_shown(&mut self, now: Instant, timeout: std::time::Duration) {
        let start = match self {
            Self::Open { .. } => return,
            Self::Idle => LinkStart {
                at: now,
                method: LinkMethod::QrCode,
            },
            Self::Linked { start, .. } => start.unwrap_or(LinkStart {
                at: now,
                method: LinkMethod::QrCode,
            }),
        };
        *self = Self::Open {
            deadline: now + timeout,
            start,
        };
    }

    /// The phone is linking with a pairing code rather than the QR code.
    pub(super) fn by_pairing_code(&mut self) {
        if let Self::Open { start, .. }
        | Self::Linked {
            start: Some(start), ..
        } = self
        {
            start.method = LinkMethod::PairingCode;
        }
    }

    /// The device is linked now, reported by the client (`reported`) or
    /// seen in the store after the connection restarted. Returns whether
    /// the client has reported it.
    pub(super) fn linked(&mut self, reported: bool) -> bool {
        let (start, was_reported) = match self {
            Self::Idle => (None, false),
            Self::Open { start, .. } => (Some(*start), false),
            Self::Linked { start, reported } => (*start, *reported),
        };
        let reported = reported || was_reported;
        *self = Self::Linked { start, reported };
        reported
    }

    /// The session works: the linking (if any) is over; returns when it
    /// began, for the link time.
    pub(super) fn finish(&mut self) -> Option<LinkStart> {
        match std::mem::replace(self, Self::Idle) {
            Self::Idle => None,
            Self::Open { start, .. } => Some(start),
            Self::Linked { start, .. } => start,
        }
    }
}

/// The state of a session that is meant to be connected.
pub(super) struct Active {
    pub(super) link: Arc<dyn Link>,
    pub(super) events: mpsc::UnboundedReceiver<EngineEvent>,
    pub(super) phase: Phase,
    pub(super) retry: Retry,
    pub(super) linking: Linking,
}

impl Active {
    pub(super) fn new(
        link: Arc<dyn Link>,
        events: mpsc::UnboundedReceiver<EngineEvent>,
        retry: Retry,
    ) -> Self {
        let phase = Phase::connect(&link);
        Self {
            link,
            events,
            phase,
            retry,
            linking: Linking::Idle,
        }
    }

    /// Opens a new connection; whatever the last one held goes with it.
    pub(super) fn connect(&mut self) {
        self.phase = Phase::connect(&self.link);
    }
}

/// What happened on the open connection.
pub(super) enum OnConnection {
    /// It ended.
    Ended,
    /// A liveness ping was answered, or timed out.
    PingAnswer(Result<(), NoAnswer>),
}

/// Resolves when the open connection ends or its ping has an answer (the
/// end first); never while there is no connection.
pub(super) async fn on_connection(phase: &mut Phase) -> OnConnection {
    match phase {
        Phase::Connected {
            connection,
            liveness: Liveness::Pinging { ping, .. },
            ..
        } => tokio::select! {
            biased;
            () = connection => OnConnection::Ended,
            answer = ping => OnConnection::PingAnswer(answer),
        },
        Phase::Connected { connection, .. } => {
            connection.await;
            OnConnection::Ended
        }
        Phase::Backoff { .. } | Phase::AwaitingPairReport { .. } => std::future::pending().await,
    }
}

pub(super) async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
