//! `/ws/{room}`: join the room named by the path; every data message received is
//! published to the room, encoded once for all its members on all shards.
//!
//! With history on (`--history N`), `?seq=1` delivers room messages in the sequence
//! framing and `?since=SEQ` resumes: the retained messages after `SEQ` first, then the
//! live stream (see [`crate::Context::resume`]). With history off, either parameter
//! gets close 1008; a malformed value gets HTTP 400.

use crate::handler::{Context, Handler, Message, Rejection, Upgrade, UpgradeRequest};

use super::ROOM_PREFIX;
use crate::proto::close::codes;

/// Longest room name accepted.
pub const MAX_ROOM_NAME: usize = 128;

/// The room named by a `/ws/{room}` path, if the path is one.
pub fn room_name(path: &str) -> Option<&str> {
    let name = path.strip_prefix(ROOM_PREFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// What the query string asks of history.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// `seq=1`: deliver in the sequence framing.
    pub seq: bool,
    /// `since=N`: resume after N (implies `seq`).
    pub since: Option<u64>,
}

impl HistoryQuery {
    /// Parse `seq` and `since` out of a raw query string (other parameters are ignored).
    pub fn parse(query: Option<&str>) -> Result<Self, &'static str> {
        let mut q = HistoryQuery::default();
        for pair in query.unwrap_or("").split('&') {
            match pair.split_once('=').unwrap_or((pair, "")) {
                ("seq", "1" | "true") => q.seq = true,
                ("seq", "0" | "false") => q.seq = false,
                ("seq", _) => return Err("seq must be 1 or 0"),
                ("since", n) => {
                    q.since = Some(n.parse().map_err(|_| "since must be an unsigned integer")?)
                }
                _ => {}
            }
        }
        Ok(q)
    }

    fn wanted(&self) -> bool {
        self.seq || self.since.is_some()
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Rooms {
    /// Do not send a publisher its own messages.
    pub exclude_sender: bool,
}

impl Handler for Rooms {
    fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
        if let Err(reason) = HistoryQuery::parse(request.query.as_deref()) {
            return Upgrade::Reject(Rejection {
                status: 400,
                reason,
            });
        }
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
        let Some(name) = room_name(&request.path) else {
            return;
        };
        let query = HistoryQuery::parse(request.query.as_deref()).unwrap_or_default();
        if query.wanted() && !cx.history_enabled() {
            cx.close(codes::POLICY, "history is off (--history 0)");
            return;
        }
        cx.set_sequenced(query.seq);
        match query.since {
            Some(since) => {
                cx.resume(name, since);
            }
            None => cx.join(name),
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

    #[test]
    fn history_query_parses_seq_and_since() {
        let q = |s| HistoryQuery::parse(Some(s));
        assert_eq!(
            q("seq=1"),
            Ok(HistoryQuery {
                seq: true,
                since: None
            })
        );
        assert_eq!(
            q("x=y&since=42"),
            Ok(HistoryQuery {
                seq: false,
                since: Some(42)
            })
        );
        assert!(q("since=-1").is_err() && q("seq=2").is_err());
        assert_eq!(HistoryQuery::parse(None), Ok(HistoryQuery::default()));
    }
}
