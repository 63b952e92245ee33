//! The upgrade side of sessions: what a request's resume token gets (a fresh session,
//! or the one it names: `resumed`, `expired`, `unknown`), the headers of the 101, and
//! the take-over once the 101 is queued — memberships, tag, framing and replay marks
//! move to the new slot, then the buffered messages are queued, the older connection
//! (if still open) is closed with [`super::TAKEN_OVER_CODE`]. An SSE stream gets the
//! same headers on its `200` and, since an `EventSource` cannot read them, the same
//! facts as its first event after `retry:` ([`Started::sse_event`]). A session may be
//! resumed over either transport whatever transport it started on: the buffer keeps
//! publications and unframed direct messages, framed at resume for the new connection.

use std::mem;
use std::time::Instant;

use crate::conn::{DisconnectReason, Phase, ResumeResult};
use crate::proto::frame::Opcode;
use crate::proto::handshake::{Transport, UpgradeRequest};
use crate::wire::{ConnKey, Encoding, PreparedFrame};

use crate::shard::state::ShardState;

use super::{
    presented, Missed, Released, ResumeToken, Session, SessionLink, RESUME_HEADER, SESSION_HEADER,
    TAKEN_OVER_CODE, TAKEN_OVER_REASON, TOKEN_HEADER,
};

