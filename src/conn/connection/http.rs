//! A plain HTTP request on a connection once the shard has routed its head (the HTTP
//! publish, `POST /publish/{room}`): reading its body under a cap
//! ([`crate::proto::body::BodyReader`]), the interim `100 Continue` (RFC 9110
//! §10.1.1), and the response — after which a persistent connection reads the next
//! request head (RFC 9112 §9.3: pipelined requests are answered in order, one at a
//! time, as each is fed) and any other ends once the response is written.
//!
//! Every response is a control entry of the queue (never dropped), and counts toward
//! the read-side backpressure cap ([`Connection::may_read`]): a client pipelining
//! requests without reading the answers is paused like a WebSocket peer.

use crate::proto::body::{BodyProgress, BodyReader};
use crate::proto::handshake::Rejection;
use crate::wire::PreparedFrame;

use super::{ConnEvent, Connection, Output, Stage};
use crate::conn::DisconnectReason;

/// The interim response to `Expect: 100-continue` (RFC 9110 §15.2.1).
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

impl Connection {
    /// The routed request has a body to read with `reader`: the bytes fed next are
    /// its body. With `send_continue` (the client sent `Expect: 100-continue` and
    /// the request is accepted so far) `100 Continue` is queued first, so the client
    /// sends the body.
    pub fn read_body(&mut self, reader: BodyReader, send_continue: bool) {
        if send_continue {
            self.out
                .push_control(PreparedFrame::from_wire(CONTINUE.to_vec()));
        }
        self.body = Some(Box::new(reader));
        self.stage = Stage::Body;
    }

    /// Body bytes in: [`ConnEvent::Body`] once it is complete (the rest of `input`
    /// is not consumed: it is the next request), [`ConnEvent::BodyRejected`] (the
    /// error response queued, the connection closing) when it breaks the framing or
    /// the cap.
    pub(super) fn feed_body(&mut self, input: &[u8]) -> (usize, Option<ConnEvent>) {
        let Some(reader) = self.body.as_mut() else {
            return (input.len(), None);
        };
        match reader.feed(input) {
            Ok((used, BodyProgress::Partial)) => (used, None),
            Ok((used, BodyProgress::Complete(body))) => {
                self.body = None;
                // Until the shard responds, nothing more is fed: it responds at once.
                self.stage = Stage::Handshaking;
                (used, Some(ConnEvent::Body(body)))
            }
            Err(rejection) => {
                self.body = None;
                self.reject(&rejection, &[]);
                (input.len(), Some(ConnEvent::BodyRejected(rejection)))
            }
        }
    }

    /// Queue the response to a plain request. With `keep_alive` the connection reads
    /// the next request head; without, it ends once the response is written (as after
    /// a refusal: our FIN first, then the peer's EOF or the close deadline).
    pub fn respond(&mut self, response: Vec<u8>, keep_alive: bool) {
        self.out.push_control(PreparedFrame::from_wire(response));
        if !keep_alive {
            self.stage = Stage::Refused;
            self.output = Output::Closing;
            self.reason.get_or_insert(DisconnectReason::Normal);
        }
    }

    /// Refuse a routed plain request (see [`Connection::reject`]): the response closes
    /// the connection.
    pub fn refuse(&mut self, rejection: &Rejection, extra_headers: &[(&str, &str)]) {
        self.body = None;
        self.reject(rejection, extra_headers);
    }
}
