//! Sessions that survive a dropped connection (`--session-grace`).
//!
//! With a grace period set, every WebSocket upgrade (and SSE stream) opens a
//! **session**: the 101
//! carries [`SESSION_HEADER`] (its id, `SHARD-HEX32`) and [`TOKEN_HEADER`] (its resume
//! token, `ID.HEX32`; 128 random bits each from the OS RNG, see [`token`]). When the
//! socket goes away for any cause but a client close with 1000 or a close the server
//! started, the session is **detached**, not destroyed: its slot stays in the shard's
//! slab (the socket is closed and released as usual), it stays a member of its rooms,
//! and what would have been sent to it goes into its [`buffer::SessionBuffer`]
//! (`--session-buffer-bytes`; over it the oldest go and are counted).
//!
//! A new connection presenting the token ([`TOKEN_HEADER`] or `?resume=TOKEN`) within
//! the grace period **resumes** it ([`resume`]): the 101 says [`RESUME_HEADER`]`:
//! resumed`, the memberships, tag, sequencing and replay marks move to the new slot
//! (joined there before they are left on the old one, so no room closes in between),
//! a `{"type":"session","lost":N}` text message goes first when the buffer overflowed,
//! then the buffered messages in order, then the live stream; `on_resume` is called
//! instead of `on_open`. No message twice and none the buffer kept is missing: on one
//! shard a message is either queued to the socket or buffered, never both. An unknown
//! token gets `unknown`, one whose session expired within the last grace period
//! `expired`; both get a fresh session. A token whose session is still attached takes
//! it over: the older connection is closed with [`TAKEN_OVER_CODE`] and counted as
//! `duplicate`. A session not resumed in time ends ([`detach`]): rooms left,
//! `on_close` called once, `grace_expired` counted.
//!
//! **Detached sessions are capped** (`--session-max-detached`, default 10,000 for the
//! server; each shard holds at most its share, `ceil(N / shards)`): the admission slot
//! and the fd go at detach, so without it a peer that connects and resets in a loop
//! would leave one session (and up to `--session-buffer-bytes`) per connection for a
//! whole grace period. A detach over the share ends the shard's **oldest** detached
//! session early, exactly as grace expiry does but counted `session_evicted`; its token
//! then answers `expired`. The order is [`Sessions`]' detach order (a `BTreeMap` from a
//! per-shard detach sequence number, holding exactly the detached sessions).
//!
//! **A resume may land on another shard** (SO_REUSEPORT spreads connections). The
//! session never moves: the socket does ([`handover`]). The shard that parsed the
//! head sees from the token's `SHARD-` prefix that another shard holds the session,
//! and hands over the accepted socket (the fd, the request head it parsed, the bytes
//! read past it, and the TLS session when `wss://`) through the holder's inbox; the
//! holder's event loop adopts the fd like an accepted one and answers the upgrade as
//! if it had accepted it. Chosen over moving the session to the accepting shard
//! because that needs a cut-over between two shards' room memberships: a publication
//! routed to the old shard before the new one joined may still be in flight to it
//! after the old shard let go, so it would have to forward, and the new one dedupe,
//! for an unknown time. With one owner there is no cut-over and no dedupe; the cost is
//! one inbox hop per cross-shard resume. RFC 6455 §4.1 has the client wait for the 101
//! before sending frames, so no input is in flight while the socket changes hands
//! (what the first shard had read past the head goes along).
//!
//! **Server-Sent Events** streams carry sessions the same way (`crate::shard::sse`):
//! the `200` gets the same headers and the stream's first event after `retry:` is
//! `event: session` with them as JSON (plus the resume answer and `lost`); an SSE
//! client cannot close with 1000, so every socket loss of a stream detaches. The
//! buffer keeps publications and unframed direct messages ([`crate::wire::Direct`]),
//! so a session resumes over either transport whatever it started on: its messages
//! are framed for the resuming connection.
//!
//! Sessions are node-local: in cluster mode a resume that reaches another node gets
//! `unknown`; the client falls back to room history (`?since=`).

pub mod buffer;
mod detach;
mod handover;
mod resume;
pub mod store;
pub mod token;

use std::time::Duration;

pub use buffer::{Missed, SessionBuffer};
pub(crate) use detach::{buffer_if_detached, MissedTally};
pub use store::Sessions;
pub use token::{ResumeToken, SessionId};

