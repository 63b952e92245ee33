//! [`Sessions`]: a shard's table of the sessions it holds (id → the slot holding it),
//! the ids that expired recently (so a late resume is answered `expired`, not
//! `unknown`), the gauges, and the sockets on their way to or from another shard.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::hub::Adoption;
use crate::proto::handshake::UpgradeRequest;
use crate::wire::ConnKey;

use super::token::ResumeToken;

/// A socket this shard is handing to `to`, waiting for the driver to let go of it.
#[derive(Debug)]
pub struct Handover {
    /// The shard holding the session.
    pub to: usize,
    /// The request head this shard parsed.
    pub request: UpgradeRequest,
    /// Bytes read past the head.
    pub rest: Vec<u8>,
}

/// The sessions of one shard.
#[derive(Debug, Default)]
pub struct Sessions {
    /// Session id bits → the slot holding it (attached or detached).
    holders: HashMap<u128, ConnKey>,
    /// Sessions that expired (their tokens, with when), kept for one grace period.
    expired: HashMap<u128, (Instant, ResumeToken)>,
    expired_order: VecDeque<(Instant, u128)>,
    /// Detached sessions held.
    pub(crate) detached: usize,
    /// Bytes buffered over all detached sessions.
    pub(crate) buffered: usize,
    /// Sockets waiting to be handed to another shard, by slot.
    pub(crate) handovers: HashMap<ConnKey, Handover>,
    /// Sockets handed here by other shards, for the driver to adopt.
    pub(crate) adoptions: Vec<Adoption>,
}

impl Sessions {
    /// Sessions held (attached or detached).
    pub fn len(&self) -> usize {
        self.holders.len()
    }

    /// No session held.
    pub fn is_empty(&self) -> bool {
        self.holders.is_empty()
    }

    /// The slot holding session `id`.
    pub fn holder(&self, id: u128) -> Option<ConnKey> {
        self.holders.get(&id).copied()
    }

    /// Session `id` is now held by `key`.
    pub fn hold(&mut self, id: u128, key: ConnKey) {
        self.holders.insert(id, key);
    }

    /// The session of `token` ended by expiry at `now`: forget its holder, remember it
    /// as expired for `grace`.
    pub fn expire(&mut self, token: ResumeToken, now: Instant, grace: Duration) {
        let id = token.id.bits;
        self.holders.remove(&id);
        self.prune(now, grace);
        self.expired.insert(id, (now, token));
        self.expired_order.push_back((now, id));
    }

    /// Session `id` ended otherwise (closed for good): forget it.
    pub fn forget(&mut self, id: u128) {
        self.holders.remove(&id);
    }

    /// The session of `token` (secret included) expired within the last grace period.
    pub fn recently_expired(&mut self, token: &ResumeToken, now: Instant, grace: Duration) -> bool {
        self.prune(now, grace);
        self.expired
            .get(&token.id.bits)
            .is_some_and(|(_, t)| t.matches(token))
    }

    /// Drop expiry records older than `grace` (bounded: at most the sessions that
    /// expired in one grace period are remembered).
    fn prune(&mut self, now: Instant, grace: Duration) {
        while let Some(&(at, id)) = self.expired_order.front() {
            if now.duration_since(at) < grace {
                break;
            }
            self.expired_order.pop_front();
            if self.expired.get(&id).is_some_and(|(t, _)| *t == at) {
                self.expired.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_tokens_are_remembered_for_one_grace_period_with_their_secret() {
        let grace = Duration::from_secs(1);
        let t0 = Instant::now();
        let (a, b) = (
            ResumeToken::generate(0).unwrap(),
            ResumeToken::generate(0).unwrap(),
        );
        let mut s = Sessions::default();
        s.hold(a.id.bits, 7);
        assert_eq!((s.holder(a.id.bits), s.len()), (Some(7), 1));
        s.expire(a, t0, grace);
        assert!(s.is_empty());
        assert!(s.recently_expired(&a, t0 + grace / 2, grace));
        assert!(
            !s.recently_expired(&b, t0 + grace / 2, grace),
            "another token"
        );
        let forged = ResumeToken::parse(&format!("{}.{}", a.id, "0".repeat(32))).unwrap();
        assert!(
            !s.recently_expired(&forged, t0, grace),
            "the id without the secret"
        );
        assert!(
            !s.recently_expired(&a, t0 + grace, grace),
            "forgotten after grace"
        );
        assert!(s.expired.is_empty() && s.expired_order.is_empty());
    }
}
