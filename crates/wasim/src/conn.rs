//! One client connection: WebSocket bytes -> frames -> Noise -> binary nodes,
//! and back. Everything protocol-level above nodes lives in [`crate::server`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use wacore_binary::Node;
use wacore_noise::NoiseCipher;
use wacore_noise::framing::{FrameDecoder, encode_frame};

use crate::noise::{self, Authenticated, Progress};
use crate::server::{ConnId, Server};

/// What the rest of the simulator can ask of a connection.
#[derive(Debug)]
pub(crate) enum Outbound {
    Node(Node),
    /// Send this node (a stream error or failure), then close.
    NodeThenClose(Node),
    /// Drop the connection without a word, as a network failure would.
    Drop,
    /// Go silent and stay open: nothing more is answered or sent, as when
    /// a NAT on the way forgets the connection or the server hangs. It
    /// ends only when the client closes it.
    Stall,
}

pub(crate) type OutboundTx = mpsc::UnboundedSender<Outbound>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("handshake: {0}")]
    Handshake(#[from] noise::HandshakeError),
    #[error("socket closed during handshake")]
    ClosedEarly,
    #[error("stream does not start with the WhatsApp connection header")]
    NoHeader,
    #[error("handshake took too long")]
    HandshakeTimeout,
    #[error("frame could not be decrypted")]
    Decrypt,
    #[error("frame is not a binary node: {0}")]
    BadNode(String),
    #[error("socket: {0}")]
    Socket(String),
    #[error("frame encoding: {0}")]
    Encode(String),
}

/// Reads whole frames off a WebSocket, whatever way the client split them.
struct FrameReader {
    decoder: FrameDecoder,
    saw_header: bool,
}

impl FrameReader {
    fn new() -> Self {
        Self {
            decoder: FrameDecoder::new(),
            saw_header: false,
        }
    }

    fn feed(&mut self, data: &[u8]) -> Result<(), ConnError> {
        if self.saw_header {
            self.decoder.feed(data);
        } else {
            self.saw_header = true;
            // The simulator never hands out edge-routing info, so a stream
            // must open with the plain connection header.
            let rest = noise::strip_conn_header(data).ok_or(ConnError::NoHeader)?;
            self.decoder.feed(rest);
        }
        Ok(())
    }

    async fn next_handshake_frame(
        &mut self,
        socket: &mut WebSocket,
    ) -> Result<bytes::BytesMut, ConnError> {
        loop {
            if let Some(frame) = self.decoder.decode_frame() {
                return Ok(frame);
            }
            match socket.next().await {
                Some(Ok(WsMessage::Binary(data))) => self.feed(&data)?,
                Some(Ok(WsMessage::Close(_))) | None => return Err(ConnError::ClosedEarly),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ConnError::Socket(e.to_string())),
            }
        }
    }
}

struct Cipher {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
}

impl Cipher {
    fn open(&mut self, frame: bytes::BytesMut) -> Result<Node, ConnError> {
        let mut buf = frame;
        self.read
            .decrypt_in_place_with_counter(self.read_counter, &mut buf)
            .map_err(|_| ConnError::Decrypt)?;
        self.read_counter = self.read_counter.wrapping_add(1);
        let unpacked =
            wacore_binary::util::unpack(&buf).map_err(|e| ConnError::BadNode(e.to_string()))?;
        let node = wacore_binary::marshal::unmarshal_ref(&unpacked)
            .map_err(|e| ConnError::BadNode(e.to_string()))?;
        Ok(node.to_owned())
    }

    fn seal(&mut self, node: &Node) -> Result<Vec<u8>, ConnError> {
        let plain =
            wacore_binary::marshal::marshal(node).map_err(|e| ConnError::Encode(e.to_string()))?;
        let sealed = self
            .write
            .encrypt_with_counter(self.write_counter, &plain)
            .map_err(|e| ConnError::Encode(e.to_string()))?;
        self.write_counter = self.write_counter.wrapping_add(1);
        encode_frame(&sealed, None).map_err(|e| ConnError::Encode(e.to_string()))
    }
}

/// Serves one WebSocket until either side closes it. Errors are logged here,
/// once: a misbehaving client never takes anything else down.
pub(crate) async fn serve(mut socket: WebSocket, server: Arc<Server>) {
    server.stats.connection_opened();
    if let Err(e) = run(&mut socket, &server).await {
        tracing::info!(error = %e, "closing connection");
        let _ = socket
            .send(WsMessage::Close(Some(CloseFrame {
                code: axum::extract::ws::close_code::PROTOCOL,
                reason: "protocol error".into(),
            })))
            .await;
    }
    server.stats.connection_closed();
}

