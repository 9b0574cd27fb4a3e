//! Failed sign-in limiting: after [`MAX_FAILURES`] wrong passwords for one
//! email within [`WINDOW`], that email cannot sign in until the window has
//! passed. Kept in memory: a restart forgets it, which costs an attacker a
//! restart per few guesses — not a useful trade.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) const MAX_FAILURES: u32 = 5;
pub(crate) const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Bounds memory if someone sprays many emails.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct SignInLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl SignInLimiter {
    /// `Some(wait)` while `key` is locked out.
    pub(crate) fn locked_for(&self, key: &str) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let (count, first) = failures.get(key)?;
        let elapsed = first.elapsed();
        (*count >= MAX_FAILURES && elapsed < WINDOW).then(|| WINDOW - elapsed)
    }

    pub(crate) fn record_failure(&self, key: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() >= MAX_TRACKED {
            failures.retain(|_, (_, first)| first.elapsed() < WINDOW);
        }
        let entry = failures
            .entry(key.to_string())
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    pub(crate) fn record_success(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_repeated_failures_and_a_success_clears() {
        let limiter = SignInLimiter::default();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.record_failure("ada@example.com");
        }
        assert!(limiter.locked_for("ada@example.com").is_none());
        limiter.record_success("ada@example.com");
        for _ in 0..MAX_FAILURES {
            limiter.record_failure("ada@example.com");
        }
        assert!(limiter.locked_for("ada@example.com").is_some());
        assert!(limiter.locked_for("bob@example.com").is_none());
    }
}
