//! Sessions at run time: one supervised task per session
//! ([`supervisor`]), the [`manager`] that owns them, and the seam
//! ([`engine`]) between the supervisor and the WhatsApp protocol, which
//! [`whatsapp`] implements with whatsapp-rust. [`inbox`] stores what a
//! session receives; [`status_writer`] group-commits every session's status
//! changes.

pub mod backoff;
pub mod engine;
pub mod inbox;
pub mod liveness;
#[cfg(feature = "simulator")]
mod loopback_http;
pub mod manager;
pub mod status_writer;
pub mod supervisor;
pub mod whatsapp;

pub use manager::{ManagerError, Outgoing, SessionManager};
pub use supervisor::{Expiring, Live, SupervisorPolicy};
