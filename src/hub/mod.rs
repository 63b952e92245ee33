//! The hub: rooms on one shard, the room directory, per-room history, and the one
//! publish entry that routes every [`Publication`] to the shards (and, when there is
//! one, to a [`Broker`]).
//!
//! **The publish path.** Every publish goes through [`HubShared::publish`]: a handler's
//! (through its shard's [`Hub::publish`]), a [`crate::shard::Publisher`]'s from any
//! thread, and one that arrives from a broker ([`HubShared::deliver_inbound`] joins the
//! same path after the broker step). The entry
//! 1. makes the [`Publication`] (no copy: the [`Payload`] was encoded once, outside any
//!    lock, by the caller);
//! 2. offers it to the broker, when there is one ([`broker`]): [`Route::Taken`] ends
//!    the publish here, the broker brings it back through `deliver_inbound`;
//! 3. routes it (`HubShared::route`):
//!    - **history off**: the [`Directory`] says which shards have members. A shard's
//!      own publish is delivered to its local members at once by the shard
//!      ([`Published::deliver_here`]); for every *other* member shard one
//!      [`ShardMsg::Publish`] waits in the publishing [`Hub`]'s outbox until the loop
//!      calls [`Hub::hand_off`] (once per iteration, before it writes to sockets), so a
//!      burst of publishes received in one iteration reaches each other shard as one
//!      batch with one wake-up. Handed over one by one, the first would wake the
//!      target, which would send it alone to all its members while the rest arrived,
//!      and the burst would leave the target in two rounds of sends instead of one
//!      (measured: 0.09–0.15 sends per frame on two shards at 16 messages in flight,
//!      against 0.063 on one). A publish from outside the shards goes to the inboxes
//!      at once.
//!    - **history on** (`--history N`, see [`history`]): numbered under the room's
//!      lock, kept in the room's ring and sent to *every* shard with members, the
//!      publishing shard included, before the lock is released, so each shard
//!      delivers a room's messages in number order.
//!
//! Shards queue the publication's wire forms ([`Publication::frame`]), each built once
//! for all of them; an inbox message is one `Arc<Publication>`.
//!
//! Counted once: a room is opened and closed once per process (the [`Directory`]'s
//! first and last shard, reported by [`Hub::join`] and [`Hub::leave`], and told to the
//! broker as interest), and a publish that goes to several shards carries in its
//! [`PublishTally`] the parts whose last reports the total of recipients.
//!
//! The hub never touches connections: it answers "who are the local members" and
//! "which shards need a message"; the shard queues frames into connections.

pub mod broker;
pub mod directory;
pub mod history;
pub mod rooms;

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

pub use crate::wire::{Payload, PreparedFrame, Publication, PublishTally};
pub use broker::{Broker, FetchRequest, Route};
pub use directory::{Directory, ShardSet};
pub use history::{HistoryConfig, HistoryRegistry, HistoryStats, Replay, ResumeStart};
pub use rooms::{ConnKey, Joined, RoomId, Rooms};

use crate::sys::Waker;

/// Work sent to a shard from another thread.
#[derive(Debug)]
pub enum ShardMsg {
    /// Queue the publication to every local member of its room except its
    /// [`Publication::exclude`], then add the recipients to its tally (also when the
    /// shard has no member left: still a part).
    Publish(Arc<Publication>),
    /// Resume a connection again, from the local history, now that the broker filled
    /// it ([`Broker::fetch`]).
    Resume(FetchRequest),
    /// A control message (`gap`, `reset`) for every sequenced member of the room, in
    /// order with its publications (cluster mode: see [`HubShared::announce`]).
    Announce(Arc<str>, PreparedFrame),
    /// Begin a graceful shutdown.
    Shutdown,
    /// A socket another shard accepted whose resume token names a session this shard
    /// holds (see `crate::shard::session`): adopt it and answer its upgrade.
    Adopt(Box<Adoption>),
    /// A direct send to session `.0` (its id bits) held by this shard: queued to its
    /// connection (framed for its transport), or buffered while it is detached.
    SessionSend(u128, crate::wire::Direct),
}

