//! Linking with a pairing code: the phone's (primary) side of the exchange.
//!
//! The companion asks for a code for a phone number (`companion_hello`) and
//! shows it; the phone's user types it in ([`enter`]), the phone answers with
//! its own ephemeral key wrapped under the code (`primary_hello`), and the
//! companion sends back a key bundle (`companion_finish`) that only a phone
//! holding the same code can open. An opened bundle yields the adv secret the
//! phone then authenticates `pair-success` with, exactly as after a QR scan.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use tokio::sync::oneshot;
use wacore::pair_code::PairCodeUtils;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::protocol::{KeyPair, PublicKey};

use crate::error::SimError;
use crate::pairing;
use crate::server::Server;
use crate::stanza::{self, attr, child, child_bytes, iq_error, iq_result};
use crate::world::{ConnId, Role, World};

/// How long the phone shows its spinner after `primary_hello`. The companion
/// answers within a PBKDF2 derivation, and gives up on its own `companion_finish`
/// after this long.
const PHONE_WAIT: Duration = Duration::from_secs(30);

/// `salt(32) || iv(12) || AES-256-GCM(companion identity, primary identity, random) || tag(16)`.
const KEY_BUNDLE_LEN: usize = 32 + 12 + 96 + 16;

/// What the phone made of a code its user entered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeOutcome {
    /// The companion's key bundle opened: the phone sent `pair-success`. The
    /// device still has to sign it and log in.
    Accepted,
    /// The key bundle did not open, which is what a mistyped code looks like.
    /// As on WhatsApp, the phone tells only its own user; the companion hears
    /// nothing and may be sent the right code while it is still valid.
    WrongCode,
    /// The companion never answered `primary_hello` (its code expired, it used
    /// up its attempts, or it went away).
    NoAnswer,
}

/// A pairing-code exchange in progress on one connection.
pub(crate) struct CodeFlow {
    phone: String,
    reference: Vec<u8>,
    wrapped_companion_eph: [u8; 80],
    /// Codes the phone's user entered whose `companion_finish` is awaited.
    attempts: Vec<Attempt>,
    next_attempt: u64,
}

struct Attempt {
    id: u64,
    primary_eph: KeyPair,
    /// The companion's ephemeral key as unwrapped with the entered code:
    /// garbage when the code is wrong, which only the key bundle reveals.
    companion_eph_pub: [u8; 32],
    outcome: oneshot::Sender<CodeOutcome>,
}

/// The client's `link_code_companion_reg` IQs. Anything malformed gets the
/// `bad-request` WhatsApp uses for every refusal of this flow.
pub(crate) fn on_companion_iq(w: &mut World, conn: ConnId, id: &str, iq: &Node) {
    let handled =
        child(iq, "link_code_companion_reg").and_then(|reg| match attr(reg, "stage").as_deref() {
            Some("companion_hello") => companion_hello(w, conn, id, reg),
            Some("companion_finish") => companion_finish(w, conn, id, reg),
            _ => None,
        });
    if handled.is_none() {
        w.send(conn, iq_error(id, 400, "bad-request"));
    }
}

/// Remembers the request for the phone and hands back the ref that ties the
/// later stages to it. A newer request for the same phone replaces the older
/// one, since the phone reaches companions by number only.
fn companion_hello(w: &mut World, conn: ConnId, id: &str, reg: &Node) -> Option<()> {
    let phone = attr(reg, "jid")?
        .strip_suffix("@s.whatsapp.net")
        .filter(|p| crate::check_phone(p).is_ok())?
        .to_owned();
    let wrapped_companion_eph: [u8; 80] =
        child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub")?
            .try_into()
            .ok()?;
    let auth_key = child_bytes(reg, "companion_server_auth_key_pub")?;
    let reference = format!("3@{}", B64.encode(rand::random::<[u8; 18]>())).into_bytes();
    let replaced = {
        let pairing = pairing_mut(w, conn)?;
        if auth_key != pairing.noise_pub {
            return None;
        }
        pairing.code.replace(CodeFlow {
            phone: phone.clone(),
            reference: reference.clone(),
            wrapped_companion_eph,
            attempts: Vec::new(),
            next_attempt: 0,
        })
    };
    if let Some(old) = replaced
        && old.phone != phone
        && w.code_requests.get(&old.phone) == Some(&conn)
    {
        w.code_requests.remove(&old.phone);
    }
    if let Some(previous) = w.code_requests.insert(phone.clone(), conn)
        && previous != conn
        && let Some(p) = pairing_mut(w, previous)
        && p.code.as_ref().is_some_and(|f| f.phone == phone)
    {
        p.code = None;
    }
    let reply = iq_result(
        id,
        vec![
            NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "companion_hello")
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference)
                    .build()])
                .build(),
        ],
    );
    w.send(conn, reply);
    Some(())
}

