//! The realtime socket's events, stamped as they arrive (or as they were
//! committed, for those replayed after a restart), and waits on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::inbound;

/// What the realtime socket said about one session, stamped on arrival.
#[derive(Default)]
pub(crate) struct Track {
    pub(crate) first_qr: Option<Instant>,
    pub(crate) statuses: Vec<(String, Instant)>,
    /// `history.sync` events: chunks, and the chats and messages they
    /// say were stored.
    pub(crate) history: HistoryTrack,
    /// `group.joined` events, and when the last came.
    pub(crate) groups_joined: u64,
    pub(crate) groups_joined_last: Option<Instant>,
}

/// The sum of a session's `history.sync` events.
#[derive(Default, Clone, Copy)]
pub(crate) struct HistoryTrack {
    pub(crate) chunks: u64,
    pub(crate) chats: u64,
    pub(crate) messages: u64,
    pub(crate) push_names: u64,
    pub(crate) last: Option<Instant>,
}

impl Track {
    pub(crate) fn first_status_after(&self, status: &str, after: Instant) -> Option<Instant> {
        self.statuses
            .iter()
            .find(|(s, at)| s == status && *at >= after)
            .map(|(_, at)| *at)
    }
}

/// What the realtime socket said about one message, stamped on arrival.
#[derive(Default, Clone)]
pub(crate) struct MessageTrack {
    pub(crate) sent: Option<Instant>,
    pub(crate) delivered: Option<Instant>,
    pub(crate) read: Option<Instant>,
    pub(crate) failed: Option<String>,
}

#[derive(Clone)]
pub(crate) struct Events {
    pub(crate) tracks: Arc<Mutex<HashMap<String, Track>>>,
    /// `message.status` events by message id.
    pub(crate) messages: Arc<Mutex<HashMap<String, MessageTrack>>>,
    /// `message.received` events by text.
    pub(crate) received: inbound::Arrivals,
    /// The id of the last event read, to resume from after a restart.
    pub(crate) last_id: Arc<Mutex<Option<String>>>,
    pub(crate) changed: Arc<watch::Sender<u64>>,
}

/// When an event counts as having happened.
#[derive(Clone, Copy)]
pub(crate) enum Stamp {
    /// When the benchmark read it (to the microsecond, but late if the
    /// socket was not there yet).
    Arrival,
    /// When the gateway committed it, from its UUIDv7 id (to the
    /// millisecond): for events replayed after a restart, when the socket
    /// could only connect once the API answered.
    Committed,
}

/// The moment the UUIDv7 `id` was minted, on this machine's clock, as an
/// `Instant`.
pub(crate) fn committed_at(id: &str) -> Option<Instant> {
    let hex: String = id.chars().filter(|c| *c != '-').take(12).collect();
    let unix_ms = u64::from_str_radix(&hex, 16).ok()?;
    let minted = std::time::UNIX_EPOCH + Duration::from_millis(unix_ms);
    let (now, now_sys) = (Instant::now(), std::time::SystemTime::now());
    let age = now_sys.duration_since(minted).unwrap_or_default();
    now.checked_sub(age)
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tracks: Arc::default(),
            messages: Arc::default(),
            received: inbound::Arrivals::default(),
            last_id: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }
}

