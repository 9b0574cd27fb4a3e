//! App-state sync (syncd), the server's half: each account's collections as
//! numbered, encrypted patches. The server holds no app-state key, as
//! WhatsApp's does not: it numbers what a device uploads (refusing an
//! upload built on a stale version with a 409 that carries the patches the
//! device missed), hands a device the patches after the version it names,
//! a page at a time, and tells the account's other devices (the phone
//! included) with a `server_sync` notification that a collection moved.
//!
//! A device syncing from scratch (`return_snapshot="true"`) gets a
//! snapshot instead, as from WhatsApp: the collection's live records (the
//! latest SET at each index MAC, none that a REMOVE took away), an
//! encrypted external blob in the media store. The server can build it
//! without the key: the index MACs are in clear, and the MAC over the
//! state at the current version is the one the last patch carries.

use std::collections::HashMap;

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::iq::device_of;
use crate::relay;
use crate::stanza::{self, attr, children, iq_error, iq_result};
use crate::world::{ConnId, World};

/// The collections WhatsApp keeps per account.
pub(crate) const COLLECTIONS: [&str; 5] = [
    "regular",
    "regular_low",
    "regular_high",
    "critical_block",
    "critical_unblock_low",
];

/// Patches per answer; a device asks again while `has_more_patches`.
const PAGE: usize = 50;

/// One account's collections.
#[derive(Default)]
pub(crate) struct AppState {
    collections: HashMap<&'static str, Collection>,
}

/// A collection: patch `n` (from 1) is `patches[n - 1]`, stored encoded with
/// its version set, as it goes out.
#[derive(Default)]
struct Collection {
    patches: Vec<Vec<u8>>,
}

impl Collection {
    fn version(&self) -> u64 {
        self.patches.len() as u64
    }

    /// The patches after `version`, at most one page, and whether more follow.
    fn after(&self, version: u64) -> (&[Vec<u8>], bool) {
        let from = usize::try_from(version)
            .unwrap_or(usize::MAX)
            .min(self.patches.len());
        let rest = &self.patches[from..];
        if rest.len() > PAGE {
            (&rest[..PAGE], true)
        } else {
            (rest, false)
        }
    }
}

impl AppState {
    /// The collection's current version (0: empty).
    pub(crate) fn version(&self, name: &str) -> u64 {
        self.collections.get(name).map_or(0, Collection::version)
    }
    /// Every patch after `version`, decoded.
    pub(crate) fn patches_after(&self, name: &str, version: u64) -> Vec<wa::SyncdPatch> {
        let Some(c) = self.collections.get(name) else {
            return Vec::new();
        };
        let from = usize::try_from(version).unwrap_or(usize::MAX);
        c.patches
            .iter()
            .skip(from)
            .filter_map(|raw| waproto::codec::syncd_patch_decode(raw).ok())
            .collect()
    }
}

fn known(name: &str) -> Option<&'static str> {
    COLLECTIONS.iter().copied().find(|c| *c == name)
}

/// Why an upload was not taken.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Built on an older version than the collection's.
    Conflict,
    UnknownCollection,
}

/// Numbers `patch` as the next version of `name` if `base` is the current
/// one, and tells every device of the account but `from` (the phone is
/// device 0) that the collection moved. Returns the new version.
pub(crate) fn append(
    w: &mut World,
    phone: &str,
    from: u16,
    name: &str,
    base: u64,
    mut patch: wa::SyncdPatch,
) -> Result<u64, Refused> {
    let name = known(name).ok_or(Refused::UnknownCollection)?;
    let account = w.account_mut(phone);
    let collection = account.app_state.collections.entry(name).or_default();
    if collection.version() != base {
        return Err(Refused::Conflict);
    }
    let version = base + 1;
    patch.version = buffa::MessageField::some(wa::SyncdVersion {
        version: Some(version),
    });
    collection
        .patches
        .push(waproto::codec::syncd_patch_to_vec(&patch));
    let devices: Vec<u16> = std::iter::once(0)
        .chain(account.devices.keys().copied())
        .filter(|d| *d != from)
        .collect();
    for device in devices {
        let id = w.next_iq_id();
        let node = stanza::server_notification(id, "server_sync")
            .children([NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", version.to_string())
                .build()])
            .build();
        relay::deliver(w, phone, device, node);
    }
    Ok(version)
}

