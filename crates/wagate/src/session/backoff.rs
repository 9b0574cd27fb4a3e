//! Reconnect pacing: exponential backoff with jitter inside a time budget.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the second retry; it doubles from there.
    pub base: Duration,
    pub max_delay: Duration,
    /// How long consecutive failures may last before giving up.
    pub budget: Duration,
}

impl RetryPolicy {
    pub fn with_budget(budget: Duration) -> Self {
        Self {
            base: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            budget,
        }
    }
}

/// Tracks one run of consecutive failures.
#[derive(Debug, Clone)]
pub(crate) struct Retry {
    policy: RetryPolicy,
    failures: u32,
    failing_since: Option<Instant>,
}

impl Retry {
    pub(crate) fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            failures: 0,
            failing_since: None,
        }
    }

    /// Records a failure at `now` and returns how long to wait before the
    /// next attempt, or `None` once the budget is spent.
    pub(crate) fn next_delay(&mut self, now: Instant) -> Option<Duration> {
        let since = *self.failing_since.get_or_insert(now);
        let elapsed = now.saturating_duration_since(since);
        let remaining = self.policy.budget.checked_sub(elapsed)?;
        if remaining.is_zero() {
            return None;
        }
        let attempt = self.failures;
        self.failures = self.failures.saturating_add(1);
        // A drop is usually momentary, so the first retry goes out at once.
        if attempt == 0 {
            return Some(Duration::ZERO);
        }
        let exponential = self
            .policy
            .base
            .saturating_mul(2u32.saturating_pow(attempt - 1))
            .min(self.policy.max_delay);
        // Equal jitter: at least half the step, so sessions that dropped
        // together spread out without retrying in a burst.
        let half = exponential / 2;
        let jitter = rand::rng().random_range(Duration::ZERO..=half);
        // The last attempt lands on the budget's end rather than past it.
        Some((half + jitter).min(remaining))
    }

    /// A connection succeeded: the next failure starts a fresh budget.
    pub(crate) fn reset(&mut self) {
        self.failures = 0;
        self.failing_since = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::with_budget(Duration::from_secs(600))
    }

    #[test]
    fn the_first_retry_is_immediate() {
        let mut retry = Retry::new(policy());
        assert_eq!(retry.next_delay(Instant::now()), Some(Duration::ZERO));
    }

    #[test]
    fn delays_grow_exponentially_within_jitter_and_cap() {
        let mut retry = Retry::new(policy());
        let now = Instant::now();
        let _ = retry.next_delay(now);
        for attempt in 1..12u32 {
            let step = Duration::from_secs(1)
                .saturating_mul(2u32.pow(attempt - 1))
                .min(Duration::from_secs(60));
            let delay = retry.next_delay(now);
            assert!(
                delay.is_some_and(|d| d >= step / 2 && d <= step),
                "attempt {attempt}: {delay:?} not within [{:?}, {step:?}]",
                step / 2
            );
        }
    }

    #[test]
    fn it_gives_up_once_the_budget_is_spent_and_never_sleeps_past_it() {
        let mut retry = Retry::new(RetryPolicy::with_budget(Duration::from_secs(10)));
        let start = Instant::now();
        let mut now = start;
        let mut attempts = 0;
        while let Some(delay) = retry.next_delay(now) {
            now += delay;
            attempts += 1;
            assert!(now <= start + Duration::from_secs(10));
            assert!(attempts < 100, "must terminate");
        }
        assert!(now >= start + Duration::from_secs(10) - Duration::from_secs(1));
    }

    #[test]
    fn reset_starts_a_fresh_budget() {
        let mut retry = Retry::new(RetryPolicy::with_budget(Duration::from_secs(5)));
        let start = Instant::now();
        let _ = retry.next_delay(start);
        assert_eq!(retry.next_delay(start + Duration::from_secs(6)), None);
        retry.reset();
        assert_eq!(
            retry.next_delay(start + Duration::from_secs(7)),
            Some(Duration::ZERO)
        );
    }
}
