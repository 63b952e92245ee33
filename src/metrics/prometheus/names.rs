//! Metric name prefixes and constant labels: what the text format allows
//! (`[a-zA-Z_:][a-zA-Z0-9_:]*` names, `[a-zA-Z_][a-zA-Z0-9_]*` label names, `__` reserved
//! by Prometheus) and which label names ringcast's own samples use.

/// Label names the collector uses itself (plus every name starting with `__`): a
/// constant label may not take them, or a sample would carry the name twice.
/// `quantile` is not used today but is the text format's own summary label.
pub const RESERVED_LABELS: [&str; 10] = [
    "shard",
    "reason",
    "status",
    "le",
    "quantile",
    "version",
    "backend",
    "result",
    "action",
    "transport",
];

/// Check a metric name prefix: `[a-zA-Z_:][a-zA-Z0-9_:]*`, or empty (no prefix).
pub fn validate_prefix(prefix: &str) -> Result<(), String> {
    let ok = prefix.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid metrics prefix {prefix:?}: must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        ))
    }
}

/// Check a constant label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`, not
/// one of [`RESERVED_LABELS`].
pub fn validate_label_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "invalid label name {name:?}: must match [a-zA-Z_][a-zA-Z0-9_]*"
        ));
    }
    if name.starts_with("__") {
        return Err(format!(
            "invalid label name {name:?}: names starting with __ are reserved"
        ));
    }
    if RESERVED_LABELS.contains(&name) {
        return Err(format!(
            "invalid label name {name:?}: reserved for ringcast's own labels ({})",
            RESERVED_LABELS.join(", ")
        ));
    }
    Ok(())
}

/// Parse one `--metrics-label` argument, `name=value` (the value may contain `=` and any
/// UTF-8; it may not be empty, since Prometheus treats an empty value as no label).
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid label {s:?}: expected name=value"))?;
    let name = name.trim();
    validate_label_name(name)?;
    if value.is_empty() {
        return Err(format!("invalid label {s:?}: the value is empty"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Check a whole set of constant labels: each name valid, no name twice.
pub fn validate_labels(labels: &[(String, String)]) -> Result<(), String> {
    for (i, (name, _)) in labels.iter().enumerate() {
        validate_label_name(name)?;
        if labels[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("label {name:?} given more than once"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_label_accepts_and_rejects() {
        assert_eq!(parse_label("env=prod"), Ok(("env".into(), "prod".into())));
        assert_eq!(parse_label("_x1=a=b"), Ok(("_x1".into(), "a=b".into())));
        assert_eq!(
            parse_label("region=eu west \"1\""),
            Ok(("region".into(), "eu west \"1\"".into()))
        );
        for bad in [
            "noequals",
            "=v",
            "1abc=v",
            "a-b=v",
            "a.b=v",
            "é=v",
            "__name__=v",
            "__x=v",
            "le=1",
            "shard=2",
            "reason=x",
            "status=x",
            "version=x",
            "backend=x",
            "quantile=x",
            "env=",
        ] {
            assert!(parse_label(bad).is_err(), "{bad} accepted");
        }
        let err = parse_label("a-b=v").unwrap_err();
        assert!(err.contains("[a-zA-Z_][a-zA-Z0-9_]*"), "{err}");
    }
}
