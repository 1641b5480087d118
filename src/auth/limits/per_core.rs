//! The per-core side: a worker core's leases, and admission through a chain of accounts.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;

use super::accounts::{Account, AccountId, Limits};
use super::budget::{self, BudgetLease, BudgetTaken};
use super::clock::Now;
use super::concurrency::{self, CallPermit};
use super::period::PeriodCache;
use super::rate::{self, RateLease};
use super::refusal::{Refusal, RefusalKind};

/// One worker core's view of a [`Limits`]: its leases and period cache, in plain `Cell`s.
/// Not `Send`; make one per core with [`CoreLimits::new`], and a new one when the core
/// moves to new `Limits` after a reload (dropping the old one returns its unspent budget
/// leases to the shared counters).
pub struct CoreLimits {
    inner: Rc<CoreInner>,
}

pub(super) struct CoreInner {
    limits: Arc<Limits>,
    rate_leases: Box<[Cell<RateLease>]>,
    budget_leases: Box<[Cell<BudgetLease>]>,
    periods: PeriodCache,
}

/// Budgets of one account charged so far in an admission; at most one per period.
type Charged = [Option<(usize, BudgetTaken)>; 4];

impl CoreLimits {
    pub fn new(limits: &Arc<Limits>) -> CoreLimits {
        let inner = CoreInner {
            limits: Arc::clone(limits),
            rate_leases: (0..limits.rates.len()).map(|_| Cell::default()).collect(),
            budget_leases: (0..limits.budgets.len()).map(|_| Cell::default()).collect(),
            periods: PeriodCache::new(),
        };
        CoreLimits {
            inner: Rc::new(inner),
        }
    }

    /// The limits this core state belongs to (compare with `Arc::ptr_eq` after a reload).
    pub fn limits(&self) -> &Arc<Limits> {
        &self.inner.limits
    }

    /// Admits one HTTP request against the rate limit of every account in `chain` (key →
    /// team → customer). All or nothing: on refusal, nothing was taken anywhere. The first
    /// account in chain order that refuses is the one reported. Ids must come from this
    /// core's `Limits`; others are a wiring bug (a debug assertion) and limit nothing.
    pub fn admit_request(&self, chain: &[AccountId], now: Now) -> Result<(), Refusal> {
        self.inner.admit_rates(chain, now.mono_ns)
    }

    /// Admits one forwarded call costing `cost_milli` (0: charges no budget) against the
    /// budgets and concurrency limits of every account in `chain`. All or nothing. The
    /// permit holds the call's concurrency slots until dropped.
    pub fn admit_call(
        &self,
        chain: &[AccountId],
        cost_milli: u64,
        now: Now,
    ) -> Result<CallPermit, Refusal> {
        self.inner.admit_calls(chain, cost_milli, now)?;
        let limits = &self.inner.limits;
        let held = chain.iter().copied().filter(|&id| {
            limits
                .account(id)
                .is_some_and(|a| a.max_concurrent.is_some())
        });
        Ok(CallPermit::new(&self.inner, held))
    }
}

impl CoreInner {
    /// Rate limits of `chain[0]`, then (recursively) of the rest; undone if the rest refuse.
    fn admit_rates(&self, chain: &[AccountId], now: u64) -> Result<(), Refusal> {
        let Some((&id, rest)) = chain.split_first() else {
            return Ok(());
        };
        let Some((acc, slot)) = self.account(id).and_then(|a| Some((a, a.rate?))) else {
            return self.admit_rates(rest, now);
        };
        let (params, lease, tat) = (
            &self.limits.rates[slot],
            &self.rate_leases[slot],
            &acc.shared.tat,
        );
        let taken = rate::admit(params, tat, lease, now).map_err(|retry_after| Refusal {
            account: acc.label.clone(),
            kind: RefusalKind::Rate {
                retry_after,
                per_second: params.spec.per_second,
                burst: params.spec.burst,
            },
        })?;
        self.admit_rates(rest, now)
            .inspect_err(|_| rate::undo(params, tat, lease, taken))
    }

    /// Budgets and concurrency of `chain[0]`, then of the rest; undone if the rest refuse.
    fn admit_calls(&self, chain: &[AccountId], cost: u64, now: Now) -> Result<(), Refusal> {
        let Some((&id, rest)) = chain.split_first() else {
            return Ok(());
        };
        let Some(acc) = self.account(id) else {
            return self.admit_calls(rest, cost, now);
        };
        let mut charged: Charged = [None; 4];
        if cost > 0 {
            for (n, b) in acc.budgets.clone().enumerate() {
                match self.charge(acc, b, cost, now) {
                    Ok(taken) => charged[n] = Some((b, taken)),
                    Err(refusal) => {
                        self.uncharge(acc, &charged);
                        return Err(refusal);
                    }
                }
            }
        }
        if let Some(max) = acc.max_concurrent {
            if !concurrency::acquire(&acc.shared.in_flight, max) {
                self.uncharge(acc, &charged);
                return Err(Refusal {
                    account: acc.label.clone(),
                    kind: RefusalKind::Concurrency { max },
                });
            }
        }
        self.admit_calls(rest, cost, now).inspect_err(|_| {
            if acc.max_concurrent.is_some() {
                concurrency::release(&acc.shared.in_flight);
            }
            self.uncharge(acc, &charged);
        })
    }

    fn charge(&self, acc: &Account, b: usize, cost: u64, now: Now) -> Result<BudgetTaken, Refusal> {
        let params = &self.limits.budgets[b];
        let period = params.spec.period;
        let span = self.periods.get(period, now.unix_secs);
        let word = &acc.shared.budgets[period.slot()];
        budget::charge(
            params,
            word,
            &self.budget_leases[b],
            span.index,
            cost,
            now.mono_ns,
        )
        .ok_or_else(|| Refusal {
            account: acc.label.clone(),
            kind: RefusalKind::Budget {
                period,
                limit_milli: params.spec.limit_milli,
                cost_milli: cost,
                renews_in: std::time::Duration::from_secs(span.end.saturating_sub(now.unix_secs)),
            },
        })
    }

    fn uncharge(&self, acc: &Account, charged: &Charged) {
        for &(b, taken) in charged.iter().rev().flatten() {
            let word = &acc.shared.budgets[self.limits.budgets[b].spec.period.slot()];
            budget::undo(word, &self.budget_leases[b], taken);
        }
    }

    fn account(&self, id: AccountId) -> Option<&Account> {
        let acc = self.limits.account(id);
        // An id from other `Limits` is a wiring bug; in release it limits nothing extra
        // rather than panicking on a worker.
        debug_assert!(acc.is_some(), "{id:?} is not an account of these limits");
        acc
    }

    /// Gives back one concurrency slot (a [`CallPermit`] being dropped).
    pub(super) fn release_slot(&self, id: AccountId) {
        if let Some(acc) = self.limits.account(id) {
            concurrency::release(&acc.shared.in_flight);
        }
    }
}

impl Drop for CoreInner {
    /// Returns unspent budget leases, so replacing a core's state (a reload) loses nothing.
    fn drop(&mut self) {
        for acc in &self.limits.accounts {
            for b in acc.budgets.clone() {
                let word = &acc.shared.budgets[self.limits.budgets[b].spec.period.slot()];
                budget::give_back(word, &self.budget_leases[b]);
            }
        }
    }
}
