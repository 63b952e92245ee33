//! Cluster mode's messages to a shard (see [`crate::hub::broker`]):
//! - [`crate::hub::ShardMsg::Resume`]: the second half of a resume the broker took over
//!   ([`crate::hub::Broker::fetch`]): once the broker has filled the room's local
//!   history from its store, the connection is resumed from the local history as
//!   usual, unless it is gone (a slot reused by a later connection has another
//!   generation);
//! - [`crate::hub::ShardMsg::Announce`]: a `gap` or `reset` control message for every
//!   sequenced member of a room here (numbers the broker lost, or a numbering that
//!   restarted), queued in order with the room's publications.

use crate::conn::LocalFrame;
use crate::hub::FetchRequest;
use crate::wire::PreparedFrame;

use super::state::ShardState;

impl ShardState {
    /// Resume `request`'s connection from the local history (see the module doc).
    pub(super) fn resume_fetched(&mut self, request: &FetchRequest) {
        let same = self
            .slots
            .get(request.key)
            .is_some_and(|s| s.generation == request.generation);
        if same {
            self.resume_from(request.key, &request.room, request.since, false);
        }
    }

    /// Queue `frame` to every sequenced member of `room` here.
    pub(super) fn announce(&mut self, room: &str, frame: &PreparedFrame) {
        if let Some(id) = self.hub.rooms().lookup(room) {
            let frame = LocalFrame::new(frame.clone());
            self.deliver_with(id, None, |slot| slot.sequenced.then(|| frame.clone()));
        }
    }
}
