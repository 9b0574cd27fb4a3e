//! The fake phones: each account's primary device (device 0).

use wacore_binary::Node;

use crate::world::World;

/// A stanza addressed to the phone itself.
pub fn receive(w: &mut World, phone: &str, node: Node) {
    if let Some(account) = w.accounts.get_mut(phone) {
        account.phone_inbox.push(node);
    }
}
