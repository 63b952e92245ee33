//! `/ws/{room}`: join the room named by the path; every data message received is
//! published to the room, encoded once for all its members on all shards.
//!
//! `/sse/{room}` is the same room as a Server-Sent Events stream (receive only): it
//! resumes after `Last-Event-ID` (or `?lastEventId=`) with history on (see
//! [`last_event_id`]).
//!
//! With history on (`--history N`), `?seq=1` delivers room messages in the sequence
//! framing and `?since=SEQ` resumes: the retained messages after `SEQ` first, then the
//! live stream (see [`crate::Context::resume`]). With history off, either parameter
//! gets close 1008; a malformed value gets HTTP 400.
//!
//! Access ([`RoomAccess`], applied by [`super::Builtin`]): with a subscribe token set, an upgrade that presents no
//! token gets HTTP 401; one that presents a token matching neither token gets 403
//! (whichever tokens are set). With a publish token set, a connection that did not
//! present it may only subscribe: its first data message is answered with close 1008
//! "not allowed to publish" and reaches no one.

use crate::handler::{Context, Handler, Identity, Message, Rejection, Upgrade, UpgradeRequest};

use super::token::{self, Token};
use super::ROOM_PREFIX;
use crate::proto::close::codes;
use crate::proto::handshake::Transport;
use crate::shard::SSE_PREFIX;
use crate::wire::room_name::{self, RoomNameError};
use crate::wire::sequence::reset_message;

/// The `{room}` segment of a `/ws/{room}` (or SSE `/sse/{room}`) path, as spelled;
/// `None` when the path is not one (another prefix, an empty segment, or more than one
/// segment).
pub fn room_segment(path: &str) -> Option<&str> {
    let segment = path
        .strip_prefix(ROOM_PREFIX)
        .or_else(|| path.strip_prefix(SSE_PREFIX))?;
    (!segment.is_empty() && !segment.contains('/')).then_some(segment)
}

/// The room a `/ws/{room}` path names: `None` when the path is not one
/// ([`room_segment`]), else the segment decoded by the room-name rule
/// ([`room_name::from_path_segment`]) or why the rule refuses it.
pub fn room_name(path: &str) -> Option<Result<String, RoomNameError>> {
    room_segment(path).map(room_name::from_path_segment)
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
                    q.since = Some(decimal(n).ok_or("since must be an unsigned integer")?)
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

/// The event id an SSE request resumes after: the `Last-Event-ID` header (what an
/// `EventSource` sends when it reconnects; empty counts as absent), else the
/// `lastEventId` query parameter (for clients that cannot set headers). `Err` for a
/// value that is not an unsigned integer (our ids are room sequence numbers).
pub fn last_event_id(request: &UpgradeRequest) -> Result<Option<u64>, &'static str> {
    let header = request.header("last-event-id").filter(|v| !v.is_empty());
    let query = || {
        request
            .query
            .as_deref()
            .unwrap_or("")
            .split('&')
            .find_map(|pair| pair.strip_prefix("lastEventId="))
    };
    header
        .or_else(query)
        .map(|v| decimal(v).ok_or("last event id must be an unsigned integer"))
        .transpose()
}

/// A sequence number: ASCII digits only (`u64::from_str` also takes a leading `+`,
/// which no id we issue has), at most `u64::MAX`.
fn decimal(s: &str) -> Option<u64> {
    s.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| s.parse().ok())
        .flatten()
}

#[derive(Debug, Default, Clone, Copy)]
pub struct Rooms {
    /// Do not send a publisher its own messages.
    pub exclude_sender: bool,
}

/// The token rules of the rooms app (`--publish-token`, `--subscribe-token`).
#[derive(Debug, Default, Clone)]
pub struct RoomAccess {
    /// Only connections presenting this token may publish (`--publish-token`).
    pub publish_token: Option<Token>,
    /// Only connections presenting a token may connect (`--subscribe-token`); the
    /// publish token is accepted too.
    pub subscribe_token: Option<Token>,
}

/// Reason (and close reason) given to a subscriber-only connection that publishes.
pub const NOT_ALLOWED_TO_PUBLISH: &str = "not allowed to publish";

