//! The phone's half of app-state sync: it holds the app-state key it shares
//! with its companions, keeps each collection's ltHash and value MACs as a
//! client does, turns its user's chat actions (archive, pin, mute, mark
//! read) into encrypted, MACed mutations uploaded as patches, and decodes
//! the patches its companions upload into its own view of each chat.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;
use wacore::appstate::hash::{HashState, generate_patch_mac};
use wacore::appstate::keys::{ExpandedAppStateKeys, expand_app_state_keys};
use wacore::appstate::schemas::{self, Schema};
use wacore::appstate::{AppStateError, Mutation, encode_record, process_patch};
use waproto::whatsapp as wa;

use super::PhoneSignal;
use crate::error::SimError;
use crate::server::Server;
use crate::syncd;

/// What the phone's user does to a chat (or, saving a contact, to the
/// person it is with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatAction {
    Archive,
    Unarchive,
    Pin,
    Unpin,
    /// Muted until this many milliseconds since the epoch; `None`: for ever.
    Mute(Option<i64>),
    Unmute,
    MarkRead,
    MarkUnread,
    /// Saves the person in the phone's address book under `name` (`None`:
    /// removes the name), naming their LID too when known: WhatsApp's
    /// `contact` action.
    SaveContact {
        name: Option<String>,
        lid: Option<String>,
    },
}

/// The phone's view of one chat's settings, as its app state says.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhoneChat {
    pub archived: bool,
    pub pinned: bool,
    pub muted: bool,
    /// Milliseconds since the epoch; `None` while muted means for ever.
    pub muted_until_ms: Option<i64>,
    /// The last mark-read action: `Some(true)` read, `Some(false)` unread.
    pub read: Option<bool>,
}

/// A collection as this device last applied it.
#[derive(Default)]
pub(super) struct Local {
    state: HashState,
    /// Index MAC -> value MAC of the live SET at that index.
    macs: HashMap<Vec<u8>, Vec<u8>>,
}

/// Every collection of one phone.
#[derive(Default)]
pub(super) struct PhoneSyncd {
    collections: HashMap<&'static str, Local>,
}

fn collection_name(schema: &Schema) -> &'static str {
    use schemas::Collection;
    match schema.collection {
        Collection::Regular => "regular",
        Collection::RegularLow => "regular_low",
        Collection::RegularHigh => "regular_high",
        Collection::CriticalBlock => "critical_block",
        Collection::CriticalUnblockLow => "critical_unblock_low",
    }
}

fn now_ms() -> i64 {
    i64::try_from(super::now_ms()).unwrap_or(i64::MAX)
}

/// The index and value WhatsApp's apps write for `action` on `chat`.
fn mutation_of(action: &ChatAction) -> (&'static Schema, wa::SyncActionValue) {
    let mut value = wa::SyncActionValue {
        timestamp: Some(now_ms()),
        ..Default::default()
    };
    let schema = match action {
        ChatAction::Archive | ChatAction::Unarchive => {
            value.archive_chat_action =
                buffa::MessageField::some(wa::sync_action_value::ArchiveChatAction {
                    archived: Some(*action == ChatAction::Archive),
                    message_range: buffa::MessageField::none(),
                });
            &schemas::ARCHIVE
        }
        ChatAction::Pin | ChatAction::Unpin => {
            value.pin_action = buffa::MessageField::some(wa::sync_action_value::PinAction {
                pinned: Some(*action == ChatAction::Pin),
            });
            &schemas::PIN
        }
        ChatAction::Mute(until) => {
            value.mute_action = buffa::MessageField::some(wa::sync_action_value::MuteAction {
                muted: Some(true),
                // WhatsApp writes -1 for "for ever".
                mute_end_timestamp: Some(until.unwrap_or(-1)),
                ..Default::default()
            });
            &schemas::MUTE
        }
        ChatAction::Unmute => {
            value.mute_action = buffa::MessageField::some(wa::sync_action_value::MuteAction {
                muted: Some(false),
                mute_end_timestamp: Some(0),
                ..Default::default()
            });
            &schemas::MUTE
        }
        ChatAction::SaveContact { name, lid } => {
            value.contact_action =
                buffa::MessageField::some(wa::sync_action_value::ContactAction {
                    full_name: name.clone(),
                    first_name: name
                        .as_deref()
                        .and_then(|n| n.split_whitespace().next())
                        .map(str::to_owned),
                    lid_jid: lid.as_ref().map(|l| format!("{l}@lid")),
                    save_on_primary_addressbook: Some(true),
                    ..Default::default()
                });
            &schemas::CONTACT
        }
        ChatAction::MarkRead | ChatAction::MarkUnread => {
            value.mark_chat_as_read_action =
                buffa::MessageField::some(wa::sync_action_value::MarkChatAsReadAction {
                    read: Some(*action == ChatAction::MarkRead),
                    message_range: buffa::MessageField::none(),
                });
            &schemas::MARK_CHAT_AS_READ
        }
    };
    (schema, value)
}

/// The index JSON: the schema's action name, then the chat JID.
fn index_of(schema: &Schema, chat: &str) -> Result<Vec<u8>, SimError> {
    serde_json::to_vec(&[schema.name, chat])
        .map_err(|e| SimError::Internal(format!("encoding an app-state index: {e}")))
}

fn keys_of(signal: &PhoneSignal) -> Arc<ExpandedAppStateKeys> {
    Arc::new(expand_app_state_keys(&signal.app_state_key.data))
}