/// The server acknowledges the bundle whatever it holds; only the phone can
/// tell whether it opens, and it answers the companion with `pair-success` or
/// not at all.
fn companion_finish(w: &mut World, conn: ConnId, id: &str, reg: &Node) -> Option<()> {
    let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle")?.to_vec();
    let companion_identity: [u8; 32] = child_bytes(reg, "companion_identity_public")?
        .try_into()
        .ok()?;
    let reference = child_bytes(reg, "link_code_pairing_ref")?;
    let phone = flow_mut(w, conn)
        .filter(|f| f.reference == reference)?
        .phone
        .clone();
    w.send(conn, iq_result(id, vec![]));

    let phone_identity = w.account_mut(&phone).identity.clone();
    let flow = flow_mut(w, conn)?;
    let opened = flow.attempts.iter().enumerate().find_map(|(i, a)| {
        open_bundle(a, &phone_identity, &companion_identity, &bundle).map(|adv| (i, adv))
    });
    let Some((index, adv_secret)) = opened else {
        // The companion handles `primary_hello`s in order, so this finish
        // answers the oldest attempt still waiting.
        if !flow.attempts.is_empty() {
            let attempt = flow.attempts.remove(0);
            tracing::info!(%phone, "the phone could not open the key bundle: wrong code");
            let _ = attempt.outcome.send(CodeOutcome::WrongCode);
        }
        return Some(());
    };
    let attempt = flow.attempts.swap_remove(index);
    retire(w, conn, &phone);
    pairing::link(w, conn, &phone, &companion_identity, &adv_secret, "android");
    let _ = attempt.outcome.send(CodeOutcome::Accepted);
    Some(())
}

/// The phone `phone`'s user types `typed` into "Link with phone number".
/// Resolves once the phone knows whether the code worked.
pub(crate) async fn enter(
    server: &Server,
    phone: &str,
    typed: &str,
) -> Result<CodeOutcome, SimError> {
    let code = normalize(typed)?;
    let (conn, reference, wrapped_companion_eph) = {
        let mut w = server.world();
        let conn = *w.code_requests.get(phone).ok_or(SimError::NoPendingCode)?;
        let flow = flow_mut(&mut w, conn)
            .filter(|f| f.phone == phone)
            .ok_or(SimError::NoPendingCode)?;
        (conn, flow.reference.clone(), flow.wrapped_companion_eph)
    };

    // Two PBKDF2 derivations (about 2^17 HMAC rounds each) must not hold up
    // the runtime, nor the world lock every connection needs.
    let keys = tokio::task::spawn_blocking(move || {
        let primary_eph = KeyPair::generate(&mut rand::rng());
        let primary_pub: [u8; 32] = primary_eph.public_key.public_key_bytes().try_into().ok()?;
        let wrapped_primary = PairCodeUtils::encrypt_ephemeral_pub(&primary_pub, &code);
        let companion_eph_pub =
            PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped_companion_eph, &code).ok()?;
        Some((primary_eph, wrapped_primary, companion_eph_pub))
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| SimError::Internal("deriving the pairing-code keys failed".into()))?;
    let (primary_eph, wrapped_primary, companion_eph_pub) = keys;

    let (tx, rx) = oneshot::channel();
    let attempt_id = {
        let mut w = server.world();
        let identity_pub = w
            .account_mut(phone)
            .identity
            .public_key
            .public_key_bytes()
            .to_vec();
        let notification_id = w.next_iq_id();
        // The companion may have gone, or asked again, during the derivation.
        let flow = flow_mut(&mut w, conn)
            .filter(|f| f.phone == phone && f.reference == reference)
            .ok_or(SimError::NoPendingCode)?;
        let attempt_id = flow.next_attempt;
        flow.next_attempt += 1;
        flow.attempts.push(Attempt {
            id: attempt_id,
            primary_eph,
            companion_eph_pub,
            outcome: tx,
        });
        let hello = primary_hello(
            notification_id,
            &wrapped_primary,
            identity_pub,
            reference.clone(),
        );
        w.send(conn, hello);
        attempt_id
    };

    match tokio::time::timeout(PHONE_WAIT, rx).await {
        Ok(Ok(outcome)) => Ok(outcome),
        // The flow ended (the companion disconnected or linked otherwise).
        Ok(Err(_)) => Ok(CodeOutcome::NoAnswer),
        Err(_) => {
            let mut w = server.world();
            if let Some(flow) = flow_mut(&mut w, conn) {
                flow.attempts.retain(|a| a.id != attempt_id);
            }
            Ok(CodeOutcome::NoAnswer)
        }
    }
}

