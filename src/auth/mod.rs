//! Who may call what, and how much: virtual keys, grants and the limits on them.

pub mod limits;
