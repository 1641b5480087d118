//! What operators look at: metrics now; the admin API, audit queries and UI come with the
//! observability work.
//!
//! Owns: collecting figures from the worker cores without slowing them (per-core recording,
//! merged off the hot path). Must never: take a lock shared between cores per request.

pub mod call_metrics;
pub mod metrics;
