//! Cluster mode: the second half of a resume the broker took over
//! ([`crate::hub::Broker::fetch`]): once the broker has filled the room's local history
//! from its store it sends [`crate::hub::ShardMsg::Resume`], and the connection is
//! resumed from the local history as usual, unless it is gone (a slot reused by a later
//! connection has another generation).

use crate::hub::FetchRequest;

use super::ShardState;

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
}
