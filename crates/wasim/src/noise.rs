//! The server side of WhatsApp's Noise handshake (XX for new and unknown
//! devices, IK for registered devices that cached our static key).
//!
//! The primitives (symmetric state, DH mixing, AEAD) come from `wacore-noise`;
//! this module only plays the responder's half of each pattern.

use buffa::Message;
use wacore_binary::consts::{NOISE_PATTERN_IK, NOISE_PATTERN_XX, WA_CONN_HEADER};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::whatsapp as wa;

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("malformed handshake message: {0}")]
    Malformed(&'static str),
    #[error("handshake crypto failed: {0}")]
    Crypto(String),
}

impl From<wacore_noise::HandshakeError> for HandshakeError {
    fn from(e: wacore_noise::HandshakeError) -> Self {
        Self::Crypto(e.to_string())
    }
}

/// The simulator's long-lived server identity: the Noise static key and the
/// certificate chain that vouches for it.
pub(crate) struct ServerIdentity {
    static_kp: KeyPair,
    cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub(crate) fn generate() -> Self {
        let static_kp = KeyPair::generate(&mut rand::rng());
        let public = key32(static_kp.public_key.public_key_bytes()).unwrap_or([0; 32]);
        // Zero-signed chain: accepted only by clients built with
        // `danger-skip-cert-chain-verify`, which is exactly the point: a
        // production client can never be fooled into trusting the simulator.
        let cert_chain = wacore_noise::test_util::build_cert_chain_bytes(&public);
        Self {
            static_kp,
            cert_chain,
        }
    }

    fn public(&self) -> &[u8] {
        self.static_kp.public_key.public_key_bytes()
    }

    fn private(&self) -> &[u8] {
        self.static_kp.private_key.serialize()
    }
}

/// Transport keys after a completed handshake, from the server's side.
pub(crate) struct TransportKeys {
    /// Decrypts what the client sends.
    pub read: NoiseCipher,
    /// Encrypts what we send.
    pub write: NoiseCipher,
}

/// What the client proved during the handshake.
pub(crate) struct Authenticated {
    pub client_static: [u8; 32],
    pub payload: wa::ClientPayload,
    pub keys: TransportKeys,
}

/// A handshake in progress: either finished after the first message (IK) or
/// waiting for the client's finish message (XX).
pub(crate) enum Progress {
    /// Send `reply`, then the handshake is complete.
    Done {
        reply: Vec<u8>,
        auth: Box<Authenticated>,
    },
    /// Send `reply`, then feed the next client frame to [`PendingXx::finish`].
    AwaitFinish {
        reply: Vec<u8>,
        pending: Box<PendingXx>,
    },
}

pub(crate) struct PendingXx {
    noise: NoiseHandshake,
    ephemeral: KeyPair,
}

/// Strips the connection header the client sends in front of its first
/// frame; `None` when it is not there.
pub(crate) fn strip_conn_header(raw: &[u8]) -> Option<&[u8]> {
    raw.strip_prefix(&WA_CONN_HEADER[..])
}

/// Handles the client hello (the first frame's payload).
pub(crate) fn respond_to_hello(
    server: &ServerIdentity,
    hello_frame: &[u8],
) -> Result<Progress, HandshakeError> {
    let msg = wa::HandshakeMessage::decode_from_slice(hello_frame)
        .map_err(|_| HandshakeError::Malformed("client hello is not a HandshakeMessage"))?;
    let hello = msg
        .client_hello
        .into_option()
        .ok_or(HandshakeError::Malformed("no client_hello"))?;
    let ephemeral = key32(
        hello
            .ephemeral
            .as_deref()
            .ok_or(HandshakeError::Malformed("client hello without ephemeral"))?,
    )?;
    match (hello.r#static, hello.payload) {
        (Some(enc_static), Some(enc_payload)) => {
            respond_ik(server, &ephemeral, &enc_static, &enc_payload)
        }
        _ => respond_xx(server, &ephemeral),
    }
}

