//! Linking a new device: the server's `pair-device`, a fake phone scanning the
//! QR code and vouching for the device (`pair-success`), and the device's
//! signed answer that completes the link.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use buffa::Message;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::whatsapp as wa;

use crate::error::SimError;
use crate::server::close_with;
use crate::stanza::{self, SERVER, attr, child};
use crate::world::{ConnId, Device, PairingConn, PendingLink, PreKeys, Role, World};

/// A new device connected: remember what it registered with and hand it the
/// refs its QR codes will carry.
pub(crate) fn start(
    w: &mut World,
    conn: ConnId,
    noise_pub: [u8; 32],
    reg: &wa::client_payload::DevicePairingRegistrationData,
    ref_count: usize,
) {
    let refs: Vec<String> = (0..ref_count.max(1))
        .map(|_| format!("2@{}", B64.encode(rand::random::<[u8; 24]>())))
        .collect();
    let prekeys = PreKeys {
        registration_id: be_u32(reg.e_regid.as_deref().unwrap_or_default()),
        identity: reg.e_ident.clone().unwrap_or_default(),
        signed_id: be_u32(reg.e_skey_id.as_deref().unwrap_or_default()),
        signed_pub: reg.e_skey_val.clone().unwrap_or_default(),
        signed_sig: reg.e_skey_sig.clone().unwrap_or_default(),
        one_time: Default::default(),
    };
    let props = reg
        .device_props
        .as_deref()
        .and_then(|b| wa::DeviceProps::decode_from_slice(b).ok());
    let full_sync = props
        .as_ref()
        .and_then(|p| p.require_full_sync)
        .unwrap_or(false);
    let platform = props
        .and_then(|p| p.os)
        .unwrap_or_else(|| "unknown".to_owned());
    for r in &refs {
        w.refs.insert(r.clone(), conn);
    }
    let id = w.next_iq_id();
    let node = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .children([NodeBuilder::new("pair-device")
            .children(
                refs.iter()
                    .map(|r| NodeBuilder::new("ref").bytes(r.as_bytes().to_vec()).build()),
            )
            .build()])
        .build();
    if let Some(c) = w.conns.get_mut(&conn) {
        c.role = Some(Role::Pairing(Box::new(PairingConn {
            noise_pub,
            prekeys,
            refs,
            platform,
            code: None,
            full_sync,
        })));
    }
    w.send(conn, node);
}

/// What a phone reads off a companion's QR code.
struct ScannedQr {
    reference: String,
    noise_pub: [u8; 32],
    identity_pub: [u8; 32],
    adv_secret: [u8; 32],
}

fn parse_qr(qr: &str) -> Result<ScannedQr, SimError> {
    let body = qr
        .trim()
        .strip_prefix("https://wa.me/settings/linked_devices#")
        .unwrap_or(qr.trim());
    let fields: Vec<&str> = body.split(',').collect();
    let [reference, noise, identity, secret, ..] = fields.as_slice() else {
        return Err(SimError::MalformedQr(
            "expected at least four comma-separated fields".into(),
        ));
    };
    let key = |name: &str, v: &str| -> Result<[u8; 32], SimError> {
        B64.decode(v)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| SimError::MalformedQr(format!("{name} is not a base64 32-byte key")))
    };
    if reference.is_empty() {
        return Err(SimError::MalformedQr("the ref is empty".into()));
    }
    Ok(ScannedQr {
        reference: (*reference).to_owned(),
        noise_pub: key("noise key", noise)?,
        identity_pub: key("identity key", identity)?,
        adv_secret: key("adv secret", secret)?,
    })
}

/// The fake phone `phone` scans `qr`.
pub(crate) fn scan(w: &mut World, phone: &str, qr: &str) -> Result<(), SimError> {
    let scanned = parse_qr(qr)?;
    if w.used_refs.contains(&scanned.reference) {
        return Err(SimError::QrAlreadyUsed);
    }
    let conn = *w.refs.get(&scanned.reference).ok_or(SimError::StaleQr)?;
    let Some(Some(Role::Pairing(pairing))) = w.conns.get(&conn).map(|c| &c.role) else {
        return Err(SimError::StaleQr);
    };
    if pairing.noise_pub != scanned.noise_pub {
        return Err(SimError::MalformedQr(
            "the QR code's noise key is not the one its device connected with".into(),
        ));
    }
    for r in pairing.refs.clone() {
        w.refs.remove(&r);
        w.used_refs.insert(r);
    }
    link(
        w,
        conn,
        phone,
        &scanned.identity_pub,
        &scanned.adv_secret,
        "android",
    );
    Ok(())
}

