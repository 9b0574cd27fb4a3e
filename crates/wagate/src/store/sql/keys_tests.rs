//! The key store's contract, method by method, as whatsapp-rust's own
//! backends keep it: round trip, overwrite, a missing row, delete, batches,
//! expiry, two sessions kept apart, and sessions writing at once.
//! Compiled once per backend with `keys.rs` (`super::super` is the
//! backend), so SQLite and PostgreSQL keep the same contract.

use std::collections::HashMap;

use bytes::Bytes;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::traits::{
    AppStateSyncKey, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};

use super::app_state::{decode_index_values, encode_index_values};
use super::device::DEVICE_ID;
use super::*;
use crate::domain::OrgId;
use crate::store::{MutationMac, NewSession, OrgStore, PendingInbound, SentMessage, SessionStore};

type TestResult = Result<(), Box<dyn std::error::Error>>;

type TestStore = crate::store::testing::TestStore<GatewayStore>;

/// A fresh store and an organization in it; `None` where the backend is
/// not reachable (PostgreSQL without a server, unless required).
async fn store() -> Result<Option<(TestStore, OrgId)>, StoreError> {
    let Some(store) = super::super::test_store().await else {
        return Ok(None);
    };
    let org = store.create_org("acme").await?;
    Ok(Some((store, org.id)))
}

async fn session(store: &GatewayStore, org: OrgId) -> Result<SessionId, StoreError> {
    Ok(store
        .insert_session(NewSession {
            id: SessionId::new(),
            org_id: org,
            label: None,
            pace: Default::default(),
            history: Default::default(),
        })
        .await?
        .id)
}

/// A store with two sessions, and the first one's backend.
async fn two() -> Result<Option<(TestStore, SessionId, SessionId, Arc<dyn Backend>)>, StoreError> {
    let Some((store, org)) = store().await? else {
        return Ok(None);
    };
    let a = session(&store, org).await?;
    let b = session(&store, org).await?;
    let keys = store.for_session(a);
    Ok(Some((store, a, b, keys)))
}

fn secret(chat: &str, id: &str, byte: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: chat.into(),
        sender: chat.into(),
        msg_id: id.into(),
        secret: [byte; 32],
        expires_at,
        message_ts,
    }
}

#[tokio::test]
async fn identities_round_trip_overwrite_and_delete() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.load_identity("1555@s.whatsapp.net").await?, None);
    keys.put_identity("1555@s.whatsapp.net", [1; 32]).await?;
    assert_eq!(
        keys.load_identity("1555@s.whatsapp.net").await?,
        Some([1; 32])
    );
    keys.put_identity("1555@s.whatsapp.net", [2; 32]).await?;
    assert_eq!(
        keys.load_identity("1555@s.whatsapp.net").await?,
        Some([2; 32])
    );
    keys.put_identities_batch(&[
        ("a@lid".into(), [3; 32]),
        ("b@lid".into(), [4; 32]),
        ("a@lid".into(), [5; 32]),
    ])
    .await?;
    assert_eq!(
        keys.load_identity("a@lid").await?,
        Some([5; 32]),
        "the last of a batch wins"
    );
    assert_eq!(keys.load_identity("b@lid").await?, Some([4; 32]));
    keys.delete_identity("1555@s.whatsapp.net").await?;
    assert_eq!(keys.load_identity("1555@s.whatsapp.net").await?, None);
    Ok(())
}

