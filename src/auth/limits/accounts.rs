//! The shared side: every account's limits and counters, built from config and carried
//! across reloads.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::budget::{self, BudgetParams};
use super::clock::Now;
use super::period::{self, Period};
use super::rate::RateParams;
use super::spec::{validate, AccountLabel, LimitSpec, LimitsError};

/// Addresses an account of one [`Limits`]: its position in the list given to
/// [`Limits::new`]. Ids of one `Limits` mean nothing to another; look them up again with
/// [`Limits::id`] after a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccountId(pub(super) u32);

impl AccountId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One account's counters, shared by all cores (and by successive `Limits` across reloads).
/// Cache-line aligned so that two accounts busy on different cores do not share a line.
#[repr(align(64))]
#[derive(Debug, Default)]
pub(super) struct AccountShared {
    /// The rate limit's theoretical arrival time (ns).
    pub tat: AtomicU64,
    /// One packed (period tag, used) counter per period kind.
    pub budgets: [AtomicU64; 4],
    pub in_flight: AtomicU32,
}

#[derive(Debug)]
pub(super) struct Account {
    pub label: AccountLabel,
    pub spec: LimitSpec,
    /// Index into `Limits::rates`, and into each core's rate leases.
    pub rate: Option<usize>,
    /// Indices into `Limits::budgets`, and into each core's budget leases.
    pub budgets: Range<usize>,
    pub max_concurrent: Option<u32>,
    pub shared: Arc<AccountShared>,
}

/// Every account's limits and shared counters. Built by the control thread, shared by all
/// worker cores (`Send + Sync`); each core admits through its own
/// [`CoreLimits`](super::CoreLimits).
#[derive(Debug)]
pub struct Limits {
    pub(super) accounts: Vec<Account>,
    pub(super) rates: Vec<RateParams>,
    pub(super) budgets: Vec<BudgetParams>,
    by_label: HashMap<AccountLabel, AccountId>,
    cores: usize,
}

impl Limits {
    /// Builds fresh limits for `accounts` (the i-th gets `AccountId` i), sized for `cores`
    /// worker cores (lease sizes depend on it; more cores than said loosen the bounds).
    pub fn new(
        accounts: Vec<(AccountLabel, LimitSpec)>,
        cores: usize,
    ) -> Result<Arc<Limits>, LimitsError> {
        Limits::build(accounts, cores, None)
    }

    /// Like [`Limits::new`], but an account whose label is in `previous` keeps its counters:
    /// the same shared state, so cores still on `previous` and cores already on the new
    /// limits count together, and a reload resets nothing. Usage is a fact independent of
    /// the limits: when a limit changes, the new one applies to what was already used (a
    /// daily budget raised from 100 to 200 after 80 calls leaves 120).
    pub fn carry_over(
        accounts: Vec<(AccountLabel, LimitSpec)>,
        cores: usize,
        previous: &Limits,
    ) -> Result<Arc<Limits>, LimitsError> {
        Limits::build(accounts, cores, Some(previous))
    }

    fn build(
        specs: Vec<(AccountLabel, LimitSpec)>,
        cores: usize,
        previous: Option<&Limits>,
    ) -> Result<Arc<Limits>, LimitsError> {
        let too_many = || LimitsError::TooManyAccounts(specs.len());
        if u32::try_from(specs.len()).is_err() {
            return Err(too_many());
        }
        let cores = cores.max(1);
        let mut limits = Limits {
            accounts: Vec::with_capacity(specs.len()),
            rates: Vec::new(),
            budgets: Vec::new(),
            by_label: HashMap::with_capacity(specs.len()),
            cores,
        };
        for (i, (label, spec)) in specs.into_iter().enumerate() {
            validate(&label, &spec)?;
            let id = AccountId(i as u32);
            if limits.by_label.insert(label.clone(), id).is_some() {
                return Err(LimitsError::DuplicateAccount(label));
            }
            let shared = previous
                .and_then(|p| p.account(p.id(&label)?))
                .map(|a| Arc::clone(&a.shared))
                .unwrap_or_default();
            let rate = spec.rate.map(|r| {
                limits.rates.push(RateParams::new(r, cores));
                limits.rates.len() - 1
            });
            let first_budget = limits.budgets.len();
            limits
                .budgets
                .extend(spec.budgets.iter().map(|&b| BudgetParams::new(b, cores)));
            let budgets = first_budget..limits.budgets.len();
            let max_concurrent = spec.max_concurrent;
            limits.accounts.push(Account {
                label,
                spec,
                rate,
                budgets,
                max_concurrent,
                shared,
            });
        }
        Ok(Arc::new(limits))
    }

    pub(super) fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(id.index())
    }

    /// The account with this label.
    pub fn id(&self, label: &AccountLabel) -> Option<AccountId> {
        self.by_label.get(label).copied()
    }

    pub fn label(&self, id: AccountId) -> Option<&AccountLabel> {
        self.account(id).map(|a| &a.label)
    }

    pub fn spec(&self, id: AccountId) -> Option<&LimitSpec> {
        self.account(id).map(|a| &a.spec)
    }

    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The worker-core count the lease sizes were computed for.
    pub fn cores(&self) -> usize {
        self.cores
    }

    /// Calls of this account in flight (counted only if it has `max_concurrent`).
    pub fn in_flight(&self, id: AccountId) -> u32 {
        self.account(id)
            .map_or(0, |a| a.shared.in_flight.load(Relaxed))
    }

    /// Calls this account's rate limit would admit at once at `now` (cells cores leased
    /// count as used); `None` without a rate limit.
    pub fn rate_available(&self, id: AccountId, now: Now) -> Option<u64> {
        let account = self.account(id)?;
        let params = self.rates.get(account.rate?)?;
        Some(super::rate::available(
            &account.shared.tat,
            params,
            now.mono_ns,
        ))
    }

    /// Milli-units of this account's budget used in the period containing `now`, including
    /// what cores have leased and not yet spent.
    pub fn budget_used_milli(&self, id: AccountId, period: Period, now: Now) -> u64 {
        let index = period::span(period, now.unix_secs).index;
        self.account(id)
            .map_or(0, |a| budget::used(&a.shared.budgets[period.slot()], index))
    }
}
