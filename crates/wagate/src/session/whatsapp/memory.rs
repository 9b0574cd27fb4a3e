//! What a session's client holds in memory, by its own report.

use crate::session::engine::{ClientMemory, MemoryPart};

/// The client's report, part by part. The total is the client's own
/// (`memory_report()`'s collections); the transport's buffers, which live
/// outside the client, are a part of their own and not in it.
pub(super) fn client_memory(report: &whatsapp_rust::ResourceReport) -> ClientMemory {
    let c = &report.client;
    let stats = |name, s: &whatsapp_rust::CollectionStats| MemoryPart {
        name,
        entries: s.entries,
        bytes: s.bytes,
    };
    let count = |name, n: u64| MemoryPart {
        name,
        entries: n,
        bytes: 0,
    };
    let len = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let parts = vec![
        stats("group_cache", &c.group_cache),
        stats("device_registry_cache", &c.device_registry_cache),
        stats("lid_pn_by_lid", &c.lid_pn_lid_entries),
        stats("lid_pn_by_pn", &c.lid_pn_pn_entries),
        stats("recent_messages", &c.recent_messages),
        stats("sender_key_device_cache", &c.sender_key_device_cache),
        stats("group_devices_memo", &c.group_devices_memo),
        stats("dm_devices_memo", &c.dm_devices_memo),
        stats("signal_sessions", &c.signal_sessions),
        stats("signal_identities", &c.signal_identities),
        stats("signal_sender_keys", &c.signal_sender_keys),
        stats("history_sync_tasks", &c.history_sync_tasks),
        count("session_locks", c.session_locks),
        count("chat_lanes", c.chat_lanes),
        count("response_waiters", len(c.response_waiters)),
        count("node_waiters", len(c.node_waiters)),
        count("pending_retries", len(c.pending_retries)),
        count("presence_subscriptions", len(c.presence_subscriptions)),
        MemoryPart {
            name: "transport",
            entries: u64::from(report.transport.is_some()),
            bytes: report.transport.map_or(0, |t| t.total_bytes()),
        },
    ];
    ClientMemory {
        total_bytes: c.total_estimated_bytes(),
        parts,
    }
}
