//! The link a `working` session offers to whoever sends through it (the
//! outbox, the API's calls on a live session). Its own file: the outbox,
//! above the session layer's supervisor, and the manager, above the outbox,
//! both name it.

use std::sync::Arc;

use super::engine::Link;

/// The live connection of a `working` session, for whoever sends through
/// it; `None` whenever the session is not `working`.
pub(crate) type Working = Option<Arc<dyn Link>>;
