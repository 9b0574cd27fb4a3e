//! How much each session's client keeps: its one-time prekeys and its
//! in-memory caches, sized for a gateway of thousands of sessions.

use std::time::Duration;

use whatsapp_rust::{CacheConfig, CacheEntryConfig};

/// One-time prekeys each session publishes (and publishes again when the
/// server says they run low). whatsapp-rust uploads WhatsApp Web's 812; every
/// connect then reads all of them back to check the server's digest of
/// the bundle (`validate_digest_key`), which made that read most of a
/// reconnect's cost in a gateway of thousands (profiled in BENCHMARKS.md:
/// ~60 % of the gateway's CPU in a drop-all), and 812 rows per session
/// most of the key store's size. whatsmeow, under most self-hosted
/// gateways, keeps 50. A spent pool costs nothing but forward secrecy of
/// a new contact's first message: without a one-time key a session still
/// starts from the signed prekey, and the client uploads more when the
/// server reports the pool low (an `encrypt` notification).
pub(super) const ONE_TIME_PREKEYS: usize = 100;

/// The client's in-memory caches, sized for a gateway holding thousands of
/// sessions: whatsapp-rust's defaults suit one bot and let each client
/// grow to thousands of entries per cache.
/// What these caches hold is also in the store (or is only a guard against
/// repeats), so a miss costs a query, not correctness; the sizes are what
/// one number's live traffic touches again within the hour.
pub(super) fn cache_config() -> CacheConfig {
    let hour = Some(Duration::from_secs(3600));
    let five_min = Some(Duration::from_secs(300));
    CacheConfig {
        // Group metadata and per-user device lists: a session works in a
        // handful of chats at a time; misses read the key store.
        group_cache: CacheEntryConfig::new(hour, 32),
        device_registry_cache: CacheEntryConfig::new(hour, 256),
        // `lid_pn_cache` keeps its default, unbounded: several of the
        // client's lookups (the LID to send to, among them) read only this
        // cache, so an evicted mapping would change addressing. It holds
        // one small entry per contact the number has talked to.
        message_retry_counts: CacheEntryConfig::new(hour, 128),
        undecryptable_dispatched: CacheEntryConfig::new(five_min, 128),
        pdo_pending_requests: CacheEntryConfig::new(Some(Duration::from_secs(30)), 32),
        pdo_requested: CacheEntryConfig::new(Some(Duration::from_secs(24 * 3600)), 128),
        sender_key_devices_cache: CacheEntryConfig::new(hour, 64),
        session_recreate_history: CacheEntryConfig::new(hour, 64),
        // Soft caps on per-chat locks: a lock in use is never evicted, so
        // these only bound idle ones.
        session_locks_capacity: 512,
        chat_lanes_capacity: 512,
        group_distribution_locks_capacity: 64,
        resend_rate_limiter_capacity: 256,
        ..CacheConfig::default()
    }
}
