//! Access control: virtual keys, what each key and tool group may reach, and how much each key,
//! team and customer may use.
//!
//! Owns: the policy side of governance, built from the config off the hot path and read by
//! the workers through the registry snapshot. Must never: hold or print a key's value.

pub mod governance;
pub mod grants;
pub mod keys;
pub mod limits;
pub mod streams;

pub use governance::{AuthError, Caller, Governance};
