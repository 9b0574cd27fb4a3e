//! Delivers the webhook outbox. The queue lives in the database, so a
//! restart picks up exactly where the last run stopped (an attempt cut
//! off mid-flight is simply made again: delivery is at least once, and the
//! `webhook-id` lets receivers drop the duplicate).
//!
//! Order: each (webhook, session) is a queue whose head is its oldest
//! pending event; only heads are attempted, one at a time per queue, so a
//! session's later event never overtakes an earlier one that is still
//! being retried. Different queues run in parallel, bounded in total.
//!
//! A head that is delivered takes the queue's next due deliveries along
//! (a run, up to [`RUN`]), sent one after another and recorded together
//! in one transaction: under load the store writes once per run instead
//! of once per delivery. A run stops at its first failure, which is
//! recorded (after the deliveries before it) as a failed head's is.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderValue};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::sign;
use crate::domain::{DisabledReason, SessionId, WebhookId};
use crate::egress::{EgressPolicy, describe};
use crate::hub::EventHub;
use crate::metrics::DeliveryResult;
use crate::store::{AfterFailure, AttemptResult, DueDelivery, Store, StoreError};

/// How much of a receiver's answer is kept in the delivery log.
const RESPONSE_CAP: usize = 1024;

/// Most deliveries of one queue sent in one run. Bounds what a crash
/// before the run's record sends twice, and how long one queue holds its
/// slot while others wait.
const RUN: u32 = 32;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeliveryPolicy {
    /// One attempt: connect, send, and the answer.
    pub timeout: Duration,
    /// A delivery still failing this long after it was queued (or
    /// replayed) fails for good, and its session's queue moves on.
    pub retry_window: Duration,
    /// Delay after the first failure; doubles per failure, up to
    /// `backoff_max`, with random jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// A webhook whose every attempt failed for this long is disabled.
    pub disable_after: Duration,
    /// Attempts in flight at once, across all webhooks.
    pub max_in_flight: usize,
    /// How often the queue is looked at when nothing wakes the
    /// dispatcher (retries coming due).
    pub poll_interval: Duration,
    pub egress: EgressPolicy,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_window: Duration::from_secs(24 * 3600),
            backoff_base: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            disable_after: Duration::from_secs(24 * 3600),
            max_in_flight: 64,
            poll_interval: Duration::from_secs(1),
            egress: EgressPolicy::default(),
        }
    }
}

impl DeliveryPolicy {
    /// Exponential, capped, with "equal jitter": at least half the step, so
    /// retries of many deliveries spread out without coming too early.
    pub fn backoff(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(30));
        let step = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        let half = step / 2;
        half + half.mul_f64(rand::random::<f64>())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the webhook HTTP client could not be set up: {0}")]
pub(crate) struct SetupError(String);

/// What an attempt came to, before it is recorded.
#[derive(Debug)]
enum Outcome {
    Delivered(AttemptResult),
    Failed { result: AttemptResult, gone: bool },
}

struct Inner {
    store: Arc<dyn Store>,
    hub: EventHub,
    policy: DeliveryPolicy,
    client: reqwest::Client,
    /// One node of several (`--nats`): this node delivers only the queues
    /// of the sessions it owns, so each queue has one dispatcher at a time
    /// and moves with its session when that node dies.
    owner: Option<String>,
}

#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

type Queue = (WebhookId, SessionId);

/// The queues with an attempt in flight, and those whose attempt ended
/// while the due heads were being read: that read may predate the
/// attempt's record, so its row for that queue is stale (an event already
/// delivered would be sent again).
#[derive(Default)]
struct Flights {
    in_flight: HashSet<Queue>,
    ended: HashSet<Queue>,
}

impl Flights {
    /// Before reading the due heads: attempts that ended before now are
    /// in what the read returns. Returns how many are in flight.
    fn begin_read(&mut self) -> usize {
        self.ended.clear();
        self.in_flight.len()
    }

    /// Whether an attempt may start on `key` from what the last read
    /// returned: one per queue, and none on a queue whose attempt ended
    /// during the read (it comes back, up to date, in the next round).
    fn start(&mut self, key: Queue) -> bool {
        !self.ended.contains(&key) && self.in_flight.insert(key)
    }

    fn end(&mut self, key: Queue) {
        self.in_flight.remove(&key);
        self.ended.insert(key);
    }
}

type SharedFlights = Arc<Mutex<Flights>>;

fn lock(flights: &SharedFlights) -> std::sync::MutexGuard<'_, Flights> {
    flights.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Frees its queue when the attempt ends, however it ends (even aborted);
/// the attempt's record is written by then.
struct InFlight {
    key: Queue,
    flights: SharedFlights,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.flights).end(self.key);
    }
}