/// A socket handed from the shard that accepted it to the shard holding the session its
/// resume token names (one inbox message; the receiving event loop registers the fd
/// as if it had accepted it).
pub struct Adoption {
    /// The connected socket (no I/O of the first shard is in flight on it).
    pub fd: std::os::fd::OwnedFd,
    /// `wss://`: the driver's TLS session, past the handshake (opaque below the driver).
    pub tls: Option<Box<dyn std::any::Any + Send>>,
    /// The request head the first shard parsed.
    pub request: crate::proto::handshake::UpgradeRequest,
    /// Bytes the first shard read past the head (plaintext).
    pub rest: Vec<u8>,
}

impl std::fmt::Debug for Adoption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adoption")
            .field("fd", &self.fd)
            .field("tls", &self.tls.is_some())
            .field("path", &self.request.path)
            .field("rest", &self.rest.len())
            .finish()
    }
}

/// One shard's inbox as seen by everyone else.
pub struct ShardInbox {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
}

impl ShardInbox {
    /// Deliver `msg` and wake the shard if it is not already awake.
    pub fn send(&self, msg: ShardMsg) {
        self.send_all(std::iter::once(msg));
    }

    /// Deliver every message of `msgs`, in order, then wake the shard once.
    pub fn send_all(&self, msgs: impl IntoIterator<Item = ShardMsg>) {
        let mut sent = false;
        for msg in msgs {
            // The receiver lives as long as the shard; a send after it exited is moot.
            sent |= self.tx.send(msg).is_ok();
        }
        if sent {
            if let Err(e) = self.waker.wake() {
                tracing::error!(error = %e, "failed to wake a shard");
            }
        }
    }
}

/// Who is publishing, for [`HubShared::publish`].
pub enum Source<'a> {
    /// Any thread outside the shards ([`crate::shard::Publisher`], a broker's inbound):
    /// shard messages go to the inboxes at once.
    Thread,
    /// A shard's handler. `exclude`: its connection that must not get the message;
    /// `here`: the shard has local members (it delivers to them itself, at once, when
    /// history is off); `outbox`: the shard's messages for the other shards, by shard,
    /// until [`Hub::hand_off`].
    Shard {
        shard: usize,
        exclude: Option<ConnKey>,
        here: bool,
        outbox: &'a mut [Vec<ShardMsg>],
    },
}

/// What [`HubShared::publish`] did.
#[derive(Debug)]
pub struct Published {
    /// The publication (numbered when history is on).
    pub publication: Arc<Publication>,
    /// Shards messaged (inboxes, or the publishing shard's outbox); each adds its part
    /// to the publication's tally. 0 with no member anywhere else.
    pub shards: usize,
    /// History off, from a shard with local members: that shard delivers it to them now
    /// and adds its part ([`Published::local_part`]).
    pub deliver_here: bool,
    /// History on: the room's history refused it (larger than `--history-bytes`).
    pub refused: bool,
    /// The broker took it over ([`Route::Taken`]): nothing was numbered or delivered.
    pub taken: bool,
}

impl Published {
    /// Add the publishing shard's local part (`queued` recipients, when
    /// [`Published::deliver_here`]). Returns the publish's total recipients when it is
    /// complete (to report once), `None` while other shards' parts are outstanding.
    pub fn local_part(&self, queued: usize) -> Option<usize> {
        if self.shards == 0 {
            Some(queued)
        } else {
            self.publication.tally().add(queued)
        }
    }

    /// True when nobody will report the publish: it reached no shard (and was not
    /// handed to a broker).
    pub fn reached_no_one(&self) -> bool {
        self.shards == 0 && !self.deliver_here && !self.taken
    }
}

/// State shared by all shards (read-mostly).
pub struct HubShared {
    pub directory: Directory,
    inboxes: Vec<ShardInbox>,
    history: Option<HistoryRegistry>,
    broker: Option<Arc<dyn Broker>>,
}

