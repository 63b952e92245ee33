//! Which rooms this node wants from the broker: a room is wanted while it has members
//! here, and for a linger after its last member left (so a client that reconnects at
//! once does not make the node unsubscribe and subscribe again).
//!
//! Shards write it ([`Interest::set`], from `Broker::interest`, never blocking for
//! longer than a map update); the broker thread reads it ([`Interest::due`]) and makes
//! Redis agree: subscribe what is wanted and not subscribed, unsubscribe what lingered
//! out. It also records which rooms Redis acknowledged a subscription for in the
//! current session ([`Interest::heard`]), so the publisher holds back a publish to a
//! wanted room until the node hears the room ([`Interest::waiting`]): a room's first
//! member always gets its own first message. Memory: one entry per room open here or
//! lingering, and one per room subscribed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Rooms wanted, shared by the shards and the broker thread.
#[derive(Debug)]
pub struct Interest {
    linger: Duration,
    /// Room → `None` while it has members here, `Some(t)`: its last member left at `t`.
    rooms: Mutex<HashMap<Arc<str>, Option<Instant>>>,
    /// Rooms whose subscription Redis acknowledged in the current session.
    subscribed: Mutex<HashSet<Arc<str>>>,
}

/// What the broker thread must change in its subscriptions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub subscribe: Vec<Arc<str>>,
    pub unsubscribe: Vec<Arc<str>>,
}

impl Interest {
    /// `linger`: how long a room stays subscribed after its last member left.
    pub fn new(linger: Duration) -> Self {
        Interest {
            linger,
            rooms: Mutex::new(HashMap::new()),
            subscribed: Mutex::new(HashSet::new()),
        }
    }

    /// The broker thread: Redis acknowledged the subscription of `rooms` (`on`), or
    /// they were unsubscribed (`!on`).
    pub fn heard<'r>(&self, rooms: impl IntoIterator<Item = &'r Arc<str>>, on: bool) {
        let mut subscribed = self.subscribed.lock().unwrap_or_else(|p| p.into_inner());
        for room in rooms {
            if on {
                subscribed.insert(room.clone());
            } else {
                subscribed.remove(room);
            }
        }
    }

    /// The broker thread: the session ended, nothing is subscribed any more.
    pub fn heard_nothing(&self) {
        self.subscribed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// True when `room` is wanted here but its subscription is not acknowledged yet: a
    /// publish to it must wait, or the node would not hear it come back.
    pub fn waiting(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.contains_key(room)
            && !self
                .subscribed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(room)
    }

    /// The node's first member of `room` joined (`on`) or its last left (`!on`, the
    /// linger starts at `now`). A room reopened within its linger stays subscribed.
    pub fn set(&self, room: &Arc<str>, on: bool, now: Instant) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.insert(room.clone(), (!on).then_some(now));
    }

    /// True while `room` has members here (not lingering).
    pub fn has_members(&self, room: &str) -> bool {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        matches!(rooms.get(room), Some(None))
    }

    /// Compare with `subscribed` (what Redis has): rooms to subscribe, and rooms whose
    /// linger ran out by `now` (forgotten here) that are to be unsubscribed.
    pub fn due(&self, subscribed: &HashSet<Arc<str>>, now: Instant) -> Changes {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let mut changes = Changes::default();
        rooms.retain(|room, left| match left {
            Some(at) if now.saturating_duration_since(*at) >= self.linger => {
                if subscribed.contains(room) {
                    changes.unsubscribe.push(room.clone());
                }
                false
            }
            _ => {
                if !subscribed.contains(room) {
                    changes.subscribe.push(room.clone());
                }
                true
            }
        });
        for room in subscribed {
            if !rooms.contains_key(room) && !changes.unsubscribe.contains(room) {
                changes.unsubscribe.push(room.clone());
            }
        }
        changes
    }

    /// When the next linger runs out, if any room is lingering.
    pub fn next_expiry(&self) -> Option<Instant> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.values().flatten().min().map(|t| *t + self.linger)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_on_first_join_unsubscribe_after_the_linger_unless_reopened() {
        let i = Interest::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let r: Arc<str> = Arc::from("r");
        let mut subscribed = HashSet::new();
        i.set(&r, true, t0);
        let c = i.due(&subscribed, t0);
        assert_eq!(c.subscribe, vec![r.clone()]);
        subscribed.insert(r.clone());
        assert_eq!(i.due(&subscribed, t0), Changes::default());
        i.set(&r, false, t0);
        assert!(!i.has_members("r"));
        assert_eq!(i.next_expiry(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(
            i.due(&subscribed, t0 + Duration::from_secs(1)),
            Changes::default()
        );
        // Reopened within the linger: stays subscribed.
        i.set(&r, true, t0 + Duration::from_secs(1));
        assert_eq!(
            i.due(&subscribed, t0 + Duration::from_secs(5)),
            Changes::default()
        );
        i.set(&r, false, t0 + Duration::from_secs(5));
        let c = i.due(&subscribed, t0 + Duration::from_secs(7));
        assert_eq!(c.unsubscribe, vec![r.clone()]);
        assert_eq!(i.next_expiry(), None);
        // After a reconnect nothing is subscribed: every wanted room comes back.
        i.set(&r, true, t0);
        assert_eq!(i.due(&HashSet::new(), t0).subscribe, vec![r]);
    }

    #[test]
    fn a_publish_to_a_wanted_room_waits_until_its_subscription_is_acknowledged() {
        let i = Interest::new(Duration::from_secs(2));
        let r: Arc<str> = Arc::from("r");
        assert!(!i.waiting("r"), "not wanted here: nothing to wait for");
        i.set(&r, true, Instant::now());
        assert!(i.waiting("r"));
        i.heard([&r], true);
        assert!(!i.waiting("r"));
        i.heard_nothing();
        assert!(i.waiting("r"), "the session ended");
    }
}
