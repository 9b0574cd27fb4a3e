//! The connection's life inside an active session: attempts, the liveness
//! watch over a `working` one, its end (reconnect, backoff, or give up),
//! and the recovery from a change the store could not save.

use std::time::Duration;

use tokio::time::Instant;

use super::phase::{Active, Liveness, Phase};
use super::{Exit, Flow, Live, StepError, StepResult, Supervisor};
use crate::domain::{SessionStatus, StatusReason};
use crate::metrics::ReconnectReason;
use crate::session::engine::NoAnswer;
use crate::session::liveness::Check;

/// After pairing, how long the restart waits for the client to report
/// `PairSuccess` before reconnecting anyway (it normally takes
/// milliseconds).
const PAIRED_REPORT_GRACE: Duration = Duration::from_secs(5);

impl Supervisor {
    /// A new connection attempt. The status is `starting` before it is
    /// made: that is what the row already says unless a store error cut
    /// the last connection off before its end could be recorded.
    pub(super) async fn attempt(&mut self, active: &mut Active) -> StepResult {
        if self.status == SessionStatus::Working {
            self.set_status(SessionStatus::Starting, Some(StatusReason::ConnectionLost))
                .await?;
        }
        active.connect();
        Ok(Flow::Continue)
    }

    /// A change could not be saved: the connection is dropped and made
    /// again after a backoff (taken from the retry budget, as a failed
    /// connection's). `Some` when the budget is spent: the session stops,
    /// recorded as failed if the store takes that.
    pub(super) async fn after_store_error(&mut self, active: &mut Active) -> Option<Exit> {
        active.link.disconnect().await;
        self.live.send_replace(Live::default());
        self.working.send_replace(None);
        let now = Instant::now();
        match active.retry.next_delay(now) {
            Some(delay) => {
                // Dropping the ended connection's future aborts its task,
                // and its liveness watch goes with it.
                active.phase = Phase::Backoff { until: now + delay };
                None
            }
            None => {
                if let Err(error) = self
                    .set_status(SessionStatus::Failed, Some(StatusReason::ConnectionFailed))
                    .await
                {
                    tracing::error!(%error, "could not record the failure either");
                }
                Some(Exit::Idle)
            }
        }
    }

    /// The watchdog's periodic look: a connection silent for too long is
    /// pinged.
    pub(super) fn look_at_connection(&self, active: &mut Active) {
        let Some(liveness) = active.phase.liveness() else {
            return;
        };
        let (Liveness::Watched(dog), Some(frames)) =
            (&mut *liveness, active.link.frames_received())
        else {
            return;
        };
        if dog.check(frames, Instant::now()) != Check::Probe {
            return;
        }
        tracing::debug!(silent_for = ?dog.silent_for(Instant::now()), "pinging a silent connection");
        let ping = active.link.ping(dog.policy().timeout);
        if let Liveness::Watched(dog) = std::mem::replace(liveness, Liveness::Unwatched) {
            *liveness = Liveness::Pinging { dog, ping };
        }
    }

    /// A liveness ping's outcome: an unanswered one means the connection
    /// only looks open, so it is dropped and made again, and the status
    /// event says why.
    pub(super) async fn on_ping(
        &mut self,
        answer: Result<(), NoAnswer>,
        active: &mut Active,
    ) -> Result<(), StepError> {
        let Some(liveness) = active.phase.liveness() else {
            return Ok(());
        };
        let Liveness::Pinging { mut dog, .. } = std::mem::replace(liveness, Liveness::Unwatched)
        else {
            return Ok(());
        };
        let now = Instant::now();
        if answer.is_ok() {
            dog.answered(now);
            *liveness = Liveness::Watched(dog);
            return Ok(());
        }
        tracing::warn!(
            silent_for = ?dog.silent_for(now),
            "WhatsApp stopped answering on this connection; reconnecting"
        );
        // The end that follows is ours: reconnect at once. The watch stays
        // off until the next connection works.
        active.phase.end_by_design(ReconnectReason::NoResponse);
        self.live.send_replace(Live::default());
        self.set_status(SessionStatus::Starting, Some(StatusReason::NoResponse))
            .await?;
        active.link.drop_connection().await;
        Ok(())
    }

    pub(super) async fn on_connection_end(&mut self, active: &mut Active) -> StepResult {
        // Events dispatched just before the end decide what it means (a
        // logout, a ban, a finished pairing, codes used up), so they go
        // first, while the phase still describes the ended connection.
        while let Ok(event) = active.events.try_recv() {
            if let Flow::Exit(exit) = self.on_event(event, active).await? {
                return Ok(Flow::Exit(exit));
            }
        }
        let now = Instant::now();
        let ended = std::mem::replace(&mut active.phase, Phase::Backoff { until: now });
        let Phase::Connected {
            began_linked,
            ends_by_design,
            ..
        } = ended
        else {
            return Ok(Flow::Continue);
        };
        if !began_linked && active.link.identity().phone.is_some() {
            self.linked = true;
            self.hub
                .metrics()
                .reconnected(ReconnectReason::AfterPairing);
            if active.linking.linked(false) {
                active.connect();
            } else {
                active.phase = Phase::AwaitingPairReport {
                    until: now + PAIRED_REPORT_GRACE,
                };
            }
            return Ok(Flow::Continue);
        }
        if let Some(reason) = ends_by_design {
            self.hub.metrics().reconnected(reason);
            active.connect();
            return Ok(Flow::Continue);
        }
        self.live.send_replace(Live::default());
        if self.status != SessionStatus::Starting {
            self.set_status(SessionStatus::Starting, Some(StatusReason::ConnectionLost))
                .await?;
        }
        match active.retry.next_delay(now) {
            Some(delay) => {
                tracing::info!(?delay, "connection ended, reconnecting");
                self.hub
                    .metrics()
                    .reconnected(ReconnectReason::ConnectionLost);
                active.phase = Phase::Backoff { until: now + delay };
                Ok(Flow::Continue)
            }
            None => {
                tracing::warn!("retry budget spent, giving up");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::ConnectionFailed))
                    .await?;
                Ok(Flow::Exit(Exit::Idle))
            }
        }
    }
}
