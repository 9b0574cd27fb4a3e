//! A bare-bones protocol client: Noise handshake, login, encrypted nodes.
//! It is what load generators and robustness tests use where a full
//! `whatsapp-rust` client would be too heavy or too well-behaved.

use buffa::Message;
use bytes::BytesMut;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wacore_binary::Node;
use wacore_binary::consts::WA_CONN_HEADER;
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::framing::{FrameDecoder, encode_frame};
use wacore_noise::{NoiseCipher, XxHandshakeState};
use waproto::whatsapp as wa;

#[derive(Debug, thiserror::Error)]
pub enum RawClientError {
    #[error("websocket: {0}")]
    Socket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("handshake: {0}")]
    Handshake(String),
    #[error("the server closed the connection")]
    Closed,
    #[error("bad frame from the server: {0}")]
    BadFrame(String),
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct RawClient {
    ws: Ws,
    decoder: FrameDecoder,
    write: NoiseCipher,
    read: NoiseCipher,
    write_counter: u32,
    read_counter: u32,
}

/// The payload a linked device logs in with.
pub fn login_payload(phone: u64, device: u32) -> wa::ClientPayload {
    wa::ClientPayload {
        username: Some(phone),
        device: Some(device),
        passive: Some(false),
        pull: Some(true),
        ..Default::default()
    }
}

impl RawClient {
    /// Dials `url` and completes a Noise XX handshake carrying `payload`.
    pub async fn connect(
        url: &str,
        static_kp: KeyPair,
        payload: &wa::ClientPayload,
    ) -> Result<Self, RawClientError> {
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
        let hs_err = |e: wacore_noise::HandshakeError| RawClientError::Handshake(e.to_string());
        let mut hs = XxHandshakeState::new(static_kp, payload.encode_to_vec(), &WA_CONN_HEADER)
            .map_err(hs_err)?;
        let hello = hs.build_client_hello().map_err(hs_err)?;
        let framed = encode_frame(&hello, Some(&WA_CONN_HEADER))
            .map_err(|e| RawClientError::Handshake(e.to_string()))?;
        ws.send(WsMessage::Binary(framed.into())).await?;
        let mut decoder = FrameDecoder::new();
        let server_hello = next_frame(&mut ws, &mut decoder).await?;
        let finish = hs
            .read_server_hello_and_build_client_finish(&server_hello)
            .map_err(hs_err)?;
        let framed =
            encode_frame(&finish, None).map_err(|e| RawClientError::Handshake(e.to_string()))?;
        ws.send(WsMessage::Binary(framed.into())).await?;
        let outcome = hs.finish().map_err(hs_err)?;
        Ok(Self {
            ws,
            decoder,
            write: outcome.write_cipher,
            read: outcome.read_cipher,
            write_counter: 0,
            read_counter: 0,
        })
    }

    /// Encrypts and sends arbitrary bytes as one frame (for robustness tests).
    pub async fn send_encrypted(&mut self, plaintext: &[u8]) -> Result<(), RawClientError> {
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, plaintext)
            .map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        self.write_counter += 1;
        let framed =
            encode_frame(&sealed, None).map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        self.ws.send(WsMessage::Binary(framed.into())).await?;
        Ok(())
    }

    pub async fn send_node(&mut self, node: &Node) -> Result<(), RawClientError> {
        let plain = wacore_binary::marshal::marshal(node)
            .map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        self.send_encrypted(&plain).await
    }

    /// The next node the server sends.
    pub async fn recv_node(&mut self) -> Result<Node, RawClientError> {
        let mut frame = next_frame(&mut self.ws, &mut self.decoder).await?;
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut frame)
            .map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        self.read_counter += 1;
        let unpacked = wacore_binary::util::unpack(&frame)
            .map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked)
            .map_err(|e| RawClientError::BadFrame(e.to_string()))?;
        Ok(node.to_owned())
    }
}

async fn next_frame(ws: &mut Ws, decoder: &mut FrameDecoder) -> Result<BytesMut, RawClientError> {
    loop {
        if let Some(frame) = decoder.decode_frame() {
            return Ok(frame);
        }
        match ws.next().await {
            Some(Ok(WsMessage::Binary(data))) => decoder.feed(&data),
            Some(Ok(WsMessage::Close(_))) | None => return Err(RawClientError::Closed),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}
