//! The shard's side of the publish path: a handler's publish into the hub's one entry
//! ([`crate::hub::HubShared::publish`], through the shard's [`crate::hub::Hub`]), local
//! delivery, and delivery of publications that arrive through the inbox.
//!
//! With history off, a publish to a room this shard has members of is delivered to
//! them at once, here, and the hub queues one message per other member shard in the
//! outbox (sent at the loop's hand-off). With history on, the hub numbers it under the
//! room's lock and sends it to every member shard, this one included, so it is
//! delivered here from the inbox, in number order. Either way a member gets the
//! publication's form for it ([`crate::wire::Publication::frame_for`]: sequenced when
//! it asked for numbers; for an SSE stream its SSE chunk, with the `id:` line when
//! numbered), built once for every shard. A shard wraps each form it delivers once in
//! a [`LocalFrame`] ([`LocalForms`]) and gives every member an `Rc` clone of it: no
//! atomic reference count per member.
//!
//! Every publish is reported once ([`MetricsCollector::publish_fanned_out`]) with its
//! recipients on every shard: here when it stays on this shard (or reaches no one),
//! else by the shard that adds the last part to its publication's tally.

use std::rc::Rc;
use std::sync::Arc;

use crate::conn::{Enqueue, LocalFrame};
use crate::hub::Published;
use crate::metrics::MetricsCollector;
use crate::proto::handshake::Transport;
use crate::wire::{ConnKey, Encoding, Payload, Publication, RoomId};

use super::session::{buffer_if_detached, Missed, MissedTally};
use super::slot::Slot;
use super::state::{report_enqueue, ShardState};

/// This shard's handles to the forms of one publication during one delivery: each form
/// in use is wrapped in a [`LocalFrame`] once (one atomic increment of the shared
/// bytes), and every member gets a non-atomic clone of that handle.
struct LocalForms<'p> {
    publication: &'p Publication,
    forms: [Option<LocalFrame>; Encoding::COUNT],
}

impl<'p> LocalForms<'p> {
    fn new(publication: &'p Publication) -> Self {
        LocalForms {
            publication,
            forms: Default::default(),
        }
    }

    /// A handle to the publication's `encoding` form (built on first use, see
    /// [`Publication::frame`]).
    #[inline]
    fn get(&mut self, encoding: Encoding) -> LocalFrame {
        let publication = self.publication;
        self.forms[encoding.index()]
            .get_or_insert_with(|| Rc::new(publication.frame(encoding).clone()))
            .clone()
    }
}

/// Report what nobody else will: a publish that reached no shard (`publish_fanned_out`
/// with 0) and one the history refused (`history_refused`). `shard` is the publishing
/// shard (0 for a [`super::publisher::Publisher`] outside the shards).
pub(crate) fn report_published(
    metrics: &dyn MetricsCollector,
    shard: usize,
    published: &Published,
) {
    if published.reached_no_one() {
        metrics.publish_fanned_out(shard, 0);
    }
    if published.refused {
        metrics.history_refused(shard, published.publication.sequenced_len());
    }
}

impl ShardState {
    /// Publish `payload` to every member of `room` on every shard, except `exclude`.
    /// Returns the local recipients queued; with history on, the local members it
    /// will be queued to (through the inbox).
    pub(super) fn publish(
        &mut self,
        room: &str,
        payload: Payload,
        exclude: Option<ConnKey>,
    ) -> usize {
        match self.hub.rooms().lookup(room) {
            Some(id) => self.publish_room(id, payload, exclude),
            None => {
                let published = self.hub.publish(Arc::from(room), false, payload, exclude);
                self.after_publish(None, &published, exclude)
            }
        }
    }

    /// [`ShardState::publish`] from no connection (the HTTP publish), returning the
    /// number history gave it: `None` with history off, or when a broker took it (it
    /// is numbered on its way back).
    pub(super) fn publish_numbered(&mut self, room: &str, payload: Payload) -> Option<u64> {
        let id = self.hub.rooms().lookup(room);
        let name = id.map_or_else(|| Arc::from(room), |id| self.hub.rooms().name(id).clone());
        let published = self.hub.publish(name, id.is_some(), payload, None);
        self.after_publish(id, &published, None);
        published.publication.seq()
    }

    /// [`ShardState::publish`] to a room this shard has members of, known by id (no
    /// name lookup, no allocation).
    fn publish_room(&mut self, room: RoomId, payload: Payload, exclude: Option<ConnKey>) -> usize {
        let name = self.hub.rooms().name(room).clone();
        let published = self.hub.publish(name, true, payload, exclude);
        self.after_publish(Some(room), &published, exclude)
    }

    /// Deliver locally what the hub left to this shard and report the publish.
    fn after_publish(
        &mut self,
        room: Option<RoomId>,
        published: &Published,
        exclude: Option<ConnKey>,
    ) -> usize {
        report_published(self.metrics(), self.id, published);
        match room {
            Some(room) if published.deliver_here => {
                let queued = self.deliver(room, &published.publication);
                if let Some(total) = published.local_part(queued) {
                    self.metrics().publish_fanned_out(self.id, total);
                }
                queued
            }
            // History on: it comes back through the inbox, to these members.
            Some(room) if !published.taken => {
                let members = self.hub.rooms().members(room);
                members.len() - usize::from(exclude.is_some_and(|k| members.contains(&k)))
            }
            _ => 0,
        }
    }

