//! Wall-clock times as the audit log writes and reads them: RFC 3339 in UTC with
//! milliseconds (`2025-06-01T12:34:56.789Z`), from and to microseconds since the Unix epoch.
//!
//! Owns: the calendar arithmetic (proleptic Gregorian, UTC, no leap seconds). Must never: read
//! the clock more than once per record (callers take it once and pass it in).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now (0 if the clock is before 1970).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Days since 1970-01-01 of a civil date (months 1–12).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years counted from March, so the leap day ends a year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The civil date (year, month 1–12, day 1–31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Writes times as `YYYY-MM-DDTHH:MM:SS.mmmZ`, keeping the date of the last day it wrote: the
/// log thread writes thousands of records a second, nearly all of the same day.
#[derive(Debug, Clone)]
pub struct TimeWriter {
    /// Days since the epoch of `date`; `i64::MIN` before the first write.
    day: i64,
    /// `YYYY-MM-DDT`.
    date: [u8; 11],
}

impl Default for TimeWriter {
    fn default() -> Self {
        TimeWriter {
            day: i64::MIN,
            date: [0; 11],
        }
    }
}

/// `n` (below 10^width) as `width` ASCII digits.
fn put_digits(out: &mut [u8], mut n: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

impl TimeWriter {
    /// Appends `unix_micros` as `YYYY-MM-DDTHH:MM:SS.mmmZ` (years past 9999 wrap their digits;
    /// the clock is read from the system, which does not get there).
    pub fn write(&mut self, out: &mut Vec<u8>, unix_micros: u64) {
        let secs = unix_micros / 1_000_000;
        let day = (secs / 86_400) as i64;
        if day != self.day {
            let (year, month, day_of_month) = civil_from_days(day);
            put_digits(&mut self.date[0..4], year.rem_euclid(10_000) as u64);
            put_digits(&mut self.date[5..7], u64::from(month));
            put_digits(&mut self.date[8..10], u64::from(day_of_month));
            self.date[4] = b'-';
            self.date[7] = b'-';
            self.date[10] = b'T';
            self.day = day;
        }
        let of_day = secs % 86_400;
        let mut time = *b"00:00:00.000Z";
        put_digits(&mut time[0..2], of_day / 3600);
        put_digits(&mut time[3..5], of_day / 60 % 60);
        put_digits(&mut time[6..8], of_day % 60);
        put_digits(&mut time[9..12], unix_micros / 1000 % 1000);
        out.extend_from_slice(&self.date);
        out.extend_from_slice(&time);
    }
}

/// `unix_micros` as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339_millis(unix_micros: u64) -> String {
    let mut out = Vec::with_capacity(24);
    TimeWriter::default().write(&mut out, unix_micros);
    // Only ASCII digits and punctuation were written.
    String::from_utf8(out).unwrap_or_default()
}

/// Reads `len` ASCII digits at `at`.
fn digits(text: &[u8], at: usize, len: usize) -> Option<u32> {
    let field = text.get(at..at + len)?;
    field.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

/// Reads an RFC 3339 time (`2025-06-01T12:34:56Z`, with optional fraction and a `Z` or
/// `±HH:MM` offset) or a bare date (`2025-06-01`, midnight UTC) as microseconds since the
/// Unix epoch; `None` when it is neither, or before 1970.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.as_bytes();
    let (year, month, day) = (digits(t, 0, 4)?, digits(t, 5, 2)?, digits(t, 8, 2)?);
    if t.get(4) != Some(&b'-') || t.get(7) != Some(&b'-') {
        return None;
    }
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => return None,
    };
    if day == 0 || day > days_in_month {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let mut micros: i64 = days * 86_400_000_000;
    if t.len() == 10 {
        return u64::try_from(micros).ok();
    }
    if !matches!(t.get(10), Some(b'T' | b't' | b' ')) || t.get(13) != Some(&b':') {
        return None;
    }
    let (hour, minute) = (digits(t, 11, 2)?, digits(t, 14, 2)?);
    let second = digits(t, 17, 2)?;
    if t.get(16) != Some(&b':') || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    micros += (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * 1_000_000;
    let mut at = 19;
    if t.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        let mut fraction = 0i64;
        while let Some(&b) = t.get(at).filter(|b| b.is_ascii_digit()) {
            if at - start < 6 {
                fraction = fraction * 10 + i64::from(b - b'0');
            }
            at += 1;
        }
        if at == start {
            return None;
        }
        for _ in (at - start)..6 {
            fraction *= 10;
        }
        micros += fraction;
    }
    match t.get(at..)? {
        b"Z" | b"z" => {}
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (h, m) = (digits(t, at + 1, 2)?, digits(t, at + 4, 2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let offset = (i64::from(h) * 3600 + i64::from(m) * 60) * 1_000_000;
            // Local time = UTC + offset.
            micros -= if *sign == b'+' { offset } else { -offset };
        }
        _ => return None,
    }
    u64::try_from(micros).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_with_milliseconds() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // 2024-02-29T23:59:59.999999Z: a leap day, the last microsecond.
        assert_eq!(
            rfc3339_millis(1_709_251_199_999_999),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_millis(951_782_400_000_000),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn one_writer_follows_the_days() {
        let mut writer = TimeWriter::default();
        let mut out = Vec::new();
        // Across midnight, back again, and years apart: the kept date is never stale.
        for micros in [
            86_399_999_000,
            86_400_000_000,
            86_399_999_000,
            1_709_251_199_999_999,
            4_102_444_800_123_000,
        ] {
            out.clear();
            writer.write(&mut out, micros);
            let text = String::from_utf8(out.clone()).unwrap();
            assert_eq!(parse_rfc3339(&text), Some(micros / 1000 * 1000), "{text}");
        }
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for micros in [0, 1_709_251_199_999_000, 4_102_444_800_123_000] {
            assert_eq!(parse_rfc3339(&rfc3339_millis(micros)), Some(micros));
        }
        assert_eq!(parse_rfc3339("1970-01-02"), Some(86_400_000_000));
        assert_eq!(
            parse_rfc3339("1970-01-01T02:00:00+02:00"),
            Some(0),
            "local time minus its offset"
        );
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00.1234567Z"), Some(123_456));
    }

    #[test]
    fn refuses_what_is_not_a_time() {
        for bad in [
            "",
            "yesterday",
            "2025-13-01",
            "2025-02-29",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00",
            "2025-01-01T00:00:00.Z",
            "2025-01-01T00:00:00+0200",
            "1969-12-31T23:59:59Z",
            "2025-1-01",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
