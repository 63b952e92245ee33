//! The `Origin` rule of upgrades (RFC 6454 origins, RFC 6455 §4.2.1 item 8 and §10.2):
//! an allow-list checked before the handler's upgrade hook; a refused upgrade gets
//! HTTP 403.

/// A parsed `scheme://host[:port]` origin: scheme and host lower-cased, the port made
/// explicit (80 for http/ws, 443 for https/wss) so `https://a.example` and
/// `https://a.example:443` are the same origin while ports otherwise compare exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parse an origin as browsers send it (no path, query or user info); `None` for
    /// anything else, including the opaque origin `null`.
    pub fn parse(s: &str) -> Option<Origin> {
        let (scheme, rest) = s.trim().split_once("://")?;
        let valid_scheme = scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if scheme.is_empty() || !valid_scheme || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']')?;
                (format!("[{addr}]"), after)
            }
            None => match rest.rfind(':') {
                Some(i) => (rest[..i].to_owned(), &rest[i..]),
                None => (rest.to_owned(), ""),
            },
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return None;
        }
        let scheme = scheme.to_ascii_lowercase();
        let port = match port {
            "" => match scheme.as_str() {
                "http" | "ws" => Some(80),
                "https" | "wss" => Some(443),
                _ => None,
            },
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        Some(Origin {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

/// The `Origin` rule of upgrades: an allow-list (empty: any origin) and whether a
/// request without `Origin` (a non-browser client) is refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginPolicy {
    /// The origins allowed; empty: any.
    pub allowed: Vec<Origin>,
    /// Refuse upgrades that carry no `Origin` header.
    pub require: bool,
}

impl OriginPolicy {
    /// A policy allowing exactly `allowed` (none: any), requiring `Origin` if `require`.
    ///
    /// # Errors
    /// The first entry that is not a `scheme://host[:port]` origin, quoted.
    pub fn new<S: AsRef<str>>(allowed: &[S], require: bool) -> Result<Self, String> {
        let allowed = allowed
            .iter()
            .map(|a| {
                Origin::parse(a.as_ref()).ok_or_else(|| {
                    format!(
                        "an allowed origin must be scheme://host[:port], got {:?}",
                        a.as_ref()
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(OriginPolicy { allowed, require })
    }

    /// Whether an upgrade carrying this `Origin` (or none) may proceed.
    pub fn permits(&self, origin: Option<&str>) -> bool {
        match origin {
            None => !self.require,
            Some(_) if self.allowed.is_empty() => true,
            Some(o) => Origin::parse(o).is_some_and(|o| self.allowed.contains(&o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_and_host_case_insensitively_ports_exactly() {
        let p =
            OriginPolicy::new(&["https://App.Example.com", "http://[::1]:8080"], false).unwrap();
        assert!(p.permits(Some("https://app.example.com")));
        assert!(p.permits(Some("HTTPS://APP.EXAMPLE.COM:443")));
        assert!(p.permits(Some("http://[::1]:8080")));
        assert!(!p.permits(Some("https://app.example.com:8443")));
        assert!(!p.permits(Some("http://app.example.com")));
        assert!(!p.permits(Some("https://evil.example.com")));
        assert!(!p.permits(Some("https://app.example.com.evil.com")));
        assert!(!p.permits(Some("null")));
        assert!(p.permits(None));
        let any = OriginPolicy::default();
        assert!(any.permits(Some("https://x")) && any.permits(None));
        let required = OriginPolicy::new::<&str>(&[], true).unwrap();
        assert!(!required.permits(None) && required.permits(Some("https://x")));
        assert!(OriginPolicy::new(&["https://a/path"], false).is_err());
        assert!(OriginPolicy::new(&["a.example"], false).is_err());
        assert!(OriginPolicy::new(&["https://a:99999"], false).is_err());
    }
}