/// `<iq xmlns="w:sync:app:state" type="set"><sync><collection …/>…</sync>`:
/// a collection with `<patch>` children is an upload, one without asks for
/// what follows `version` (a snapshot when `return_snapshot` is true).
pub(crate) fn handle_iq(w: &mut World, conn: ConnId, id: &str, iq: &Node) {
    let Some((phone, device)) = device_of(w, conn) else {
        w.send(conn, iq_error(id, 401, "not-authorized"));
        return;
    };
    let Some(sync) = stanza::child(iq, "sync") else {
        w.send(conn, iq_error(id, 400, "bad-request"));
        return;
    };
    let mut answers = Vec::new();
    for c in children(sync).iter().filter(|c| c.tag == "collection") {
        let name = attr(c, "name").unwrap_or_default();
        let version = attr(c, "version")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let uploads: Vec<&Node> = children(c).iter().filter(|p| p.tag == "patch").collect();
        let answer = if uploads.is_empty() {
            let snapshot = attr(c, "return_snapshot").as_deref() == Some("true");
            let answer = fetch(w, &phone, &name, version, snapshot);
            if let (Some(name), Some(last)) = (
                known(&name),
                attr(&answer, "version").and_then(|v| v.parse::<u64>().ok()),
            ) && let Some(d) = w
                .accounts
                .get_mut(&phone)
                .and_then(|a| a.devices.get_mut(&device))
            {
                d.app_state_synced.insert(name, last);
            }
            answer
        } else {
            upload(w, &phone, device, &name, version, &uploads)
        };
        answers.push(answer);
    }
    w.send(
        conn,
        iq_result(id, vec![NodeBuilder::new("sync").children(answers).build()]),
    );
    w.phone_events.notify_waiters();
}

/// Whether `device` has fetched every collection of the account up to its
/// current version (what the server can tell of a device's sync).
pub(crate) fn device_synced(w: &World, phone: &str, device: u16) -> bool {
    let Some(account) = w.accounts.get(phone) else {
        return false;
    };
    let Some(d) = account.devices.get(&device) else {
        return false;
    };
    COLLECTIONS.iter().all(|name| {
        d.app_state_synced
            .get(name)
            .is_some_and(|v| *v >= account.app_state.version(name))
    })
}