impl RoomAccess {
    /// Who the request is, from the token it presents: `Ok(None)` when no token is
    /// configured (anyone may do anything), else the identity to attach, or the
    /// rejection (401 no token where one is required, 403 a token that matches none).
    pub fn access(&self, request: &UpgradeRequest) -> Result<Option<Identity>, Rejection> {
        if self.publish_token.is_none() && self.subscribe_token.is_none() {
            return Ok(None);
        }
        let identity = |name: &str, can_publish| Identity {
            name: name.to_owned(),
            can_publish,
            can_subscribe: true,
        };
        let Some(presented) = token::presented(request) else {
            if self.subscribe_token.is_some() {
                return Err(Rejection {
                    status: 401,
                    reason: "token required",
                });
            }
            return Ok(Some(identity("anonymous", false)));
        };
        // Both compared, whatever the first result, so timing does not tell which matched.
        let publisher = self
            .publish_token
            .as_ref()
            .is_some_and(|t| t.matches(presented));
        let subscriber = self
            .subscribe_token
            .as_ref()
            .is_some_and(|t| t.matches(presented));
        if publisher {
            Ok(Some(identity("publisher", true)))
        } else if subscriber {
            Ok(Some(identity("subscriber", self.publish_token.is_none())))
        } else {
            Err(Rejection {
                status: 403,
                reason: "invalid token",
            })
        }
    }
}

impl Rooms {
    /// [`Handler::on_upgrade`] for a request [`RoomAccess::access`] let through with
    /// `identity`.
    pub fn upgrade_as(&self, request: &UpgradeRequest, identity: Option<Identity>) -> Upgrade {
        let query = match request.transport {
            Transport::WebSocket => HistoryQuery::parse(request.query.as_deref()).map(drop),
            Transport::Sse => last_event_id(request).map(drop),
        };
        if let Err(reason) = query {
            return Upgrade::Reject(Rejection {
                status: 400,
                reason,
            });
        }
        // Each prefix serves its own transport: no WebSocket on /sse/, no SSE on /ws/.
        let prefix = match request.transport {
            Transport::WebSocket => ROOM_PREFIX,
            Transport::Sse => SSE_PREFIX,
        };
        let route = room_name(&request.path).filter(|_| request.path.starts_with(prefix));
        match route {
            Some(Ok(_)) => match identity {
                Some(identity) => Upgrade::AcceptAs(identity),
                None => Upgrade::Accept,
            },
            Some(Err(e)) => Upgrade::Reject(Rejection {
                status: e.status(),
                reason: e.reason(),
            }),
            None => Upgrade::Reject(Rejection {
                status: 404,
                reason: "unknown path: use /ws/{room} (WebSocket) or /sse/{room} (SSE)",
            }),
        }
    }
}

/// [`Rooms::on_open`] for an SSE stream: join the room, or resume it after the
/// [`last_event_id`] (missed events first, `event: gap` / `event: reset` when part of it
/// is gone). With history off there are no ids to resume from: an id gets
/// `event: reset` with `{"type":"reset","next":0}`, then the live stream.
fn open_sse(cx: &mut Context<'_>, request: &UpgradeRequest, name: &str) {
    let last = last_event_id(request).ok().flatten();
    let joined = match last {
        Some(last) if cx.history_enabled() => cx.resume(name, last).map(drop),
        Some(_) => {
            cx.send_event("reset", &reset_message(0));
            cx.join(name)
        }
        None => cx.join(name),
    };
    if let Err(e) = joined {
        cx.close(codes::POLICY, e.reason());
    }
}

impl Handler for Rooms {
    fn on_upgrade(&self, request: &UpgradeRequest) -> Upgrade {
        self.upgrade_as(request, None)
    }

    /// Joins the room (all identities the built-in access rules give may subscribe).
    fn on_open(&self, cx: &mut Context<'_>, request: &UpgradeRequest) {
        let Some(Ok(name)) = room_name(&request.path) else {
            return;
        };
        if request.transport == Transport::Sse {
            return open_sse(cx, request, &name);
        }
        let query = HistoryQuery::parse(request.query.as_deref()).unwrap_or_default();
        if query.wanted() && !cx.history_enabled() {
            cx.close(codes::POLICY, "history is off (--history 0)");
            return;
        }
        cx.set_sequenced(query.seq);
        let joined = match query.since {
            Some(since) => cx.resume(&name, since).map(drop),
            None => cx.join(&name),
        };
        // `on_upgrade` checked the name with the same rule, so this does not fail.
        if let Err(e) = joined {
            cx.close(codes::POLICY, e.reason());
        }
    }

