//! Bearer tokens of the rooms app: a [`Token`] that never prints itself, how a client
//! presents one (`Authorization: Bearer …` or `?token=…`), and a constant-time compare.

use crate::handler::UpgradeRequest;

/// A shared secret. `Debug` prints `Token(<redacted>)`, so a token cannot reach a log
/// through a derived `Debug` of a config or CLI struct.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl Token {
    /// A token given on the command line: 1..=1024 visible ASCII characters, none of
    /// which needs escaping in a query string (`&`, `=`, `#`, `%`, `+`, `?` are refused).
    pub fn parse(s: &str) -> Result<Token, String> {
        let ok = |b: u8| b.is_ascii_graphic() && !b"&=#%+?".contains(&b);
        if s.is_empty() || s.len() > 1024 || !s.bytes().all(ok) {
            return Err("a token must be 1..=1024 visible ASCII characters, none of &=#%+?".into());
        }
        Ok(Token(s.to_owned()))
    }

    /// A token read from a file (surrounding whitespace, e.g. the final newline, trimmed).
    pub fn from_file(path: &str) -> Result<Token, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
        Token::parse(text.trim()).map_err(|e| format!("{path:?}: {e}"))
    }

    /// Whether `presented` is this token, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        ct_eq(self.0.as_bytes(), presented.as_bytes())
    }
}

/// Constant-time equality: every byte of the longer input is examined whatever the
/// contents, so the time taken reveals only the lengths, never a matching prefix.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..n {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// The token a client presented: `Authorization: Bearer TOKEN` (scheme
/// case-insensitive) first, else the `token` query parameter (taken raw).
pub fn presented(request: &UpgradeRequest) -> Option<&str> {
    let bearer = request.header("authorization").and_then(|v| {
        let (scheme, token) = v.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    });
    bearer.or_else(|| {
        request
            .query
            .as_deref()?
            .split('&')
            .find_map(|pair| pair.strip_prefix("token="))
    })
}

/// An upgrade request to `/ws/a` with an optional query and `Authorization` header.
#[cfg(test)]
pub(crate) fn request_for_tests(query: Option<&str>, auth: Option<&str>) -> UpgradeRequest {
    UpgradeRequest {
        path: "/ws/a".into(),
        query: query.map(Into::into),
        authority: "127.0.0.1".into(),
        key: String::new(),
        origin: None,
        headers: auth
            .map(|a| vec![("authorization".to_string(), a.to_string())])
            .unwrap_or_default(),
        transport: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq_is_equality() {
        assert!(ct_eq(b"secret", b"secret"));
        assert!(!ct_eq(b"secret", b"secreT"));
        assert!(!ct_eq(b"secret", b"secret1"));
        assert!(!ct_eq(b"", b"x"));
        assert!(ct_eq(b"", b""));
    }

    #[test]
    fn tokens_are_validated_and_redacted() {
        assert!(Token::parse("").is_err() && Token::parse("a b").is_err());
        assert!(Token::parse("a&b").is_err());
        let t = Token::parse("s3cr3t-TOKEN_1").unwrap();
        assert!(!format!("{t:?}").contains("s3cr3t"));
        assert!(t.matches("s3cr3t-TOKEN_1") && !t.matches("s3cr3t"));
    }

    #[test]
    fn presented_from_header_or_query() {
        assert_eq!(
            presented(&super::request_for_tests(None, Some("Bearer abc"))),
            Some("abc")
        );
        assert_eq!(
            presented(&super::request_for_tests(None, Some("bearer  abc "))),
            Some("abc")
        );
        assert_eq!(
            presented(&super::request_for_tests(None, Some("Basic abc"))),
            None
        );
        assert_eq!(
            presented(&super::request_for_tests(Some("seq=1&token=xyz"), None)),
            Some("xyz")
        );
        assert_eq!(
            presented(&super::request_for_tests(Some("token=q"), Some("Bearer h"))),
            Some("h")
        );
        assert_eq!(
            presented(&super::request_for_tests(Some("tokens=1"), None)),
            None
        );
    }
}