#[tokio::test]
async fn signal_sessions_round_trip_in_batches_larger_than_a_statement() -> TestResult {
    let Some((store, a, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.get_session("x@s.whatsapp.net").await?, None);
    assert!(!keys.has_session("x@s.whatsapp.net").await?);
    keys.put_session("x@s.whatsapp.net", b"one").await?;
    keys.put_session("x@s.whatsapp.net", b"two").await?;
    assert_eq!(
        keys.get_session("x@s.whatsapp.net").await?.as_deref(),
        Some(&b"two"[..])
    );
    assert!(keys.has_session("x@s.whatsapp.net").await?);

    // More rows than one statement takes, with a repeated address.
    let mut batch: Vec<(Arc<str>, Bytes)> = (0..CHUNK * 2 + 50)
        .map(|i| (Arc::from(format!("{i}@lid")), Bytes::from(format!("r{i}"))))
        .collect();
    batch.push((Arc::from("7@lid"), Bytes::from_static(b"latest")));
    keys.put_sessions_batch(&batch).await?;
    assert_eq!(
        store.count_keys(a).await?.sessions,
        (CHUNK * 2 + 50 + 1) as u64
    );
    assert_eq!(
        keys.get_session("7@lid").await?.as_deref(),
        Some(&b"latest"[..])
    );
    assert_eq!(
        keys.get_session("300@lid").await?.as_deref(),
        Some(&b"r300"[..])
    );

    keys.delete_session("x@s.whatsapp.net").await?;
    assert!(!keys.has_session("x@s.whatsapp.net").await?);
    Ok(())
}

#[tokio::test]
async fn signal_state_for_a_user_matches_its_devices_only() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(!keys.has_signal_state_for_user("1555").await?);
    keys.put_session("1555:3@s.whatsapp.net", b"s").await?;
    keys.put_identity("1666@lid", [0; 32]).await?;
    keys.put_session("15550@s.whatsapp.net", b"s").await?;
    assert!(
        keys.has_signal_state_for_user("1555").await?,
        "a device session"
    );
    assert!(keys.has_signal_state_for_user("1666").await?, "an identity");
    assert!(
        !keys.has_signal_state_for_user("155").await?,
        "a prefix is not the user"
    );
    assert!(
        !keys.has_signal_state_for_user("1_55").await?,
        "no wildcards"
    );
    Ok(())
}

#[tokio::test]
async fn prekeys_load_in_batches_and_marking_never_resurrects() -> TestResult {
    let Some((store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.get_max_prekey_id().await?, 0);
    assert_eq!(keys.load_prekey(1).await?, None);
    keys.store_prekey(1, b"k1", false).await?;
    keys.store_prekeys_batch(
        &[
            (2, Bytes::from_static(b"k2")),
            (3, Bytes::from_static(b"k3")),
        ],
        false,
    )
    .await?;
    keys.store_prekey(1, b"k1'", false).await?;
    assert_eq!(keys.load_prekey(1).await?.as_deref(), Some(&b"k1'"[..]));
    assert_eq!(keys.get_max_prekey_id().await?, 3);
    let loaded = keys.load_prekeys_batch(&[3, 9, 1]).await?;
    assert_eq!(
        loaded,
        vec![
            (3, Bytes::from_static(b"k3")),
            (1, Bytes::from_static(b"k1'"))
        ],
        "the existing ones, in the order asked"
    );

    keys.remove_prekey(2).await?;
    keys.mark_prekeys_uploaded(&[1, 2]).await?;
    assert_eq!(
        keys.load_prekey(2).await?,
        None,
        "a consumed key stays deleted"
    );
    let uploaded: Vec<(i64, bool)> =
        sqlx::query_as("SELECT id, uploaded FROM key_prekeys ORDER BY id")
            .fetch_all(&store.pool)
            .await?;
    assert_eq!(uploaded, vec![(1, true), (3, false)]);
    Ok(())
}

#[tokio::test]
async fn signed_prekeys_and_sender_keys_round_trip() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.load_signed_prekey(1).await?, None);
    assert!(keys.load_all_signed_prekeys().await?.is_empty());
    keys.store_signed_prekey(2, b"s2").await?;
    keys.store_signed_prekey(1, b"s1").await?;
    keys.store_signed_prekey(1, b"s1'").await?;
    assert_eq!(keys.load_signed_prekey(1).await?, Some(b"s1'".to_vec()));
    assert_eq!(
        keys.load_all_signed_prekeys().await?,
        vec![(1, b"s1'".to_vec()), (2, b"s2".to_vec())]
    );
    keys.remove_signed_prekey(1).await?;
    assert_eq!(keys.load_signed_prekey(1).await?, None);

    assert_eq!(keys.get_sender_key("g::a").await?, None);
    keys.put_sender_key("g::a", b"one").await?;
    keys.put_sender_keys_batch(&[
        ("g::a".into(), Bytes::from_static(b"two")),
        ("g::b".into(), Bytes::from_static(b"b")),
    ])
    .await?;
    assert_eq!(keys.get_sender_key("g::a").await?, Some(b"two".to_vec()));
    assert_eq!(keys.get_sender_key("g::b").await?, Some(b"b".to_vec()));
    keys.delete_sender_key("g::a").await?;
    assert_eq!(keys.get_sender_key("g::a").await?, None);
    Ok(())
}