/// Applies every patch of `name` the phone has not applied yet, updating
/// its view of the chats.
pub(super) fn catch_up(server: &Server, phone: &str, signal: &mut PhoneSignal, name: &'static str) {
    let keys = keys_of(signal);
    let key_id = signal.app_state_key.id.clone();
    let local = signal.syncd.collections.entry(name).or_default();
    let patches = {
        let w = server.world();
        match w.accounts.get(phone) {
            Some(a) => a.app_state.patches_after(name, local.state.version),
            None => return,
        }
    };
    let mut decoded: Vec<Mutation> = Vec::new();
    for patch in patches {
        let macs = &local.macs;
        let result = process_patch(
            &patch,
            &mut local.state,
            |id| {
                if id == key_id.as_slice() {
                    Ok(keys.clone())
                } else {
                    Err(AppStateError::KeyNotFound)
                }
            },
            |index_mac| Ok(macs.get(index_mac).cloned()),
            true,
            name,
        );
        match result {
            Ok(applied) => {
                for removed in &applied.removed_index_macs {
                    local.macs.remove(removed);
                }
                for added in applied.added_macs {
                    local.macs.insert(added.index_mac, added.value_mac);
                }
                decoded.extend(applied.mutations);
            }
            Err(e) => {
                // A patch the phone cannot read (another key, a bad MAC):
                // WhatsApp's apps skip past it too, version and all.
                tracing::warn!(%phone, collection = name, error = %e, "app-state patch not applied");
                local.state.version = patch.version.version.unwrap_or(local.state.version + 1);
            }
        }
    }
    if decoded.is_empty() {
        return;
    }
    let mut w = server.world();
    if let Some(account) = w.accounts.get_mut(phone) {
        for m in &decoded {
            apply(&mut account.phone_chats, m);
        }
    }
    w.phone_events.notify_waiters();
}

/// Every collection, after a `server_sync` notification.
pub(super) fn catch_up_all(server: &Server, phone: &str, signal: &mut PhoneSignal) {
    for name in syncd::COLLECTIONS {
        catch_up(server, phone, signal, name);
    }
}

/// One decoded mutation onto the phone's view of its chats.
fn apply(chats: &mut std::collections::BTreeMap<String, PhoneChat>, m: &Mutation) {
    if m.operation != wa::syncd_mutation::SyncdOperation::SET {
        return;
    }
    let (Some(kind), Some(chat), Some(value)) =
        (m.index.first(), m.index.get(1), m.action_value.as_ref())
    else {
        return;
    };
    let entry = chats.entry(chat.clone()).or_default();
    match kind.as_str() {
        "archive" => {
            if let Some(a) = value.archive_chat_action.as_option() {
                entry.archived = a.archived.unwrap_or(false);
            }
        }
        "pin" | "pin_v1" => {
            if let Some(a) = value.pin_action.as_option() {
                entry.pinned = a.pinned.unwrap_or(false);
            }
        }
        "mute" => {
            if let Some(a) = value.mute_action.as_option() {
                entry.muted = a.muted.unwrap_or(false);
                entry.muted_until_ms = a.mute_end_timestamp.filter(|t| entry.muted && *t > 0);
            }
        }
        "markChatAsRead" | "mark_chat_as_read" => {
            if let Some(a) = value.mark_chat_as_read_action.as_option() {
                entry.read = a.read;
            }
        }
        _ => {}
    }
}

/// How often the phone rebuilds a patch that lost a race with a companion's.
const ATTEMPTS: usize = 3;

/// The phone's user does `action` to `chat`: a SET mutation, built on the
/// collection as the phone last saw it, uploaded as the next patch (and
/// rebuilt on top of a companion's patch that got there first).
pub(super) fn act(
    server: &Server,
    phone: &str,
    signal: &mut PhoneSignal,
    chat: &str,
    action: ChatAction,
) -> Result<(), SimError> {
    let (schema, value) = mutation_of(&action);
    let name = collection_name(schema);
    let index = index_of(schema, chat)?;
    let keys = keys_of(signal);
    let key_id = signal.app_state_key.id.clone();
    for _ in 0..ATTEMPTS {
        catch_up(server, phone, signal, name);
        let local = signal.syncd.collections.entry(name).or_default();
        let iv: [u8; 16] = rand::random();
        let (mutation, _) = encode_record(
            wa::syncd_mutation::SyncdOperation::SET,
            &index,
            &value,
            &keys,
            &key_id,
            &iv,
            i32::try_from(schema.version).unwrap_or(1),
        );
        let base = local.state.version;
        let mut state = local.state.clone();
        let macs = &local.macs;
        let (_, hashed) = state.update_hash(std::slice::from_ref(&mutation), |index_mac, _| {
            Ok(macs.get(index_mac).cloned())
        });
        hashed.map_err(|e| SimError::Internal(format!("hashing an app-state patch: {e}")))?;
        state.version = base + 1;
        let mut patch = wa::SyncdPatch {
            snapshot_mac: Some(state.generate_snapshot_mac(name, &keys.snapshot_mac)),
            key_id: buffa::MessageField::some(wa::KeyId {
                id: Some(key_id.clone()),
            }),
            mutations: vec![mutation],
            ..Default::default()
        };
        patch.patch_mac = Some(generate_patch_mac(&patch, name, &keys.patch_mac, base + 1));
        let appended = syncd::append(&mut server.world(), phone, 0, name, base, patch);
        match appended {
            Ok(_) => {
                // Applied the way any device applies a patch: from the server.
                catch_up(server, phone, signal, name);
                return Ok(());
            }
            Err(syncd::Refused::Conflict) => continue,
            Err(syncd::Refused::UnknownCollection) => {
                return Err(SimError::Internal(format!("no collection {name}")));
            }
        }
    }
    Err(SimError::Internal(format!(
        "app-state patch for {name} still conflicting after {ATTEMPTS} attempts"
    )))
}
