//! Removing the link: logging a session out while no connection is held,
//! forgetting its device, and wiping its keys before it is deleted.

use std::time::Duration;

use tokio::sync::mpsc;

use super::command::CommandError;
use super::{StepError, Supervisor};
use crate::domain::{SessionStatus, StatusReason};
use crate::session::engine::EngineEvent;

/// How long an unlink of a stopped session waits to reach WhatsApp.
const UNLINK_CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

impl Supervisor {
    /// Logs a linked session out while no connection is held: connects just
    /// long enough to tell WhatsApp, then forgets the device either way.
    pub(super) async fn unlink_while_idle(
        &mut self,
        reason: StatusReason,
    ) -> Result<(), CommandError> {
        if !self.linked {
            return Err(CommandError::NotLinked);
        }
        let (tx, mut events) = mpsc::unbounded_channel();
        match self
            .engine
            .open(self.id, tx, self.deliveries.clone(), self.inbox())
            .await
        {
            Ok(link) => {
                let mut connection = link.connect();
                let connected = tokio::time::timeout(UNLINK_CONNECT_TIMEOUT, async {
                    loop {
                        tokio::select! {
                            event = events.recv() => match event {
                                Some(EngineEvent::Connected) => return true,
                                Some(EngineEvent::LoggedOut) | None => return false,
                                Some(_) => {}
                            },
                            () = &mut connection => return false,
                        }
                    }
                })
                .await
                .unwrap_or(false);
                if !connected {
                    tracing::warn!(
                        "could not reach WhatsApp to unlink; the phone may still list this device"
                    );
                }
                link.logout().await;
            }
            Err(error) => tracing::error!(%error, "could not open the device store to unlink"),
        }
        self.forget_device(reason).await.map_err(|error| {
            tracing::error!(%error, "could not record the unlink");
            CommandError::NotSaved
        })
    }

    /// Wipes the keys, then records the session as logged out. A wipe that
    /// fails is the caller's error: a session recorded as logged out with
    /// its keys still there would, on its next start, try the revoked
    /// device instead of showing a QR code.
    pub(super) async fn forget_device(&mut self, reason: StatusReason) -> Result<(), StepError> {
        self.engine.wipe(self.id).await?;
        self.linked = false;
        self.save_identity(None, None).await?;
        self.set_status(SessionStatus::LoggedOut, Some(reason))
            .await
    }

    /// Before the session's row is deleted: its key rows go with it anyway
    /// (`ON DELETE CASCADE`), so a failure here is only reported.
    pub(super) async fn wipe_before_delete(&self) {
        if let Err(error) = self.engine.wipe(self.id).await {
            tracing::error!(%error, "could not delete the session's device keys before the session");
        }
    }
}
