//! Budget periods on the UTC calendar: which period a Unix second falls in, and when it ends.
//!
//! Written out by hand (no date crate): the hot path needs only "period index, start, end",
//! and each core caches the current span so the calendar is computed once per period.

use std::cell::Cell;

const MINUTE: u64 = 60;
const HOUR: u64 = 3_600;
const DAY: u64 = 86_400;

/// The length of a budget's period. Periods are aligned to the UTC calendar: a day runs from
/// midnight to midnight UTC, a month from the 1st to the 1st.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Period {
    Minute,
    Hour,
    Day,
    Month,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Minute, Period::Hour, Period::Day, Period::Month];

    /// The word used in messages and config ("per day").
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Minute => "minute",
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// Position in per-account arrays that hold one entry per period.
    pub(super) fn slot(self) -> usize {
        self as usize
    }
}

/// One period: its index counted from the Unix epoch, and its bounds in Unix seconds
/// (`start` inclusive, `end` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub index: u64,
    pub start: u64,
    pub end: u64,
}

impl Span {
    fn contains(&self, secs: u64) -> bool {
        self.start <= secs && secs < self.end
    }
}

/// The period of kind `period` that contains `unix_secs`.
pub(super) fn span(period: Period, unix_secs: u64) -> Span {
    let fixed = |len: u64| {
        let index = unix_secs / len;
        Span {
            index,
            start: index * len,
            end: (index + 1).saturating_mul(len),
        }
    };
    match period {
        Period::Minute => fixed(MINUTE),
        Period::Hour => fixed(HOUR),
        Period::Day => fixed(DAY),
        Period::Month => month_span(unix_secs),
    }
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Leap years among 1..year (the Gregorian rule applied backwards; only differences are used).
fn leap_years_before(year: u64) -> u64 {
    let y = year - 1;
    y / 4 - y / 100 + y / 400
}

/// Days from 1970-01-01 to `year`-01-01, for `year` >= 1970.
fn days_before_year(year: u64) -> u64 {
    365 * (year - 1970) + leap_years_before(year) - leap_years_before(1970)
}

fn month_len(year: u64, month0: u64) -> u64 {
    match month0 {
        1 if is_leap(year) => 29,
        1 => 28,
        3 | 5 | 8 | 10 => 30,
        _ => 31,
    }
}

fn month_span(unix_secs: u64) -> Span {
    let days = unix_secs / DAY;
    // A Gregorian year averages 146097/400 days, so this guess is within one year; the loops
    // settle it.
    let mut year = 1970 + days.saturating_mul(400) / 146_097;
    while year > 1970 && days_before_year(year) > days {
        year -= 1;
    }
    while days_before_year(year + 1) <= days {
        year += 1;
    }
    let mut day_in_month = days - days_before_year(year);
    let mut month0 = 0;
    while day_in_month >= month_len(year, month0) {
        day_in_month -= month_len(year, month0);
        month0 += 1;
    }
    let first_day = days - day_in_month;
    Span {
        index: (year - 1970) * 12 + month0,
        start: first_day * DAY,
        end: (first_day + month_len(year, month0)).saturating_mul(DAY),
    }
}

/// A core's memo of the current span of each period kind, so the calendar is worked out once
/// per period instead of once per call.
pub(super) struct PeriodCache {
    spans: [Cell<Span>; 4],
}

impl PeriodCache {
    pub fn new() -> PeriodCache {
        // start > end: contains() is false, so the first lookup computes.
        let empty = Span {
            index: 0,
            start: 1,
            end: 0,
        };
        PeriodCache {
            spans: std::array::from_fn(|_| Cell::new(empty)),
        }
    }

    pub fn get(&self, period: Period, unix_secs: u64) -> Span {
        let cell = &self.spans[period.slot()];
        let cached = cell.get();
        if cached.contains(unix_secs) {
            return cached;
        }
        let fresh = span(period, unix_secs);
        cell.set(fresh);
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_periods() {
        // 2026-04-30T20:48:00Z
        let t = 1_777_582_080;
        assert_eq!(
            span(Period::Minute, t + 59),
            Span {
                index: t / 60,
                start: t,
                end: t + 60
            }
        );
        let hour = span(Period::Hour, t);
        assert_eq!((hour.start, hour.end), (t - 48 * 60, t + 12 * 60));
        let day = span(Period::Day, t);
        assert_eq!(
            (day.start, day.end),
            (t - (20 * 60 + 48) * 60, t + (3 * 60 + 12) * 60)
        );
    }

    #[test]
    fn month_rolls_over_at_new_year() {
        let last_second = 1_798_761_599; // 2026-12-31T23:59:59Z
        let dec = span(Period::Month, last_second);
        let jan = span(Period::Month, last_second + 1);
        assert_eq!(dec.index, (2026 - 1970) * 12 + 11);
        assert_eq!(jan.index, dec.index + 1);
        assert_eq!(dec.end, last_second + 1);
        assert_eq!(jan.start, last_second + 1);
        assert_eq!(dec.end - dec.start, 31 * DAY);
        assert_eq!(jan.end - jan.start, 31 * DAY);
    }

    #[test]
    fn february_in_leap_and_common_years() {
        let feb_2028 = span(Period::Month, 1_835_438_400); // 2028-02-29T12:00Z
        assert_eq!(feb_2028.start, 1_832_976_000); // 2028-02-01
        assert_eq!(feb_2028.end, 1_835_481_600); // 2028-03-01
        assert_eq!(feb_2028.end - feb_2028.start, 29 * DAY);
        let feb_2100 = span(Period::Month, 4_107_456_000); // 2100-02-28, not a leap year
        assert_eq!(feb_2100.end, 4_107_542_400); // 2100-03-01
        assert_eq!(feb_2100.end - feb_2100.start, 28 * DAY);
        let feb_2000 = span(Period::Month, 951_782_400); // 2000-02-29, a leap year
        assert_eq!(feb_2000.end - feb_2000.start, 29 * DAY);
    }

    /// Walks the calendar day by day from 1970 to 2400 and checks every month's span.
    #[test]
    fn month_matches_a_day_by_day_walk() {
        let mut day = 0u64;
        let mut index = 0u64;
        for year in 1970..2400 {
            for month0 in 0..12 {
                let len = month_len(year, month0);
                for d in [0, len / 2, len - 1] {
                    let s = span(Period::Month, (day + d) * DAY + 12_345);
                    assert_eq!(
                        s,
                        Span {
                            index,
                            start: day * DAY,
                            end: (day + len) * DAY
                        },
                        "{year}-{month0}"
                    );
                }
                day += len;
                index += 1;
            }
        }
    }

    #[test]
    fn far_future_does_not_panic() {
        let s = span(Period::Month, u64::MAX);
        assert!(s.start < s.end && s.index > 0);
        assert_eq!(span(Period::Minute, u64::MAX).end, u64::MAX);
    }

    #[test]
    fn cache_follows_the_clock() {
        let cache = PeriodCache::new();
        let t = 1_798_761_599;
        assert_eq!(cache.get(Period::Month, t), span(Period::Month, t));
        assert_eq!(cache.get(Period::Month, t + 1), span(Period::Month, t + 1));
        assert_eq!(cache.get(Period::Day, t), span(Period::Day, t));
    }
}