fn primary_hello(
    id: String,
    wrapped_primary: &[u8; 80],
    identity_pub: Vec<u8>,
    reference: Vec<u8>,
) -> Node {
    stanza::server_notification(id, "link_code_companion_reg")
        .children([NodeBuilder::new("link_code_companion_reg")
            .attr("stage", "primary_hello")
            .children([
                NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                    .bytes(wrapped_primary.to_vec())
                    .build(),
                NodeBuilder::new("primary_identity_pub")
                    .bytes(identity_pub)
                    .build(),
                NodeBuilder::new("link_code_pairing_ref")
                    .bytes(reference)
                    .build(),
            ])
            .build()])
        .build()
}

/// Opens the companion's key bundle as `prepare_key_bundle` in wacore sealed
/// it, and derives the adv secret both sides now share. `None` when it does
/// not open or does not vouch for the keys it should.
fn open_bundle(
    attempt: &Attempt,
    phone_identity: &KeyPair,
    companion_identity: &[u8; 32],
    bundle: &[u8],
) -> Option<[u8; 32]> {
    if bundle.len() != KEY_BUNDLE_LEN {
        return None;
    }
    let (salt, rest) = bundle.split_at(32);
    let (iv, sealed) = rest.split_at(12);
    let iv: &[u8; 12] = iv.try_into().ok()?;
    let companion_eph = PublicKey::from_djb_public_key_bytes(&attempt.companion_eph_pub).ok()?;
    let eph_shared = attempt
        .primary_eph
        .private_key
        .calculate_agreement(&companion_eph)
        .ok()?;
    let mut key = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &eph_shared,
        Some(salt),
        b"link_code_pairing_key_bundle_encryption_key",
        &mut key,
    )
    .ok()?;
    let mut plain = Vec::with_capacity(96);
    wacore_libsignal::crypto::aes_256_gcm_decrypt(&key, iv, b"", sealed, &mut plain).ok()?;
    let (bundled_companion, rest) = plain.split_at_checked(32)?;
    let (bundled_primary, random) = rest.split_at_checked(32)?;
    if bundled_companion != companion_identity
        || bundled_primary != phone_identity.public_key.public_key_bytes()
        || random.len() != 32
    {
        return None;
    }
    let companion = PublicKey::from_djb_public_key_bytes(companion_identity).ok()?;
    let identity_shared = phone_identity
        .private_key
        .calculate_agreement(&companion)
        .ok()?;
    let mut adv_secret = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(
        &[&eph_shared[..], &identity_shared, random].concat(),
        None,
        b"adv_secret",
        &mut adv_secret,
    )
    .ok()?;
    Some(adv_secret)
}

