//! JSON-RPC 2.0 as MCP uses it: the envelope, error codes and reply encoding.
//!
//! Owns: reading a message without copying its `params`/`result` (they stay [`RawJson`]
//! slices of the input, found by the [`scan`] scanner) and writing replies that splice those raw bytes back in.
//! Must never: re-serialize a payload it forwards, so upstream results stay byte-faithful.

mod envelope;
mod object;
mod reply;
pub mod scan;

pub(crate) use envelope::present;
pub use envelope::{parse_message, DecodeError, Envelope, MessageKind, ParseError, RawJson};
pub use object::RawObject;
pub use reply::{write_error, write_error_with_data, write_json_str, write_result, ErrorCode};
