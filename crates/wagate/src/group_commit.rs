//! Group commit: one writer task per kind of small write (incoming
//! batches, status changes, WhatsApp key rows, delivered webhook runs)
//! commits the requests waiting at that moment in one transaction. The
//! store has one writer, so the commits queue behind each other anyway;
//! grouping them makes the queue shorter without making anyone wait for
//! a timer: while one group commits, the next gathers.

use tokio::sync::mpsc::UnboundedReceiver;

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
}