    /// Publishes to the joined rooms, unless the identity forbids publishing: then
    /// close 1008 [`NOT_ALLOWED_TO_PUBLISH`] and the message reaches no one.
    fn on_message(&self, cx: &mut Context<'_>, message: Message<'_>) {
        if cx.identity().is_some_and(|i| !i.can_publish) {
            cx.close(codes::POLICY, NOT_ALLOWED_TO_PUBLISH);
            return;
        }
        cx.publish_to_joined(message, !self.exclude_sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::app::token::request_for_tests as request;

    #[test]
    fn each_prefix_serves_its_own_transport() {
        let rooms = Rooms::default();
        let mut ws = request(None, None);
        assert_eq!(rooms.upgrade_as(&ws, None), Upgrade::Accept);
        ws.path = "/sse/a".into();
        assert!(matches!(rooms.upgrade_as(&ws, None), Upgrade::Reject(r) if r.status == 404));
        let mut sse = request(Some("lastEventId=3"), None);
        sse.transport = Transport::Sse;
        assert!(matches!(rooms.upgrade_as(&sse, None), Upgrade::Reject(r) if r.status == 404));
        sse.path = "/sse/a".into();
        assert_eq!(rooms.upgrade_as(&sse, None), Upgrade::Accept);
        sse.query = Some("lastEventId=x".into());
        assert!(matches!(rooms.upgrade_as(&sse, None), Upgrade::Reject(r) if r.status == 400));
        sse.headers = vec![("last-event-id".into(), "7".into())];
        assert_eq!(
            last_event_id(&sse),
            Ok(Some(7)),
            "the header wins over the query"
        );
    }

    #[test]
    fn access_by_token() {
        let token = |s| Some(Token::parse(s).unwrap());
        let open = RoomAccess::default();
        assert_eq!(open.access(&request(None, None)), Ok(None));
        let publish = RoomAccess {
            publish_token: token("p"),
            subscribe_token: None,
        };
        let id = publish.access(&request(None, None)).unwrap().unwrap();
        assert!(!id.can_publish && id.can_subscribe);
        let id = publish
            .access(&request(Some("token=p"), None))
            .unwrap()
            .unwrap();
        assert!(id.can_publish);
        assert_eq!(
            publish
                .access(&request(None, Some("Bearer x")))
                .unwrap_err()
                .status,
            403
        );
        let both = RoomAccess {
            publish_token: token("p"),
            subscribe_token: token("s"),
        };
        assert_eq!(both.access(&request(None, None)).unwrap_err().status, 401);
        assert_eq!(
            both.access(&request(Some("token=x"), None))
                .unwrap_err()
                .status,
            403
        );
        let id = both
            .access(&request(None, Some("Bearer s")))
            .unwrap()
            .unwrap();
        assert!(!id.can_publish && id.can_subscribe);
        let id = both
            .access(&request(None, Some("Bearer p")))
            .unwrap()
            .unwrap();
        assert!(id.can_publish && id.can_subscribe);
        let subscribe = RoomAccess {
            publish_token: None,
            subscribe_token: token("s"),
        };
        let id = subscribe
            .access(&request(Some("token=s"), None))
            .unwrap()
            .unwrap();
        assert!(id.can_publish);
    }

    #[test]
    fn room_names_come_from_the_path() {
        assert_eq!(room_name("/ws/news"), Some(Ok("news".to_owned())));
        assert_eq!(room_name("/ws/caf%C3%A9"), Some(Ok("café".to_owned())));
        assert_eq!(room_name("/ws/a%2Fb"), Some(Err(RoomNameError::Slash)));
        assert_eq!(room_name("/ws/"), None);
        assert_eq!(room_name("/ws/a/b"), None);
        assert_eq!(room_name("/echo"), None);
    }

    #[test]
    fn refused_room_names_get_their_status() {
        let upgrade = |path: &str| {
            let mut request = request(None, None);
            request.path = path.to_owned();
            Rooms::default().on_upgrade(&request)
        };
        assert_eq!(upgrade("/ws/caf%c3%a9"), Upgrade::Accept);
        let too_long = format!(
            "/ws/{}",
            "%C3%A9".repeat(room_name::MAX_ROOM_NAME_BYTES / 2 + 1)
        );
        for (path, status) in [("/ws/%00", 400), ("/ws/%FF", 400), (too_long.as_str(), 414)] {
            match upgrade(path) {
                Upgrade::Reject(r) => assert_eq!(r.status, status, "{path}"),
                other => panic!("{path}: {other:?}"),
            }
        }
        assert!(matches!(
            upgrade("/ws/a/b"),
            Upgrade::Reject(Rejection { status: 404, .. })
        ));
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
        assert!(q("since=+1").is_err() && q("since=18446744073709551616").is_err());
        assert_eq!(HistoryQuery::parse(None), Ok(HistoryQuery::default()));
    }
}