/// Response header carrying the session id (`SHARD-HEX32`).
pub const SESSION_HEADER: &str = "x-ringcast-session";
/// Request and response header carrying the resume token (`SHARD-HEX32.HEX32`).
pub const TOKEN_HEADER: &str = "x-ringcast-resume-token";
/// Response header answering a presented token: `resumed`, `expired` or `unknown`.
pub const RESUME_HEADER: &str = "x-ringcast-resume";
/// Query parameter carrying the resume token (browsers cannot set request headers).
pub const TOKEN_PARAM: &str = "resume";
/// Close code sent to a connection whose session a newer connection took over
/// (private-use range, RFC 6455 §7.4.2), with reason [`TAKEN_OVER_REASON`].
pub const TAKEN_OVER_CODE: u16 = 4409;
/// Close reason sent with [`TAKEN_OVER_CODE`].
pub const TAKEN_OVER_REASON: &str = "session taken over";

/// Session settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How long a detached session waits for a resume (zero: no sessions; default).
    pub grace: Duration,
    /// Most bytes a detached session buffers (default 256 KiB); over it the oldest
    /// messages are dropped and the resume reports how many.
    pub buffer_bytes: usize,
    /// Most detached sessions the whole server holds (default 10,000; at least 1), each
    /// shard its share, `ceil(max_detached / shards)` ([`Self::shard_share`]). A detach
    /// over its shard's share ends that shard's oldest detached session early
    /// (`session_evicted`).
    pub max_detached: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            grace: Duration::ZERO,
            buffer_bytes: 256 << 10,
            max_detached: 10_000,
        }
    }
}

impl SessionConfig {
    /// Sessions are on (a grace period is set).
    pub fn enabled(&self) -> bool {
        !self.grace.is_zero()
    }

    /// The detached sessions one of `shards` shards may hold: its share of
    /// [`Self::max_detached`], rounded up (at least 1).
    pub fn shard_share(&self, shards: usize) -> usize {
        self.max_detached.div_ceil(shards.max(1)).max(1)
    }
}

/// A slot's relation to a session.
#[derive(Debug, Default)]
pub enum SessionLink {
    /// No session (sessions off, or the RNG failed).
    #[default]
    None,
    /// The slot holds the session (attached while its connection is open, else
    /// detached).
    Held(Box<Session>),
    /// A newer connection took the session over; this one is closing (no detach, no
    /// `on_close`: the session goes on).
    TakenOver,
}

/// One session's state, held by its slot.
#[derive(Debug)]
pub struct Session {
    pub(crate) token: ResumeToken,
    pub(crate) buffer: SessionBuffer,
    /// The server started the close (a kick, shutdown, a protocol error): the session
    /// ends with the connection instead of detaching.
    pub(crate) kicked: bool,
    /// `Some` while detached: whether the driver released the old socket yet.
    pub(crate) detached: Option<Released>,
    /// While detached: its place in the shard's detach order ([`Sessions`]).
    pub(crate) detach_seq: u64,
}

/// Whether a detached slot's socket was released by the driver (then the slot may be
/// removed as soon as the session is done with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released(pub bool);

impl Session {
    pub(crate) fn new(token: ResumeToken) -> Self {
        Session {
            token,
            buffer: SessionBuffer::default(),
            kicked: false,
            detached: None,
            detach_seq: 0,
        }
    }

    /// The session's id.
    pub fn id(&self) -> SessionId {
        self.token.id
    }
}

impl SessionLink {
    /// The held session, if any.
    pub fn session(&self) -> Option<&Session> {
        match self {
            SessionLink::Held(s) => Some(s),
            _ => None,
        }
    }

    /// The held session, detached.
    pub(crate) fn detached_mut(&mut self) -> Option<&mut Session> {
        match self {
            SessionLink::Held(s) if s.detached.is_some() => Some(s),
            _ => None,
        }
    }

    /// True when it holds a detached session.
    #[inline]
    pub fn is_detached(&self) -> bool {
        matches!(self, SessionLink::Held(s) if s.detached.is_some())
    }

    /// The server started closing the connection holding this session (a kick, a
    /// slow-consumer close): the session ends with it, and cannot be resumed meanwhile.
    #[inline]
    pub(crate) fn kick(&mut self) {
        if let SessionLink::Held(s) = self {
            s.kicked = true;
        }
    }
}

/// The token a request presents: [`TOKEN_HEADER`], else `?resume=`. `Some(None)`: one
/// was presented but is malformed.
pub fn presented(request: &crate::proto::handshake::UpgradeRequest) -> Option<Option<ResumeToken>> {
    let raw = request.header(TOKEN_HEADER).or_else(|| {
        request.query.as_deref().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == TOKEN_PARAM)
                .map(|(_, v)| v)
        })
    })?;
    Some(ResumeToken::parse(raw.trim()))
}
