//! The binary's built-in applications, written on the public [`crate::Handler`] API.
//!
//! `/ws/{room}` joins the room and publishes every data message it receives to it
//! (the sender included unless `exclude_sender`); `/echo` echoes every message back (what
//! conformance suites expect). Any other path is answered 404. Tokens ([`RoomAccess`])
//! govern `/ws/{room}` only; `/echo` is open to anyone past the Origin check.

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
        if rooms::room_name(&request.path).is_some() {
            return match self.access.access(request) {
                Ok(identity) => self.rooms.upgrade_as(request, identity),
                Err(rejection) => Upgrade::Reject(rejection),
            };
        }
        Upgrade::Reject(Rejection {
            status: 404,
            reason: "unknown path: use /ws/{room} or /echo",
        })
    }

    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        if request.path != ECHO_PATH {
            self.rooms.on_open(cx, request);
        }
    }

    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        // Room members joined on open; echo connections never join a room.
        if cx.joined_count() > 0 {
            self.rooms.on_message(cx, message);
        } else {
            self.echo.on_message(cx, message);
        }
    }
}
