//! Media: the `media_conn` answer pointing clients at the simulator's blob store.

use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;

use crate::stanza::iq_result;
use crate::world::World;

pub fn media_conn(w: &World, id: &str) -> Node {
    iq_result(
        id,
        vec![
            NodeBuilder::new("media_conn")
                .attr("auth", "wasim")
                .attr("ttl", "3600")
                .children([NodeBuilder::new("host")
                    .attr("hostname", w.media_host.clone())
                    .build()])
                .build(),
        ],
    )
}
