//! The six statuses a session can be in, and which moves between them are
//! legal. A change is made of a [`Transition`], which only
//! [`SessionStatus::transition`] gives out, so an impossible sequence is an
//! error where it happens rather than a row that says it happened.

use super::named_enum;

named_enum! {
    pub enum SessionStatus {
        /// Connecting to WhatsApp.
        Starting = "starting",
        /// Waiting for a phone to scan the QR code or enter the pairing code.
        ScanQrCode = "scan_qr_code",
        /// Linked and live.
        Working = "working",
        /// Stopped on purpose; reconnects when started.
        Stopped = "stopped",
        /// The gateway stopped retrying.
        Failed = "failed",
        /// The link was removed; needs re-linking.
        LoggedOut = "logged_out",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal session status transition from {from} to {to}")]
pub struct IllegalTransition {
    pub from: SessionStatus,
    pub to: SessionStatus,
}

/// A legal move from one status to another. Its fields are private: the
/// only way to get one is [`SessionStatus::transition`], so whatever takes
/// a `Transition` (the status writer) never writes an illegal change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    from: SessionStatus,
    to: SessionStatus,
}

impl Transition {
    pub fn from(self) -> SessionStatus {
        self.from
    }

    pub fn to(self) -> SessionStatus {
        self.to
    }
}

impl SessionStatus {
    /// Whether a supervisor is (or should be) holding a connection.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Starting | Self::ScanQrCode | Self::Working)
    }

    pub fn can_transition_to(self, next: Self) -> bool {
        use SessionStatus::*;
        matches!(
            (self, next),
            // `start` always tries again, whatever ended the last run.
            (Stopped | Failed | LoggedOut, Starting)
                | (Starting, ScanQrCode | Working)
                // A scan completes, or the linking connection drops.
                | (ScanQrCode, Working | Starting)
                // A dropped connection reconnects.
                | (Working, Starting)
                | (Starting | ScanQrCode | Working, Stopped | Failed)
                // The phone, a ban or the API can remove the link at any
                // time; only an already logged-out session cannot be again.
                | (Starting | ScanQrCode | Working | Stopped | Failed, LoggedOut)
        )
    }

    /// The move to `next`, if the table above allows it; a status never
    /// moves to itself.
    pub fn transition(self, next: Self) -> Result<Transition, IllegalTransition> {
        if self.can_transition_to(next) {
            Ok(Transition {
                from: self,
                to: next,
            })
        } else {
            Err(IllegalTransition {
                from: self,
                to: next,
            })
        }
    }
}

named_enum! {
    /// Why a session is in its current status, when the status alone does not
    /// say.
    pub enum StatusReason {
        /// Nobody linked a phone before the link timeout.
        LinkTimeout = "link_timeout",
        /// WhatsApp stayed unreachable for the whole retry budget.
        ConnectionFailed = "connection_failed",
        /// The connection dropped; the gateway is reconnecting.
        ConnectionLost = "connection_lost",
        /// WhatsApp stopped answering on a connection that looked open (no
        /// frame, no answer to a ping); the gateway dropped it and is
        /// reconnecting.
        NoResponse = "no_response",
        /// The device was removed from the phone's linked devices.
        LoggedOutFromPhone = "logged_out_from_phone",
        /// The device was unlinked through the API.
        LogoutRequested = "logout_requested",
        /// WhatsApp temporarily banned the number.
        TemporarilyBanned = "temporarily_banned",
        /// WhatsApp rejected this client version.
        ClientOutdated = "client_outdated",
        /// Another connection of the same linked device logged in to
        /// WhatsApp (another gateway process on the same database, or on a
        /// copy of it), and WhatsApp closed this one; the gateway gave way
        /// rather than fight over the device. Start the session to take it
        /// back.
        Replaced = "replaced",
        /// The session was stopped through the API.
        StopRequested = "stop_requested",
        /// The session's device keys could not be opened.
        DeviceStoreUnavailable = "device_store_unavailable",
        /// The session's task failed unexpectedly (a bug, logged); start it
        /// again.
        InternalError = "internal_error",
    }
}

#[cfg(test)]
mod tests {
    use super::SessionStatus::*;
    use super::*;

    #[test]
    fn the_linking_happy_path_is_legal() {
        let path = [Stopped, Starting, ScanQrCode, Working];
        for pair in path.windows(2) {
            assert_eq!(pair[0].transition(pair[1]).map(Transition::to), Ok(pair[1]));
        }
    }

    #[test]
    fn a_dropped_connection_reconnects_and_can_give_up() {
        assert!(Working.can_transition_to(Starting));
        assert!(Starting.can_transition_to(Working));
        assert!(Starting.can_transition_to(Failed));
        assert!(ScanQrCode.can_transition_to(Failed));
    }

    #[test]
    fn start_always_tries_again() {
        for from in [Stopped, Failed, LoggedOut] {
            assert!(from.can_transition_to(Starting), "{from}");
        }
    }

    #[test]
    fn nothing_skips_connecting() {
        for from in [Stopped, Failed, LoggedOut] {
            assert!(!from.can_transition_to(Working), "{from}");
            assert!(!from.can_transition_to(ScanQrCode), "{from}");
        }
        assert!(!Working.can_transition_to(ScanQrCode));
    }

    #[test]
    fn a_status_never_transitions_to_itself() {
        for status in SessionStatus::ALL {
            assert_eq!(
                status.transition(status),
                Err(IllegalTransition {
                    from: status,
                    to: status
                })
            );
        }
    }

    #[test]
    fn an_illegal_transition_is_refused_with_both_ends() {
        let refused = Working.transition(ScanQrCode);
        assert_eq!(
            refused,
            Err(IllegalTransition {
                from: Working,
                to: ScanQrCode
            })
        );
        assert_eq!(
            refused.map_err(|illegal| illegal.to_string()),
            Err("illegal session status transition from working to scan_qr_code".to_string())
        );
        let legal = Working.transition(Starting);
        assert_eq!(legal.map(|t| (t.from(), t.to())), Ok((Working, Starting)));
    }

    #[test]
    fn terminal_statuses_only_leave_through_start_or_logout() {
        for from in [Failed, LoggedOut, Stopped] {
            for to in SessionStatus::ALL {
                let allowed = to == Starting || (to == LoggedOut && from != LoggedOut);
                assert_eq!(from.can_transition_to(to), allowed, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn statuses_round_trip_through_their_wire_names() {
        for status in SessionStatus::ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).ok(),
                Some(serde_json::Value::String(status.as_str().into()))
            );
        }
        for reason in StatusReason::ALL {
            assert_eq!(reason.as_str().parse(), Ok(reason));
            assert_eq!(
                serde_json::to_value(reason).ok(),
                Some(serde_json::Value::String(reason.as_str().into()))
            );
        }
        assert!("linked".parse::<SessionStatus>().is_err());
        crate::domain::named::assert_names_round_trip::<SessionStatus>();
        crate::domain::named::assert_names_round_trip::<StatusReason>();
    }
}
