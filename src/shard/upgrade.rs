//! The upgrade policy: what a complete request head gets. In order: the Origin check
//! (`--allowed-origin`, `--require-origin`: 403), the handler's decision
//! ([`crate::Handler::on_upgrade_from`]; a panic answers 500), the admission cap (503
//! with `Retry-After: 1`); then the 101 with the [`super::SHARD_HEADER`] and the
//! session headers, the first heartbeat deadline, and `on_open` — or `on_resume` after
//! the session's take-over. A resume token naming another shard's session comes first:
//! the socket is handed to that shard ([`super::session`]). An SSE stream (`sse.rs`)
//! goes through the same policy ([`Shard::admit`]) and opening ([`Shard::opened`]) with
//! its own response and the same sessions.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::conn::Timer;
use crate::proto::handshake::{accept_response, Rejection, UpgradeRequest};
use crate::wire::ConnKey;

use super::api::{Peer, Upgrade};
use super::session::Session;
use super::{Shard, SHARD_HEADER};

impl Shard {
    /// Decide the upgrade of `key` (its request head is `request`) and answer it.
    pub(super) fn upgrade(&mut self, key: ConnKey, request: &UpgradeRequest, now: Instant) {
        if let Some(shard) = self.state.session_elsewhere(request) {
            return self.hand_over(key, request, shard);
        }
        if !self.admit(key, request) {
            return;
        }
        let shard = self.state.id.to_string();
        let deflate = self.state.shared.cfg.deflate.negotiate(request);
        let extensions = deflate.map(|a| a.response_value());
        let session = self.state.start_session(key, request, now);
        let slot = &mut self.state.slots[key];
        let mut headers = vec![(SHARD_HEADER, shard.as_str())];
        headers.extend(session.headers.iter().map(|(n, v)| (*n, v.as_str())));
        headers.extend(
            extensions
                .as_deref()
                .map(|v| ("Sec-WebSocket-Extensions", v)),
        );
        slot.conn.accept(accept_response(&request.key, &headers));
        if let Some(agreement) = deflate {
            slot.conn.enable_deflate(agreement);
        }
        self.opened(key, request, now, session.from);
    }

    /// The policy shared by every transport for the request opening `key` (WebSocket
    /// or SSE): the Origin check, the handler's decision, the admission cap. True when
    /// admitted (the identity is attached, the admission slot held); false when refused
    /// (the error response is queued and counted).
    pub(super) fn admit(&mut self, key: ConnKey, request: &UpgradeRequest) -> bool {
        let decision = if self.config().origins.permits(request.origin.as_deref()) {
            let peer = Peer {
                fd: self.state.slots[key].fd,
            };
            let decision = catch_unwind(AssertUnwindSafe(|| {
                self.handler.on_upgrade_from(request, peer)
            }));
            decision.unwrap_or_else(|panic| {
                self.report_panic(key, "on_upgrade", panic);
                Upgrade::Reject(Rejection {
                    status: 500,
                    reason: "internal error",
                })
            })
        } else {
            Upgrade::Reject(Rejection {
                status: 403,
                reason: "origin not allowed",
            })
        };
        // A keep-alive connection that published (`POST /publish`) before this request
        // already holds its slot.
        let holds_slot = self.state.slots[key].admitted;
        let (decision, identity) = match decision {
            Upgrade::AcceptAs(identity) => (Upgrade::Accept, Some(Box::new(identity))),
            other => (other, None),
        };
        let rejection = match decision {
            Upgrade::Reject(rejection) => Some((rejection, None)),
            Upgrade::Accept | Upgrade::AcceptAs(_)
                if !holds_slot
                    && !self.state.take_detached_admission(request)
                    && !self.state.shared.admission.try_acquire() =>
            {
                self.state.metrics().admission_rejected(self.state.id);
                let rejection = Rejection {
                    status: 503,
                    reason: "server at connection capacity",
                };
                Some((rejection, Some(("Retry-After", "1"))))
            }
            Upgrade::Accept | Upgrade::AcceptAs(_) => None,
        };
        let id = self.state.id;
        let slot = &mut self.state.slots[key];
        if let Some((rejection, header)) = rejection {
            slot.conn.reject(&rejection, header.as_slice());
            self.state
                .metrics()
                .handshake_rejected(id, rejection.status);
            tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, transport = request.transport.as_str(), "upgrade refused");
            return false;
        }
        slot.identity = identity;
        slot.admitted = self.state.shared.admission.is_limited();
        true
    }

    /// `key` was accepted (its response head is queued): the heartbeat deadline, then
    /// the handler's `on_open` — or, when `resumed` names the slot that held the
    /// session and the session, the take-over and `on_resume`.
    pub(super) fn opened(
        &mut self,
        key: ConnKey,
        request: &UpgradeRequest,
        now: Instant,
        resumed: Option<(ConnKey, Box<Session>)>,
    ) {
        self.state
            .metrics()
            .connection_accepted(self.state.id, request.transport);
        // The handshake deadline is over: the heartbeat's (if any) replaces it.
        let ping = self.config().timeouts.ping_interval;
        if ping.is_zero() {
            self.state.slots[key].deadline = None;
        } else {
            self.state.arm(key, ping, Timer::Ping, now);
        }
        match resumed {
            Some((from, session)) => {
                self.state.take_over(key, from, session);
                self.call(key, |h, cx| h.on_resume(cx, request));
            }
            None => self.call(key, |h, cx| h.on_open(cx, request)),
        }
    }
}