/// The phone is linking this connection: neither its code nor its QR codes
/// can be used again.
fn retire(w: &mut World, conn: ConnId, phone: &str) {
    let refs = match pairing_mut(w, conn) {
        Some(p) => {
            p.code = None;
            p.refs.clone()
        }
        None => Vec::new(),
    };
    for r in refs {
        w.refs.remove(&r);
        w.used_refs.insert(r);
    }
    if w.code_requests.get(phone) == Some(&conn) {
        w.code_requests.remove(phone);
    }
}

/// Codes are shown as `ABCD-EFGH`; people type them with or without the dash,
/// in any case.
fn normalize(typed: &str) -> Result<String, SimError> {
    let typed = typed.trim();
    let joined = match typed.split_once('-') {
        Some((a, b)) if a.len() == 4 && b.len() == 4 => format!("{a}{b}"),
        Some(_) => String::new(),
        None => typed.to_owned(),
    };
    if PairCodeUtils::validate_code(&joined) {
        Ok(joined.to_ascii_uppercase())
    } else {
        Err(SimError::MalformedCode(
            "expected 8 characters of 1-9 and A-Z except I, O and U, optionally as ABCD-EFGH"
                .into(),
        ))
    }
}

fn pairing_mut(w: &mut World, conn: ConnId) -> Option<&mut crate::world::PairingConn> {
    match w.conns.get_mut(&conn)?.role.as_mut()? {
        Role::Pairing(p) => Some(p),
        Role::Device { .. } => None,
    }
}

fn flow_mut(w: &mut World, conn: ConnId) -> Option<&mut CodeFlow> {
    pairing_mut(w, conn)?.code.as_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_accepted_with_or_without_dash_in_any_case() {
        for typed in ["ABCD-EFGH", "abcdefgh", " abCD-efGH ", "ABCDEFGH"] {
            assert_eq!(
                normalize(typed).ok().as_deref(),
                Some("ABCDEFGH"),
                "{typed}"
            );
        }
        for typed in [
            "",
            "ABC",
            "ABCD-EFG",
            "AB-CDEFGH",
            "ABCD--EFGH",
            "ABCD-EFG0",
            "ABCDEFGHJ",
        ] {
            assert!(
                matches!(normalize(typed), Err(SimError::MalformedCode(_))),
                "{typed}"
            );
        }
    }

    fn attempt(companion_eph_pub: [u8; 32]) -> (Attempt, oneshot::Receiver<CodeOutcome>) {
        let (tx, rx) = oneshot::channel();
        let attempt = Attempt {
            id: 0,
            primary_eph: KeyPair::generate(&mut rand::rng()),
            companion_eph_pub,
            outcome: tx,
        };
        (attempt, rx)
    }

    fn pub32(k: &KeyPair) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(k.public_key.public_key_bytes());
        out
    }

    #[test]
    fn the_phone_opens_the_bundle_wacore_seals_and_derives_the_same_secret() {
        let phone = KeyPair::generate(&mut rand::rng());
        let companion = KeyPair::generate(&mut rand::rng());
        let companion_eph = KeyPair::generate(&mut rand::rng());
        let (a, _rx) = attempt(pub32(&companion_eph));
        let sealed = PairCodeUtils::prepare_key_bundle(
            &companion_eph,
            &pub32(&a.primary_eph),
            &pub32(&phone),
            &companion,
        );
        let Ok((bundle, adv_secret)) = sealed else {
            panic!("wacore did not seal a bundle");
        };
        assert_eq!(bundle.len(), KEY_BUNDLE_LEN);
        assert_eq!(
            open_bundle(&a, &phone, &pub32(&companion), &bundle),
            Some(adv_secret)
        );

        // What a wrong code gives the phone: some other companion key.
        let garbage = KeyPair::generate(&mut rand::rng());
        let (wrong, _rx) = attempt(pub32(&garbage));
        let sealed = PairCodeUtils::prepare_key_bundle(
            &companion_eph,
            &pub32(&wrong.primary_eph),
            &pub32(&phone),
            &companion,
        );
        let Ok((bundle, _)) = sealed else {
            panic!("wacore did not seal a bundle");
        };
        assert_eq!(
            open_bundle(&wrong, &phone, &pub32(&companion), &bundle),
            None
        );
    }
}
