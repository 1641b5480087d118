//! Why a request or call was refused, worded for the 429 body and the `Retry-After` header.

use std::fmt;
use std::time::Duration;

use super::period::Period;
use super::spec::{AccountLabel, MILLI};

/// A refusal: which account said no, and why. Nothing was charged anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    pub account: AccountLabel,
    pub kind: RefusalKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RefusalKind {
    /// The token bucket is empty; a cell frees in `retry_after`.
    Rate {
        retry_after: Duration,
        per_second: f64,
        burst: u32,
    },
    /// The budget for the current period cannot cover the call's cost.
    Budget {
        period: Period,
        limit_milli: u64,
        cost_milli: u64,
        renews_in: Duration,
    },
    /// `max` calls are already in flight.
    Concurrency { max: u32 },
}

impl Refusal {
    /// Seconds for the `Retry-After` header: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let wait = match self.kind {
            RefusalKind::Rate { retry_after, .. } => retry_after,
            RefusalKind::Budget { renews_in, .. } => renews_in,
            // No way to know when a call ends; a second is a polite guess.
            RefusalKind::Concurrency { .. } => Duration::from_secs(1),
        };
        ceil_secs(wait).max(1)
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let account = &self.account;
        match self.kind {
            RefusalKind::Rate { per_second, burst, .. } => write!(
                f,
                "{account} is over its rate limit ({per_second} per second, burst {burst}); retry in {}",
                Human(self.retry_after_secs())
            ),
            RefusalKind::Budget { period, limit_milli, cost_milli, renews_in } => {
                let limit = Units(limit_milli);
                let per = period.as_str();
                if cost_milli > limit_milli {
                    return write!(
                        f,
                        "budget too small: this call costs {} but {account} has {limit} per {per}",
                        Units(cost_milli)
                    );
                }
                write!(f, "budget exhausted: {account} has used its {limit} per {per}")?;
                if cost_milli != MILLI {
                    write!(f, " (this call costs {})", Units(cost_milli))?;
                }
                write!(f, "; it renews in {}", Human(ceil_secs(renews_in).max(1)))
            }
            RefusalKind::Concurrency { max } => {
                let calls = if max == 1 { "call" } else { "calls" };
                write!(f, "{account} has {max} {calls} in flight, its limit")
            }
        }
    }
}

impl std::error::Error for Refusal {}

/// Milli-units shown as units: `100 units`, `1 unit`, `2.5 units`, `0.001 units`.
struct Units(u64);

impl fmt::Display for Units {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / MILLI, self.0 % MILLI);
        if frac == 0 {
            let noun = if whole == 1 { "unit" } else { "units" };
            return write!(f, "{whole} {noun}");
        }
        let digits = format!("{frac:03}");
        write!(f, "{whole}.{} units", digits.trim_end_matches('0'))
    }
}

/// Whole seconds as the two largest units: `45 s`, `3 min 5 s`, `3 h 12 min`, `2 d 4 h`.
struct Human(u64);

impl fmt::Display for Human {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let (big, big_unit, small, small_unit) = match s {
            0..=59 => return write!(f, "{s} s"),
            60..=3_599 => (s / 60, "min", s % 60, "s"),
            3_600..=86_399 => (s / 3_600, "h", s % 3_600 / 60, "min"),
            _ => (s / 86_400, "d", s % 86_400 / 3_600, "h"),
        };
        if small == 0 {
            write!(f, "{big} {big_unit}")
        } else {
            write!(f, "{big} {big_unit} {small} {small_unit}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::limits::AccountKind;

    fn refusal(kind: AccountKind, name: &str, what: RefusalKind) -> Refusal {
        Refusal {
            account: AccountLabel::new(kind, name),
            kind: what,
        }
    }

    #[test]
    fn messages() {
        let rate = refusal(
            AccountKind::Key,
            "eng",
            RefusalKind::Rate {
                retry_after: Duration::from_millis(200),
                per_second: 10.0,
                burst: 20,
            },
        );
        assert_eq!(
            rate.to_string(),
            r#"key "eng" is over its rate limit (10 per second, burst 20); retry in 1 s"#
        );
        assert_eq!(rate.retry_after_secs(), 1);

        let renews_in = Duration::from_secs(3 * 3_600 + 12 * 60 + 30);
        let budget = |cost_milli| {
            refusal(
                AccountKind::Team,
                "platform",
                RefusalKind::Budget {
                    period: Period::Day,
                    limit_milli: 100_000,
                    cost_milli,
                    renews_in,
                },
            )
        };
        assert_eq!(
            budget(1_000).to_string(),
            r#"budget exhausted: team "platform" has used its 100 units per day; it renews in 3 h 12 min"#
        );
        assert_eq!(budget(1_000).retry_after_secs(), 11_550);
        assert_eq!(
            budget(2_500).to_string(),
            r#"budget exhausted: team "platform" has used its 100 units per day (this call costs 2.5 units); it renews in 3 h 12 min"#
        );
        assert_eq!(
            budget(150_000).to_string(),
            r#"budget too small: this call costs 150 units but team "platform" has 100 units per day"#
        );

        let conc = refusal(
            AccountKind::Key,
            "eng",
            RefusalKind::Concurrency { max: 64 },
        );
        assert_eq!(
            conc.to_string(),
            r#"key "eng" has 64 calls in flight, its limit"#
        );
        assert_eq!(conc.retry_after_secs(), 1);
        let one = refusal(
            AccountKind::Customer,
            "acme",
            RefusalKind::Concurrency { max: 1 },
        );
        assert_eq!(
            one.to_string(),
            r#"customer "acme" has 1 call in flight, its limit"#
        );
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one() {
        let rate = |retry_after| {
            refusal(
                AccountKind::Key,
                "k",
                RefusalKind::Rate {
                    retry_after,
                    per_second: 0.5,
                    burst: 1,
                },
            )
            .retry_after_secs()
        };
        assert_eq!(rate(Duration::ZERO), 1);
        assert_eq!(rate(Duration::from_nanos(1)), 1);
        assert_eq!(rate(Duration::from_millis(1_001)), 2);
        assert_eq!(rate(Duration::from_secs(2)), 2);
    }

    #[test]
    fn units_and_durations() {
        let u = |m| Units(m).to_string();
        assert_eq!(
            (u(1_000), u(0), u(2_500), u(1), u(10_250)),
            (
                "1 unit".into(),
                "0 units".into(),
                "2.5 units".into(),
                "0.001 units".into(),
                "10.25 units".into()
            )
        );
        let h = |s| Human(s).to_string();
        assert_eq!(h(0), "0 s");
        assert_eq!(h(59), "59 s");
        assert_eq!(h(60), "1 min");
        assert_eq!(h(185), "3 min 5 s");
        assert_eq!(h(3_600), "1 h");
        assert_eq!(h(11_520), "3 h 12 min");
        assert_eq!(h(2 * 86_400 + 4 * 3_600 + 59), "2 d 4 h");
    }
}