impl Events {
    pub(crate) async fn read<S>(self, mut socket: S, stamp: Stamp)
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        while let Some(message) = socket.next().await {
            let mut at = Instant::now();
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(frame)) => {
                    eprintln!("the gateway closed the realtime socket: {frame:?}");
                    continue;
                }
                Err(e) => {
                    eprintln!("realtime socket: {e}");
                    continue;
                }
                Ok(_) => continue,
            };
            let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if let Some(id) = event["id"].as_str() {
                if let (Stamp::Committed, Some(committed)) = (stamp, committed_at(id)) {
                    at = committed;
                }
                *self.last_id.lock().unwrap_or_else(PoisonError::into_inner) = Some(id.into());
            }
            match event["event"].as_str() {
                Some("message.status") => {
                    self.on_message_status(&event, at);
                    continue;
                }
                Some("message.received") => {
                    self.received.note(&event, at);
                    continue;
                }
                _ => {}
            }
            let Some(id) = event["session_id"].as_str() else {
                continue;
            };
            {
                let mut tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
                let track = tracks.entry(id.to_string()).or_default();
                match event["event"].as_str() {
                    Some("session.qr") => {
                        track.first_qr.get_or_insert(at);
                    }
                    Some("session.status") => {
                        if let Some(status) = event["data"]["status"].as_str() {
                            track.statuses.push((status.to_string(), at));
                        }
                    }
                    Some("history.sync") => {
                        let data = &event["data"];
                        let count = |field: &str| data[field].as_u64().unwrap_or(0);
                        let history = &mut track.history;
                        history.chunks += 1;
                        history.chats += count("chats");
                        history.messages += count("messages");
                        history.push_names += count("push_names");
                        history.last = Some(at);
                    }
                    Some("group.joined") => {
                        track.groups_joined += 1;
                        track.groups_joined_last = Some(at);
                    }
                    _ => {}
                }
            }
            self.changed.send_modify(|n| *n += 1);
        }
        eprintln!("the realtime socket closed");
    }

    pub(crate) fn on_message_status(&self, event: &Value, at: Instant) {
        let data = &event["data"];
        let (Some(id), Some(status)) = (data["message_id"].as_str(), data["status"].as_str())
        else {
            return;
        };
        {
            let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
            let track = messages.entry(id.to_string()).or_default();
            match status {
                "sent" => {
                    track.sent.get_or_insert(at);
                }
                "delivered" => {
                    track.delivered.get_or_insert(at);
                }
                "read" => {
                    track.read.get_or_insert(at);
                }
                "failed" => {
                    track
                        .failed
                        .get_or_insert_with(|| data["failure"].to_string());
                }
                _ => return,
            }
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// A copy of what was seen for these messages.
    pub(crate) fn message_tracks<'a>(
        &self,
        ids: impl Iterator<Item = &'a str>,
    ) -> HashMap<String, MessageTrack> {
        let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        ids.filter_map(|id| messages.get(id).map(|t| (id.to_string(), t.clone())))
            .collect()
    }

    /// Waits until every one of `ids` is `sent` or `failed`, or until
    /// `deadline`. Returns how many are still open.
    pub(crate) async fn wait_acked(&self, ids: &[String], deadline: tokio::time::Instant) -> usize {
        let mut changed = self.changed.subscribe();
        loop {
            changed.borrow_and_update();
            let open = {
                let messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
                ids.iter()
                    .filter(|id| {
                        messages
                            .get(id.as_str())
                            .is_none_or(|t| t.sent.is_none() && t.failed.is_none())
                    })
                    .count()
            };
            if open == 0 {
                return 0;
            }
            // Events arrive in thousands a second: look again at most
            // every 50 ms rather than on every one.
            tokio::time::sleep(Duration::from_millis(50)).await;
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return open,
            }
        }
    }

    pub(crate) fn last_id(&self) -> Option<String> {
        self.last_id
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether the session reported `status` at or after `after`.
    pub(crate) fn status_after(&self, id: &str, status: &str, after: Instant) -> bool {
        self.tracks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .and_then(|t| t.first_status_after(status, after))
            .is_some()
    }

    /// The statuses seen for a session, with their time relative to `since`.
    pub(crate) fn describe(&self, id: &str, since: Instant) -> String {
        let tracks = self.tracks.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(track) = tracks.get(id) else {
            return "nothing".into();
        };
        track
            .statuses
            .iter()
            .map(|(status, at)| {
                let ms = if *at >= since {
                    at.duration_since(since).as_millis() as i128
                } else {
                    -(since.duration_since(*at).as_millis() as i128)
                };
                format!("{status}@{ms}ms")
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Waits until `pick` finds its instant in the session's track.
    pub(crate) async fn wait(
        &self,
        id: &str,
        timeout: Duration,
        pick: impl Fn(&Track) -> Option<Instant>,
    ) -> anyhow::Result<Instant> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            changed.borrow_and_update();
            let found = self
                .tracks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(id)
                .and_then(&pick);
            if let Some(at) = found {
                return Ok(at);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!("the realtime reader stopped"),
                Err(_) => bail!("timed out after {timeout:?}"),
            }
        }
    }
}
