//! Between shards: this iteration's publishes handed off to the other shards
//! ([`crate::hub::Hub::hand_off`]), and the inbox, where their publications and the
//! shutdown arrive ([`crate::hub::ShardMsg`]).

use std::time::Instant;

use crate::hub::ShardMsg;

use super::Shard;

impl Shard {
    /// Send this iteration's publishes to the other shards (see
    /// [`crate::hub::Hub::hand_off`]). The drivers call it once per loop iteration,
    /// before writing to sockets.
    pub fn hand_off(&mut self) {
        self.state.hub.hand_off();
    }

    /// Handle everything waiting in the inbox.
    pub fn drain_inbox(&mut self, now: Instant) {
        while let Ok(msg) = self.inbox.try_recv() {
            match msg {
                ShardMsg::Publish(publication) => self.state.deliver_inbox(&publication),
                ShardMsg::Resume(request) => self.state.resume_fetched(&request),
                ShardMsg::Announce(room, frame) => self.state.announce(&room, &frame),
                ShardMsg::Shutdown => self.begin_shutdown(now),
                ShardMsg::Adopt(adoption) => self.state.sessions.adoptions.push(*adoption),
                ShardMsg::SessionSend(id, direct) => {
                    self.state.send_to_session(id, direct);
                }
            }
        }
    }

    /// True when the inbox has work (checked by the driver before it sleeps).
    pub fn inbox_pending(&self) -> bool {
        !self.inbox.is_empty()
    }
}
