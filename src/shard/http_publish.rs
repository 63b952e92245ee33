//! `POST /publish/{room}`: the HTTP publish API. A plain request whose path starts
//! with [`PUBLISH_PREFIX`] is routed here; its body becomes one publication through
//! the one publish entry (the same as a WebSocket client's publish: every shard's
//! members, history, the broker in cluster mode) and is answered `202 Accepted` with
//! `{"room":"…","seq":N}` (`seq` when history numbered it here: not in cluster mode,
//! where the broker numbers it on its way back).
//!
//! The checks, in order (the first that fails answers, and the connection closes
//! after the refusal):
//! - the method is `POST` → else 405 with `Allow: POST` (RFC 9110 §15.5.6);
//! - the path is `/publish/{room}` with one non-empty segment → else 404; the room
//!   segment obeys the room-name rule of `/ws/{room}` ([`room_name`]) → else 400 (414
//!   when too long);
//! - `binary` in the query is `1`/`true`/`0`/`false` or absent → else 400;
//! - `Expect` is absent or `100-continue` → else 417 (RFC 9110 §10.1.1);
//! - `Origin`, when the request carries one, is allowed (`--allowed-origin`) → else
//!   403 (`--require-origin` does not apply: a backend publisher is no browser);
//! - the handler's upgrade hook accepts it ([`crate::Handler::on_upgrade_from`], which
//!   tells a publish by [`UpgradeRequest::is_publish`]; the built-in app checks
//!   `--publish-token` there: 401 with `WWW-Authenticate: Bearer` without a token,
//!   403 with a wrong one) → else its status; an identity it attaches that may not
//!   publish → 403;
//! - a declared `Content-Length` is within `--max-message-size` → else 413 (a chunked
//!   body is refused with 413 as soon as its chunks would pass it);
//! - the admission cap (`--max-connections`) has room → else 503 with `Retry-After: 1`.
//!   A connection takes one admission slot with its first accepted publish and keeps
//!   it until it ends, like a WebSocket connection.
//!
//! Then, with `Expect: 100-continue`, `100 Continue` is sent, and the body is read
//! ([`crate::proto::body`]: 400 for bad chunk syntax, 413 over the cap). A text
//! publication's body must be UTF-8 → else 400. An empty body is a valid (empty)
//! publication, as an empty WebSocket message is.
//!
//! After the 202 a persistent connection (RFC 9112 §9.3: HTTP/1.1 without
//! `Connection: close`, HTTP/1.0 with `Connection: keep-alive`) reads its next
//! request: `--handshake-timeout` is armed again from the 202, so each request's head
//! and body must arrive within it, and an idle keep-alive connection is closed when it
//! expires. Every refusal closes the connection once written. Each answer is counted
//! in `ringcast_http_publish_requests_total{status}`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Instant;

use crate::conn::Timer;
use crate::proto::body::BodyReader;
use crate::proto::handshake::{Rejection, UpgradeRequest};
use crate::proto::publish::{
    accepted_response, binary_param, expect, keep_alive, Expect, PUBLISH_PREFIX,
};
use crate::proto::request::PlainRequest;
use crate::wire::room_name;
use crate::wire::ConnKey;

use super::api::{payload_of, Message, Peer, Upgrade};
use super::pending::PendingPublish;
use super::Shard;

/// A refusal and the one extra header it carries, if any.
type Refusal = (Rejection, Option<(&'static str, &'static str)>);

const fn refusal(status: u16, reason: &'static str) -> Refusal {
    (Rejection { status, reason }, None)
}

impl Shard {
    /// Route the plain request `request` on `key`, whose path starts with
    /// [`PUBLISH_PREFIX`] (see the module doc).
    pub(super) fn publish_request(&mut self, key: ConnKey, request: &PlainRequest, now: Instant) {
        let (pending, reader, send_continue) = match self.admit_publish(key, request) {
            Ok(admitted) => admitted,
            Err((rejection, header)) => return self.refuse_publish(key, &rejection, header),
        };
        if reader.is_complete() {
            return self.publish_body(key, pending, Vec::new(), now);
        }
        let slot = &mut self.state.slots[key];
        slot.publish = Some(Box::new(pending));
        slot.conn.read_body(reader, send_continue);
    }