#[tokio::test]
async fn app_state_keys_versions_and_macs_round_trip() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(keys.get_sync_key(b"k1").await?.is_none());
    assert_eq!(keys.get_latest_sync_key_id().await?, None);
    let key = |byte: u8| AppStateSyncKey {
        key_data: vec![byte; 32],
        fingerprint: vec![byte],
        timestamp: i64::from(byte),
    };
    keys.set_sync_key(&[0, 0, 2], key(2)).await?;
    keys.set_sync_key(&[0, 0, 1], key(1)).await?;
    keys.set_sync_key(&[0, 0, 1], key(3)).await?;
    let got = keys.get_sync_key(&[0, 0, 1]).await?.ok_or("missing key")?;
    assert_eq!(
        (got.key_data, got.fingerprint, got.timestamp),
        (vec![3; 32], vec![3], 3)
    );
    assert_eq!(keys.get_latest_sync_key_id().await?, Some(vec![0, 0, 2]));

    let empty = keys.get_version("regular").await?;
    assert_eq!(empty.version, 0, "a missing collection is at version 0");
    let state = HashState {
        version: 7,
        hash: [9; 128],
        index_value_map: HashMap::from([
            ("idx-a".to_string(), vec![1, 2, 3]),
            ("idx-b".to_string(), vec![]),
        ]),
        mac_mismatch_fatal: true,
    };
    keys.set_version("regular", state.clone()).await?;
    let got = keys.get_version("regular").await?;
    assert_eq!(got.version, 7);
    assert_eq!(got.hash, [9; 128]);
    assert_eq!(got.index_value_map, state.index_value_map);
    assert!(got.mac_mismatch_fatal);

    let mac = |index: u8, value: u8| AppStateMutationMAC {
        index_mac: vec![index; 32],
        value_mac: vec![value],
    };
    keys.put_mutation_macs("regular", 1, &[mac(1, 10), mac(2, 20)])
        .await?;
    keys.put_mutation_macs("regular", 2, &[mac(1, 11)]).await?;
    keys.put_mutation_macs("other", 1, &[mac(1, 99)]).await?;
    assert_eq!(
        keys.get_mutation_mac("regular", &[1; 32]).await?,
        Some(vec![11])
    );
    assert_eq!(keys.get_mutation_mac("regular", &[3; 32]).await?, None);
    let found = keys
        .get_mutation_macs("regular", &[[1; 32], [2; 32], [3; 32]])
        .await?;
    assert_eq!(
        found,
        HashMap::from([([1; 32], vec![11]), ([2; 32], vec![20])])
    );
    keys.delete_mutation_macs("regular", &[vec![2; 32]]).await?;
    assert_eq!(keys.get_mutation_mac("regular", &[2; 32]).await?, None);
    keys.clear_mutation_macs("regular").await?;
    assert_eq!(keys.get_mutation_mac("regular", &[1; 32]).await?, None);
    assert_eq!(
        keys.get_mutation_mac("other", &[1; 32]).await?,
        Some(vec![99]),
        "clearing one collection keeps the others"
    );
    Ok(())
}

#[tokio::test]
async fn a_corrupt_index_map_is_an_error_not_a_panic() {
    let mut bytes = encode_index_values(&HashMap::from([("k".to_string(), vec![1, 2])]));
    assert!(decode_index_values(&bytes).is_ok());
    bytes.pop();
    assert!(decode_index_values(&bytes).is_err());
    assert!(decode_index_values(&[0, 0, 0, 9, 1]).is_err());
}