impl HubShared {
    /// Create the shared state (history off, no broker) and, for each shard, its inbox
    /// receiver.
    pub fn new(wakers: &[Arc<Waker>]) -> (Arc<Self>, Vec<Receiver<ShardMsg>>) {
        Self::with_history(wakers, None)
    }

    /// Like [`HubShared::new`], with per-room history when `history` is given.
    pub fn with_history(
        wakers: &[Arc<Waker>],
        history: Option<HistoryConfig>,
    ) -> (Arc<Self>, Vec<Receiver<ShardMsg>>) {
        Self::with_broker(wakers, history, None)
    }

    /// Like [`HubShared::with_history`], with `broker` behind the publish entry (see
    /// [`broker`]; `None`: local only).
    pub fn with_broker(
        wakers: &[Arc<Waker>],
        history: Option<HistoryConfig>,
        broker: Option<Arc<dyn Broker>>,
    ) -> (Arc<Self>, Vec<Receiver<ShardMsg>>) {
        let mut inboxes = Vec::with_capacity(wakers.len());
        let mut receivers = Vec::with_capacity(wakers.len());
        for waker in wakers {
            let (tx, rx) = crossbeam_channel::unbounded();
            inboxes.push(ShardInbox {
                tx,
                waker: waker.clone(),
            });
            receivers.push(rx);
        }
        let shared = HubShared {
            directory: Directory::new(),
            inboxes,
            history: history.map(HistoryRegistry::new),
            broker,
        };
        (Arc::new(shared), receivers)
    }

    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    pub fn inbox(&self, shard: usize) -> &ShardInbox {
        &self.inboxes[shard]
    }

    /// The history registry, when history is on.
    pub fn history(&self) -> Option<&HistoryRegistry> {
        self.history.as_ref()
    }

    /// **The publish entry** (see the module doc): publish `payload` to every member of
    /// `room` on every shard (and through the broker, when there is one).
    pub fn publish(&self, room: Arc<str>, payload: Payload, from: Source<'_>) -> Published {
        let exclude = match &from {
            Source::Shard {
                shard,
                exclude: Some(key),
                ..
            } => Some((*shard, *key)),
            _ => None,
        };
        let publication = Arc::new(Publication::new(room, payload, exclude));
        if let Some(broker) = &self.broker {
            if broker.publish(&publication) == Route::Taken {
                return Published {
                    publication,
                    shards: 0,
                    deliver_here: false,
                    refused: false,
                    taken: true,
                };
            }
        }
        self.route(publication, from)
    }

    /// Inbound: a publication from the broker (made on this node or another) goes to
    /// every shard with members of its room, as a publish from outside the shards; kept
    /// in the room's history when history is on (numbered here if it has no number, or
    /// numbering continues above the number it has: a broker's numbers for a room must
    /// increase, as the ring is kept in number order). Not reported to the metrics when
    /// it reaches no shard (the node that published it reports the publish).
    pub fn deliver_inbound(&self, publication: Arc<Publication>) -> Published {
        self.route(publication, Source::Thread)
    }

    /// Number (history on), keep and send `publication` to the shards with members
    /// (see the module doc).
    fn route(&self, publication: Arc<Publication>, from: Source<'_>) -> Published {
        if let Some(history) = &self.history {
            let now = Instant::now();
            let room = publication.room().clone();
            return history.with_room(&room, |h| {
                let publication = match publication.seq() {
                    None => publication.numbered(h.assign(now)),
                    Some(seq) => {
                        h.observe(seq, now);
                        publication
                    }
                };
                let seq = publication.seq().unwrap_or_default();
                let shards = self.directory.shards(&room);
                publication.tally().set_parts(shards.len());
                let retained = history.retain(h, seq, publication.clone());
                for shard in shards.iter() {
                    self.inboxes[shard].send(ShardMsg::Publish(publication.clone()));
                }
                Published {
                    publication,
                    shards: shards.len(),
                    deliver_here: false,
                    refused: !retained,
                    taken: false,
                }
            });
        }
        let mut shards = self.directory.shards(publication.room());
        let mut published = Published {
            shards: 0,
            deliver_here: false,
            refused: false,
            taken: false,
            publication,
        };
        match from {
            Source::Thread => {
                published.shards = shards.len();
                if published.shards > 0 {
                    published.publication.tally().set_parts(published.shards);
                    for shard in shards.iter() {
                        self.inboxes[shard].send(ShardMsg::Publish(published.publication.clone()));
                    }
                }
            }
            Source::Shard {
                shard,
                here,
                outbox,
                ..
            } => {
                shards.remove(shard);
                published.shards = shards.len();
                published.deliver_here = here;
                if published.shards > 0 {
                    let parts = published.shards + usize::from(here);
                    published.publication.tally().set_parts(parts);
                    for shard in shards.iter() {
                        outbox[shard].push(ShardMsg::Publish(published.publication.clone()));
                    }
                }
            }
        }
        published
    }

