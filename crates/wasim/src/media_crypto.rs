//! Opening an attachment as a receiving phone does: fetch the encrypted blob
//! the message points at, check it against `file_enc_sha256`, verify the
//! MAC and decrypt it with the keys the media key expands to (wacore's own
//! routine), then check the plaintext against `file_sha256`.

use bytes::Bytes;
use sha2::{Digest, Sha256};
use wacore::download::{DownloadUtils, MediaDecryptionError};

use crate::phone::content::MediaRef;
use crate::world::World;

#[derive(Debug, thiserror::Error)]
pub(crate) enum MediaError {
    #[error("the message names no media path")]
    NoPath,
    #[error("the message carries no media key")]
    NoKey,
    #[error("the media store has nothing at {0}")]
    NotFound(String),
    #[error("the downloaded bytes do not match file_enc_sha256")]
    EncryptedHashMismatch,
    #[error("could not decrypt: {0}")]
    Decrypt(#[from] MediaDecryptionError),
    #[error("the decrypted bytes do not match file_sha256")]
    HashMismatch,
    #[error("file_length says {declared} bytes, the file has {actual}")]
    LengthMismatch { declared: u64, actual: u64 },
    #[error("decryption was cut short (the simulator is stopping)")]
    Aborted,
}

impl MediaError {
    /// A stable name for the admin API.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            Self::NoPath => "no_path",
            Self::NoKey => "no_media_key",
            Self::NotFound(_) => "not_found",
            Self::EncryptedHashMismatch => "file_enc_sha256_mismatch",
            Self::Decrypt(MediaDecryptionError::InvalidMac) => "invalid_mac",
            Self::Decrypt(_) => "decryption_failed",
            Self::HashMismatch => "file_sha256_mismatch",
            Self::LengthMismatch { .. } => "file_length_mismatch",
            Self::Aborted => "aborted",
        }
    }
}

/// The encrypted blob, from the simulator's own store (where its media
/// endpoint put the upload). Call with the world locked; cheap (a refcount).
pub(crate) fn fetch(w: &World, media: &MediaRef) -> Result<Bytes, MediaError> {
    let path = media
        .direct_path
        .clone()
        .or_else(|| media.url.as_deref().and_then(path_of_url))
        .ok_or(MediaError::NoPath)?;
    // The store is keyed by path alone; clients may append query parameters.
    let path = path.split('?').next().unwrap_or_default().to_owned();
    w.blobs
        .get(&path)
        .cloned()
        .ok_or(MediaError::NotFound(path))
}

fn path_of_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    rest.find('/').map(|i| rest[i..].to_owned())
}

/// Checks and decrypts a fetched blob; CPU-bound, call without the lock.
pub(crate) fn open(blob: &[u8], media: &MediaRef) -> Result<Vec<u8>, MediaError> {
    let key = media.media_key.as_deref().ok_or(MediaError::NoKey)?;
    if let Some(expected) = &media.file_enc_sha256
        && Sha256::digest(blob)[..] != expected[..]
    {
        return Err(MediaError::EncryptedHashMismatch);
    }
    let plain = DownloadUtils::verify_and_decrypt(blob, key, media.media_type)?;
    if let Some(expected) = &media.file_sha256
        && Sha256::digest(&plain)[..] != expected[..]
    {
        return Err(MediaError::HashMismatch);
    }
    if let Some(declared) = media.file_length
        && declared != plain.len() as u64
    {
        return Err(MediaError::LengthMismatch {
            declared,
            actual: plain.len() as u64,
        });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore::download::MediaType;

    fn media_for(plain: &[u8]) -> (Vec<u8>, MediaRef) {
        let enc = wacore::upload::encrypt_media(plain, MediaType::Document)
            .unwrap_or_else(|e| panic!("encrypting failed: {e}"));
        let media = MediaRef {
            media_type: MediaType::Document,
            direct_path: Some("/v/x".into()),
            url: None,
            media_key: Some(enc.media_key.to_vec()),
            file_sha256: Some(enc.file_sha256.to_vec()),
            file_enc_sha256: Some(enc.file_enc_sha256.to_vec()),
            file_length: Some(plain.len() as u64),
        };
        (enc.data_to_upload, media)
    }

    #[test]
    fn opens_what_wacore_encrypted() {
        let plain = b"a document's bytes".repeat(100);
        let (blob, media) = media_for(&plain);
        let opened = open(&blob, &media).unwrap_or_else(|e| panic!("open failed: {e}"));
        assert_eq!(opened, plain);
    }

    #[test]
    fn a_tampered_blob_is_refused() {
        let (mut blob, mut media) = media_for(b"hello");
        blob[0] ^= 1;
        assert!(matches!(
            open(&blob, &media),
            Err(MediaError::EncryptedHashMismatch)
        ));
        // Without the outer hash, the MAC still catches it.
        media.file_enc_sha256 = None;
        assert_eq!(
            open(&blob, &media).map_err(|e| e.code()),
            Err("invalid_mac")
        );
    }

    #[test]
    fn the_path_comes_from_the_url_when_there_is_no_direct_path() {
        assert_eq!(
            path_of_url("https://127.0.0.1:1/v/t62/abc.enc?x=1").as_deref(),
            Some("/v/t62/abc.enc?x=1")
        );
    }
}
