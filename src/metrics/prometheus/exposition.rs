//! The Prometheus text exposition format (version 0.0.4): `# HELP` and `# TYPE` lines,
//! samples with the prefix and constant labels applied, label value escaping and exact
//! decimal formatting of values kept in integer base units.

use std::fmt::{self, Write as _};

/// Escape a label value for the text format: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `value / 10^decimals` as an exact decimal without trailing zeros (`1500, 3` → `1.5`).
pub(super) fn fmt_scaled(value: u64, decimals: u32) -> String {
    let div = 10u64.pow(decimals);
    let (int, frac) = (value / div, value % div);
    if frac == 0 {
        return int.to_string();
    }
    let frac = format!("{frac:0width$}", width = decimals as usize);
    format!("{int}.{}", frac.trim_end_matches('0'))
}

/// How a value kept in an integer base unit is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unit {
    /// Kept in nanoseconds, exposed in seconds (exact decimals).
    Seconds,
    /// Exposed as kept (recipients, bytes).
    Plain,
}

impl Unit {
    pub(super) fn fmt(self, v: u64) -> String {
        match self {
            Unit::Seconds => fmt_scaled(v, 9),
            Unit::Plain => v.to_string(),
        }
    }
}

/// Writes families into one text, with the prefix and constant labels applied.
pub(super) struct Exposition<'a> {
    pub(super) out: String,
    prefix: &'a str,
    /// `k="v",` for every constant label, already escaped.
    const_labels: &'a str,
}

impl<'a> Exposition<'a> {
    /// An empty text for metric names `{prefix}_{name}` (`name` alone when `prefix` is
    /// empty) whose samples all start with `const_labels` (`k="v",` each, escaped).
    pub(super) fn new(prefix: &'a str, const_labels: &'a str) -> Self {
        Self {
            out: String::with_capacity(8 * 1024),
            prefix,
            const_labels,
        }
    }

    fn name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}_{name}", self.prefix)
        }
    }

    /// The `# HELP` and `# TYPE` lines of family `name` (`counter`, `gauge`, `histogram`).
    pub(super) fn family(&mut self, name: &str, typ: &str, help: &str) {
        let full = self.name(name);
        let _ = writeln!(self.out, "# HELP {full} {help}");
        let _ = writeln!(self.out, "# TYPE {full} {typ}");
    }

    /// One sample line: the constant labels first, then `labels` (values escaped here).
    pub(super) fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl fmt::Display) {
        let full = self.name(name);
        self.out.push_str(&full);
        if !self.const_labels.is_empty() || !labels.is_empty() {
            self.out.push('{');
            self.out.push_str(self.const_labels);
            for (k, v) in labels {
                let _ = write!(self.out, "{k}=\"{}\",", escape_label_value(v));
            }
            self.out.pop(); // the trailing comma
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_formatting_is_exact() {
        assert_eq!(fmt_scaled(0, 9), "0");
        assert_eq!(fmt_scaled(10_000, 9), "0.00001");
        assert_eq!(fmt_scaled(1_500_000_000, 9), "1.5");
        assert_eq!(fmt_scaled(86_400_000_000_000, 9), "86400");
        assert_eq!(fmt_scaled(1, 9), "0.000000001");
        assert_eq!(fmt_scaled(u64::MAX, 9), "18446744073.709551615");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label_value("plain"), "plain");
        assert_eq!(escape_label_value(r"a\b"), r"a\\b");
        assert_eq!(escape_label_value("say \"hi\""), r#"say \"hi\""#);
        assert_eq!(escape_label_value("two\nlines"), r"two\nlines");
        assert_eq!(escape_label_value("ünï ✓"), "ünï ✓");
    }
}