    /// Send `frame` (a `gap` or `reset` text message) to every sequenced member of
    /// `room` on every shard, after the publications sent so far (a broker announcing
    /// numbers it lost, or a numbering that restarted).
    pub fn announce(&self, room: &Arc<str>, frame: PreparedFrame) {
        for shard in self.directory.shards(room).iter() {
            self.inboxes[shard].send(ShardMsg::Announce(room.clone(), frame.clone()));
        }
    }

    /// True when a broker is behind the publish entry (cluster mode).
    pub fn has_broker(&self) -> bool {
        self.broker.is_some()
    }

    /// Offer a resume to the broker ([`Broker::fetch`]); false without one.
    pub fn broker_fetch(&self, request: FetchRequest) -> bool {
        self.broker.as_ref().is_some_and(|b| b.fetch(request))
    }

    /// Drop idle rooms' history (see [`HistoryRegistry::sweep`]); 0 when history is off.
    pub fn sweep_history(&self, now: Instant) -> usize {
        self.history.as_ref().map_or(0, |h| {
            h.sweep(now, |room| !self.directory.shards(room).is_empty())
        })
    }

    /// Record `shard`'s first member of `room`; true when the room opened in the
    /// process (the broker hears interest on).
    fn add_shard(&self, room: &Arc<str>, shard: usize) -> bool {
        match &self.broker {
            None => self.directory.add(room, shard),
            Some(b) => self
                .directory
                .add_notify(room, shard, |r| b.interest(r, true)),
        }
    }

    /// Record that `shard` has no member of `room` left; true when the room closed in
    /// the process (the broker hears interest off).
    fn remove_shard(&self, room: &str, shard: usize) -> bool {
        match &self.broker {
            None => self.directory.remove(room, shard),
            Some(b) => self
                .directory
                .remove_notify(room, shard, |r| b.interest(r, false)),
        }
    }
}

/// What [`Hub::leave`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Left {
    /// The connection was the room's last member on this shard.
    pub room_removed: bool,
    /// It was the room's last member in the process: no shard has members any more.
    pub room_closed: bool,
}

/// A shard's part of the hub.
pub struct Hub {
    shard: usize,
    rooms: Rooms,
    shared: Arc<HubShared>,
    /// Publishes for other shards, by shard, until [`Hub::hand_off`].
    outbox: Vec<Vec<ShardMsg>>,
}

impl Hub {
    pub fn new(shard: usize, shared: Arc<HubShared>) -> Self {
        let outbox = (0..shared.shard_count()).map(|_| Vec::new()).collect();
        Hub {
            shard,
            rooms: Rooms::new(),
            shared,
            outbox,
        }
    }

    pub fn shard(&self) -> usize {
        self.shard
    }

    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    pub fn shared(&self) -> &Arc<HubShared> {
        &self.shared
    }

    /// Add a local member; publishes this shard in the directory on the room's first
    /// join (and sets [`Joined::room_opened`] when it is the room's first in the process).
    pub fn join(&mut self, name: &str, conn: ConnKey) -> Joined {
        let mut joined = self.rooms.join(name, conn);
        if joined.room_created {
            joined.room_opened = self
                .shared
                .add_shard(self.rooms.name(joined.room), self.shard);
        }
        joined
    }

