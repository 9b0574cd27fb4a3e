//! Send pacing. A number that sends hundreds of messages a minute gets
//! banned, so each session spaces its sends: at most `per_minute` messages,
//! and a lower `new_chats_per_minute` budget for chats it never messaged
//! (unsolicited first messages are what WhatsApp's spam detection weighs
//! most). Each gap is jittered so the rhythm does not look mechanical.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PacingPolicy {
    pub per_minute: u32,
    pub new_chats_per_minute: u32,
    /// Each gap is stretched or shrunk by up to this fraction (0.0..=0.9).
    pub jitter: f64,
}

impl Default for PacingPolicy {
    fn default() -> Self {
        Self {
            per_minute: 30,
            new_chats_per_minute: 6,
            jitter: 0.3,
        }
    }
}

impl PacingPolicy {
    fn gap(&self, per_minute: u32) -> Duration {
        let base = Duration::from_secs(60) / per_minute.max(1);
        let jitter = self.jitter.clamp(0.0, 0.9);
        base.mul_f64(1.0 + rand::rng().random_range(-jitter..=jitter))
    }
}

/// When the session may send next; `None` policy means no pacing.
#[derive(Debug)]
pub struct Pacer {
    policy: Option<PacingPolicy>,
    next_any: Instant,
    next_new_chat: Instant,
}

impl Pacer {
    pub fn new(policy: Option<PacingPolicy>) -> Self {
        let now = Instant::now();
        Self {
            policy,
            next_any: now,
            next_new_chat: now,
        }
    }

    /// The earliest time a message (to a new chat or not) may go out.
    pub fn ready_at(&self, new_chat: bool) -> Instant {
        if new_chat {
            self.next_any.max(self.next_new_chat)
        } else {
            self.next_any
        }
    }

    /// Takes a send's share of the budget.
    pub fn sent(&mut self, new_chat: bool, now: Instant) {
        let Some(policy) = self.policy else { return };
        self.next_any = now + policy.gap(policy.per_minute);
        if new_chat {
            self.next_new_chat = now + policy.gap(policy.new_chats_per_minute);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_are_spaced_and_new_chats_more_so() {
        let policy = PacingPolicy {
            per_minute: 60,
            new_chats_per_minute: 6,
            jitter: 0.0,
        };
        let mut pacer = Pacer::new(Some(policy));
        let start = Instant::now();
        assert_eq!(pacer.ready_at(true), start, "the first send goes at once");
        pacer.sent(true, start);
        assert_eq!(pacer.ready_at(false), start + Duration::from_secs(1));
        assert_eq!(pacer.ready_at(true), start + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_stays_within_its_bounds() {
        let policy = PacingPolicy {
            per_minute: 60,
            new_chats_per_minute: 6,
            jitter: 0.5,
        };
        let mut pacer = Pacer::new(Some(policy));
        for _ in 0..100 {
            let now = Instant::now();
            pacer.sent(false, now);
            let gap = pacer.ready_at(false) - now;
            assert!(
                gap >= Duration::from_millis(500) && gap <= Duration::from_millis(1500),
                "{gap:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_policy_means_no_waiting() {
        let mut pacer = Pacer::new(None);
        let now = Instant::now();
        pacer.sent(true, now);
        assert_eq!(pacer.ready_at(true), now);
    }
}