#[tokio::test]
async fn sender_key_devices_are_tracked_per_group() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(keys.get_sender_key_devices("g1").await?.is_empty());
    keys.set_sender_key_status("g1", &[("d1", true), ("d2", false)])
        .await?;
    keys.set_sender_key_status("g1", &[("d2", true)]).await?;
    keys.set_sender_key_status("g2", &[("d1", true), ("d3", true)])
        .await?;
    let mut g1 = keys.get_sender_key_devices("g1").await?;
    g1.sort();
    assert_eq!(g1, vec![("d1".into(), true), ("d2".into(), true)]);

    keys.delete_sender_key_device_rows(&["d1"]).await?;
    assert_eq!(
        keys.get_sender_key_devices("g1").await?,
        vec![("d2".into(), true)]
    );
    assert_eq!(
        keys.get_sender_key_devices("g2").await?,
        vec![("d3".into(), true)]
    );
    keys.clear_sender_key_devices("g1").await?;
    assert!(keys.get_sender_key_devices("g1").await?.is_empty());
    assert_eq!(keys.get_sender_key_devices("g2").await?.len(), 1);
    keys.clear_all_sender_key_devices().await?;
    assert!(keys.get_sender_key_devices("g2").await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn lid_mappings_keep_first_learned_and_answer_the_newest_by_number() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    let entry = |lid: &str, pn: &str, created: i64, updated: i64| LidPnMappingEntry {
        lid: lid.into(),
        phone_number: pn.into(),
        created_at: created,
        updated_at: updated,
        learning_source: "usync".into(),
    };
    assert!(keys.get_lid_mapping("100").await?.is_none());
    assert!(keys.get_pn_mapping("1555").await?.is_none());
    keys.put_lid_mapping(&entry("100", "1555", 10, 10)).await?;
    keys.put_lid_mappings(&[entry("100", "1555", 20, 20), entry("200", "1555", 30, 30)])
        .await?;
    let first = keys.get_lid_mapping("100").await?.ok_or("missing")?;
    assert_eq!(
        (first.created_at, first.updated_at),
        (10, 20),
        "created_at is kept"
    );
    assert_eq!(
        keys.get_pn_mapping("1555").await?.map(|e| e.lid),
        Some("200".into())
    );
    assert_eq!(keys.get_all_lid_mappings().await?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn base_keys_device_lists_and_group_metadata_round_trip() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(!keys.has_same_base_key("a", "m1", b"k").await?);
    keys.save_base_key("a", "m1", b"k").await?;
    assert!(keys.has_same_base_key("a", "m1", b"k").await?);
    assert!(!keys.has_same_base_key("a", "m1", b"other").await?);
    keys.delete_base_key("a", "m1").await?;
    assert!(!keys.has_same_base_key("a", "m1", b"k").await?);

    assert!(keys.get_devices("1555").await?.is_none());
    let record = |ts: i64| DeviceListRecord {
        user: "1555".into(),
        devices: vec![
            DeviceInfo::new(0, None),
            DeviceInfo::new(3, Some(2)).with_hosting(true),
        ],
        timestamp: ts,
        phash: Some("h".into()),
        raw_id: Some(4),
    };
    keys.update_device_list(record(1)).await?;
    keys.update_device_lists(vec![record(2)]).await?;
    let got = keys.get_devices("1555").await?.ok_or("missing")?;
    assert_eq!(got.timestamp, 2);
    assert_eq!(got.devices.len(), 2);
    assert!(got.devices[1].is_hosted);
    assert_eq!((got.phash.as_deref(), got.raw_id), (Some("h"), Some(4)));
    keys.delete_devices("1555").await?;
    assert!(keys.get_devices("1555").await?.is_none());

    assert_eq!(keys.get_group_metadata("g").await?, None);
    keys.put_group_metadata("g", b"v1").await?;
    keys.put_group_metadata("g", b"v2").await?;
    assert_eq!(keys.get_group_metadata("g").await?, Some(b"v2".to_vec()));
    keys.delete_group_metadata("g").await?;
    assert_eq!(keys.get_group_metadata("g").await?, None);
    Ok(())
}

#[tokio::test]
async fn tc_tokens_keep_each_writers_field_newer_wins_and_expire_by_both_windows() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(keys.get_tc_token("j").await?.is_none());
    // A placeholder from the sender side, then a real token keeps it.
    keys.touch_tc_token_sender_timestamp("j", 100).await?;
    keys.store_received_tc_token("j", b"tok", 50).await?;
    let got = keys.get_tc_token("j").await?.ok_or("missing")?;
    assert_eq!(
        (got.token, got.token_timestamp, got.sender_timestamp),
        (b"tok".to_vec(), 50, Some(100))
    );
    // The sender bucket only moves forward; a stale token does not clobber.
    keys.touch_tc_token_sender_timestamp("j", 90).await?;
    keys.store_received_tc_token("j", b"old", 40).await?;
    let got = keys.get_tc_token("j").await?.ok_or("missing")?;
    assert_eq!(
        (got.token, got.sender_timestamp),
        (b"tok".to_vec(), Some(100))
    );
    keys.store_received_tc_token("j", b"new", 60).await?;
    assert_eq!(
        keys.get_tc_token("j").await?.map(|t| t.token),
        Some(b"new".to_vec())
    );

    keys.put_tc_token(
        "k",
        &TcTokenEntry {
            token: b"t".to_vec(),
            token_timestamp: 10,
            sender_timestamp: None,
        },
    )
    .await?;
    let mut jids = keys.get_all_tc_token_jids().await?;
    jids.sort();
    assert_eq!(jids, vec!["j".to_string(), "k".to_string()]);
    // j: token 60 stale at 70, but its sender bucket 100 is live at 95.
    // k: token 10 stale, no sender bucket: gone.
    assert_eq!(keys.delete_expired_tc_tokens(70, 95).await?, 1);
    assert!(keys.get_tc_token("k").await?.is_none());
    assert_eq!(keys.delete_expired_tc_tokens(70, 101).await?, 1);
    assert!(keys.get_tc_token("j").await?.is_none());
    keys.put_tc_token(
        "m",
        &TcTokenEntry {
            token: b"t".to_vec(),
            token_timestamp: 10,
            sender_timestamp: None,
        },
    )
    .await?;
    keys.delete_tc_token("m").await?;
    assert!(keys.get_tc_token("m").await?.is_none());
    Ok(())
}

