//! Sessions at run time: one supervised task per session
//! ([`supervisor`]), the [`manager`] that owns them, and the seam
//! ([`engine`]) between the supervisor and the WhatsApp protocol, which
//! [`whatsapp`] implements with whatsapp-rust; [`messenger`] is the narrow
//! face of a live connection the outbox sends through, [`working`] the link
//! a `working` session offers, [`server`] which WhatsApp server a build may
//! reach. [`leases`] keeps the node's session leases when several
//! processes serve one database. [`inbox`] stores what a session receives; [`status_writer`]
//! group-commits every session's status changes.
//!
//! The [`manager`] sits a layer above the rest (and above the outbox,
//! whose workers it runs): nothing else here names it.

pub(crate) mod backoff;
pub(crate) mod engine;
pub(crate) mod group_events;
pub(crate) mod groups;
pub(crate) mod inbox;
pub(crate) mod leases;
pub(crate) mod liveness;
#[cfg(feature = "simulator")]
mod loopback_http;
pub(crate) mod manager;
pub(crate) mod messenger;
pub(crate) mod pictures;
pub(crate) mod remote;
pub(crate) mod server;
pub(crate) mod status_writer;
pub(crate) mod supervisor;
pub(crate) mod whatsapp;
pub(crate) mod working;

pub(crate) use supervisor::{Expiring, SupervisorPolicy};
