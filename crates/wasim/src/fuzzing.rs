//! Entry points for the fuzz targets (`fuzz/` at the repository root):
//! what the simulator does with bytes a client sends it. Not an API.

use std::sync::OnceLock;

use wacore_noise::framing::FrameDecoder;

use crate::noise::{self, Progress, ServerIdentity};

fn identity() -> &'static ServerIdentity {
    static IDENTITY: OnceLock<ServerIdentity> = OnceLock::new();
    IDENTITY.get_or_init(ServerIdentity::generate)
}

/// A client's byte stream, as the connection reads it: the connection
/// header, then length-prefixed frames split across WebSocket messages at
/// the input's own choice (its first byte), the first frame as the Noise
/// hello, the second as the finish; every frame is also decoded as a
/// binary node, as it would be once decrypted. Must never panic.
pub fn client_stream(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let Some(rest) = noise::strip_conn_header(rest) else {
        return;
    };
    let mut decoder = FrameDecoder::new();
    let step = usize::from(split.max(1));
    let mut frames = Vec::new();
    for chunk in rest.chunks(step) {
        decoder.feed(chunk);
        while let Some(frame) = decoder.decode_frame() {
            frames.push(frame);
        }
    }
    let mut pending = None;
    for (i, frame) in frames.iter().enumerate() {
        match (i, pending.take()) {
            (0, _) => {
                if let Ok(Progress::AwaitFinish { pending: next, .. }) =
                    noise::respond_to_hello(identity(), frame)
                {
                    pending = Some(next);
                }
            }
            (_, Some(handshake)) => {
                let _ = handshake.finish(frame);
            }
            _ => {}
        }
        node(frame);
    }
}

/// One decrypted frame: unpacked (it may be compressed) and unmarshalled
/// into a node, as the connection does after the Noise cipher.
pub fn node(plain: &[u8]) {
    if let Ok(unpacked) = wacore_binary::util::unpack(plain)
        && let Ok(node) = wacore_binary::marshal::unmarshal_ref(&unpacked)
    {
        let _ = node.to_owned();
    }
}