#[tokio::test]
async fn a_sent_message_is_taken_once_and_expires_by_age() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.take_sent_message("c", "m").await?, None);
    keys.store_sent_message("c", "m", b"p1").await?;
    keys.store_sent_message("c", "m", b"p2").await?;
    assert_eq!(
        keys.take_sent_message("c", "m").await?,
        Some(b"p2".to_vec())
    );
    assert_eq!(keys.take_sent_message("c", "m").await?, None, "taken once");

    keys.store_sent_message("c", "m2", b"p").await?;
    let now = wacore::time::now_secs();
    assert_eq!(keys.delete_expired_sent_messages(now - 3600).await?, 0);
    assert_eq!(keys.delete_expired_sent_messages(now + 1).await?, 1);
    assert_eq!(keys.take_sent_message("c", "m2").await?, None);
    Ok(())
}

#[tokio::test]
async fn pending_inbound_is_kept_per_chat_sender_and_id() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.get_pending_inbound("c", "s", "1").await?, None);
    keys.store_pending_inbound("c", "s", "1", b"m1").await?;
    keys.store_pending_inbound("c", "s2", "1", b"other sender")
        .await?;
    keys.store_pending_inbound("c", "s", "1", b"m1'").await?;
    assert_eq!(
        keys.get_pending_inbound("c", "s", "1").await?,
        Some(b"m1'".to_vec())
    );
    let rows: Vec<(String, String)> = (0..CHUNK + 10)
        .map(|i| (format!("id{i}"), format!("m{i}")))
        .collect();
    let batch: Vec<PendingInboundRow<'_>> = rows
        .iter()
        .map(|(id, m)| PendingInboundRow {
            chat: "c",
            sender: "s",
            id,
            message: m.as_bytes(),
        })
        .collect();
    keys.store_pending_inbound_batch(&batch).await?;
    assert_eq!(
        keys.get_pending_inbound("c", "s", "id5").await?,
        Some(b"m5".to_vec())
    );
    let gone: Vec<PendingInboundKey<'_>> = rows
        .iter()
        .map(|(id, _)| PendingInboundKey {
            chat: "c",
            sender: "s",
            id,
        })
        .collect();
    keys.delete_pending_inbound_batch(&gone).await?;
    assert_eq!(keys.get_pending_inbound("c", "s", "id5").await?, None);
    assert_eq!(
        keys.get_pending_inbound("c", "s", "1").await?,
        Some(b"m1'".to_vec())
    );
    keys.delete_pending_inbound("c", "s", "1").await?;
    assert_eq!(keys.get_pending_inbound("c", "s", "1").await?, None);

    let now = wacore::time::now_secs();
    assert_eq!(keys.delete_expired_pending_inbound(now - 3600).await?, 0);
    assert_eq!(keys.delete_expired_pending_inbound(now + 1).await?, 1);
    assert_eq!(keys.get_pending_inbound("c", "s2", "1").await?, None);
    Ok(())
}

