//! The Prometheus text exposition format (version 0.0.4): families with `# HELP` and `# TYPE`,
//! counters, gauges and histograms with cumulative `le` buckets, label values escaped.
//!
//! Owns: the syntax, so a new family is one call and its samples one call each. Must never:
//! write a sample outside its family, or an unescaped label value (server and tool names come
//! from config files and upstreams).

use std::fmt::Write;

use hdrhistogram::Histogram;

/// What `Content-Type` a scrape gets.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A page of families being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// The samples of one counter or gauge family.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

/// The series of one histogram family.
pub struct Histograms<'a> {
    out: &'a mut String,
    name: &'a str,
}

/// One histogram series: cumulative counts at each upper bound (ascending), the sum of the
/// observed values and their count (the `+Inf` bucket).
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    pub cumulative: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts a counter family; `name` must end in `_total`.
    pub fn counter<'a>(&'a mut self, name: &'a str, help: &str) -> Family<'a> {
        debug_assert!(
            name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        self.head(name, help, "counter");
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn gauge<'a>(&'a mut self, name: &'a str, help: &str) -> Family<'a> {
        self.head(name, help, "gauge");
        Family {
            out: &mut self.out,
            name,
        }
    }

    pub fn histogram<'a>(&'a mut self, name: &'a str, help: &str) -> Histograms<'a> {
        self.head(name, help, "histogram");
        Histograms {
            out: &mut self.out,
            name,
        }
    }

    /// The page written so far.
    pub fn into_text(self) -> String {
        self.out
    }

    fn head(&mut self, name: &str, help: &str, kind: &str) {
        debug_assert!(valid_name(name, true), "metric name {name:?}");
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }
}

impl Family<'_> {
    /// One sample with these labels (names are code constants; values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        write_sample(self.out, self.name, "", labels, None, value);
        self
    }
}

impl Histograms<'_> {
    /// One series with these labels.
    pub fn series(&mut self, labels: &[(&str, &str)], buckets: &Buckets) -> &mut Self {
        let mut le = String::new();
        for &(bound, count) in &buckets.cumulative {
            le.clear();
            push_value(&mut le, bound);
            write_sample(
                self.out,
                self.name,
                "_bucket",
                labels,
                Some(&le),
                count as f64,
            );
        }
        write_sample(
            self.out,
            self.name,
            "_bucket",
            labels,
            Some("+Inf"),
            buckets.count as f64,
        );
        write_sample(self.out, self.name, "_sum", labels, None, buckets.sum);
        write_sample(
            self.out,
            self.name,
            "_count",
            labels,
            None,
            buckets.count as f64,
        );
        self
    }
}

impl Buckets {
    /// The buckets of an HDR histogram of integer values at the upper `bounds` (same unit as
    /// the values, ascending), each bound and the sum divided by `per_unit` (1e9 for
    /// nanoseconds shown as seconds: dividing keeps `le` values short, as `0.00001`). Values
    /// are placed by the low end of their HDR equivalence range, so the figures are as precise
    /// as the histogram (3 significant digits here).
    pub fn from_hdr(h: &Histogram<u64>, bounds: &[u64], per_unit: f64) -> Buckets {
        let mut counts = vec![0u64; bounds.len()];
        let mut sum = 0f64;
        for v in h.iter_recorded() {
            let value = h.lowest_equivalent(v.value_iterated_to());
            let n = v.count_at_value();
            sum += h.median_equivalent(value) as f64 * n as f64;
            if let Some(i) = bounds.iter().position(|&b| value <= b) {
                counts[i] += n;
            }
        }
        let mut running = 0;
        let cumulative = bounds
            .iter()
            .zip(counts)
            .map(|(&bound, n)| {
                running += n;
                (bound as f64 / per_unit, running)
            })
            .collect();
        Buckets {
            cumulative,
            sum: sum / per_unit,
            count: h.len(),
        }
    }
}

fn write_sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    let extra = le.map(|le| ("le", le));
    let mut all = labels.iter().copied().chain(extra).peekable();
    if all.peek().is_some() {
        out.push('{');
        for (i, (label, text)) in all.enumerate() {
            debug_assert!(valid_name(label, false), "label name {label:?}");
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            for c in text.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    push_value(out, value);
    out.push('\n');
}

/// A sample value or bound as the format spells it: integers without a fraction, `+Inf`,
/// `-Inf`, `NaN`.
fn push_value(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`; label names the same without `:`.
fn valid_name(name: &str, metric: bool) -> bool {
    let ok = |c: char, first: bool| {
        c.is_ascii_alphabetic()
            || c == '_'
            || (metric && c == ':')
            || (!first && c.is_ascii_digit())
    };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| ok(c, true)) && chars.all(|c| ok(c, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut page = Exposition::new();
        page.counter("mcpgate_things_total", "Things.\nCounted \\ here.")
            .sample(&[("server", "a\"b\\c\nd")], 3.0)
            .sample(&[], 0.5);
        page.gauge("mcpgate_up", "Up.").sample(&[], f64::INFINITY);
        let text = page.into_text();
        assert_eq!(
            text,
            "# HELP mcpgate_things_total Things.\\nCounted \\\\ here.\n\
             # TYPE mcpgate_things_total counter\n\
             mcpgate_things_total{server=\"a\\\"b\\\\c\\nd\"} 3\n\
             mcpgate_things_total 0.5\n\
             # HELP mcpgate_up Up.\n\
             # TYPE mcpgate_up gauge\n\
             mcpgate_up +Inf\n"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
        for v in [500, 1_500, 1_500, 20_000, 5_000_000] {
            h.record(v).unwrap();
        }
        let b = Buckets::from_hdr(&h, &[1_000, 10_000, 100_000], 1e9);
        let counts: Vec<u64> = b.cumulative.iter().map(|&(_, c)| c).collect();
        assert_eq!(counts, [1, 3, 4]);
        assert_eq!(b.count, 5);
        assert!((b.sum - 0.005_023_5).abs() < 0.000_01, "{}", b.sum);
        let mut page = Exposition::new();
        page.histogram("mcpgate_t_seconds", "T.")
            .series(&[("kind", "x")], &b);
        let text = page.into_text();
        assert!(text.contains("mcpgate_t_seconds_bucket{kind=\"x\",le=\"0.000001\"} 1\n"));
        assert!(text.contains("mcpgate_t_seconds_bucket{kind=\"x\",le=\"0.00001\"} 3\n"));
        assert!(text.contains("mcpgate_t_seconds_bucket{kind=\"x\",le=\"+Inf\"} 5\n"));
        assert!(text.contains("mcpgate_t_seconds_count{kind=\"x\"} 5\n"));
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("mcpgate_a:b_1", true));
        assert!(!valid_name("mcpgate_a:b", false));
        assert!(!valid_name("1abc", true));
        assert!(!valid_name("", true));
    }
}