/// A client that stalls mid-handshake is cut off after this long.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

async fn run(socket: &mut WebSocket, server: &Arc<Server>) -> Result<(), ConnError> {
    let mut reader = FrameReader::new();
    let auth = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(socket, &mut reader, server))
        .await
        .map_err(|_| ConnError::HandshakeTimeout)??;
    serve_authenticated(socket, reader, server, auth).await
}

async fn handshake(
    socket: &mut WebSocket,
    reader: &mut FrameReader,
    server: &Server,
) -> Result<Authenticated, ConnError> {
    let hello = reader.next_handshake_frame(socket).await?;
    let auth = match noise::respond_to_hello(&server.identity, &hello)? {
        Progress::Done { reply, auth } => {
            send_raw(socket, &reply).await?;
            *auth
        }
        Progress::AwaitFinish { reply, pending } => {
            send_raw(socket, &reply).await?;
            let finish = reader.next_handshake_frame(socket).await?;
            pending.finish(&finish)?
        }
    };
    Ok(auth)
}

async fn serve_authenticated(
    socket: &mut WebSocket,
    mut reader: FrameReader,
    server: &Arc<Server>,
    auth: Authenticated,
) -> Result<(), ConnError> {
    let Authenticated {
        client_static,
        payload,
        keys,
    } = auth;
    let mut cipher = Cipher {
        read: keys.read,
        write: keys.write,
        read_counter: 0,
        write_counter: 0,
    };

    let (tx, mut rx) = mpsc::unbounded_channel();
    let conn_id = server.register(tx);
    let _guard = Deregister {
        server: server.clone(),
        conn_id,
    };
    server.on_login(conn_id, client_static, payload);

    loop {
        tokio::select! {
            incoming = socket.next() => match incoming {
                Some(Ok(WsMessage::Binary(data))) => {
                    reader.feed(&data)?;
                    while let Some(frame) = reader.decoder.decode_frame() {
                        let node = cipher.open(frame)?;
                        server.stats.stanza_in();
                        server.on_node(conn_id, node);
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None => return Ok(()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ConnError::Socket(e.to_string())),
            },
            out = rx.recv() => {
                let Some(out) = out else { return Ok(()) };
                let delay = server.faults.response_delay();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                match out {
                    Outbound::Node(node) => send_node(socket, &mut cipher, server, &node).await?,
                    Outbound::NodeThenClose(node) => {
                        send_node(socket, &mut cipher, server, &node).await?;
                        let _ = socket.send(WsMessage::Close(None)).await;
                        close_gracefully(socket).await;
                        return Ok(());
                    }
                    Outbound::Drop => return Ok(()),
                    Outbound::Stall => {
                        // What the client sends now goes nowhere.
                        while let Some(Ok(message)) = socket.next().await {
                            if matches!(message, WsMessage::Close(_)) {
                                break;
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Reads until the client hangs up (or a short while passes) after our
/// close. Closing a TCP socket with the client's unread stanzas in its
/// receive buffer makes the kernel answer with a reset, and a reset can
/// discard the stream error the client has not read yet: it would then see a
/// network failure and reconnect instead of learning it was logged out.
async fn close_gracefully(socket: &mut WebSocket) {
    let drain = async { while let Some(Ok(_)) = socket.next().await {} };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

async fn send_node(
    socket: &mut WebSocket,
    cipher: &mut Cipher,
    server: &Server,
    node: &Node,
) -> Result<(), ConnError> {
    let frame = cipher.seal(node)?;
    server.stats.stanza_out();
    socket
        .send(WsMessage::Binary(Bytes::from(frame)))
        .await
        .map_err(|e| ConnError::Socket(e.to_string()))
}

async fn send_raw(socket: &mut WebSocket, payload: &[u8]) -> Result<(), ConnError> {
    let frame = encode_frame(payload, None).map_err(|e| ConnError::Encode(e.to_string()))?;
    socket
        .send(WsMessage::Binary(Bytes::from(frame)))
        .await
        .map_err(|e| ConnError::Socket(e.to_string()))
}

struct Deregister {
    server: Arc<Server>,
    conn_id: ConnId,
}

impl Drop for Deregister {
    fn drop(&mut self) {
        self.server.deregister(self.conn_id);
    }
}
