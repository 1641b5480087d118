//! What operators look at and act through: metrics collected from the worker cores, and the
//! admin listener that serves them (`/metrics`) with the admin API (`/api/...`).
//!
//! Owns: collecting figures from the worker cores without slowing them (per-core recording,
//! merged off the hot path), the admin listener on its own thread, its token check, and how
//! servers, tools, keys and stats are shown. Changes (a tool switched off, a server
//! reconnected) are asked of the registry keeper, which owns them. Must never: take a lock
//! shared between cores per request, run on a worker core, or show a secret (key values,
//! the admin token, upstream headers, environment or URLs).

pub mod audit_route;
pub mod call_metrics;
pub mod exposition;
mod keys_view;
pub mod listener;
pub mod metrics;
pub mod metrics_page;
pub mod router;
mod servers_view;
pub mod state;
mod stats_view;
mod timestamps;
mod tools_view;

pub use state::AdminState;

/// The admin API never streams; this type has no values.
pub enum NoStream {}

impl crate::http::SseStream for NoStream {
    async fn next_event(&mut self, _out: &mut Vec<u8>) -> bool {
        match *self {}
    }
}
