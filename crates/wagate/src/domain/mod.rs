//! Validated domain types. A value of one of these types is valid by
//! construction, so handlers parse input into them before doing any work.

mod ids;
mod label;
mod phone;
mod session_status;
mod token;

pub use ids::{OrgId, ParseIdError, SessionId, TokenId};
pub use label::{InvalidLabel, Label};
pub use phone::{InvalidPhone, Phone};
pub use session_status::{IllegalTransition, SessionStatus, StatusReason, UnknownStatus};
pub use token::{ApiToken, TokenHash};