/// The grouped writes (Signal sessions, pending-inbound rows and their
/// removal) of two sessions made at once, as the library makes them per
/// incoming message: each session gets exactly its own rows, and writes
/// to one key that land in the same group count in the order they were
/// made (a put, its delete and a put again leave the last put).
#[tokio::test]
async fn grouped_writes_of_sessions_at_once_keep_their_order_and_owners() -> TestResult {
    let Some((store, a, b, keys_a)) = two().await? else {
        return Ok(());
    };
    let keys_b = store.for_session(b);
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(
        keys_a.store_pending_inbound("c", "s", "1", b"first"),
        keys_b.store_pending_inbound("c", "s", "1", b"b's"),
        keys_a.delete_pending_inbound("c", "s", "1"),
        keys_a.put_session("peer.0", b"a-session"),
        keys_b.put_session("peer.0", b"b-session"),
        keys_a.store_pending_inbound("c", "s", "1", b"again"),
    );
    for result in [r1, r2, r3, r4, r5, r6] {
        result?;
    }
    assert_eq!(
        keys_a.get_pending_inbound("c", "s", "1").await?,
        Some(b"again".to_vec())
    );
    assert_eq!(
        keys_b.get_pending_inbound("c", "s", "1").await?,
        Some(b"b's".to_vec())
    );
    assert_eq!(
        keys_a.get_session("peer.0").await?.as_deref(),
        Some(&b"a-session"[..])
    );
    assert_eq!(
        keys_b.get_session("peer.0").await?.as_deref(),
        Some(&b"b-session"[..])
    );
    let gone = [PendingInboundKey {
        chat: "c",
        sender: "s",
        id: "1",
    }];
    let records = [(Arc::<str>::from("peer.0"), Bytes::from_static(b"b2"))];
    let (d1, d2) = tokio::join!(
        keys_a.delete_pending_inbound_batch(&gone),
        keys_b.put_sessions_batch(&records),
    );
    d1?;
    d2?;
    assert_eq!(keys_a.get_pending_inbound("c", "s", "1").await?, None);
    assert_eq!(
        keys_b.get_pending_inbound("c", "s", "1").await?,
        Some(b"b's".to_vec())
    );
    assert_eq!(
        keys_b.get_session("peer.0").await?.as_deref(),
        Some(&b"b2"[..])
    );
    assert_eq!(store.count_keys(a).await?.sessions, 1);
    Ok(())
}

#[tokio::test]
async fn msg_secrets_merge_deadlines_and_expire() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert_eq!(keys.get_msg_secret("c", "c", "m").await?, None);
    keys.put_msg_secret("c", "c", "never", &[1; 32]).await?;
    let stored = keys
        .put_msg_secrets(vec![
            secret("c", "m", 2, 100, 50),
            secret("c", "m", 3, 80, 0), // same key in one batch: merged
            secret("c", "short", 4, 100, 0),
        ])
        .await?;
    assert_eq!(stored, 3);
    assert_eq!(
        keys.get_msg_secret_with_ts("c", "c", "m").await?,
        Some((vec![3; 32], 50)),
        "the later secret, the known parent time"
    );
    // A shorter deadline never shrinks the window; a later one extends it.
    keys.put_msg_secrets(vec![secret("c", "m", 3, 90, 60)])
        .await?;
    keys.put_msg_secrets(vec![secret("c", "short", 4, 200, 0)])
        .await?;
    // "never" (0) wins over any deadline.
    keys.put_msg_secrets(vec![secret("c", "never", 1, 10, 0)])
        .await?;

    assert_eq!(keys.delete_expired_msg_secrets(99).await?, 0);
    assert_eq!(
        keys.delete_expired_msg_secrets(100).await?,
        1,
        "m's deadline 100"
    );
    assert_eq!(keys.get_msg_secret("c", "c", "m").await?, None);
    assert_eq!(
        keys.delete_expired_msg_secrets(1_000).await?,
        1,
        "short's deadline 200"
    );
    assert_eq!(
        keys.get_msg_secret("c", "c", "never").await?,
        Some(vec![1; 32])
    );
    Ok(())
}

#[tokio::test]
async fn the_device_is_created_once_and_round_trips() -> TestResult {
    let Some((_store, _, _, keys)) = two().await? else {
        return Ok(());
    };
    assert!(!keys.exists().await?);
    assert!(keys.load().await?.is_none());
    assert_eq!(keys.create().await?, DEVICE_ID);
    assert!(keys.exists().await?);
    let created = keys.load().await?.ok_or("no device")?;
    keys.create().await?;
    let again = keys.load().await?.ok_or("no device")?;
    assert_eq!(
        again.identity_key.public_key, created.identity_key.public_key,
        "a second create keeps the first identity"
    );

    let mut device = created;
    device.push_name = "Sales".into();
    device.pn = Some("15550001111@s.whatsapp.net".parse()?);
    device.next_pre_key_id = 42;
    keys.save(&device).await?;
    let loaded = keys.load().await?.ok_or("no device")?;
    assert_eq!(loaded.push_name, "Sales");
    assert_eq!(loaded.pn, device.pn);
    assert_eq!(loaded.next_pre_key_id, 42);
    assert_eq!(loaded.registration_id, device.registration_id);
    assert_eq!(
        loaded.signed_pre_key_signature,
        device.signed_pre_key_signature
    );
    assert_eq!(
        loaded.device_props.os.as_deref(),
        Some("rust"),
        "what is not persisted is set as the library sets it"
    );
    Ok(())
}