impl Dispatcher {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        hub: EventHub,
        policy: DeliveryPolicy,
        owner: Option<String>,
    ) -> Result<Self, SetupError> {
        let client = policy
            .egress
            .client_builder()
            // A redirect would send the signed body somewhere the user did
            // not name (and past the address check): refused, it counts as
            // a failed attempt.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .user_agent(concat!("wagate/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SetupError(describe(&e)))?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                hub,
                policy,
                client,
                owner,
            }),
        })
    }

    /// Delivers until `cancel`; attempts still in flight then are dropped
    /// and made again after the next start.
    pub(crate) async fn run(self, cancel: CancellationToken) {
        let wake: Arc<Notify> = self.inner.hub.committed();
        let flights = SharedFlights::default();
        let mut tasks = JoinSet::new();
        loop {
            while let Some(joined) = tasks.try_join_next() {
                if let Err(error) = joined {
                    tracing::error!(%error, "a webhook delivery task failed");
                }
            }
            let free = self.inner.policy.max_in_flight.saturating_sub(tasks.len());
            if free > 0 {
                self.start_due(&mut tasks, &flights, free).await;
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = wake.notified() => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                () = tokio::time::sleep(self.inner.policy.poll_interval) => {}
            }
        }
        tasks.shutdown().await;
    }

    /// Starts an attempt for up to `free` due queue heads not already in
    /// flight.
    async fn start_due(&self, tasks: &mut JoinSet<()>, flights: &SharedFlights, free: usize) {
        // Attempts that ended before this read are in what it reads.
        let busy = lock(flights).begin_read();
        // Heads in flight are still pending, so they come back too: ask
        // for enough to fill every free slot past them.
        let limit = u32::try_from(free + busy).unwrap_or(u32::MAX);
        let due = match self
            .inner
            .store
            .webhooks()
            .due_deliveries(Utc::now(), limit, self.inner.owner.as_deref())
            .await
        {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "could not read due webhook deliveries");
                return;
            }
        };
        let mut started = 0;
        for delivery in due {
            if started == free {
                break;
            }
            let key = (delivery.webhook_id, delivery.session_id);
            if !lock(flights).start(key) {
                continue;
            }
            let guard = InFlight {
                key,
                flights: Arc::clone(flights),
            };
            let inner = Arc::clone(&self.inner);
            tasks.spawn(async move {
                let _guard = guard;
                if let Err(error) = inner.deliver_run(delivery).await {
                    // The row is untouched, so the attempt is made again.
                    tracing::error!(%error, "could not record a webhook delivery attempt");
                }
            });
            started += 1;
        }
    }
}

impl Inner {
    /// Delivers `head` and, if it went through, the deliveries queued
    /// behind it that are due, in order, until one fails; records the
    /// delivered ones in one transaction, then the failure.
    async fn deliver_run(&self, head: DueDelivery) -> Result<(), StoreError> {
        let outcome = self.attempt(&head, Utc::now()).await;
        let result = match outcome {
            Outcome::Delivered(result) => result,
            failed @ Outcome::Failed { .. } => return self.record(head, failed).await,
        };
        let webhooks = self.store.webhooks();
        let queued = webhooks
            .queued_after(&head, Utc::now(), RUN.saturating_sub(1))
            .await;
        let mut delivered = vec![(head, result)];
        let mut failed = None;
        // A failed read only shortens the run: the head is still recorded.
        for delivery in queued.unwrap_or_default() {
            match self.attempt(&delivery, Utc::now()).await {
                Outcome::Delivered(result) => delivered.push((delivery, result)),
                outcome @ Outcome::Failed { .. } => {
                    failed = Some((delivery, outcome));
                    break;
                }
            }
        }
        // Group-committed with the other runs that ended at that moment
        // (the store's writer); the run's queue stays in flight until then.
        webhooks.deliveries_succeeded(&delivered).await?;
        for (delivery, _) in &delivered {
            self.hub
                .metrics()
                .webhook_attempt(delivery.event_id, DeliveryResult::Delivered);
        }
        tracing::debug!(
            webhook_id = %delivered[0].0.webhook_id,
            session_id = %delivered[0].0.session_id,
            count = delivered.len(),
            "webhook deliveries delivered"
        );
        match failed {
            Some((delivery, outcome)) => self.record(delivery, outcome).await,
            None => Ok(()),
        }
    }

    /// Records one attempt's outcome.
    async fn record(&self, delivery: DueDelivery, outcome: Outcome) -> Result<(), StoreError> {
        let webhooks = self.store.webhooks();
        match outcome {
            Outcome::Delivered(result) => {
                tracing::debug!(
                    webhook_id = %delivery.webhook_id,
                    event_id = %delivery.event_id,
                    status = ?result.status_code,
                    "webhook delivered"
                );
                webhooks.delivery_succeeded(&delivery, &result).await?;
                self.hub
                    .metrics()
                    .webhook_attempt(delivery.event_id, DeliveryResult::Delivered);
                Ok(())
            }
            Outcome::Failed { result, gone } => {
                let (after, disable) = self.after_failure(&delivery, result.at, gone);
                tracing::info!(
                    webhook_id = %delivery.webhook_id,
                    event_id = %delivery.event_id,
                    status = ?result.status_code,
                    error = result.error.as_deref().unwrap_or(""),
                    ?after,
                    "webhook delivery failed"
                );
                let disabled = webhooks
                    .delivery_failed(&delivery, &result, after, disable)
                    .await?;
                let counted = match after {
                    AfterFailure::RetryAt(_) => DeliveryResult::Retrying,
                    AfterFailure::GiveUp => DeliveryResult::GaveUp,
                };
                self.hub
                    .metrics()
                    .webhook_attempt(delivery.event_id, counted);
                if let Some(event) = disabled {
                    tracing::warn!(webhook_id = %delivery.webhook_id, ?disable, "webhook disabled");
                    self.hub.publish(event);
                }
                Ok(())
            }
        }
    }

