//! [`Publisher`]: publishing into the rooms from any thread, through the hub's one
//! publish entry ([`crate::hub::HubShared::publish`] with [`Source::Thread`]).

use std::sync::Arc;

use crate::hub::{HubShared, ShardMsg, Source};
use crate::metrics::MetricsCollector;
use crate::wire::room_name::{self, RoomNameError};
use crate::wire::Direct;

use super::api::{payload_of, Message};
use super::publish::report_published;
use super::session::SessionId;

/// Publishes into rooms from any thread (cloneable, `Send + Sync`).
#[derive(Clone)]
pub struct Publisher {
    shared: Arc<HubShared>,
    metrics: Arc<dyn MetricsCollector>,
}

impl Publisher {
    pub(crate) fn new(shared: Arc<HubShared>, metrics: Arc<dyn MetricsCollector>) -> Self {
        Publisher { shared, metrics }
    }

    /// Encode `message` once and deliver it to every member of `room` on every shard.
    /// Returns the number of shards that had members. With history on, the message is
    /// numbered and kept in the room's history even when no shard has members (unless
    /// it alone exceeds `history_bytes`).
    ///
    /// `room` is a decoded name: `publish("café", …)` reaches `/ws/caf%C3%A9`.
    ///
    /// Metrics: reported once (`publish_fanned_out`) by the shard that delivers its last
    /// part; a publish that reaches no shard is reported here, as shard 0.
    ///
    /// # Errors
    /// A name that breaks the room-name rule ([`crate::wire::room_name::validate`]):
    /// nothing is encoded or sent.
    pub fn publish(&self, room: &str, message: Message<'_>) -> Result<usize, RoomNameError> {
        room_name::validate(room)?;
        let published = self
            .shared
            .publish(Arc::from(room), payload_of(message), Source::Thread);
        report_published(&*self.metrics, 0, &published);
        Ok(published.shards)
    }

    /// Send `message` to session `session` (its id, `SHARD-HEX32`, as
    /// [`crate::Context::session_id`] shows it) on whichever connection holds it: queued
    /// to it while attached (a WebSocket frame, or one event on an SSE stream),
    /// buffered while detached (`--session-grace`) and framed at resume for the
    /// resuming connection's transport. Returns false
    /// when the id names no shard of this server; a session that ended meanwhile drops
    /// it silently.
    pub fn send_to_session(&self, session: &str, message: Message<'_>) -> bool {
        let Some(id) = SessionId::parse(session) else {
            return false;
        };
        if id.shard >= self.shared.shard_count() {
            return false;
        }
        let direct = match message {
            Message::Text(t) => Direct::text(t),
            Message::Binary(b) => Direct::binary(b),
        };
        self.shared
            .inbox(id.shard)
            .send(ShardMsg::SessionSend(id.bits, direct));
        true
    }

    /// Rooms with members on any shard.
    pub fn room_count(&self) -> usize {
        self.shared.directory.room_count()
    }
}