#[tokio::test]
async fn sessions_are_kept_apart_and_deleting_one_leaves_the_other() -> TestResult {
    let Some((store, a, b, ka)) = two().await? else {
        return Ok(());
    };
    let kb = store.for_session(b);
    ka.put_identity("x", [1; 32]).await?;
    kb.put_identity("x", [2; 32]).await?;
    ka.put_session("x", b"a").await?;
    ka.store_sent_message("c", "m", b"a").await?;
    kb.store_sent_message("c", "m", b"b").await?;
    ka.create().await?;
    assert_eq!(ka.load_identity("x").await?, Some([1; 32]));
    assert_eq!(kb.load_identity("x").await?, Some([2; 32]));
    assert!(!kb.has_session("x").await?);
    assert!(!kb.exists().await?);
    // Expiry and clearing are per session too.
    assert_eq!(
        kb.delete_expired_sent_messages(wacore::time::now_secs() + 1)
            .await?,
        1
    );
    assert_eq!(ka.take_sent_message("c", "m").await?, Some(b"a".to_vec()));
    kb.clear_all_sender_key_devices().await?;

    store.delete_keys(a).await?;
    assert_eq!(store.count_keys(a).await?.total(), 0);
    assert_eq!(kb.load_identity("x").await?, Some([2; 32]));
    assert_eq!(store.count_keys(b).await?.identities, 1);
    Ok(())
}

/// After a wipe, the old client's backend (still finishing tasks of the
/// dead connection) cannot write rows back; a backend handed out after the
/// wipe (the session linking again) writes as usual.
#[tokio::test]
async fn a_wipe_fences_off_the_backends_handed_out_before_it() -> TestResult {
    let Some((store, a, b, old)) = two().await? else {
        return Ok(());
    };
    let other = store.for_session(b);
    old.create().await?;
    old.put_identity("x", [1; 32]).await?;
    store.delete_keys(a).await?;

    assert!(old.put_identity("y", [2; 32]).await.is_err());
    assert!(old.put_session("y", b"s").await.is_err());
    assert!(old.create().await.is_err());
    assert!(old.delete_identity("x").await.is_err());
    assert_eq!(store.count_keys(a).await?.total(), 0, "nothing came back");

    // Other sessions' backends are not fenced.
    other.put_identity("x", [3; 32]).await?;
    let new = store.for_session(a);
    new.create().await?;
    new.put_identity("y", [4; 32]).await?;
    assert_eq!(store.count_keys(a).await?.total(), 2);
    assert!(
        old.put_identity("z", [5; 32]).await.is_err(),
        "still fenced"
    );
    Ok(())
}

#[tokio::test]
async fn deleting_the_session_deletes_its_keys() -> TestResult {
    let Some((store, org)) = store().await? else {
        return Ok(());
    };
    let id = session(&store, org).await?;
    let keys = store.for_session(id);
    keys.create().await?;
    keys.put_identity("x", [1; 32]).await?;
    keys.put_msg_secret("c", "c", "m", &[1; 32]).await?;
    assert_eq!(store.count_keys(id).await?.total(), 3);
    assert!(store.delete_session(org, id).await?);
    assert_eq!(store.count_keys(id).await?.total(), 0);
    Ok(())
}