    /// The checks of the module doc up to reading the body: the publish, a reader for
    /// its body, and whether to send `100 Continue`.
    fn admit_publish(
        &mut self,
        key: ConnKey,
        request: &PlainRequest,
    ) -> Result<(PendingPublish, BodyReader, bool), Refusal> {
        if request.method != "POST" {
            return Err((
                Rejection {
                    status: 405,
                    reason: "method must be POST",
                },
                Some(("Allow", "POST")),
            ));
        }
        let segment = request.path[PUBLISH_PREFIX.len()..].to_owned();
        if segment.is_empty() || segment.contains('/') {
            return Err(refusal(404, "unknown path: use /publish/{room}"));
        }
        let room = room_name::from_path_segment(&segment).map_err(|e| {
            (
                Rejection {
                    status: e.status(),
                    reason: e.reason(),
                },
                None,
            )
        })?;
        let binary = binary_param(request.query.as_deref()).map_err(|r| refusal(400, r))?;
        let expectation = expect(request);
        if expectation == Expect::Unknown {
            return Err(refusal(417, "only 100-continue is expected"));
        }
        if request
            .origin
            .as_deref()
            .is_some_and(|o| !self.config().origins.permits(Some(o)))
        {
            return Err(refusal(403, "origin not allowed"));
        }
        match self.publish_hook(key, request) {
            Upgrade::Reject(rejection) => return Err((rejection, None)),
            Upgrade::AcceptAs(identity) if !identity.can_publish => {
                return Err(refusal(403, "not allowed to publish"))
            }
            Upgrade::Accept | Upgrade::AcceptAs(_) => {}
        }
        let max = self.state.limits.max_message_size;
        let reader = BodyReader::new(request.body, max).map_err(|r| (r, None))?;
        let slot = &mut self.state.slots[key];
        if !slot.admitted && self.state.shared.admission.is_limited() {
            if !self.state.shared.admission.try_acquire() {
                self.state.metrics().admission_rejected(self.state.id);
                return Err((
                    Rejection {
                        status: 503,
                        reason: "server at connection capacity",
                    },
                    Some(("Retry-After", "1")),
                ));
            }
            slot.admitted = true;
        }
        let keep_alive = keep_alive(request);
        let pending = PendingPublish {
            room,
            binary,
            keep_alive,
            http10: request.minor_version == 0,
        };
        Ok((pending, reader, expectation == Expect::Continue))
    }

    /// The handler's upgrade hook on a publish request (a panic answers 500, counted).
    fn publish_hook(&mut self, key: ConnKey, request: &PlainRequest) -> Upgrade {
        let view = UpgradeRequest::publish_view(request);
        let peer = Peer {
            fd: self.state.slots[key].fd,
        };
        let decision = catch_unwind(AssertUnwindSafe(|| {
            self.handler.on_upgrade_from(&view, peer)
        }));
        decision.unwrap_or_else(|panic| {
            self.report_panic(key, "on_upgrade", panic);
            Upgrade::Reject(Rejection {
                status: 500,
                reason: "internal error",
            })
        })
    }

    /// The body of `key`'s publish is complete: publish it and answer 202.
    pub(super) fn on_publish_body(&mut self, key: ConnKey, body: Vec<u8>, now: Instant) {
        let Some(pending) = self.state.slots.get_mut(key).and_then(|s| s.publish.take()) else {
            return;
        };
        self.publish_body(key, *pending, body, now);
    }

    /// Publish `body` as `pending` says and answer 202 (400 for a text body that is
    /// not UTF-8).
    fn publish_body(&mut self, key: ConnKey, pending: PendingPublish, body: Vec<u8>, now: Instant) {
        let payload = if pending.binary {
            payload_of(Message::Binary(&body))
        } else {
            match std::str::from_utf8(&body) {
                Ok(text) => payload_of(Message::Text(text)),
                Err(_) => {
                    return self.refuse_publish(
                        key,
                        &Rejection {
                            status: 400,
                            reason: "text body is not utf-8 (use ?binary=1)",
                        },
                        None,
                    )
                }
            }
        };
        let seq = self.state.publish_numbered(&pending.room, payload);
        let response = accepted_response(&pending.room, seq, pending.keep_alive, pending.http10);
        self.state.slots[key]
            .conn
            .respond(response, pending.keep_alive);
        self.state.mark_dirty(key);
        self.state
            .metrics()
            .http_publish_answered(self.state.id, 202);
        if pending.keep_alive {
            // The next request's head and body must come within the handshake timeout.
            let timeout = self.config().timeouts.handshake;
            self.state.arm(key, timeout, Timer::Handshake, now);
        }
        tracing::trace!(conn = %self.state.conn_id(key), room = %pending.room, bytes = body.len(), "http publish");
    }

    /// Answer `key`'s publish request with `rejection` (and `header`); the connection
    /// ends once it is written.
    fn refuse_publish(
        &mut self,
        key: ConnKey,
        rejection: &Rejection,
        header: Option<(&'static str, &'static str)>,
    ) {
        self.state.slots[key]
            .conn
            .refuse(rejection, header.as_slice());
        self.state.mark_dirty(key);
        self.publish_refused(key, rejection);
    }

    /// Count and log a refused publish request (its response is queued).
    pub(super) fn publish_refused(&mut self, key: ConnKey, rejection: &Rejection) {
        if let Some(slot) = self.state.slots.get_mut(key) {
            slot.publish = None;
        }
        self.state
            .metrics()
            .http_publish_answered(self.state.id, rejection.status);
        tracing::debug!(conn = %self.state.conn_id(key), status = rejection.status, reason = rejection.reason, "http publish refused");
    }
}
