//! Session ids and resume tokens.
//!
//! A session id is `SHARD-HEX32`: the shard that holds the session (so any shard can
//! route a resume to it without a shared table) and 128 random bits. The resume token
//! is `ID.HEX32`: the id and a secret of another 128 random bits, both from the OS RNG
//! (`getrandom`). The id is not secret (the handler may log it); the token is: its
//! `Debug` is redacted and nothing in ringcast logs it.

use std::fmt;

/// A session's public name: the shard holding it and 128 random bits. Displayed as
/// `SHARD-HEX32` (the `x-ringcast-session` header, [`crate::Context::session_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId {
    /// The shard that holds the session (0-based).
    pub shard: usize,
    /// 128 bits from the OS RNG.
    pub bits: u128,
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:032x}", self.shard, self.bits)
    }
}

impl SessionId {
    /// Parse `SHARD-HEX32`; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        let (shard, bits) = s.split_once('-')?;
        Some(SessionId {
            shard: shard.parse().ok().filter(|_| shard.len() <= 4)?,
            bits: hex128(bits)?,
        })
    }
}

/// A session's resume token: its id and a 128-bit secret. Displayed as `ID.HEX32`
/// (the `x-ringcast-resume-token` header); `Debug` shows the id only.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ResumeToken {
    pub id: SessionId,
    secret: u128,
}

impl fmt::Debug for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ResumeToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for ResumeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:032x}", self.id, self.secret)
    }
}

impl ResumeToken {
    /// A new session of `shard`: id and secret drawn from the OS RNG.
    ///
    /// # Errors
    /// The OS RNG failed (`getrandom`); the caller serves the connection without a
    /// session.
    pub fn generate(shard: usize) -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)?;
        let (id, secret) = bytes.split_at(16);
        Ok(ResumeToken {
            id: SessionId {
                shard,
                bits: u128::from_be_bytes(id.try_into().expect("16 bytes")),
            },
            secret: u128::from_be_bytes(secret.try_into().expect("16 bytes")),
        })
    }

    /// Parse `SHARD-HEX32.HEX32` as a client sent it; `None` for anything else (the
    /// client gets a fresh session and `x-ringcast-resume: unknown`).
    pub fn parse(s: &str) -> Option<Self> {
        let (id, secret) = s.split_once('.')?;
        Some(ResumeToken {
            id: SessionId::parse(id)?,
            secret: hex128(secret)?,
        })
    }

    /// True when `other` carries the same secret (compared without an early exit).
    pub fn matches(&self, other: &ResumeToken) -> bool {
        self.id == other.id && (self.secret ^ other.secret) == 0
    }
}

/// Exactly 32 lower- or upper-case hex digits.
fn hex128(s: &str) -> Option<u128> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_debug_hides_the_secret() {
        let t = ResumeToken::generate(3).unwrap();
        let shown = t.to_string();
        assert_eq!(ResumeToken::parse(&shown), Some(t));
        assert!(t.matches(&ResumeToken::parse(&shown).unwrap()));
        assert!(shown.starts_with(&format!("{}.", t.id)));
        let debug = format!("{t:?}");
        assert!(!debug.contains(&shown[shown.len() - 32..]), "{debug}");
        assert_ne!(ResumeToken::generate(3).unwrap(), t);
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "x",
            "0-00.00",
            "a-00000000000000000000000000000000.00000000000000000000000000000000",
            "0-0000000000000000000000000000000g.00000000000000000000000000000000",
            "+0-00000000000000000000000000000000.00000000000000000000000000000000x",
            "123456-00000000000000000000000000000000.00000000000000000000000000000000",
        ] {
            assert_eq!(ResumeToken::parse(bad), None, "{bad}");
        }
    }
}
