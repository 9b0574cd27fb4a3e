//! Profile pictures fetched from WhatsApp, kept in memory by session,
//! contact and picture id: a picture's id changes with the picture, so a
//! cached one is served again for as long as WhatsApp names the same id
//! (and, while the session is not connected, as the last one seen).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

use crate::domain::SessionId;

/// Bytes kept for all sessions together; the oldest pictures go first.
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// A picture larger than this is served but not kept.
const MAX_PICTURE_BYTES: usize = 2 * 1024 * 1024;

type Key = (SessionId, String);

#[derive(Default)]
struct Cached {
    entries: HashMap<Key, (String, Bytes)>,
    /// Insertion order, oldest first (a key may appear again after being
    /// replaced; stale positions are skipped on eviction).
    order: VecDeque<(Key, String)>,
    bytes: usize,
}

#[derive(Default)]
pub(crate) struct PictureCache {
    cached: Mutex<Cached>,
}

impl PictureCache {
    /// The picture `id` of `contact`, if it is the one kept.
    pub(crate) fn get(&self, session: SessionId, contact: &str, id: &str) -> Option<Bytes> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .entries
            .get(&(session, contact.to_owned()))
            .filter(|(kept, _)| kept == id)
            .map(|(_, bytes)| bytes.clone())
    }

    /// The last picture kept of `contact`, whatever its id.
    pub(crate) fn last(&self, session: SessionId, contact: &str) -> Option<Bytes> {
        let cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        cached
            .entries
            .get(&(session, contact.to_owned()))
            .map(|(_, bytes)| bytes.clone())
    }

    /// Forgets `contact`'s picture (WhatsApp says there is none now).
    pub(crate) fn forget(&self, session: SessionId, contact: &str) {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, bytes)) = cached.entries.remove(&(session, contact.to_owned())) {
            cached.bytes -= bytes.len();
        }
    }

    pub(crate) fn put(&self, session: SessionId, contact: &str, id: &str, bytes: Bytes) {
        if bytes.len() > MAX_PICTURE_BYTES {
            return;
        }
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (session, contact.to_owned());
        cached.bytes += bytes.len();
        if let Some((_, old)) = cached.entries.insert(key.clone(), (id.to_owned(), bytes)) {
            cached.bytes -= old.len();
        }
        cached.order.push_back((key, id.to_owned()));
        while cached.bytes > MAX_BYTES {
            let Some((oldest, id)) = cached.order.pop_front() else {
                break;
            };
            let current = cached
                .entries
                .get(&oldest)
                .is_some_and(|(kept, _)| *kept == id);
            if current && let Some((_, bytes)) = cached.entries.remove(&oldest) {
                cached.bytes -= bytes.len();
            }
        }
        // Positions of replaced pictures are dropped once they are most.
        if cached.order.len() > 2 * cached.entries.len() + 16 {
            let Cached { entries, order, .. } = &mut *cached;
            order.retain(|(key, id)| entries.get(key).is_some_and(|(kept, _)| kept == id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_picture_is_served_while_its_id_stands() {
        let cache = PictureCache::default();
        let session = SessionId::new();
        cache.put(session, "a", "1", Bytes::from_static(b"one"));
        assert_eq!(cache.get(session, "a", "1").as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.get(session, "a", "2"), None);
        cache.put(session, "a", "2", Bytes::from_static(b"two"));
        assert_eq!(cache.get(session, "a", "1"), None);
        assert_eq!(cache.last(session, "a").as_deref(), Some(&b"two"[..]));
        cache.forget(session, "a");
        assert_eq!(cache.last(session, "a"), None);
        assert_eq!(cache.get(SessionId::new(), "a", "2"), None);
    }

    #[test]
    fn the_oldest_pictures_go_past_the_cap() {
        let cache = PictureCache::default();
        let session = SessionId::new();
        let big = Bytes::from(vec![0u8; MAX_PICTURE_BYTES]);
        for n in 0..20 {
            cache.put(session, &n.to_string(), "x", big.clone());
        }
        assert_eq!(cache.last(session, "0"), None);
        assert!(cache.last(session, "19").is_some());
        let cached = cache.cached.lock().unwrap_or_else(PoisonError::into_inner);
        assert!(cached.bytes <= MAX_BYTES);
    }
}
