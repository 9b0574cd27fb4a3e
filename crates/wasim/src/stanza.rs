//! Small helpers for reading and building binary nodes.

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent};

/// The server's own JID, as the client expects it in `from`.
pub(crate) const SERVER: &str = "s.whatsapp.net";

pub(crate) fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

pub(crate) fn child<'a>(node: &'a Node, tag: &str) -> Option<&'a Node> {
    node.get_optional_child(tag)
}

pub(crate) fn children(node: &Node) -> &[Node] {
    node.children().unwrap_or(&[])
}

pub(crate) fn bytes(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(crate) fn child_bytes<'a>(node: &'a Node, tag: &str) -> Option<&'a [u8]> {
    child(node, tag).and_then(bytes)
}

/// `<iq type="result" id=.. from="s.whatsapp.net"/>` with the given children.
pub(crate) fn iq_result(id: &str, children: Vec<Node>) -> Node {
    let b = NodeBuilder::new("iq")
        .attr("id", id)
        .attr("type", "result")
        .attr("from", SERVER);
    if children.is_empty() {
        b.build()
    } else {
        b.children(children).build()
    }
}

/// `<notification from="s.whatsapp.net" type=.. id=.. t=..>`: what the
/// server tells a device unasked; the caller adds what it says.
pub(crate) fn server_notification(id: String, kind: &str) -> NodeBuilder {
    NodeBuilder::new("notification")
        .attr("from", SERVER)
        .attr("type", kind)
        .attr("id", id)
        .attr("t", now_secs().to_string())
}

pub(crate) fn iq_error(id: &str, code: u16, text: &str) -> Node {
    NodeBuilder::new("iq")
        .attr("id", id)
        .attr("type", "error")
        .attr("from", SERVER)
        .children([NodeBuilder::new("error")
            .attr("code", code.to_string())
            .attr("text", text)
            .build()])
        .build()
}

pub(crate) fn stream_error(code: u16) -> Node {
    NodeBuilder::new("stream:error")
        .attr("code", code.to_string())
        .build()
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