fn error_collection(name: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("collection")
        .attr("name", name)
        .attr("type", "error")
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

fn patches_node(patches: &[Vec<u8>]) -> Node {
    NodeBuilder::new("patches")
        .children(
            patches
                .iter()
                .map(|p| NodeBuilder::new("patch").bytes(p.clone()).build()),
        )
        .build()
}

/// The collection as one snapshot at its current version; `None` while
/// it is empty.
fn snapshot_of(c: &Collection) -> Option<wa::SyncdSnapshot> {
    let patches: Vec<wa::SyncdPatch> = c
        .patches
        .iter()
        .filter_map(|raw| waproto::codec::syncd_patch_decode(raw).ok())
        .collect();
    let last = patches.last()?;
    let mut order: Vec<Vec<u8>> = Vec::new();
    let mut live: HashMap<Vec<u8>, wa::SyncdRecord> = HashMap::new();
    for patch in &patches {
        for m in &patch.mutations {
            let Some(record) = m.record.as_option() else {
                continue;
            };
            let Some(index) = record.index.as_option().and_then(|i| i.blob.clone()) else {
                continue;
            };
            let remove = m
                .operation
                .is_some_and(|op| op == wa::syncd_mutation::SyncdOperation::REMOVE);
            if remove {
                live.remove(&index);
            } else {
                if !live.contains_key(&index) {
                    order.push(index.clone());
                }
                live.insert(index, record.clone());
            }
        }
    }
    let records = order
        .iter()
        .filter_map(|index| live.remove(index))
        .collect();
    Some(wa::SyncdSnapshot {
        version: buffa::MessageField::some(wa::SyncdVersion {
            version: Some(c.version()),
        }),
        records,
        mac: last.snapshot_mac.clone(),
        key_id: last.key_id.clone(),
    })
}

/// Encrypts `snapshot` into the media store as WhatsApp's servers keep
/// app-state blobs; the reference a `<snapshot>` carries.
fn store_snapshot(w: &mut World, snapshot: &wa::SyncdSnapshot) -> Option<Vec<u8>> {
    use base64::Engine;
    use buffa::Message;
    let plain = snapshot.encode_to_vec();
    let encrypted = wacore::upload::encrypt_media(&plain, wacore::download::MediaType::AppState)
        .map_err(|e| tracing::warn!(error = %e, "encrypting an app-state snapshot"))
        .ok()?;
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(encrypted.file_enc_sha256);
    let direct_path = format!("/v/t62.7118-24/{token}.enc");
    w.blobs
        .insert(direct_path.clone(), encrypted.data_to_upload.into());
    let reference = wa::ExternalBlobReference {
        media_key: Some(encrypted.media_key.to_vec()),
        direct_path: Some(direct_path),
        handle: None,
        file_size_bytes: Some(plain.len() as u64),
        file_sha256: Some(encrypted.file_sha256.to_vec()),
        file_enc_sha256: Some(encrypted.file_enc_sha256.to_vec()),
    };
    Some(reference.encode_to_vec())
}

fn fetch(w: &mut World, phone: &str, name: &str, version: u64, snapshot: bool) -> Node {
    let Some(name) = known(name) else {
        return error_collection(name, 404, "item-not-found");
    };
    let account = w.account_mut(phone);
    let collection = account.app_state.collections.entry(name).or_default();
    if snapshot && let Some(whole) = snapshot_of(collection) {
        let current = collection.version();
        if let Some(reference) = store_snapshot(w, &whole) {
            return NodeBuilder::new("collection")
                .attr("name", name)
                .attr("version", current.to_string())
                .children([NodeBuilder::new("snapshot").bytes(reference).build()])
                .build();
        }
        return error_collection(name, 500, "internal-server-error");
    }
    let (page, more) = collection.after(version);
    let last = version + page.len() as u64;
    let mut b = NodeBuilder::new("collection")
        .attr("name", name)
        .attr("version", last.to_string());
    if more {
        b = b.attr("has_more_patches", "true");
    }
    if !page.is_empty() {
        b = b.children([patches_node(page)]);
    }
    b.build()
}

fn upload(
    w: &mut World,
    phone: &str,
    device: u16,
    name: &str,
    base: u64,
    uploads: &[&Node],
) -> Node {
    let Some(name) = known(name) else {
        return error_collection(name, 404, "item-not-found");
    };
    let mut version = base;
    for raw in uploads {
        let Some(patch) =
            stanza::bytes(raw).and_then(|b| waproto::codec::syncd_patch_decode(b).ok())
        else {
            return error_collection(name, 400, "bad-request");
        };
        match append(w, phone, device, name, version, patch) {
            Ok(v) => version = v,
            Err(Refused::UnknownCollection) => {
                return error_collection(name, 404, "item-not-found");
            }
            Err(Refused::Conflict) => {
                // The device builds on a stale base: it gets what it missed
                // and rebuilds on top of it.
                let account = w.account_mut(phone);
                let collection = account.app_state.collections.entry(name).or_default();
                let (page, more) = collection.after(version);
                let mut b = NodeBuilder::new("collection")
                    .attr("name", name)
                    .attr("type", "error");
                if more {
                    b = b.attr("has_more_patches", "true");
                }
                return b
                    .children([
                        NodeBuilder::new("error")
                            .attr("code", "409")
                            .attr("text", "conflict")
                            .build(),
                        patches_node(page),
                    ])
                    .build();
            }
        }
    }
    NodeBuilder::new("collection")
        .attr("name", name)
        .attr("version", version.to_string())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "15550001234";

    fn patch(n: u8) -> wa::SyncdPatch {
        wa::SyncdPatch {
            snapshot_mac: Some(vec![n; 32]),
            ..Default::default()
        }
    }

    fn versions(node: &Node) -> Vec<u64> {
        stanza::child(node, "patches")
            .map(|p| {
                children(p)
                    .iter()
                    .filter_map(stanza::bytes)
                    .filter_map(|b| waproto::codec::syncd_patch_decode(b).ok())
                    .filter_map(|p| p.version.version)
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn uploads_are_numbered_and_a_stale_base_is_a_conflict() {
        let mut w = World::default();
        w.account_mut(PHONE);
        assert_eq!(
            append(&mut w, PHONE, 1, "regular_low", 0, patch(1)).ok(),
            Some(1)
        );
        assert_eq!(
            append(&mut w, PHONE, 1, "regular_low", 1, patch(2)).ok(),
            Some(2)
        );
        assert!(matches!(
            append(&mut w, PHONE, 2, "regular_low", 1, patch(3)),
            Err(Refused::Conflict)
        ));
        assert!(matches!(
            append(&mut w, PHONE, 1, "nonsense", 0, patch(3)),
            Err(Refused::UnknownCollection)
        ));
        // The upload path answers a conflict with what the device missed.
        let raw = NodeBuilder::new("patch")
            .bytes(waproto::codec::syncd_patch_to_vec(&patch(4)))
            .build();
        let answer = upload(&mut w, PHONE, 2, "regular_low", 1, &[&raw]);
        assert_eq!(attr(&answer, "type").as_deref(), Some("error"));
        let code = stanza::child(&answer, "error").and_then(|e| attr(e, "code"));
        assert_eq!(code.as_deref(), Some("409"));
        assert_eq!(versions(&answer), vec![2]);
        // On the current base it is taken.
        let answer = upload(&mut w, PHONE, 2, "regular_low", 2, &[&raw]);
        assert_eq!(attr(&answer, "version").as_deref(), Some("3"));
    }

    #[test]
    fn a_fetch_pages_what_follows_the_version() {
        let mut w = World::default();
        w.account_mut(PHONE);
        let total = PAGE as u64 + 7;
        for v in 0..total {
            assert!(append(&mut w, PHONE, 0, "regular", v, patch(1)).is_ok());
        }
        let first = fetch(&mut w, PHONE, "regular", 0, false);
        assert_eq!(attr(&first, "has_more_patches").as_deref(), Some("true"));
        assert_eq!(versions(&first), (1..=PAGE as u64).collect::<Vec<_>>());
        let rest = fetch(&mut w, PHONE, "regular", PAGE as u64, false);
        assert_eq!(attr(&rest, "has_more_patches"), None);
        assert_eq!(
            versions(&rest),
            (PAGE as u64 + 1..=total).collect::<Vec<_>>()
        );
        assert_eq!(attr(&rest, "version"), Some(total.to_string()));
        // Up to date: nothing, and the version it is at.
        let none = fetch(&mut w, PHONE, "regular", total, false);
        assert!(versions(&none).is_empty());
        assert_eq!(attr(&none, "version"), Some(total.to_string()));
        assert_eq!(
            attr(&fetch(&mut w, PHONE, "bogus", 0, false), "type").as_deref(),
            Some("error")
        );
    }

    fn mutation(op: wa::syncd_mutation::SyncdOperation, index: u8, value: u8) -> wa::SyncdMutation {
        wa::SyncdMutation {
            operation: Some(op.into()),
            record: buffa::MessageField::some(wa::SyncdRecord {
                index: buffa::MessageField::some(wa::SyncdIndex {
                    blob: Some(vec![index; 32]),
                }),
                value: buffa::MessageField::some(wa::SyncdValue {
                    blob: Some(vec![value; 64]),
                }),
                key_id: buffa::MessageField::none(),
            }),
        }
    }

    #[test]
    fn a_snapshot_holds_the_live_records_and_the_last_mac() {
        use wa::syncd_mutation::SyncdOperation::{REMOVE, SET};
        let mut c = Collection::default();
        assert!(snapshot_of(&c).is_none());
        for (n, mutations) in [
            vec![mutation(SET, 1, 10), mutation(SET, 2, 20)],
            vec![mutation(SET, 1, 11), mutation(SET, 3, 30)],
            vec![mutation(REMOVE, 2, 20)],
        ]
        .into_iter()
        .enumerate()
        {
            let patch = wa::SyncdPatch {
                version: buffa::MessageField::some(wa::SyncdVersion {
                    version: Some(n as u64 + 1),
                }),
                snapshot_mac: Some(vec![n as u8; 32]),
                mutations,
                ..Default::default()
            };
            c.patches.push(waproto::codec::syncd_patch_to_vec(&patch));
        }
        let snapshot = snapshot_of(&c).expect("a snapshot of three patches");
        assert_eq!(snapshot.version.version, Some(3));
        assert_eq!(snapshot.mac, Some(vec![2; 32]));
        let values: Vec<(u8, u8)> = snapshot
            .records
            .iter()
            .filter_map(|r| {
                let index = r.index.as_option()?.blob.as_ref()?[0];
                let value = r.value.as_option()?.blob.as_ref()?[0];
                Some((index, value))
            })
            .collect();
        assert_eq!(values, vec![(1, 11), (3, 30)]);
    }
}
