//! Send pacing. A number that sends hundreds of messages a minute gets
//! banned, so each session spaces its sends: at most `per_minute` messages,
//! and a lower `new_chats_per_minute` budget for chats it never messaged
//! (unsolicited first messages are what WhatsApp's spam detection weighs
//! most). Each gap is jittered so the rhythm does not look mechanical.

use std::time::Duration;

use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::domain::{PerMinute, SessionPace};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PacingPolicy {
    /// All sends; 0 turns pacing off altogether, new chats included
    /// (benchmarks).
    pub per_minute: u32,
    /// Sends to chats the number never messaged; 0 gives them no budget
    /// of their own.
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
    /// The gateway's pace with what one session overrides of it.
    pub fn for_session(self, pace: SessionPace) -> Self {
        Self {
            per_minute: pace.per_minute.map_or(self.per_minute, PerMinute::get),
            new_chats_per_minute: pace
                .new_chats_per_minute
                .map_or(self.new_chats_per_minute, PerMinute::get),
            jitter: self.jitter,
        }
    }

    /// The gap after a send against a budget of `per_minute`; none for 0.
    fn gap(&self, per_minute: u32) -> Duration {
        if per_minute == 0 {
            return Duration::ZERO;
        }
        let base = Duration::from_secs(60) / per_minute;
        let jitter = self.jitter.clamp(0.0, 0.9);
        base.mul_f64(1.0 + rand::rng().random_range(-jitter..=jitter))
    }
}

/// When the session may send next.
#[derive(Debug)]
pub(crate) struct Pacer {
    policy: PacingPolicy,
    next_any: Instant,
    next_new_chat: Instant,
}

impl Pacer {
    pub(crate) fn new(policy: PacingPolicy) -> Self {
        let now = Instant::now();
        Self {
            policy,
            next_any: now,
            next_new_chat: now,
        }
    }

    /// A new pace from now on; a wait already begun keeps its end, so
    /// lowering the pace cannot make a burst.
    pub(crate) fn set_policy(&mut self, policy: PacingPolicy) {
        self.policy = policy;
    }

    /// Whether sends are paced at all (`per_minute` 0: benchmarks).
    pub(crate) fn is_off(&self) -> bool {
        self.policy.per_minute == 0
    }

    /// The earliest time a message (to a new chat or not) may go out.
    pub(crate) fn ready_at(&self, new_chat: bool) -> Instant {
        if new_chat {
            self.next_any.max(self.next_new_chat)
        } else {
            self.next_any
        }
    }

    /// Takes a send's share of the budget.
    pub(crate) fn sent(&mut self, new_chat: bool, now: Instant) {
        if self.policy.per_minute == 0 {
            return;
        }
        self.next_any = now + self.policy.gap(self.policy.per_minute);
        if new_chat {
            self.next_new_chat = now + self.policy.gap(self.policy.new_chats_per_minute);
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
        let mut pacer = Pacer::new(policy);
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
        let mut pacer = Pacer::new(policy);
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
    async fn a_pace_of_zero_means_no_waiting() {
        let mut pacer = Pacer::new(PacingPolicy {
            per_minute: 0,
            new_chats_per_minute: 6,
            jitter: 0.3,
        });
        let now = Instant::now();
        pacer.sent(true, now);
        assert_eq!(pacer.ready_at(true), now);
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_overrides_what_it_sets_and_follows_the_rest() {
        let gateway = PacingPolicy {
            per_minute: 0,
            new_chats_per_minute: 6,
            jitter: 0.0,
        };
        let per_minute = |n| PerMinute::try_from(n).ok();
        let paced = gateway.for_session(SessionPace {
            per_minute: per_minute(60),
            new_chats_per_minute: None,
        });
        assert_eq!((paced.per_minute, paced.new_chats_per_minute), (60, 6));
        assert_eq!(gateway.for_session(SessionPace::default()), gateway);

        // Changed while running: the next gap follows the new pace.
        let mut pacer = Pacer::new(gateway);
        let now = Instant::now();
        pacer.sent(false, now);
        assert_eq!(pacer.ready_at(false), now);
        pacer.set_policy(paced);
        pacer.sent(false, now);
        assert_eq!(pacer.ready_at(false), now + Duration::from_secs(1));
    }
}