    fn after_failure(
        &self,
        delivery: &DueDelivery,
        at: DateTime<Utc>,
        gone: bool,
    ) -> (AfterFailure, Option<DisabledReason>) {
        let policy = &self.policy;
        let elapsed = |since: DateTime<Utc>| (at - since).to_std().unwrap_or_default();
        let after = if elapsed(delivery.retry_from) >= policy.retry_window {
            AfterFailure::GiveUp
        } else if gone {
            // Kept due: it goes out as soon as the webhook is enabled again.
            AfterFailure::RetryAt(at)
        } else {
            let delay = policy.backoff(delivery.attempts.saturating_add(1));
            AfterFailure::RetryAt(at + chrono::Duration::from_std(delay).unwrap_or_default())
        };
        let disable = if gone {
            Some(DisabledReason::Gone)
        } else if delivery
            .failing_since
            .is_some_and(|since| elapsed(since) >= policy.disable_after)
        {
            Some(DisabledReason::Failing)
        } else {
            None
        };
        (after, disable)
    }

    async fn attempt(&self, delivery: &DueDelivery, at: DateTime<Utc>) -> Outcome {
        let failed = |error: String| Outcome::Failed {
            result: AttemptResult {
                at,
                error: Some(error),
                ..AttemptResult::default()
            },
            gone: false,
        };
        let url = match Url::parse(&delivery.url) {
            Ok(url) => url,
            Err(_) => return failed("the webhook URL is not valid".into()),
        };
        // IP addresses skip the guarded resolver: checked here.
        if let Err(refused) = self.policy.egress.check_destination(&url) {
            return failed(format!("refused: {refused}"));
        }
        let id = delivery.event_id.to_string();
        let timestamp = at.timestamp();
        let signature = match sign(
            &delivery.secrets,
            &id,
            timestamp,
            delivery.payload.as_bytes(),
        ) {
            Ok(signature) => signature,
            Err(error) => return failed(error.to_string()),
        };
        let (Ok(id), Ok(signature)) = (
            HeaderValue::from_str(&id),
            HeaderValue::from_str(&signature),
        ) else {
            return failed("the signature headers could not be built".into());
        };
        let response = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        let mut response = match response {
            Ok(response) => response,
            Err(error) => return failed(describe(&error)),
        };
        let status = response.status();
        let body = read_capped(&mut response).await;
        let result = AttemptResult {
            at,
            status_code: Some(status.as_u16()),
            error: None,
            response: body,
        };
        if status.is_success() {
            Outcome::Delivered(result)
        } else {
            Outcome::Failed {
                result: AttemptResult {
                    error: Some(format!("the receiver answered {status}")),
                    ..result
                },
                gone: status == reqwest::StatusCode::GONE,
            }
        }
    }
}

/// The first [`RESPONSE_CAP`] bytes of the answer, as text; the rest is
/// never read. A body that breaks off keeps what arrived.
async fn read_capped(response: &mut reqwest::Response) -> Option<String> {
    let mut bytes = Vec::new();
    while bytes.len() < RESPONSE_CAP {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    bytes.truncate(RESPONSE_CAP);
    (!bytes.is_empty()).then(|| String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_whose_attempt_ended_during_the_read_waits_for_the_next_read() {
        let mut flights = Flights::default();
        let (a, b) = (
            (WebhookId::new(), SessionId::new()),
            (WebhookId::new(), SessionId::new()),
        );
        assert_eq!(flights.begin_read(), 0);
        assert!(flights.start(a));
        assert!(!flights.start(a), "one attempt per queue");
        // The due heads are read while A's attempt records its delivery
        // and ends: the read's row for A may be stale.
        assert_eq!(flights.begin_read(), 1);
        flights.end(a);
        assert!(!flights.start(a), "a stale head would be sent again");
        assert!(flights.start(b));
        // The next read sees A's record.
        assert_eq!(flights.begin_read(), 1);
        assert!(flights.start(a));
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let policy = DeliveryPolicy {
            backoff_base: Duration::from_secs(4),
            backoff_max: Duration::from_secs(60),
            ..DeliveryPolicy::default()
        };
        for (failures, step) in [(1, 4), (2, 8), (3, 16), (4, 32), (5, 60), (40, 60)] {
            let step = Duration::from_secs(step);
            for _ in 0..20 {
                let delay = policy.backoff(failures);
                assert!(delay >= step / 2 && delay <= step, "{failures}: {delay:?}");
            }
        }
    }
}
