//! What the API asks of a session's supervisor, and how a connected
//! session answers it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::phase::{Active, Phase};
use super::{Exit, Flow, Live, StepResult, Supervisor};
use crate::domain::{Phone, SessionStatus, StatusReason};
use crate::session::engine::EngineError;

/// How long WhatsApp honours a pairing code (the protocol says ~180 s).
const PAIRING_CODE_TTL: Duration = Duration::from_secs(180);
/// Upper bound on a pairing-code round trip to WhatsApp.
const PAIRING_CODE_TIMEOUT: Duration = Duration::from_secs(30);

/// A code with its expiry, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expiring {
    pub code: String,
    pub expires_at: DateTime<Utc>,
}

impl Expiring {
    pub(super) fn valid_for(code: String, ttl: Duration) -> Self {
        let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
        Self {
            code,
            // Milliseconds, like every other timestamp the API shows.
            expires_at: (Utc::now() + ttl).trunc_subsecs(3),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    #[error("the session has no linked device")]
    NotLinked,
    #[error("the session is {0}, not waiting for a phone to link")]
    NotLinking(SessionStatus),
    #[error("WhatsApp did not provide a pairing code: {0}")]
    PairingCode(String),
    #[error("a pairing code issued earlier is still valid")]
    PairingCodeOutstanding,
    #[error("the session is shutting down")]
    ShuttingDown,
    #[error("the change could not be saved")]
    NotSaved,
    #[error("no such call is ringing")]
    NoSuchCall,
    #[error("WhatsApp: {0}")]
    Upstream(String),
}

pub(crate) type Reply<T> = oneshot::Sender<T>;

#[derive(Debug)]
pub(crate) enum Command {
    Start(Reply<()>),
    Stop(Reply<()>),
    Restart(Reply<()>),
    Logout(Reply<Result<(), CommandError>>),
    /// Unlinks if linked, wipes the keys, and ends the task.
    Delete(Reply<()>),
    PairingCode {
        phone: Phone,
        reply: Reply<Result<Expiring, CommandError>>,
    },
    /// Rejects a call that rings now (`call.rejected` follows).
    RejectCall {
        call_id: String,
        reply: Reply<Result<(), CommandError>>,
    },
}

impl Supervisor {
    /// A command while the session is meant to be connected.
    pub(super) async fn on_command(&mut self, command: Command, active: &mut Active) -> StepResult {
        match command {
            Command::Start(reply) => {
                // Already running; a session waiting out a backoff tries now.
                if let Phase::Backoff { until } = &mut active.phase {
                    active.retry.reset();
                    *until = Instant::now();
                }
                let _ = reply.send(());
                Ok(Flow::Continue)
            }
            Command::Restart(reply) => {
                active.link.disconnect().await;
                self.live.send_replace(Live::default());
                self.set_status(SessionStatus::Starting, None).await?;
                let _ = reply.send(());
                match self.open().await {
                    Some(fresh) => {
                        *active = fresh;
                        Ok(Flow::Continue)
                    }
                    None => Ok(Flow::Exit(Exit::Idle)),
                }
            }
            Command::Stop(reply) => {
                active.link.disconnect().await;
                self.set_status(SessionStatus::Stopped, Some(StatusReason::StopRequested))
                    .await?;
                let _ = reply.send(());
                Ok(Flow::Exit(Exit::Idle))
            }
            Command::Logout(reply) => {
                if !self.linked {
                    let _ = reply.send(Err(CommandError::NotLinked));
                    return Ok(Flow::Continue);
                }
                active.link.logout().await;
                self.forget_device(StatusReason::LogoutRequested).await?;
                let _ = reply.send(Ok(()));
                Ok(Flow::Exit(Exit::Idle))
            }
            Command::Delete(reply) => {
                if self.linked {
                    active.link.logout().await;
                } else {
                    active.link.disconnect().await;
                }
                self.wipe_before_delete().await;
                let _ = reply.send(());
                Ok(Flow::Exit(Exit::Terminate))
            }
            Command::PairingCode { phone, reply } => {
                if self.status != SessionStatus::ScanQrCode {
                    let _ = reply.send(Err(CommandError::NotLinking(self.status)));
                    return Ok(Flow::Continue);
                }
                // Off the loop: the round trip must not hold up events.
                let link = Arc::clone(&active.link);
                tokio::spawn(async move {
                    let result = tokio::time::timeout(
                        PAIRING_CODE_TIMEOUT,
                        link.request_pairing_code(&phone),
                    )
                    .await;
                    let result = match result {
                        Ok(Ok(code)) => Ok(Expiring::valid_for(
                            format_pairing_code(&code),
                            PAIRING_CODE_TTL,
                        )),
                        Ok(Err(EngineError::PairingCodeOutstanding)) => {
                            Err(CommandError::PairingCodeOutstanding)
                        }
                        Ok(Err(error)) => Err(CommandError::PairingCode(error.to_string())),
                        Err(_) => Err(CommandError::PairingCode("no answer from WhatsApp".into())),
                    };
                    let _ = reply.send(result);
                });
                Ok(Flow::Continue)
            }
            Command::RejectCall { call_id, reply } => {
                let result = self.reject_ringing(&call_id, &active.link).await?;
                let _ = reply.send(result);
                Ok(Flow::Continue)
            }
        }
    }
}

/// WhatsApp shows pairing codes as two groups of four: `ABCD-1234`.
pub(super) fn format_pairing_code(code: &str) -> String {
    if code.len() == 8 && code.is_ascii() && !code.contains('-') {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code.to_string()
    }
}
