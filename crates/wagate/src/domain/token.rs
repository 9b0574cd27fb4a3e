//! API tokens: shown once, stored only as a hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Marks a wagate token in logs of other systems and in secret scanners.
const PREFIX: &str = "wag_";

/// A freshly minted token. Its plaintext exists only until it is shown to
/// the user; the database keeps [`TokenHash`].
#[derive(Debug)]
pub struct ApiToken {
    plaintext: Secret<String>,
}

impl ApiToken {
    /// 32 bytes from a CSPRNG seeded by the OS: far beyond brute force, which is why a
    /// plain SHA-256 (no salt, no stretching) is enough to store it.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self {
            plaintext: Secret::new(format!("{PREFIX}{}", hex::encode(bytes))),
        }
    }

    pub fn hash(&self) -> TokenHash {
        TokenHash::of(self.plaintext.expose())
    }

    pub fn plaintext(&self) -> &Secret<String> {
        &self.plaintext
    }
}

/// The SHA-256 of a token, hex encoded: what the store indexes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(presented: &str) -> Self {
        Self(hex::encode(Sha256::digest(presented.as_bytes())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_and_unique() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert!(a.plaintext().expose().starts_with("wag_"));
        assert_eq!(a.plaintext().expose().len(), 4 + 64);
        assert_ne!(a.plaintext().expose(), b.plaintext().expose());
    }

    #[test]
    fn the_hash_is_sha256_of_the_plaintext_and_does_not_contain_it() {
        let token = ApiToken::generate();
        let hash = token.hash();
        assert_eq!(hash, TokenHash::of(token.plaintext().expose()));
        assert_eq!(hash.as_str().len(), 64);
        assert!(!hash.as_str().contains(&token.plaintext().expose()[4..]));
        assert_eq!(
            TokenHash::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_does_not_reveal_the_token() {
        let token = ApiToken::generate();
        assert!(!format!("{token:?}").contains(&token.plaintext().expose()[4..]));
    }
}
