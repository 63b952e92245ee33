//! `/ws/{room}`: join the room named by the path; every data message received is
//! published to the room, encoded once for all its members on all shards.

use crate::handler::{Context, Handler, Message, Rejection, Upgrade, UpgradeRequest};

use super::ROOM_PREFIX;

/// Longest room name accepted.
pub const MAX_ROOM_NAME: usize = 128;

/// The room named by a `/ws/{room}` path, if the path is one.
pub fn room_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix(ROOM_PREFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Rooms {
    /// Do not send a publisher its own messages.
    pub exclude_sender: bool,
}

impl Handler for Rooms {
    fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
        match room_name(&request.path) {
            Some(name) if name.len() <= MAX_ROOM_NAME => Upgrade::Accept,
            Some(_) => Upgrade::Reject(Rejection {
                status: 414,
                reason: "room name too long",
            }),
            None => Upgrade::Reject(Rejection {
                status: 404,
                reason: "unknown path: use /ws/{room}",
            }),
        }
    }

    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        if let Some(name) = room_name(&request.path) {
            cx.join(name);
        }
    }

    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        cx.publish_to_joined(message, !self.exclude_sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_come_from_the_path() {
        assert_eq!(room_name("/ws/news"), Some("news"));
        assert_eq!(room_name("/ws/"), None);
        assert_eq!(room_name("/ws/a/b"), None);
        assert_eq!(room_name("/echo"), None);
    }
}
