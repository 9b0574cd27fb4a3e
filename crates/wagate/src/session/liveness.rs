//! Whether a `working` connection still hears from WhatsApp.
//!
//! A connection can stay open on our side while nothing comes back (a NAT
//! that forgot it, a server that hung): the session would say `working`
//! and send into the void. whatsapp-rust pings an idle connection every
//! 15–30 s and drops one that stays silent 20 s after a send, but it does
//! so quietly and only while its keepalive loop runs. The supervisor keeps
//! its own watch on top: a connection silent for `idle` gets a ping of its
//! own, and one that does not answer within `timeout` is dropped and
//! reconnected with the reason `no_response`.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LivenessPolicy {
    /// Silence after which the connection is asked to prove it is alive.
    pub idle: Duration,
    /// How long that ping may go unanswered.
    pub timeout: Duration,
}

impl Default for LivenessPolicy {
    fn default() -> Self {
        Self {
            // Later than the client's own ping (15–30 s of silence), so on
            // a healthy link its pong usually makes ours unnecessary.
            idle: Duration::from_secs(25),
            timeout: Duration::from_secs(10),
        }
    }
}

impl LivenessPolicy {
    /// How often the frame counter is looked at: often enough that the
    /// silence is measured to a quarter of `idle`, rarely enough that
    /// thousands of sessions cost nothing.
    fn check_every(&self) -> Duration {
        (self.idle / 4).clamp(Duration::from_millis(50), Duration::from_secs(5))
    }
}

/// What the watchdog wants done after a look at the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// Frames arrived recently enough.
    Alive,
    /// Silent for `idle`: ping it.
    Probe,
}

/// The watch over one connection, from the moment it is `working`.
#[derive(Debug)]
pub(crate) struct Watchdog {
    policy: LivenessPolicy,
    /// Frames received, as of the last look.
    received: u64,
    /// When `received` last changed (or the watch began, or a ping was
    /// answered).
    heard_at: Instant,
    next_check: Instant,
}

impl Watchdog {
    pub(crate) fn new(policy: LivenessPolicy, received: u64, now: Instant) -> Self {
        Self {
            policy,
            received,
            heard_at: now,
            next_check: now + policy.check_every(),
        }
    }

    pub(crate) fn policy(&self) -> LivenessPolicy {
        self.policy
    }

    pub(crate) fn next_check(&self) -> Instant {
        self.next_check
    }

    /// How long nothing has come in, as of `now`.
    pub(crate) fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.heard_at)
    }

    /// A look at the connection's frame counter.
    pub(crate) fn check(&mut self, received: u64, now: Instant) -> Check {
        self.next_check = now + self.policy.check_every();
        if received != self.received {
            self.received = received;
            self.heard_at = now;
            return Check::Alive;
        }
        if self.silent_for(now) >= self.policy.idle {
            Check::Probe
        } else {
            Check::Alive
        }
    }

    /// The ping was answered.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.heard_at = now;
        self.next_check = now + self.policy.check_every();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LivenessPolicy {
        LivenessPolicy {
            idle: Duration::from_secs(20),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn traffic_keeps_a_connection_alive_however_long_it_runs() {
        let start = Instant::now();
        let mut dog = Watchdog::new(policy(), 0, start);
        for tick in 1..100u64 {
            let now = start + Duration::from_secs(tick * 5);
            assert_eq!(dog.check(tick, now), Check::Alive, "tick {tick}");
        }
    }

    #[test]
    fn silence_for_idle_asks_for_a_ping_and_not_before() {
        let start = Instant::now();
        let mut dog = Watchdog::new(policy(), 7, start);
        assert_eq!(dog.check(7, start + Duration::from_secs(19)), Check::Alive);
        assert_eq!(dog.check(7, start + Duration::from_secs(20)), Check::Probe);
        assert_eq!(
            dog.silent_for(start + Duration::from_secs(20)),
            Duration::from_secs(20)
        );
    }

    #[test]
    fn an_answered_ping_restarts_the_silence() {
        let start = Instant::now();
        let mut dog = Watchdog::new(policy(), 0, start);
        let answered = start + Duration::from_secs(21);
        dog.answered(answered);
        assert_eq!(
            dog.check(0, answered + Duration::from_secs(10)),
            Check::Alive
        );
        assert_eq!(
            dog.check(0, answered + Duration::from_secs(20)),
            Check::Probe
        );
    }

    #[test]
    fn looks_are_spaced_by_a_quarter_of_idle_within_bounds() {
        let start = Instant::now();
        let dog = Watchdog::new(policy(), 0, start);
        assert_eq!(dog.next_check() - start, Duration::from_secs(5));
        let quick = LivenessPolicy {
            idle: Duration::from_millis(40),
            timeout: Duration::from_millis(40),
        };
        let dog = Watchdog::new(quick, 0, start);
        assert_eq!(dog.next_check() - start, Duration::from_millis(50));
        let slow = LivenessPolicy {
            idle: Duration::from_secs(600),
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            Watchdog::new(slow, 0, start).next_check() - start,
            Duration::from_secs(5)
        );
    }
}
