//! How the supervisor answers what the protocol reports ([`EngineEvent`]):
//! QR and pairing codes, a linked phone, a working connection, and the
//! ends WhatsApp imposes (logout, ban, outdated client).

use std::sync::Arc;

use tokio::time::Instant;

use super::command::{Expiring, format_pairing_code};
use super::phase::{Active, Liveness, Phase};
use super::{Exit, Flow, Live, StepResult, Supervisor};
use crate::domain::{SessionStatus, StatusReason};
use crate::events::EventData;
use crate::metrics::ReconnectReason;
use crate::session::engine::EngineEvent;
use crate::session::liveness::Watchdog;

impl Supervisor {
    pub(super) async fn on_event(&mut self, event: EngineEvent, active: &mut Active) -> StepResult {
        match event {
            EngineEvent::QrCode { code, valid_for } => {
                // Reaching the server is progress, whatever the linking does.
                active.retry.reset();
                active
                    .linking
                    .code_shown(Instant::now(), self.policy.link_timeout);
                self.set_status(SessionStatus::ScanQrCode, None).await?;
                let qr = Expiring::valid_for(code, valid_for);
                self.live.send_replace(Live {
                    qr: Some(qr.clone()),
                });
                self.publish(EventData::Qr {
                    code: qr.code,
                    expires_at: qr.expires_at,
                })
                .await?;
            }
            EngineEvent::QrCodesExhausted => {
                tracing::debug!("QR codes exhausted, starting a new linking round");
                self.live.send_replace(Live::default());
                active
                    .phase
                    .end_by_design(ReconnectReason::QrCodesExhausted);
            }
            EngineEvent::PairingCode { code, valid_for } => {
                active.linking.by_pairing_code();
                let code = Expiring::valid_for(format_pairing_code(&code), valid_for);
                self.publish(EventData::PairingCode {
                    code: code.code,
                    expires_at: code.expires_at,
                })
                .await?;
            }
            EngineEvent::Paired { phone } => {
                tracing::info!("a phone linked this session");
                self.linked = true;
                active.linking.linked(true);
                if let Phase::AwaitingPairReport { until } = &mut active.phase {
                    // The restart after pairing was waiting for this.
                    *until = Instant::now();
                }
                self.live.send_replace(Live::default());
                self.save_identity(Some(phone), None).await?;
            }
            EngineEvent::Connected => {
                active.retry.reset();
                // Logged in, so linked: the link timeout no longer runs,
                // while the link time does until the status is saved.
                active.linking.linked(false);
                self.live.send_replace(Live::default());
                let identity = active.link.identity();
                if identity.phone.is_some() {
                    self.linked = true;
                    self.save_identity(identity.phone, identity.push_name)
                        .await?;
                }
                self.set_status(SessionStatus::Working, None).await?;
                if let Some(start) = active.linking.finish() {
                    self.hub.metrics().linked(start.method, start.at.elapsed());
                }
                self.working.send_replace(Some(Arc::clone(&active.link)));
                if let Some(liveness) = active.phase.liveness() {
                    *liveness = match active.link.frames_received() {
                        Some(frames) => Liveness::Watched(Watchdog::new(
                            self.policy.liveness,
                            frames,
                            Instant::now(),
                        )),
                        None => Liveness::Unwatched,
                    };
                }
            }
            EngineEvent::LoggedOut => {
                tracing::info!("the device was unlinked");
                active.link.disconnect().await;
                self.forget_device(StatusReason::LoggedOutFromPhone).await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
            EngineEvent::TemporarilyBanned { expires_in } => {
                tracing::warn!(?expires_in, "WhatsApp temporarily banned this number");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::TemporarilyBanned))
                    .await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
            EngineEvent::Replaced => {
                // Reconnecting would close the other connection in turn,
                // and the two would take the device from each other for
                // ever, both writing its keys.
                tracing::warn!(
                    "another connection of this device logged in to WhatsApp; \
                     giving way and not reconnecting"
                );
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::Replaced))
                    .await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
            EngineEvent::ClientOutdated => {
                tracing::error!("WhatsApp rejected this client version");
                active.link.disconnect().await;
                self.set_status(SessionStatus::Failed, Some(StatusReason::ClientOutdated))
                    .await?;
                return Ok(Flow::Exit(Exit::Idle));
            }
        }
        Ok(Flow::Continue)
    }
}
