//! Limit accounting for governance: rate limits, call budgets and concurrency caps on keys,
//! teams and customers.
//!
//! Owns: the counters, the per-core leases on them, and the decision "admit or refuse, and
//! why". An *account* (a key, a team or a customer) has an optional token-bucket rate limit,
//! zero or more budgets (one per period: minute, hour, day, calendar month, UTC) and an
//! optional cap on calls in flight. A request is checked against a *chain* of accounts
//! (key → its team → the team's customer); every account must admit it, so the tightest
//! limit wins, and admission is all or nothing: if a later account refuses, what earlier
//! ones took is given back, so a refused call costs nothing anywhere.
//!
//! Must never: block, take a lock, allocate (for chains of up to four capped accounts) or
//! make a cross-core hop on the hot path. Shared state is one cache-aligned block of atomics
//! per account, updated by CAS; each worker core keeps leases in plain `Cell`s
//! ([`CoreLimits`]) so that busy cores touch shared state once per many calls. It does not
//! read the clock itself either: callers pass [`Now`].
//!
//! Use: the control thread builds [`Limits`] from config ([`Limits::carry_over`] on reload,
//! which keeps the counters); each worker core makes a [`CoreLimits`] from it; per HTTP
//! request call [`CoreLimits::admit_request`] (rate limits, counted once per request), per
//! forwarded call [`CoreLimits::admit_call`] (budgets with the call's cost in milli-units,
//! see [`to_milli`], and concurrency), keeping the returned [`CallPermit`] until the call
//! ends. A [`Refusal`] displays as the 429 body; [`Refusal::retry_after_secs`] gives
//! `Retry-After`.
//!
//! # How exact the counters are
//!
//! With `c` worker cores (the `cores` given to [`Limits::new`]; more `CoreLimits` than that
//! loosen the bounds in proportion):
//!
//! - **Rate.** GCRA on one atomic; a core leases up to `n = clamp(burst / (4c), 1, 32)`
//!   cells at once (sized to its own recent pace), spendable for 50 ms. In any time window
//!   of length `W`, admitted calls ≤ `burst + W · per_second + min(c · (n − 1),
//!   ⌈0.05 s · per_second⌉)` (the last term: cells leased before the window and spent in
//!   it). A refusal can come early by the cells other cores hold, ≤ `(c − 1) · (n − 1)`,
//!   plus cells of leases that expired unspent (at most `n − 1` per core that slowed down
//!   sharply; forgotten once the bucket refills). When `burst < 8c`, `n = 1` and the limit
//!   is exact. Cells are `1 / per_second` rounded to the nanosecond. A core that found the
//!   bucket empty refuses locally until the next cell is due, without reading it again; a
//!   refund by another core in that interval is seen only after it.
//! - **Budgets.** Leased units count as used, so a budget is **never overspent**. A core
//!   leases beyond the call's cost only while busy (calls less than 50 ms apart), at most
//!   `min(limit / (64c), 100 units)` in whole units. So a refusal comes early by at most
//!   `c − 1` such leases held by other cores (< limit / 64 in total) plus less than one
//!   call's cost left in the refusing core's own lease; a budget under `64c` units takes no
//!   extra and is exact. Leases end with their period; a new period starts from zero.
//! - **Concurrency.** Exact: one gauge per account, changed by CAS. It is the one counter
//!   touched on every call (a CAS to take a slot, a subtraction to give it back), so
//!   accounts with a cap pay a shared cache-line transfer per call when several cores
//!   serve them at once.
//! - **Refunds** (a later account refused) are exact: they happen within the same call,
//!   long before the bucket could have refilled past the cells given back.
//! - **Reloads** keep every counter of an account whose label is unchanged; leases of the
//!   old core state are given back (budgets) or lapse (rate cells, bounded as above).
//!
//! Cost on one core, key → team → customer, each with a rate limit, a budget and a cap:
//! about 0.1 µs for a request plus its call (`benches/limits.rs`; figures in
//! perf/RESULTS.md).

mod accounts;
mod budget;
mod clock;
mod concurrency;
mod per_core;
mod period;
mod rate;
mod refusal;
mod spec;

pub use accounts::{AccountId, Limits};
pub use budget::MAX_BUDGET_MILLI;
pub use clock::{Clock, Now};
pub use concurrency::CallPermit;
pub use per_core::CoreLimits;
pub use period::Period;
pub use refusal::{Refusal, RefusalKind};
pub use spec::{
    to_milli, AccountKind, AccountLabel, BudgetSpec, LimitSpec, LimitsError, RateSpec, MILLI,
};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod thread_tests;
