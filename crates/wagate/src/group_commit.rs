//! Group commit: the gateway's writes go through one writer task, which
//! commits the requests waiting at that moment in one transaction. The
//! store has one writer (SQLite's one connection, PostgreSQL's writer
//! lock), so the commits queue behind each other anyway; grouping them
//! makes the queue shorter without making anyone wait for a timer: while
//! one group commits, the next gathers.
//!
//! [`GroupWriter`] is the generic part: a queue of requests, each with the
//! caller waiting for its answer; a group (the first request waiting and
//! whatever else is queued at that moment, up to a weight) committed by a
//! [`Commit`]; if the group fails, each of its requests committed again
//! alone, so only a bad one fails; every caller answered after the commit
//! that holds its request. The store runs one (`store/sql/writer.rs`).
//!
//! A writer that dies would leave every later write of its kind waiting
//! or failing while the gateway looks healthy, so its end is observable
//! ([`GroupWriter::ended`]): the application runs it as a top-level task
//! and stops when it ends.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::sync::{oneshot, watch};

/// What one writer commits: its request type, and a group of requests
/// committed in one transaction.
pub(crate) trait Commit: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    /// One request's result, handed to its caller after the commit.
    type Done: Send + 'static;
    type Error: std::fmt::Display + Send + 'static;

    /// Groups stop growing once their requests' weight (rows, messages)
    /// reaches this: it bounds a transaction and what a failed one has to
    /// redo alone.
    const MAX_WEIGHT: usize;

    fn weight(request: &Self::Request) -> usize;

    /// Commits `group` in one transaction, or nothing of it. On success,
    /// one result per request, in order.
    fn commit(
        &self,
        group: &[Self::Request],
    ) -> impl Future<Output = Result<Vec<Self::Done>, Self::Error>> + Send;
}

/// Why a write got no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError<E> {
    /// The writer task is gone (shutting down, or it died).
    #[error("the group-commit writer has stopped")]
    Stopped,
    #[error(transparent)]
    Failed(E),
}

type Reply<C> = oneshot::Sender<Result<<C as Commit>::Done, <C as Commit>::Error>>;

struct Pending<C: Commit> {
    request: C::Request,
    reply: Reply<C>,
}

/// The handle of a writer task. Cheap to clone; the task ends when the
/// last clone is gone (or it panics: see [`GroupWriter::ended`]).
pub(crate) struct GroupWriter<C: Commit> {
    queue: UnboundedSender<Pending<C>>,
    ended: watch::Receiver<Option<Arc<str>>>,
}

impl<C: Commit> Clone for GroupWriter<C> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
            ended: self.ended.clone(),
        }
    }
}

impl<C: Commit> std::fmt::Debug for GroupWriter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupWriter").finish_non_exhaustive()
    }
}

impl<C: Commit> GroupWriter<C> {
    /// Starts the writer task on the current Tokio runtime.
    pub(crate) fn spawn(commit: C) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        let (report, ended) = watch::channel(None);
        let task = tokio::spawn(write_groups(commit, pending));
        // Watches the task, so whoever supervises the writer learns that
        // and why it ended, however it did.
        tokio::spawn(async move {
            let why: Arc<str> = match task.await {
                Ok(()) => "stopped".into(),
                Err(join) if join.is_panic() => {
                    format!("panicked: {}", panic_message(join.into_panic())).into()
                }
                Err(_) => "was cancelled".into(),
            };
            let _ = report.send(Some(why));
        });
        Self { queue, ended }
    }

    /// Queues `request` and waits for the commit that holds it. Dropping
    /// the future does not take the request back: it may still be
    /// committed.
    pub(crate) async fn write(&self, request: C::Request) -> Result<C::Done, WriteError<C::Error>> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { request, reply })
            .map_err(|_| WriteError::Stopped)?;
        answer
            .await
            .map_err(|_| WriteError::Stopped)?
            .map_err(WriteError::Failed)
    }

    /// Resolves once the writer task has ended, saying how ("panicked:
    /// …"). While the gateway runs it never should.
    pub(crate) fn ended(&self) -> impl Future<Output = Arc<str>> + Send + 'static {
        let mut ended = self.ended.clone();
        async move {
            match ended.wait_for(Option::is_some).await {
                Ok(why) => why.clone().unwrap_or_else(|| "stopped".into()),
                // The watcher itself is gone: the runtime is shutting down.
                Err(_) => "stopped".into(),
            }
        }
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

