//! [`Sessions`]: a shard's table of the sessions it holds (id → the slot holding it),
//! its detached sessions oldest first (so the oldest goes when the shard is over its
//! share of `--session-max-detached`), the ids that expired recently (so a late resume
//! is answered `expired`, not `unknown`), the gauges, and the sockets on their way to
//! or from another shard.

use std::collections::{BTreeMap, HashMap, VecDeque};
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
    /// Detached sessions by when they detached (a per-shard sequence number, kept by
    /// the session while detached) → session id: the first is the oldest. Exactly the
    /// detached sessions: an entry goes when its session resumes or ends.
    detach_order: BTreeMap<u64, u128>,
    /// The next detach's sequence number.
    next_detach: u64,
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

    /// Session `id` detached: count it as the newest detached session. Returns its place
    /// in the detach order, for [`Self::remove_detached`].
    pub fn push_detached(&mut self, id: u128) -> u64 {
        let seq = self.next_detach;
        self.next_detach += 1;
        self.detach_order.insert(seq, id);
        self.detached += 1;
        seq
    }

    /// The detached session at place `seq` (with `bytes` buffered) stopped being
    /// detached: resumed, or ended.
    pub fn remove_detached(&mut self, seq: u64, bytes: usize) {
        if self.detach_order.remove(&seq).is_some() {
            self.detached -= 1;
            self.buffered -= bytes;
        }
    }

    /// The slot holding the session that detached first of those still detached.
    pub fn oldest_detached(&self) -> Option<ConnKey> {
        let (_, id) = self.detach_order.first_key_value()?;
        self.holder(*id)
    }

    /// The session of `token` ended by expiry (or eviction) at `now`: forget its
    /// holder, remember it as expired for `grace`. At most `cap` expiries are
    /// remembered (the shard's detached share: eviction may end sessions at any rate);
    /// over it the oldest record goes, and its token then answers `unknown`.
    pub fn expire(&mut self, token: ResumeToken, now: Instant, grace: Duration, cap: usize) {
        let id = token.id.bits;
        self.holders.remove(&id);
        self.prune(now, grace);
        while self.expired.len() >= cap.max(1) {
            let Some((at, old)) = self.expired_order.pop_front() else {
                break;
            };
            if self.expired.get(&old).is_some_and(|(t, _)| *t == at) {
                self.expired.remove(&old);
            }
        }
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
        s.expire(a, t0, grace, 10);
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

    #[test]
    fn detached_sessions_are_kept_oldest_first_and_resumed_ones_leave_the_order() {
        let mut s = Sessions::default();
        for (id, key) in [(1, 10), (2, 20), (3, 30)] {
            s.hold(id, key);
        }
        let one = s.push_detached(1);
        let two = s.push_detached(2);
        s.buffered = 5;
        assert_eq!((s.detached, s.oldest_detached()), (2, Some(10)));
        s.remove_detached(one, 5);
        assert_eq!(
            (s.detached, s.buffered, s.oldest_detached()),
            (1, 0, Some(20))
        );
        s.remove_detached(one, 5);
        assert_eq!(s.detached, 1, "a second call changes nothing");
        let again = s.push_detached(1);
        let three = s.push_detached(3);
        assert_eq!(s.oldest_detached(), Some(20), "a re-detach is the newest");
        for seq in [two, again, three] {
            s.remove_detached(seq, 0);
        }
        assert_eq!((s.detached, s.oldest_detached()), (0, None));
        assert!(s.detach_order.is_empty());
    }

    #[test]
    fn expiry_records_are_capped_oldest_first() {
        let (grace, t0) = (Duration::from_secs(60), Instant::now());
        let tokens: Vec<ResumeToken> = (0..5).map(|_| ResumeToken::generate(0).unwrap()).collect();
        let mut s = Sessions::default();
        for t in &tokens {
            s.expire(*t, t0, grace, 3);
        }
        assert_eq!((s.expired.len(), s.expired_order.len()), (3, 3));
        let remembered: Vec<bool> = tokens
            .iter()
            .map(|t| s.recently_expired(t, t0, grace))
            .collect();
        assert_eq!(remembered, [false, false, true, true, true]);
    }
}
