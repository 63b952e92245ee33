//! The binary's built-in applications, written on the public [`crate::Handler`] API.
//!
//! `/ws/{room}` joins the room and publishes every data message it receives to it
//! (`/sse/{room}` joins it as a Server-Sent Events stream, which only receives)
//! (the sender included unless `exclude_sender`); `/echo` echoes every message back (what
//! conformance suites expect). Any other path is answered 404. Tokens ([`RoomAccess`])
//! govern `/ws/{room}` only; `/echo` is open to anyone past the Origin check.
//!
//! `{room}` is one path segment, percent-decoded by the room-name rule
//! ([`crate::wire::room_name`]): `/ws/caf%C3%A9` and `/ws/caf%c3%a9` are the room
//! `café`, which `Publisher::publish("café", …)` reaches; a segment the rule refuses gets
//! its 400 (or 414 when too long). A connection is a room or an echo connection for its
//! whole life, by the path it was opened on ([`Context::tag`]), not by the rooms it is
//! in at the moment.

pub mod echo;
pub mod rooms;
pub mod token;

use crate::handler::{Context, Handler, Message, Rejection, Upgrade, UpgradeRequest};

pub use echo::Echo;
pub use rooms::{RoomAccess, Rooms};
pub use token::Token;

/// Path prefix of the rooms app.
pub const ROOM_PREFIX: &str = "/ws/";
/// Path of the echo app.
pub const ECHO_PATH: &str = "/echo";

/// [`Context::tag`] of a connection opened on `/ws/{room}` (echo connections keep 0).
pub const ROOM_CONNECTION: u32 = 1;

/// Routes `/ws/{room}` to [`Rooms`] and `/echo` to [`Echo`].
#[derive(Debug, Default, Clone)]
pub struct Builtin {
    pub rooms: Rooms,
    pub echo: Echo,
    /// Token rules for `/ws/{room}` (none by default).
    pub access: RoomAccess,
}

impl Handler for Builtin {
    fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
        if request.path == ECHO_PATH {
            return Upgrade::Accept;
        }
        if rooms::room_segment(&request.path).is_some() {
            return match self.access.access(request) {
                Ok(identity) => self.rooms.upgrade_as(request, identity),
                Err(rejection) => Upgrade::Reject(rejection),
            };
        }
        Upgrade::Reject(Rejection {
            status: 404,
            reason: "unknown path: use /ws/{room}, /sse/{room} or /echo",
        })
    }

    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        if request.path != ECHO_PATH {
            cx.set_tag(ROOM_CONNECTION);
            self.rooms.on_open(cx, request);
        }
    }

    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        // By what the connection was opened for: a room connection that has left every
        // room publishes to no room, it does not turn into an echo connection.
        if cx.tag() == ROOM_CONNECTION {
            self.rooms.on_message(cx, message);
        } else {
            self.echo.on_message(cx, message);
        }
    }
}
