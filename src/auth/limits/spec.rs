//! What an account is limited to, as the caller describes it, and the checks on that.

use std::fmt;
use std::sync::Arc;

use super::budget::MAX_BUDGET_MILLI;
use super::period::Period;

/// Milli-units per cost unit: budgets and costs are counted in thousandths so that fractional
/// prices (`0.25` per call) add up exactly.
pub const MILLI: u64 = 1_000;

/// Converts a cost or budget in units (as written in config) to milli-units, rounding to the
/// nearest thousandth. `None` for negative, non-finite or too large values.
pub fn to_milli(units: f64) -> Option<u64> {
    let milli = (units * MILLI as f64).round();
    // The comparison is false for NaN, so NaN is refused too.
    if (0.0..=MAX_BUDGET_MILLI as f64).contains(&milli) {
        Some(milli as u64)
    } else {
        None
    }
}

/// What kind of principal an account is; only used in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    Key,
    Team,
    Customer,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::Key => "key",
            AccountKind::Team => "team",
            AccountKind::Customer => "customer",
        }
    }
}

/// Names an account in messages (`key "eng"`) and identifies it across config reloads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccountLabel {
    pub kind: AccountKind,
    pub name: Arc<str>,
}

impl AccountLabel {
    pub fn new(kind: AccountKind, name: &str) -> AccountLabel {
        AccountLabel {
            kind,
            name: name.into(),
        }
    }
}

impl fmt::Display for AccountLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug-quoting escapes control characters and quotes, so a name cannot forge text
        // in a message that ends up in an HTTP body or a log line.
        write!(f, "{} {:?}", self.kind.as_str(), &*self.name)
    }
}

/// A token bucket: up to `burst` calls at once, `per_second` sustained.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSpec {
    pub per_second: f64,
    pub burst: u32,
}

/// At most `limit_milli` cost milli-units per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpec {
    pub period: Period,
    pub limit_milli: u64,
}

/// Everything one account is limited to. The default limits nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitSpec {
    pub rate: Option<RateSpec>,
    /// At most one budget per period.
    pub budgets: Vec<BudgetSpec>,
    /// Calls in flight at once; 0 refuses every call.
    pub max_concurrent: Option<u32>,
}

/// A spec the limits cannot enforce. Config validation should catch these first, with the
/// key path; this is the last line.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitsError {
    DuplicateAccount(AccountLabel),
    InvalidRate {
        account: AccountLabel,
        per_second: f64,
        burst: u32,
    },
    DuplicatePeriod {
        account: AccountLabel,
        period: Period,
    },
    BudgetTooLarge {
        account: AccountLabel,
        period: Period,
        limit_milli: u64,
    },
    TooManyAccounts(usize),
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitsError::DuplicateAccount(a) => write!(f, "{a} is defined twice"),
            LimitsError::InvalidRate { account, per_second, burst } => write!(
                f,
                "{account}: a rate limit needs per_second > 0 and burst >= 1 (got {per_second} per second, burst {burst})"
            ),
            LimitsError::DuplicatePeriod { account, period } => {
                write!(f, "{account} has two budgets per {}", period.as_str())
            }
            LimitsError::BudgetTooLarge { account, period, limit_milli } => write!(
                f,
                "{account}: the budget per {} ({} milli-units) is over the largest supported, {} milli-units",
                period.as_str(),
                limit_milli,
                MAX_BUDGET_MILLI
            ),
            LimitsError::TooManyAccounts(n) => write!(f, "{n} accounts are more than the limits can index"),
        }
    }
}

impl std::error::Error for LimitsError {}

/// Checks one account's spec.
pub(super) fn validate(label: &AccountLabel, spec: &LimitSpec) -> Result<(), LimitsError> {
    if let Some(rate) = spec.rate {
        if !(rate.per_second.is_finite() && rate.per_second > 0.0) || rate.burst == 0 {
            return Err(LimitsError::InvalidRate {
                account: label.clone(),
                per_second: rate.per_second,
                burst: rate.burst,
            });
        }
    }
    let mut seen = [false; 4];
    for b in &spec.budgets {
        if std::mem::replace(&mut seen[b.period.slot()], true) {
            return Err(LimitsError::DuplicatePeriod {
                account: label.clone(),
                period: b.period,
            });
        }
        if b.limit_milli > MAX_BUDGET_MILLI {
            return Err(LimitsError::BudgetTooLarge {
                account: label.clone(),
                period: b.period,
                limit_milli: b.limit_milli,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milli_conversion() {
        assert_eq!(to_milli(1.0), Some(1_000));
        assert_eq!(to_milli(0.25), Some(250));
        assert_eq!(to_milli(0.0004), Some(0));
        assert_eq!(to_milli(2.0006), Some(2_001));
        assert_eq!(to_milli(-0.5), None);
        assert_eq!(to_milli(f64::NAN), None);
        assert_eq!(to_milli(f64::INFINITY), None);
        assert_eq!(to_milli(1e13), None);
    }

    #[test]
    fn label_quotes_and_escapes_the_name() {
        assert_eq!(
            AccountLabel::new(AccountKind::Key, "eng").to_string(),
            r#"key "eng""#
        );
        assert_eq!(
            AccountLabel::new(AccountKind::Team, "a\"b\n").to_string(),
            r#"team "a\"b\n""#
        );
    }

    #[test]
    fn validation() {
        let l = AccountLabel::new(AccountKind::Key, "k");
        let rate = |per_second, burst| LimitSpec {
            rate: Some(RateSpec { per_second, burst }),
            ..Default::default()
        };
        assert!(validate(&l, &rate(1.0, 1)).is_ok());
        for bad in [
            rate(0.0, 1),
            rate(-1.0, 5),
            rate(f64::NAN, 5),
            rate(f64::INFINITY, 5),
            rate(1.0, 0),
        ] {
            assert!(
                matches!(validate(&l, &bad), Err(LimitsError::InvalidRate { .. })),
                "{bad:?}"
            );
        }
        let day = |limit_milli| BudgetSpec {
            period: Period::Day,
            limit_milli,
        };
        let two = LimitSpec {
            budgets: vec![day(1), day(2)],
            ..Default::default()
        };
        assert_eq!(
            validate(&l, &two).map_err(|e| e.to_string()),
            Err(r#"key "k" has two budgets per day"#.to_string())
        );
        let huge = LimitSpec {
            budgets: vec![day(MAX_BUDGET_MILLI + 1)],
            ..Default::default()
        };
        assert!(matches!(
            validate(&l, &huge),
            Err(LimitsError::BudgetTooLarge { .. })
        ));
        let zero = LimitSpec {
            budgets: vec![day(0)],
            max_concurrent: Some(0),
            ..Default::default()
        };
        assert!(validate(&l, &zero).is_ok());
    }
}
