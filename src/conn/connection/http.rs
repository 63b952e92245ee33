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

use super::{ConnEvent, Connection, Input, Output, Stage};
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

    /// The handshake timeout fired (see `shard/timers.rs`). A request that is partly in
    /// — some of its head, or a routed request's body not yet complete — and got no
    /// final response is answered `408 Request Timeout` (RFC 9110 §15.5.9), which
    /// closes the connection; returns the rejection queued and whether it was a routed
    /// request's body. A connection between requests (nothing of one sent yet, on a
    /// new or a keep-alive connection) gets `None`: it is closed without a response
    /// (RFC 9112 §9.5).
    pub fn time_out_request(&mut self) -> Option<(Rejection, bool)> {
        if self.output != Output::Open || self.input == Input::Eof {
            return None;
        }
        let in_body = match self.stage {
            Stage::Body => true,
            Stage::Handshaking if !self.head.is_empty() => false,
            _ => return None,
        };
        let rejection = Rejection {
            status: 408,
            reason: "request timeout",
        };
        self.reason
            .get_or_insert(DisconnectReason::HandshakeTimeout);
        self.refuse(&rejection, &[]);
        Some((rejection, in_body))
    }

    /// Refuse a routed plain request (see [`Connection::reject`]): the response closes
    /// the connection.
    pub fn refuse(&mut self, rejection: &Rejection, extra_headers: &[(&str, &str)]) {
        self.body = None;
        self.reject(rejection, extra_headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::{AfterFlush, ConnLimits, Eof, Phase};
    use crate::proto::body::BodyReader;
    use crate::proto::request::BodyFraming;

    const LIMITS: ConnLimits = ConnLimits {
        max_head_bytes: 8192,
        max_message_size: 16,
    };
    const POST: &[u8] = b"POST /publish/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";

    /// Feed `input` as the shard does: the head, the body (read by a reader the shard
    /// would start), a 202 with `keep_alive`; returns the bytes consumed and the body.
    fn one_request(c: &mut Connection, input: &[u8], keep_alive: bool) -> (usize, Vec<u8>) {
        let (head, Some(ConnEvent::Request(request))) = c.feed(input, LIMITS) else {
            panic!("no request")
        };
        assert_eq!(request.body, BodyFraming::Length(5));
        c.read_body(BodyReader::new(request.body, 16).unwrap(), false);
        assert_eq!(c.phase(), Phase::Handshaking);
        let (body_len, Some(ConnEvent::Body(body))) = c.feed(&input[head..], LIMITS) else {
            panic!("no body")
        };
        c.respond(b"HTTP/1.1 202 Accepted\r\n\r\n".to_vec(), keep_alive);
        (head + body_len, body)
    }

    #[test]
    fn pipelined_requests_are_read_one_at_a_time() {
        let mut c = Connection::new();
        let input = [POST, POST].concat();
        let (used, body) = one_request(&mut c, &input, true);
        assert_eq!((used, body.as_slice()), (POST.len(), &b"hello"[..]));
        let (used, _) = one_request(&mut c, &input[used..], true);
        assert_eq!(used, POST.len());
        assert_eq!(c.phase(), Phase::Handshaking, "reads the next head");
        // The peer's EOF with answers queued: they are written, then it closes.
        assert_eq!(c.on_eof(), Eof::Flush);
        let n = c.out().bytes();
        c.written(n);
        assert_eq!(c.after_flush(), AfterFlush::Close);
    }

    #[test]
    fn without_keep_alive_the_response_ends_it() {
        let mut c = Connection::new();
        one_request(&mut c, POST, false);
        assert_eq!(c.phase(), Phase::Closing);
        let n = c.out().bytes();
        c.written(n);
        assert_eq!(c.after_flush(), AfterFlush::ShutdownWrite);
        assert_eq!(c.reason(), Some(DisconnectReason::Normal));
    }

    #[test]
    fn continue_goes_first_and_a_bad_body_is_refused() {
        let mut c = Connection::new();
        let head = b"POST /p/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (_, Some(ConnEvent::Request(request))) = c.feed(head, LIMITS) else {
            panic!("no request")
        };
        c.read_body(BodyReader::new(request.body, 16).unwrap(), true);
        assert!(c.out().bytes() == CONTINUE.len());
        let (_, event) = c.feed(b"11\r\n", LIMITS);
        assert!(matches!(event, Some(ConnEvent::BodyRejected(r)) if r.status == 413));
        assert_eq!(c.phase(), Phase::Closing);
    }

    #[test]
    fn a_timeout_answers_408_only_to_a_request_partly_in() {
        let status = |c: &mut Connection| c.time_out_request().map(|(r, body)| (r.status, body));
        // Nothing sent yet, and between keep-alive requests: no response.
        let mut c = Connection::new();
        assert_eq!(status(&mut c), None);
        one_request(&mut c, POST, true);
        assert_eq!(status(&mut c), None);
        assert_eq!(c.out().bytes(), b"HTTP/1.1 202 Accepted\r\n\r\n".len());
        // Half a head, then half a body: 408, and the connection closes after it.
        let mut c = Connection::new();
        c.feed(&POST[..10], LIMITS);
        assert_eq!(status(&mut c), Some((408, false)));
        assert_eq!(c.phase(), Phase::Closing);
        assert_eq!(c.reason(), Some(DisconnectReason::HandshakeTimeout));
        let mut c = Connection::new();
        let (head, Some(ConnEvent::Request(request))) = c.feed(POST, LIMITS) else {
            panic!("no request")
        };
        c.read_body(BodyReader::new(request.body, 16).unwrap(), false);
        c.feed(&POST[head..head + 2], LIMITS);
        assert_eq!(status(&mut c), Some((408, true)));
        assert_eq!(c.phase(), Phase::Closing);
        assert_eq!(status(&mut c), None, "answered once");
    }
}