    /// Publish to every room `key` joined, by room id: one encoding for all rooms, no
    /// name lookups.
    pub(super) fn publish_to_joined(
        &mut self,
        key: ConnKey,
        payload: &Payload,
        exclude: Option<ConnKey>,
    ) -> usize {
        let mut queued = 0;
        let mut i = 0;
        while let Some(&room) = self.slots.get(key).and_then(|s| s.rooms.get(i)) {
            queued += self.publish_room(room, payload.clone(), exclude);
            i += 1;
        }
        queued
    }

    /// A publication from the inbox: deliver it to the local members of its room and add
    /// this shard's part to its tally (0 when every member left since: still a part).
    pub(super) fn deliver_inbox(&mut self, publication: &Arc<Publication>) {
        let queued = match self.hub.rooms().lookup(publication.room()) {
            Some(id) => self.deliver(id, publication),
            None => 0,
        };
        if let Some(total) = publication.tally().add(queued) {
            self.metrics().publish_fanned_out(self.id, total);
        }
    }

    /// Queue `publication` to every local member of `room` except its excluded sender:
    /// the plain form, or with history on the form each member asked for, skipping what
    /// a resume already replayed; detached sessions buffer it (by reference) instead.
    /// Returns how many connections got it queued (this shard's part).
    fn deliver(&mut self, room: RoomId, publication: &Arc<Publication>) -> usize {
        let exclude = publication
            .exclude()
            .filter(|(shard, _)| *shard == self.id)
            .map(|(_, key)| key);
        let deflate = self.shared.cfg.deflate;
        let cap = self.shared.cfg.sessions.buffer_bytes;
        let mut missed = MissedTally::default();
        let missed_room = || Missed::Room(publication.clone());
        let mut forms = LocalForms::new(publication);
        let queued = match publication.seq() {
            None => self.deliver_with(room, exclude, |slot| {
                if buffer_if_detached(slot, cap, &mut missed, missed_room) {
                    return None;
                }
                Some(match (slot.conn.compresses(), slot.conn.transport()) {
                    (_, Transport::Sse) => forms.get(Encoding::Sse),
                    (false, _) => forms.get(Encoding::WebSocket),
                    (true, _) => forms.get(publication.encoding_for(false, Some(deflate.min_size))),
                })
            }),
            Some(seq) => self.deliver_with(room, exclude, |slot| {
                if !slot.replay_marks.is_empty() && slot.already_replayed(room, seq) {
                    return None;
                }
                if buffer_if_detached(slot, cap, &mut missed, missed_room) {
                    return None;
                }
                if slot.conn.transport() == Transport::Sse {
                    return Some(forms.get(Encoding::Sse));
                }
                let min = deflate.min_size_for(slot.conn.compresses());
                Some(forms.get(publication.encoding_for(slot.sequenced, min)))
            }),
        };
        self.buffered(missed);
        queued
    }

    /// Queue to every local member of `room` except `exclude` the frame `pick` chooses
    /// for it (`None`: nothing for this one). Returns the connections it was queued to;
    /// the caller reports them as its part of the publish. Samples `send_queue_bytes`
    /// once (per shard delivery, not per member).
    #[inline]
    pub(super) fn deliver_with(
        &mut self,
        room: RoomId,
        exclude: Option<ConnKey>,
        mut pick: impl FnMut(&mut Slot) -> Option<LocalFrame>,
    ) -> usize {
        let mut queued = 0;
        let mut largest_queue = 0;
        let ShardState {
            slots,
            hub,
            dirty,
            shared,
            queue,
            id,
            slow_closed,
            ..
        } = self;
        let metrics = &*shared.metrics;
        for &member in hub.rooms().members(room) {
            if Some(member) == exclude {
                continue;
            }
            let Some(slot) = slots.get_mut(member) else {
                continue;
            };
            let Some(frame) = pick(slot) else {
                continue;
            };
            let outcome = slot.conn.send_frame(frame, *queue);
            match outcome {
                Enqueue::NotOpen => continue,
                Enqueue::ClosedSlow { .. } => {
                    slot.session.kick();
                    slow_closed.push(member);
                }
                _ => {}
            }
            if !slot.dirty {
                slot.dirty = true;
                dirty.push(member);
            }
            if report_enqueue(metrics, *id, outcome) {
                queued += 1;
                largest_queue = largest_queue.max(slot.conn.out().bytes());
            }
        }
        // At most two hook calls per shard delivery (this one and the publish's report
        // by the caller), none per member: the fan-out loop stays free of dynamic calls
        // (benches/hub.rs measured 1–2.5 ns per member for a no-op call).
        if queued > 0 {
            metrics.send_queue_bytes(*id, largest_queue);
        }
        queued
    }
}