    /// Remove a local member; withdraws this shard from the directory on the last leave.
    pub fn leave(&mut self, room: RoomId, conn: ConnKey) -> Left {
        match self.rooms.leave(room, conn) {
            Some(name) => Left {
                room_removed: true,
                room_closed: self.shared.remove_shard(&name, self.shard),
            },
            None => Left::default(),
        }
    }

    /// This shard's publish through the entry ([`HubShared::publish`]): `here` says the
    /// shard has local members of `room` (it delivers to them itself when
    /// [`Published::deliver_here`]); other shards' messages wait for [`Hub::hand_off`].
    pub fn publish(
        &mut self,
        room: Arc<str>,
        here: bool,
        payload: Payload,
        exclude: Option<ConnKey>,
    ) -> Published {
        let from = Source::Shard {
            shard: self.shard,
            exclude,
            here,
            outbox: &mut self.outbox,
        };
        self.shared.publish(room, payload, from)
    }

    /// Send every queued publish to its shard: each shard's batch in order, one wake-up
    /// per shard.
    pub fn hand_off(&mut self) {
        for (shard, msgs) in self.outbox.iter_mut().enumerate() {
            if !msgs.is_empty() {
                self.shared.inboxes[shard].send_all(msgs.drain(..));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Encoding, Kind};
    use std::sync::Mutex;

    fn wakers(n: usize) -> Vec<Arc<Waker>> {
        (0..n).map(|_| Arc::new(Waker::new().unwrap())).collect()
    }

    fn payload(b: &[u8]) -> Payload {
        Payload::encode(Kind::Binary, b)
    }

    fn received(rx: &Receiver<ShardMsg>) -> Arc<Publication> {
        match rx.try_recv().unwrap() {
            ShardMsg::Publish(p) => p,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn publish_reaches_each_other_member_shard_once_with_the_same_buffer() {
        let w = wakers(3);
        let (shared, rx) = HubShared::new(&w);
        let mut hubs: Vec<Hub> = (0..3).map(|i| Hub::new(i, shared.clone())).collect();
        hubs[0].join("r", 1);
        hubs[1].join("r", 7);
        hubs[1].join("r", 8);
        // shard 2 has no member: it must get nothing.
        let name: Arc<str> = Arc::from("r");
        let published = hubs[0].publish(name.clone(), true, payload(b"x"), None);
        assert_eq!((published.shards, published.deliver_here), (1, true));
        assert!(
            rx[1].try_recv().is_err(),
            "nothing leaves before the hand-off"
        );
        hubs[0].hand_off();
        let p = received(&rx[1]);
        assert!(Arc::ptr_eq(&p, &published.publication));
        assert!(p
            .frame(Encoding::WebSocket)
            .shares_buffer_with(published.publication.frame(Encoding::WebSocket)));
        // Two parts: shard 0's (1 local member) and shard 1's (2); the last reports 3.
        assert_eq!(published.local_part(1), None);
        assert_eq!(p.tally().add(2), Some(3));
        assert!(
            rx[1].try_recv().is_err(),
            "one message per shard, not per member"
        );
        assert!(rx[0].try_recv().is_err() && rx[2].try_recv().is_err());
        // Last leave on shard 1 withdraws it from the directory.
        let room = hubs[1].rooms().lookup("r").unwrap();
        assert_eq!(hubs[1].leave(room, 7), Left::default());
        assert_eq!(
            hubs[1].leave(room, 8),
            Left {
                room_removed: true,
                room_closed: false
            }
        );
        let alone = hubs[0].publish(name, true, payload(b"y"), None);
        assert_eq!(alone.shards, 0);
        assert_eq!(
            alone.local_part(4),
            Some(4),
            "no other part: complete at once"
        );
    }

    #[test]
    fn a_room_opens_and_closes_once_however_its_members_spread() {
        let (shared, _rx) = HubShared::new(&wakers(2));
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        let a = h0.join("r", 1);
        assert!(a.room_created && a.room_opened);
        let b = h1.join("r", 1);
        assert!(b.room_created && !b.room_opened, "already open on shard 0");
        let c = h1.join("r", 2);
        assert!(!c.room_created && !c.room_opened);
        let left = h0.leave(a.room, 1);
        assert!(
            left.room_removed && !left.room_closed,
            "shard 1 still has members"
        );
        assert!(!h1.leave(b.room, 1).room_removed);
        assert_eq!(
            h1.leave(b.room, 2),
            Left {
                room_removed: true,
                room_closed: true
            }
        );
        assert!(h1.join("r", 3).room_opened, "reopened");
    }

    #[test]
    fn a_burst_of_publishes_arrives_as_one_batch_in_order_with_one_wakeup() {
        let w = wakers(2);
        let (shared, rx) = HubShared::new(&w);
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        h0.join("r", 1);
        h1.join("r", 2);
        w[1].arm_sleep();
        let name: Arc<str> = Arc::from("r");
        let before = w[1].wakes_written();
        let sent: Vec<_> = (0..1000u32)
            .map(|i| {
                h0.publish(name.clone(), true, payload(&i.to_be_bytes()), None)
                    .publication
            })
            .collect();
        assert_eq!(rx[1].len(), 0, "held until the hand-off");
        h0.hand_off();
        assert_eq!(w[1].wakes_written() - before, 1);
        for p in &sent {
            assert!(Arc::ptr_eq(&received(&rx[1]), p), "in order");
        }
        h0.hand_off();
        assert_eq!(w[1].wakes_written() - before, 1, "nothing to hand off");
    }

    #[test]
    fn a_publication_from_outside_the_shards_goes_to_every_member_shard_at_once() {
        let (shared, rx) = HubShared::new(&wakers(3));
        let mut h0 = Hub::new(0, shared.clone());
        let mut h2 = Hub::new(2, shared.clone());
        h0.join("r", 1);
        h2.join("r", 1);
        let published = shared.publish(Arc::from("r"), payload(b"z"), Source::Thread);
        assert_eq!((published.shards, published.deliver_here), (2, false));
        let (a, b) = (received(&rx[0]), received(&rx[2]));
        assert!(Arc::ptr_eq(&a, &b) && rx[1].try_recv().is_err());
        assert_eq!((a.tally().add(1), b.tally().add(1)), (None, Some(2)));
        let nobody = shared.publish(Arc::from("empty"), payload(b"z"), Source::Thread);
        assert!(nobody.reached_no_one());
    }

    #[test]
    fn history_numbers_keeps_and_sends_to_every_member_shard_the_publisher_included() {
        let (shared, rx) = HubShared::with_history(&wakers(2), Some(HistoryConfig::frames(8)));
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        h0.join("r", 1);
        h1.join("r", 1);
        for n in 1..=3u64 {
            let published = h0.publish(Arc::from("r"), true, payload(b"m"), Some(1));
            assert_eq!(published.publication.seq(), Some(n));
            assert_eq!((published.shards, published.deliver_here), (2, false));
            assert_eq!(published.publication.exclude(), Some((0, 1)));
            assert!(Arc::ptr_eq(&received(&rx[0]), &published.publication));
            assert!(Arc::ptr_eq(&received(&rx[1]), &published.publication));
        }
        let replay = shared
            .history()
            .unwrap()
            .with_room("r", |h| h.replay_after(1, Instant::now()));
        assert_eq!(
            replay.frames.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![2, 3]
        );
    }

    /// An in-process broker: records what the hub tells it, and either lets the hub
    /// deliver or takes publications over.
    #[derive(Default)]
    struct TestBroker {
        take: bool,
        published: Mutex<Vec<Arc<Publication>>>,
        interest: Mutex<Vec<(String, bool)>>,
    }

    impl Broker for TestBroker {
        fn publish(&self, publication: &Arc<Publication>) -> Route {
            self.published.lock().unwrap().push(publication.clone());
            if self.take {
                Route::Taken
            } else {
                Route::Local
            }
        }
        fn interest(&self, room: &Arc<str>, on: bool) {
            self.interest.lock().unwrap().push((room.to_string(), on));
        }
    }

    #[test]
    fn each_publish_reaches_the_broker_once_and_local_delivery_goes_on() {
        let broker = Arc::new(TestBroker::default());
        let (shared, rx) = HubShared::with_broker(&wakers(2), None, Some(broker.clone()));
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        h0.join("r", 1);
        h1.join("r", 1);
        let a = h0.publish(Arc::from("r"), true, payload(b"a"), None);
        let b = shared.publish(Arc::from("r"), payload(b"b"), Source::Thread);
        let seen = broker.published.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "once per publish");
        assert!(Arc::ptr_eq(&seen[0], &a.publication) && Arc::ptr_eq(&seen[1], &b.publication));
        assert!(a.deliver_here && a.shards == 1 && !a.taken);
        // b went to the inbox at once; a waited in shard 0's outbox for the hand-off.
        assert!(Arc::ptr_eq(&received(&rx[1]), &b.publication));
        h0.hand_off();
        assert!(Arc::ptr_eq(&received(&rx[1]), &a.publication));
    }

    #[test]
    fn a_broker_that_takes_publications_over_feeds_them_back_to_every_member_shard() {
        let broker = Arc::new(TestBroker {
            take: true,
            ..TestBroker::default()
        });
        let (shared, rx) = HubShared::with_broker(
            &wakers(3),
            Some(HistoryConfig::frames(8)),
            Some(broker.clone()),
        );
        let mut hubs: Vec<Hub> = (0..3).map(|i| Hub::new(i, shared.clone())).collect();
        hubs[0].join("r", 1);
        hubs[2].join("r", 5);
        let out = hubs[0].publish(Arc::from("r"), true, payload(b"t"), Some(1));
        assert!(out.taken && out.shards == 0 && !out.deliver_here);
        assert_eq!(out.publication.seq(), None, "numbering is the broker's");
        hubs[0].hand_off();
        assert!(
            rx.iter().all(|r| r.try_recv().is_err()),
            "nothing delivered yet"
        );
        // The broker brings it back: every member shard gets it, numbered and kept.
        let back = broker.published.lock().unwrap().pop().unwrap();
        let inbound = shared.deliver_inbound(back);
        assert_eq!((inbound.shards, inbound.publication.seq()), (2, Some(1)));
        let (p0, p2) = (received(&rx[0]), received(&rx[2]));
        assert!(Arc::ptr_eq(&p0, &p2) && rx[1].try_recv().is_err());
        assert_eq!(p0.exclude(), Some((0, 1)), "the sender is still skipped");
        // A publication numbered elsewhere keeps its number; local numbering goes on above.
        let remote = Arc::new(Publication::new(Arc::from("r"), payload(b"n"), None)).numbered(10);
        assert_eq!(shared.deliver_inbound(remote).publication.seq(), Some(10));
        let next = Arc::new(Publication::new(Arc::from("r"), payload(b"l"), None));
        assert_eq!(shared.deliver_inbound(next).publication.seq(), Some(11));
    }

    #[test]
    fn interest_fires_on_the_nodes_first_member_and_last_leave_across_shards() {
        let broker = Arc::new(TestBroker::default());
        let (shared, _rx) = HubShared::with_broker(&wakers(2), None, Some(broker.clone()));
        let mut h0 = Hub::new(0, shared.clone());
        let mut h1 = Hub::new(1, shared.clone());
        let a = h0.join("r", 1);
        h0.join("r", 2);
        let b = h1.join("r", 1);
        h1.join("s", 1);
        h0.leave(a.room, 1);
        h0.leave(a.room, 2);
        assert_eq!(
            *broker.interest.lock().unwrap(),
            vec![("r".into(), true), ("s".into(), true)],
            "one `on` per room, none while another shard has members"
        );
        h1.leave(b.room, 1);
        assert_eq!(
            broker.interest.lock().unwrap().last(),
            Some(&("r".into(), false))
        );
        h0.join("r", 3);
        assert_eq!(
            broker.interest.lock().unwrap().len(),
            4,
            "reopened: on again"
        );
    }
}
