//! Linking with a pairing code: the phone's (primary) side of the exchange.

use wacore_binary::Node;

use crate::stanza::iq_error;
use crate::world::{ConnId, World};

/// A pairing-code exchange in progress on one connection.
pub struct CodeFlow {}

pub fn on_companion_iq(_w: &mut World, _conn: ConnId, id: &str, _iq: &Node) -> Node {
    iq_error(id, 501, "feature-not-implemented")
}