/// The phone vouches for the companion: sends `pair-success` with a device
/// identity signed by the account key and authenticated with `adv_secret`.
pub(crate) fn link(
    w: &mut World,
    conn: ConnId,
    phone: &str,
    companion_identity: &[u8; 32],
    adv_secret: &[u8; 32],
    platform: &str,
) {
    let account = w.account_mut(phone);
    let device = account.next_device_id;
    account.next_device_id += 1;
    let key_index = u32::from(device);
    let details = wa::ADVDeviceIdentity {
        raw_id: Some(account.raw_id),
        timestamp: Some(stanza::now_secs()),
        key_index: Some(key_index),
        account_type: Some(wa::ADVEncryptionType::E2EE),
        device_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let to_sign = [&[6u8, 0][..], &details, companion_identity].concat();
    let signature =
        match wacore::crypto::calculate_curve_signature(&account.identity.private_key, &to_sign) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "signing the device identity failed");
                return;
            }
        };
    let signed = wa::ADVSignedDeviceIdentity {
        details: Some(details),
        account_signature_key: Some(account.identity.public_key.public_key_bytes().to_vec()),
        account_signature: Some(signature.to_vec()),
        device_signature: None,
    }
    .encode_to_vec();
    let hmac = wacore_libsignal::crypto::hmac_sha256(adv_secret, &signed);
    let container = wa::ADVSignedDeviceIdentityHMAC {
        details: Some(signed),
        hmac: Some(hmac.to_vec()),
        account_type: Some(wa::ADVEncryptionType::E2EE),
    }
    .encode_to_vec();
    let device_jid = format!("{phone}:{device}@s.whatsapp.net");
    let lid_jid = format!("{}:{device}@lid", account.lid);
    let id = w.next_iq_id();
    w.pending_links.insert(
        id.clone(),
        PendingLink {
            conn,
            phone: phone.to_owned(),
            device,
            key_index,
        },
    );
    let node = NodeBuilder::new("iq")
        .attr("from", SERVER)
        .attr("type", "set")
        .attr("id", id)
        .attr("xmlns", "md")
        .attr("t", stanza::now_secs().to_string())
        .children([NodeBuilder::new("pair-success")
            .children([
                NodeBuilder::new("device-identity").bytes(container).build(),
                NodeBuilder::new("platform").attr("name", platform).build(),
                NodeBuilder::new("device")
                    .attr("jid", device_jid)
                    .attr("lid", lid_jid)
                    .build(),
            ])
            .build()])
        .build();
    w.send(conn, node);
}

/// The client answered a `pair-success`: on a signed identity the device is
/// linked and must reconnect (515) to log in as itself.
pub(crate) fn on_answer(w: &mut World, conn: ConnId, iq: &Node) -> bool {
    let Some(id) = attr(iq, "id") else {
        return false;
    };
    // Only the connection we sent the pair-success to may answer it.
    if w.pending_links.get(&id).is_none_or(|p| p.conn != conn) {
        return false;
    }
    let Some(pending) = w.pending_links.remove(&id) else {
        return false;
    };
    let signed = child(iq, "pair-device-sign")
        .and_then(|s| child(s, "device-identity"))
        .and_then(stanza::bytes)
        .map(<[u8]>::to_vec);
    let (Some(signed), Some("result")) = (signed, attr(iq, "type").as_deref()) else {
        tracing::info!(phone = %pending.phone, "companion refused pair-success");
        return true;
    };
    let Some(Some(Role::Pairing(pairing))) = w.conns.get_mut(&conn).map(|c| c.role.take()) else {
        return true;
    };
    let pairing = *pairing;
    if let Some(account) = w.accounts.get_mut(&pending.phone) {
        account.devices.insert(
            pending.device,
            Device {
                id: pending.device,
                key_index: pending.key_index,
                noise_pub: pairing.noise_pub,
                prekeys: pairing.prekeys,
                signed_identity: signed,
                platform: pairing.platform,
                push_name: String::new(),
                connection: None,
                replaced: 0,
                last_seen: stanza::now_secs(),
                offline: Default::default(),
                presence: None,
                app_state_synced: Default::default(),
                full_sync: pairing.full_sync,
            },
        );
    }
    close_with(w, conn, stanza::stream_error(515));
    true
}

fn be_u32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_parsing_rejects_garbage() {
        assert!(matches!(
            parse_qr("nonsense"),
            Err(SimError::MalformedQr(_))
        ));
        assert!(matches!(
            parse_qr("ref,AAAA,BBBB,CCCC"),
            Err(SimError::MalformedQr(_))
        ));
        let k = B64.encode([7u8; 32]);
        let ok = parse_qr(&format!("2@x,{k},{k},{k},1")).map(|q| q.reference);
        assert_eq!(ok.ok().as_deref(), Some("2@x"));
    }
}
