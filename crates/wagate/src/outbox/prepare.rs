//! Turns an accepted message into the WhatsApp message to send.

use whatsapp_rust::waproto::whatsapp as wa;

use crate::domain::{Failure, FailureReason};
use crate::store::OutboxItem;

pub struct Prepared {
    pub message: wa::Message,
}

pub async fn prepare(item: &OutboxItem) -> Result<Prepared, Failure> {
    let body = item.message.content["text"]["body"]
        .as_str()
        .ok_or_else(|| Failure::new(FailureReason::Invalid))?;
    Ok(Prepared {
        message: wa::Message {
            conversation: Some(body.to_string()),
            ..Default::default()
        },
    })
}