async fn write_groups<C: Commit>(commit: C, mut queue: UnboundedReceiver<Pending<C>>) {
    while let Some(group) = next_group(&mut queue, C::MAX_WEIGHT, |p| C::weight(&p.request)).await {
        let (requests, replies): (Vec<C::Request>, Vec<Reply<C>>) =
            group.into_iter().map(|p| (p.request, p.reply)).unzip();
        match commit.commit(&requests).await {
            Ok(done) => {
                // A caller that went away needs no answer.
                for (reply, done) in replies.into_iter().zip(done) {
                    let _ = reply.send(Ok(done));
                }
            }
            Err(error) if requests.len() == 1 => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
            Err(error) => {
                // One request's failure must not fail the others: each is
                // committed again alone, so only it is reported.
                tracing::warn!(%error, requests = requests.len(), "group commit failed; committing one by one");
                for (request, reply) in requests.iter().zip(replies) {
                    let result = commit
                        .commit(std::slice::from_ref(request))
                        .await
                        .map(|mut done| done.pop());
                    match result {
                        Ok(Some(done)) => {
                            let _ = reply.send(Ok(done));
                        }
                        // No result for the request: its caller hears that
                        // the writer could not answer.
                        Ok(None) => {}
                        Err(error) => {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
        }
    }
}

/// The next group: waits for one request, then takes whatever else is
/// queued at that moment, until the requests' `weight` (rows, messages)
/// reaches `max`. `None` once the queue is closed and empty.
pub(crate) async fn next_group<T>(
    queue: &mut UnboundedReceiver<T>,
    max: usize,
    weight: impl Fn(&T) -> usize,
) -> Option<Vec<T>> {
    let first = queue.recv().await?;
    let mut total = weight(&first);
    let mut group = vec![first];
    while total < max {
        match queue.try_recv() {
            Ok(next) => {
                total += weight(&next);
                group.push(next);
            }
            Err(_) => break,
        }
    }
    Some(group)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::mpsc;

    use super::*;

    #[tokio::test]
    async fn a_group_takes_what_waits_up_to_its_weight_then_the_rest_follows() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        for rows in [2, 3, 4, 1] {
            assert!(tx.send(rows).is_ok());
        }
        // 2 + 3 stays under 6; the third request brings it to 9, the limit
        // is reached and the fourth waits for the next group.
        assert_eq!(next_group(&mut rx, 6, |r| *r).await, Some(vec![2, 3, 4]));
        assert_eq!(next_group(&mut rx, 6, |r| *r).await, Some(vec![1]));
        drop(tx);
        assert_eq!(next_group(&mut rx, 6, |r: &usize| *r).await, None);
    }

    /// Commits numbers; a group holding a negative one fails as a whole,
    /// `i64::MIN` panics. Records every group it was given; with a gate,
    /// says when it holds a group and waits for the gate to open.
    #[derive(Default)]
    struct Numbers {
        groups: Arc<Mutex<Vec<Vec<i64>>>>,
        gate: Option<(Arc<tokio::sync::Notify>, Arc<tokio::sync::Semaphore>)>,
    }

    impl Commit for Numbers {
        type Request = i64;
        type Done = i64;
        type Error = String;
        const MAX_WEIGHT: usize = 100;

        fn weight(_: &i64) -> usize {
            1
        }

        async fn commit(&self, group: &[i64]) -> Result<Vec<i64>, String> {
            if let Some((holding, gate)) = &self.gate {
                holding.notify_one();
                let _ = gate.acquire().await.map_err(|e| e.to_string())?;
            }
            if let Ok(mut groups) = self.groups.lock() {
                groups.push(group.to_vec());
            }
            assert!(!group.contains(&i64::MIN), "injected writer panic");
            if let Some(bad) = group.iter().find(|n| **n < 0) {
                return Err(format!("{bad} is negative"));
            }
            Ok(group.iter().map(|n| n * 10).collect())
        }
    }

    /// Queues `n` as `write` does, without waiting for its answer.
    fn queue(writer: &GroupWriter<Numbers>, n: i64) -> oneshot::Receiver<Result<i64, String>> {
        let (reply, answer) = oneshot::channel();
        assert!(writer.queue.send(Pending { request: n, reply }).is_ok());
        answer
    }

    /// A failed group is committed again request by request: the good
    /// requests get their results, only the bad one its error.
    #[tokio::test]
    async fn a_failed_group_is_retried_one_by_one_and_only_the_bad_request_fails() {
        let holding = Arc::new(tokio::sync::Notify::new());
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let groups = Arc::default();
        let writer = GroupWriter::spawn(Numbers {
            groups: Arc::clone(&groups),
            gate: Some((Arc::clone(&holding), Arc::clone(&gate))),
        });
        // The writer takes the first request alone and holds it at the
        // gate; the next three queue behind it and make one group.
        let first = queue(&writer, 1);
        holding.notified().await;
        let rest: Vec<_> = [2, -3, 4].into_iter().map(|n| queue(&writer, n)).collect();
        gate.add_permits(1 << 20);
        assert_eq!(first.await.ok(), Some(Ok(10)));
        let mut results = Vec::new();
        for answer in rest {
            results.push(answer.await.unwrap_or_else(|_| Err("no answer".into())));
        }
        assert_eq!(
            results,
            vec![Ok(20), Err("-3 is negative".to_string()), Ok(40)]
        );
        let groups = groups.lock().map(|g| g.clone()).unwrap_or_default();
        assert_eq!(
            groups,
            vec![vec![1], vec![2, -3, 4], vec![2], vec![-3], vec![4]]
        );
    }

    /// A writer that panics reports it through `ended`, and a write after
    /// it hears that the writer stopped instead of waiting forever.
    #[tokio::test]
    async fn a_writer_that_panics_reports_its_end_and_refuses_later_writes() {
        let writer = GroupWriter::spawn(Numbers::default());
        let ended = writer.ended();
        assert_eq!(writer.write(5).await.ok(), Some(50));
        assert!(matches!(
            writer.write(i64::MIN).await,
            Err(WriteError::Stopped)
        ));
        let why = tokio::time::timeout(std::time::Duration::from_secs(10), ended)
            .await
            .unwrap_or_else(|_| "did not end".into());
        assert!(why.contains("injected writer panic"), "{why}");
        assert!(matches!(writer.write(6).await, Err(WriteError::Stopped)));
    }
}
