//! Standard Webhooks signing: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`
//! keyed with the base64-decoded part of a `whsec_` secret. Hand-written
//! on `hmac`/`sha2` because the `standardwebhooks` crate pins an old
//! base64 and signs with one secret at a time; the tests check these
//! signatures with that crate, an implementation that is not ours.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::SECRET_PREFIX;
use crate::secret::Secret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum SignatureError {
    #[error("a webhook secret must be `whsec_` followed by base64")]
    MalformedSecret,
}

fn key(secret: &Secret<String>) -> Result<Vec<u8>, SignatureError> {
    let encoded = secret
        .expose()
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SignatureError::MalformedSecret)?;
    STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::MalformedSecret)
}

/// The `webhook-signature` header value: one `v1,` signature per secret,
/// space-separated, so a receiver holding either the new or the old secret
/// during a rotation accepts the delivery.
pub(crate) fn sign(
    secrets: &[Secret<String>],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let mut header = String::new();
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key(secret)?)
            .map_err(|_| SignatureError::MalformedSecret)?;
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str("v1,");
        header.push_str(&STANDARD.encode(mac.finalize().into_bytes()));
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SECRET_BYTES, generate_secret};

    #[test]
    fn new_secrets_are_whsec_base64_of_32_random_bytes() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a.expose(), b.expose());
        assert_eq!(key(&a).map(|k| k.len()), Ok(SECRET_BYTES));
    }

    /// The example of the Standard Webhooks specification's test vectors.
    #[test]
    fn signs_the_specifications_example() {
        let secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_string());
        let signature = sign(
            &[secret],
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn every_secret_signs_and_a_malformed_one_is_refused() {
        let (a, b) = (generate_secret(), generate_secret());
        let both = sign(&[a.clone(), b], "msg", 1, b"{}").unwrap_or_default();
        let parts: Vec<_> = both.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(sign(&[a], "msg", 1, b"{}").ok().as_deref(), Some(parts[0]));
        assert_eq!(
            sign(&[Secret::new("nope".into())], "msg", 1, b"{}"),
            Err(SignatureError::MalformedSecret)
        );
    }
}