#[tokio::test]
async fn an_import_replaces_the_sessions_rows_with_the_set() -> TestResult {
    let Some((store, a, _, keys)) = two().await? else {
        return Ok(());
    };
    keys.put_identity("stale", [9; 32]).await?;
    let device = Device::new();
    let set = KeySet {
        device: Some(device.clone()),
        identities: vec![("x".into(), [1; 32])],
        sessions: vec![("x".into(), b"s".to_vec())],
        prekeys: vec![(1, b"p".to_vec(), true)],
        signed_prekeys: vec![(1, b"sp".to_vec())],
        sender_keys: vec![("g::x".into(), b"sk".to_vec())],
        sync_keys: vec![(
            vec![1],
            AppStateSyncKey {
                key_data: vec![1; 32],
                fingerprint: vec![],
                timestamp: 1,
            },
        )],
        versions: vec![("regular".into(), HashState::default())],
        mutation_macs: vec![MutationMac {
            name: "regular".into(),
            index_mac: vec![1; 32],
            version: 1,
            value_mac: vec![2],
        }],
        sender_key_devices: vec![("g".into(), "d".into(), true)],
        lid_mappings: vec![LidPnMappingEntry {
            lid: "100".into(),
            phone_number: "1555".into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "usync".into(),
        }],
        base_keys: vec![("x".into(), "m".into(), b"bk".to_vec())],
        device_lists: vec![DeviceListRecord {
            user: "1555".into(),
            devices: vec![DeviceInfo::new(0, None)],
            timestamp: 1,
            phash: None,
            raw_id: None,
        }],
        group_metadata: vec![("g".into(), b"gm".to_vec())],
        tc_tokens: vec![(
            "j".into(),
            TcTokenEntry {
                token: b"t".to_vec(),
                token_timestamp: 1,
                sender_timestamp: Some(2),
            },
        )],
        sent_messages: vec![SentMessage {
            chat: "c".into(),
            id: "m".into(),
            payload: b"p".to_vec(),
            created_at: 5,
        }],
        pending_inbound: vec![PendingInbound {
            chat: "c".into(),
            sender: "s".into(),
            id: "i".into(),
            message: b"m".to_vec(),
            inserted_at: 5,
        }],
        msg_secrets: vec![secret("c", "m", 7, 0, 3)],
    };
    store.import_keys(a, &set).await?;
    store.import_keys(a, &set).await?;
    let counts = store.count_keys(a).await?;
    assert_eq!(
        counts,
        set.counts(),
        "one row per row of the set, twice imported"
    );
    assert_eq!(counts.total(), 18);
    assert_eq!(
        keys.load_identity("stale").await?,
        None,
        "what was there is replaced"
    );
    assert_eq!(
        keys.load().await?.map(|d| d.identity_key.public_key),
        Some(device.identity_key.public_key)
    );
    assert_eq!(
        keys.delete_expired_sent_messages(6).await?,
        1,
        "its age is kept"
    );
    Ok(())
}

/// Sessions write and read at once, on the store as served (SQLite: the
/// one writer connection and the read pool; PostgreSQL: its pool): every
/// write lands, under its own session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_writing_at_once_all_land() -> TestResult {
    let Some((store, _dir)) = super::super::served_test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?.id;
    let mut ids = Vec::new();
    for _ in 0..8 {
        ids.push(session(&store, org).await?);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for id in ids.clone() {
        let keys = store.for_session(id);
        tasks.spawn(async move {
            for i in 0..40u32 {
                let address: Arc<str> = format!("{i}@lid").into();
                keys.put_sessions_batch(&[(address, Bytes::from(id.to_string()))])
                    .await?;
                keys.store_sent_message("c", &i.to_string(), b"p").await?;
                keys.put_msg_secret("c", "c", &i.to_string(), &[1; 32])
                    .await?;
                keys.load_identity("nobody").await?;
            }
            Ok::<_, KeyError>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    for id in ids {
        let counts = store.count_keys(id).await?;
        assert_eq!(
            (counts.sessions, counts.sent_messages, counts.msg_secrets),
            (40, 40, 40)
        );
        let record = store.for_session(id).get_session("39@lid").await?;
        assert_eq!(record.as_deref(), Some(id.to_string().as_bytes()));
    }
    Ok(())
}

/// Two batches of one session over the same keys, in opposite orders and
/// past one statement (so each is a transaction), written at once: both
/// land. On PostgreSQL, whose writers run concurrently, rows locked in
/// the callers' orders would deadlock them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_batches_written_at_once_both_land() -> TestResult {
    let Some((store, _dir)) = super::super::served_test_store().await else {
        return Ok(());
    };
    let org = store.create_org("acme").await?.id;
    let id = session(&store, org).await?;
    let forward: Vec<(Arc<str>, Bytes)> = (0..CHUNK * 2 + 1)
        .map(|i| (Arc::from(format!("{i}@lid")), Bytes::from_static(b"r")))
        .collect();
    let backward: Vec<_> = forward.iter().rev().cloned().collect();
    for _ in 0..10 {
        let (a, b) = (store.for_session(id), store.for_session(id));
        let (forward, backward) = (forward.clone(), backward.clone());
        let one = tokio::spawn(async move { a.put_sessions_batch(&forward).await });
        let two = tokio::spawn(async move { b.put_sessions_batch(&backward).await });
        one.await??;
        two.await??;
    }
    assert_eq!(
        store.count_keys(id).await?.sessions,
        u64::try_from(CHUNK * 2 + 1)?
    );
    Ok(())
}