/// What [`ShardState::start_session`] decided for an upgrade.
#[derive(Debug, Default)]
pub(crate) struct Started {
    /// Headers for the 101 (none with sessions off).
    pub headers: Vec<(&'static str, String)>,
    /// Resuming: the slot that held the session, and the session.
    pub from: Option<(ConnKey, Box<Session>)>,
    /// The answer to a presented token, and (resumed) how many buffered messages the
    /// session lost.
    pub answer: Option<(ResumeResult, u64)>,
}

impl Started {
    /// The session announcement for an SSE stream (`None` with no session): the event
    /// `session` with data `{"type":"session","id":ID,"token":TOKEN}`, plus
    /// `"resume":RESULT` when a token was presented and `"lost":N` when it resumed.
    pub fn sse_event(&self) -> Option<PreparedFrame> {
        let value = |name| {
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        };
        let (id, token) = (value(SESSION_HEADER)?, value(TOKEN_HEADER)?);
        // Ids and tokens are hex digits, `-` and `.`: nothing to escape.
        let mut json = format!(r#"{{"type":"session","id":"{id}","token":"{token}""#);
        match self.answer {
            Some((ResumeResult::Resumed, lost)) => {
                json.push_str(&format!(r#","resume":"resumed","lost":{lost}"#));
            }
            Some((result, _)) => json.push_str(&format!(r#","resume":"{}""#, result.as_str())),
            None => {}
        }
        json.push('}');
        Some(PreparedFrame::sse_event(SESSION_EVENT, &json))
    }
}

/// The SSE event type announcing the session ([`Started::sse_event`]).
pub const SESSION_EVENT: &str = "session";

/// The control message telling a resumed client how many buffered messages were
/// dropped (same shape as the `{"type":"gap",…}` messages of history resumes).
pub fn lost_message(lost: u64) -> String {
    format!(r#"{{"type":"session","lost":{lost}}}"#)
}

impl ShardState {
    /// Route a presented token: `Some(shard)` when it names a session of another shard
    /// of this server (the socket must be handed to it).
    pub(crate) fn session_elsewhere(&self, request: &UpgradeRequest) -> Option<usize> {
        if !self.shared.cfg.sessions.enabled() {
            return None;
        }
        let shard = presented(request)??.id.shard;
        (shard != self.id && shard < self.hub.shared().shard_count()).then_some(shard)
    }

    /// An upgrade resuming a detached session of this shard takes over the admission
    /// slot the session kept (true: it needs none of its own). Only a WebSocket
    /// upgrade, the transport that resumes sessions; called once the upgrade is
    /// otherwise accepted, right before [`ShardState::start_session`] takes the session.
    pub(crate) fn take_detached_admission(&mut self, request: &UpgradeRequest) -> bool {
        if !self.shared.cfg.sessions.enabled() || request.transport != Transport::WebSocket {
            return false;
        }
        let Some(Some(token)) = presented(request) else {
            return false;
        };
        let Some(holder) = self
            .sessions
            .holder(token.id.bits)
            .filter(|_| token.id.shard == self.id)
        else {
            return false;
        };
        let slot = &mut self.slots[holder];
        let resumes = slot.session.is_detached()
            && slot
                .session
                .session()
                .is_some_and(|s| s.token.matches(&token));
        resumes && mem::take(&mut slot.admitted)
    }

    /// Decide the session of an upgrade that is being accepted (`key`, with `request`):
    /// with sessions on, either the session its token names (taken from its slot) or a
    /// fresh one. Counts the resume result.
    pub(crate) fn start_session(
        &mut self,
        key: ConnKey,
        request: &UpgradeRequest,
        now: Instant,
    ) -> Started {
        let cfg = self.shared.cfg.sessions;
        if !cfg.enabled() {
            return Started::default();
        }
        let result = presented(request).map(|token| self.look_up(token, now));
        let mut from = None;
        let session = match result {
            Some((ResumeResult::Resumed, Some(holder))) => {
                let session = self.take_session(holder);
                from = Some(holder);
                session
            }
            _ => match ResumeToken::generate(self.id) {
                Ok(token) => Box::new(Session::new(token)),
                Err(e) => {
                    tracing::warn!(error = %e, "no session: the OS RNG failed");
                    return Started::default();
                }
            },
        };
        let mut headers = vec![
            (SESSION_HEADER, session.id().to_string()),
            (TOKEN_HEADER, session.token.to_string()),
        ];
        let mut answer = None;
        if let Some((result, _)) = result {
            answer = Some((result, session.buffer.lost()));
            headers.push((RESUME_HEADER, result.as_str().to_string()));
            self.metrics().session_resume(self.id, result);
            if result == ResumeResult::Resumed && session.buffer.lost() > 0 {
                self.metrics()
                    .session_resume(self.id, ResumeResult::BufferOverflow);
            }
        }
        self.sessions.hold(session.token.id.bits, key);
        match from {
            Some(holder) => Started {
                headers,
                from: Some((holder, session)),
                answer,
            },
            None => {
                self.slots[key].session = SessionLink::Held(session);
                self.report_sessions();
                Started {
                    headers,
                    from: None,
                    answer,
                }
            }
        }
    }

    /// What `token` names here: `Resumed` with the slot holding it, `Expired` or
    /// `Unknown`.
    fn look_up(
        &mut self,
        token: Option<ResumeToken>,
        now: Instant,
    ) -> (ResumeResult, Option<ConnKey>) {
        let Some(token) = token.filter(|t| t.id.shard == self.id) else {
            return (ResumeResult::Unknown, None);
        };
        let grace = self.shared.cfg.sessions.grace;
        match self.sessions.holder(token.id.bits) {
            // A session whose connection the server is closing (a kick, a slow-consumer
            // close: `kicked`) ends with it: what was dropped from its queue and what
            // its rooms published since were never buffered, so it cannot resume.
            Some(holder)
                if self.slots[holder]
                    .session
                    .session()
                    .is_some_and(|s| s.token.matches(&token) && !s.kicked) =>
            {
                (ResumeResult::Resumed, Some(holder))
            }
            Some(_) => (ResumeResult::Unknown, None),
            None if self.sessions.recently_expired(&token, now, grace) => {
                (ResumeResult::Expired, None)
            }
            None => (ResumeResult::Unknown, None),
        }
    }

    /// Take the session out of `holder`: a detached one stops waiting (its slot goes
    /// once the rooms moved); an attached one's connection is marked taken over.
    fn take_session(&mut self, holder: ConnKey) -> Box<Session> {
        let slot = &mut self.slots[holder];
        let detached = slot.session.is_detached();
        let link = if detached {
            slot.deadline = None;
            SessionLink::None
        } else {
            SessionLink::TakenOver
        };
        let SessionLink::Held(mut session) = mem::replace(&mut slot.session, link) else {
            unreachable!("look_up found a held session");
        };
        if detached {
            // The resuming connection holds its own admission slot.
            if mem::take(&mut slot.admitted) {
                self.shared.admission.release();
            }
            self.sessions
                .remove_detached(session.detach_seq, session.buffer.bytes());
        }
        session.kicked = false;
        session
    }

    /// The 101 of `to` is queued: move to it what `from` held (rooms — joined here
    /// before they are left there —, tag, framing, replay marks), queue the lost-count
    /// message (WebSocket; an SSE stream had it in its `session` event) and the buffered
    /// messages, each in the new connection's wire form, and end `from` (close it with
    /// [`TAKEN_OVER_CODE`] if still open, free it if detached and released).
    pub(crate) fn take_over(&mut self, to: ConnKey, from: ConnKey, mut session: Box<Session>) {
        for room in self.rooms_of(from) {
            self.join(to, &room);
        }
        let marks = mem::take(&mut self.slots[from].replay_marks);
        self.leave_all(from);
        let (tag, sequenced) = (self.slots[from].tag, self.slots[from].sequenced);
        let (missed, lost) = session.buffer.take();
        let released = session.detached.take() == Some(Released(true));
        let deflate = self.shared.cfg.deflate;
        let slot = &mut self.slots[to];
        slot.tag = tag;
        slot.sequenced |= sequenced;
        slot.replay_marks = marks;
        let transport = slot.conn.transport();
        if lost > 0 && transport == Transport::WebSocket {
            slot.conn.push_replay(PreparedFrame::encode(
                Opcode::Text,
                lost_message(lost).as_bytes(),
            ));
        }
        let min = deflate.min_size_for(slot.conn.compresses());
        for m in missed {
            let frame = match m {
                Missed::Room(p) if transport == Transport::Sse => p.frame(Encoding::Sse).clone(),
                Missed::Room(p) => p.frame_for(slot.sequenced, min).clone(),
                Missed::Direct(d) => d.frame_for(transport),
            };
            slot.conn.push_replay(frame);
        }
        slot.session = SessionLink::Held(session);
        self.mark_dirty(to);
        let old = &mut self.slots[from];
        match old.conn.phase() {
            // Detached: free the slot now if the driver released its socket, else
            // the driver's release frees it (it holds no session any more).
            Phase::Closed => {
                if released {
                    self.slots.remove(from);
                }
            }
            _ => {
                old.conn.record_reason(DisconnectReason::Duplicate);
                self.close(from, TAKEN_OVER_CODE, TAKEN_OVER_REASON);
            }
        }
        self.report_sessions();
    }
}