fn respond_xx(server: &ServerIdentity, client_eph: &[u8; 32]) -> Result<Progress, HandshakeError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &WA_CONN_HEADER)?;
    noise.authenticate(client_eph);
    let ephemeral = KeyPair::generate(&mut rand::rng());
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise.mix_shared_secret(ephemeral.private_key.serialize(), client_eph)?;
    let enc_static = noise.encrypt(server.public())?;
    noise.mix_shared_secret(server.private(), client_eph)?;
    let enc_cert = noise.encrypt(&server.cert_chain)?;
    let reply = server_hello(
        ephemeral.public_key.public_key_bytes(),
        Some(enc_static),
        enc_cert,
    );
    Ok(Progress::AwaitFinish {
        reply,
        pending: Box::new(PendingXx { noise, ephemeral }),
    })
}

impl PendingXx {
    /// Consumes the client finish: the client's static key and its login payload.
    pub(crate) fn finish(mut self, finish_frame: &[u8]) -> Result<Authenticated, HandshakeError> {
        let msg = wa::HandshakeMessage::decode_from_slice(finish_frame)
            .map_err(|_| HandshakeError::Malformed("client finish is not a HandshakeMessage"))?;
        let finish = msg
            .client_finish
            .into_option()
            .ok_or(HandshakeError::Malformed("no client_finish"))?;
        let enc_static = finish
            .r#static
            .ok_or(HandshakeError::Malformed("client finish without static"))?;
        let enc_payload = finish
            .payload
            .ok_or(HandshakeError::Malformed("client finish without payload"))?;
        let client_static = key32(&self.noise.decrypt(&enc_static)?)?;
        self.noise
            .mix_shared_secret(self.ephemeral.private_key.serialize(), &client_static)?;
        let payload = decode_payload(&self.noise.decrypt(&enc_payload)?)?;
        Ok(Authenticated {
            client_static,
            payload,
            keys: split(self.noise)?,
        })
    }
}

fn respond_ik(
    server: &ServerIdentity,
    client_eph: &[u8; 32],
    enc_static: &[u8],
    enc_payload: &[u8],
) -> Result<Progress, HandshakeError> {
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_IK, &WA_CONN_HEADER)?;
    noise.authenticate(server.public());
    noise.authenticate(client_eph);
    noise.mix_shared_secret(server.private(), client_eph)?;
    let client_static = key32(&noise.decrypt(enc_static)?)?;
    noise.mix_shared_secret(server.private(), &client_static)?;
    let payload = decode_payload(&noise.decrypt(enc_payload)?)?;

    let ephemeral = KeyPair::generate(&mut rand::rng());
    noise.authenticate(ephemeral.public_key.public_key_bytes());
    noise.mix_shared_secret(ephemeral.private_key.serialize(), client_eph)?;
    noise.mix_shared_secret(ephemeral.private_key.serialize(), &client_static)?;
    let enc_cert = noise.encrypt(&server.cert_chain)?;
    // No `static` in the reply tells the client its IK attempt was accepted.
    let reply = server_hello(ephemeral.public_key.public_key_bytes(), None, enc_cert);
    Ok(Progress::Done {
        reply,
        auth: Box::new(Authenticated {
            client_static,
            payload,
            keys: split(noise)?,
        }),
    })
}

fn server_hello(ephemeral: &[u8], enc_static: Option<Vec<u8>>, enc_payload: Vec<u8>) -> Vec<u8> {
    wa::HandshakeMessage {
        server_hello: buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(ephemeral.to_vec()),
            r#static: enc_static,
            payload: Some(enc_payload),
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

fn split(noise: NoiseHandshake) -> Result<TransportKeys, HandshakeError> {
    // `finish` names the pair from the initiator's side.
    let (client_write, client_read) = noise.finish()?;
    Ok(TransportKeys {
        read: client_write,
        write: client_read,
    })
}

fn decode_payload(bytes: &[u8]) -> Result<wa::ClientPayload, HandshakeError> {
    wa::ClientPayload::decode_from_slice(bytes)
        .map_err(|_| HandshakeError::Malformed("login payload is not a ClientPayload"))
}

fn key32(bytes: &[u8]) -> Result<[u8; 32], HandshakeError> {
    bytes
        .try_into()
        .map_err(|_| HandshakeError::Malformed("key is not 32 bytes"))
}
