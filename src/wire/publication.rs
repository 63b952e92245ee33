//! [`Publication`]: what one publish produces, everywhere (handler context, `Publisher`,
//! cross-shard hand-off, history, a broker), and its wire forms.
//!
//! A publication is the room, the payload (`Bytes`), its [`Kind`], its sequence number
//! when history is on, its publish time (the start of the publish→write latency), the
//! connection that must not get it back (`exclude`, for `--exclude-sender`) and its
//! [`PublishTally`]. It is shared as `Arc<Publication>` by every shard that delivers
//! it and by the room's history ring.
//!
//! **Wire forms.** A connection's queue holds [`PreparedFrame`]s (each behind the
//! delivering shard's `Rc`, `crate::conn::LocalFrame`); [`Publication::frame`]
//! gives the form for an [`Encoding`], built on first use (one `OnceLock` per
//! encoding, so the first shard to need it builds it and every other subscriber on
//! every shard shares the same bytes) and counted per encoding ([`builds`]) so tests can
//! prove "once per publication per encoding in use". The plain WebSocket form of a
//! publish made here costs no build of its own: [`Payload::encode`] copies the payload
//! once into a buffer with its frame header in front (2–10 bytes, counted as the
//! WebSocket build), the form is that buffer and the payload a slice of it (measured choice: the payload must be copied
//! into a shared buffer anyway, and a header in front makes the commonest form a
//! zero-copy view, where a lazy build would copy the payload a second time). A payload
//! that arrived from elsewhere ([`Payload::from_bytes`], a broker's inbound) has no
//! header room and gets its WebSocket form built lazily like any other. The sequenced
//! form ([`Encoding::WebSocketSequenced`], see [`super::sequence`]) is built lazily from
//! payload and number, outside any lock, by whichever shard first delivers to a
//! sequenced subscriber (or replays the message).
//!
//! The Server-Sent Events form ([`Encoding::Sse`]: one chunk of a `text/event-stream`
//! body, with the `id:` line when numbered) is built the same lazy way, by the first
//! shard that delivers to (or replays for) an SSE subscriber; a numbered copy
//! ([`Publication::numbered`]) never inherits it, since its `id:` line depends on the
//! number.
//!
//! **Compressed forms** (permessage-deflate, RFC 7692): [`Encoding::WebSocketDeflate`]
//! and [`Encoding::WebSocketSequencedDeflate`] are built the same way — lazily, at most
//! once per publication, by the first shard that delivers to (or replays for) a client
//! that negotiated the extension, so a room without such a client never compresses. One
//! compression serves every such subscriber on every shard because the server always
//! agrees to `server_no_context_takeover`. The compressed frame (RSV1 set) is used only
//! when it is smaller than the plain one; otherwise the compressed form *is* the plain
//! form (the same buffer). Payloads under the `--deflate-min-size` given by the caller
//! are not compressed at all. [`builds`] counts compressions under the deflate
//! encodings, whether or not the result was smaller.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;

use crate::proto::deflate::compressed_frame;
use crate::proto::frame::{encode_frame, header_len, write_header, Opcode};
use crate::proto::sse::message_chunk;

use super::compressions::count_compression;
use super::ids::ConnKey;
use super::prepared::PreparedFrame;
use super::sequence::{encode_sequenced, seq_prefix, sequenced_len, SEQ_PREFIX_LEN};
use super::tally::PublishTally;

/// A data message's kind (RFC 6455 §5.6: text is UTF-8, binary is anything).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Text,
    Binary,
}

impl Kind {
    /// The frame opcode carrying this kind (RFC 6455 §5.2: 0x1 text, 0x2 binary).
    pub fn opcode(self) -> Opcode {
        match self {
            Kind::Text => Opcode::Text,
            Kind::Binary => Opcode::Binary,
        }
    }
}

/// A wire form of a publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// One unmasked FIN data frame of the publication's kind (RFC 6455 §5.2).
    WebSocket,
    /// One binary frame in the sequence framing ([`super::sequence`]): for clients that
    /// asked for numbers, when history is on.
    WebSocketSequenced,
    /// [`Encoding::WebSocket`] compressed (permessage-deflate, RSV1 set), when smaller.
    WebSocketDeflate,
    /// [`Encoding::WebSocketSequenced`] compressed, when smaller.
    WebSocketSequencedDeflate,
    /// One Server-Sent Events chunk ([`crate::proto::sse::message_chunk`]): the event
    /// with `id: <seq>` when the publication is numbered (history on), `event: binary`
    /// and base64 data for a binary payload, inside its chunk framing.
    Sse,
}

impl Encoding {
    /// How many encodings there are.
    pub const COUNT: usize = 5;

    /// This encoding's position in `0..COUNT` (for tables indexed by encoding).
    pub fn index(self) -> usize {
        match self {
            Encoding::WebSocket => 0,
            Encoding::WebSocketSequenced => 1,
            Encoding::WebSocketDeflate => 2,
            Encoding::WebSocketSequencedDeflate => 3,
            Encoding::Sse => 4,
        }
    }
}

static BUILDS: [AtomicU64; Encoding::COUNT] = [
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
    AtomicU64::new(0),
];

fn count_build(encoding: Encoding) {
    BUILDS[encoding.index()].fetch_add(1, Ordering::Relaxed);
}

/// Wire forms of publications built in this process for `encoding` (payload bytes
/// copied into a form: once per publish made here for [`Encoding::WebSocket`] (for a
/// payload from elsewhere, once per publication delivered or replayed to a plain
/// WebSocket client), once per
/// publication delivered or replayed to a sequenced client for the sequenced form;
/// compressions for the deflate encodings: at most once per publication each; for
/// [`Encoding::Sse`], once per publication delivered or replayed to an SSE client).
pub fn builds(encoding: Encoding) -> u64 {
    BUILDS[encoding.index()].load(Ordering::Relaxed)
}

/// A message made ready to publish, before it has a room or a number: the payload in
/// one shared buffer. Cloning it (to publish one message to several rooms) copies
/// nothing.
#[derive(Debug, Clone)]
pub struct Payload {
    kind: Kind,
    /// The WebSocket frame (header + payload) when `header > 0`, else the bare payload.
    buf: Bytes,
    header: usize,
    published_at: Instant,
}

impl Payload {
    /// Copy `data` into one buffer with its WebSocket frame header in front, published
    /// now. Counts one [`Encoding::WebSocket`] build: the form is that buffer.
    pub fn encode(kind: Kind, data: &[u8]) -> Self {
        count_build(Encoding::WebSocket);
        let header = header_len(data.len());
        let mut buf = Vec::with_capacity(header + data.len());
        write_header(&mut buf, true, kind.opcode(), data.len());
        buf.extend_from_slice(data);
        Payload {
            kind,
            buf: Bytes::from(buf),
            header,
            published_at: Instant::now(),
        }
    }

    /// A payload that exists already (a broker's inbound message), published at
    /// `published_at`; no form is built until one is asked for.
    pub fn from_bytes(kind: Kind, data: Bytes, published_at: Instant) -> Self {
        Payload {
            kind,
            buf: data,
            header: 0,
            published_at,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The payload bytes (without any header).
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.header..]
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.buf.len() - self.header
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One publish: room, payload, kind, number, publish time and its lazily built wire
/// forms (see the module doc).
#[derive(Debug)]
pub struct Publication {
    room: Arc<str>,
    kind: Kind,
    /// The payload, with its WebSocket frame header in front when `header > 0`.
    data: Bytes,
    header: usize,
    seq: Option<u64>,
    published_at: Instant,
    exclude: Option<(usize, ConnKey)>,
    forms: [OnceLock<PreparedFrame>; Encoding::COUNT],
    tally: PublishTally,
}

/// A publication's forms not built yet.
fn no_forms() -> [OnceLock<PreparedFrame>; Encoding::COUNT] {
    std::array::from_fn(|_| OnceLock::new())
}

impl Publication {
    /// A publication of `payload` to `room`, not numbered (no copy, no atomic
    /// operation). `exclude`: the connection (shard, key) that must not get it (the
    /// sender under `--exclude-sender`).
    pub fn new(room: Arc<str>, payload: Payload, exclude: Option<(usize, ConnKey)>) -> Self {
        Publication {
            room,
            kind: payload.kind,
            data: payload.buf,
            header: payload.header,
            seq: None,
            published_at: payload.published_at,
            exclude,
            forms: no_forms(),
            tally: PublishTally::new(0),
        }
    }

    /// The same publication numbered `seq` in its room. No copy: `self` is updated in
    /// place while nobody else holds it, else a new publication shares its payload.
    pub fn numbered(mut self: Arc<Self>, seq: u64) -> Arc<Self> {
        if let Some(p) = Arc::get_mut(&mut self) {
            p.seq = Some(seq);
            return self;
        }
        // The unsequenced forms do not depend on the number: share those already built.
        let forms = no_forms();
        for encoding in [Encoding::WebSocket, Encoding::WebSocketDeflate] {
            if let Some(form) = self.forms[encoding.index()].get() {
                let _ = forms[encoding.index()].set(form.clone());
            }
        }
        Arc::new(Publication {
            room: self.room.clone(),
            kind: self.kind,
            data: self.data.clone(),
            header: self.header,
            seq: Some(seq),
            published_at: self.published_at,
            exclude: self.exclude,
            forms,
            tally: PublishTally::new(0),
        })
    }

    pub fn room(&self) -> &Arc<str> {
        &self.room
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[self.header..]
    }

    /// The payload as a shared buffer (no copy).
    pub fn payload_bytes(&self) -> Bytes {
        self.data.slice(self.header..)
    }

    /// The room sequence number (history on), `None` otherwise.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// When it was published: the start of `publish_to_write_seconds`.
    pub fn published_at(&self) -> Instant {
        self.published_at
    }

    /// The connection (shard, key) that must not get it.
    pub fn exclude(&self) -> Option<(usize, ConnKey)> {
        self.exclude
    }

    /// Its recipients summed over the shards that deliver it.
    pub fn tally(&self) -> &PublishTally {
        &self.tally
    }

    /// Its wire form for `encoding`, built on first use and shared from then on. An
    /// unnumbered publication has no sequenced form: it answers the WebSocket form (or,
    /// for the sequenced deflate encoding, the deflate one). A deflate encoding answers
    /// the compressed frame, or the plain form when compressing does not shrink it; the
    /// minimum size is applied by [`Publication::frame_for`], not here.
    pub fn frame(&self, encoding: Encoding) -> &PreparedFrame {
        let encoding = match (encoding, self.seq) {
            (Encoding::WebSocketSequenced, None) => Encoding::WebSocket,
            (Encoding::WebSocketSequencedDeflate, None) => Encoding::WebSocketDeflate,
            (e, _) => e,
        };
        match encoding {
            Encoding::WebSocketDeflate => return self.deflated(false),
            Encoding::WebSocketSequencedDeflate => return self.deflated(true),
            _ => {}
        }
        self.forms[encoding.index()].get_or_init(|| {
            let wire = match (encoding, self.seq) {
                // Encoded with its payload by `Payload::encode` (and counted there).
                (Encoding::WebSocket, _) if self.header > 0 => self.data.clone(),
                (Encoding::WebSocketSequenced, Some(seq)) => {
                    count_build(encoding);
                    Bytes::from(encode_sequenced(seq, self.kind, self.payload()))
                }
                (Encoding::Sse, seq) => {
                    count_build(encoding);
                    let binary = self.kind == Kind::Binary;
                    Bytes::from(message_chunk(seq, binary, self.payload()))
                }
                _ => {
                    count_build(encoding);
                    Bytes::from(encode_frame(true, self.kind.opcode(), self.payload()))
                }
            };
            PreparedFrame::published(wire, self.published_at)
        })
    }

    /// The compressed form (sequenced or not; the caller checked `self.seq` for a
    /// sequenced one), built on first use: the plain form when compressing does not
    /// make it smaller.
    fn deflated(&self, sequenced: bool) -> &PreparedFrame {
        let (encoding, plain) = match (sequenced, self.seq) {
            (true, Some(_)) => (
                Encoding::WebSocketSequencedDeflate,
                Encoding::WebSocketSequenced,
            ),
            _ => (Encoding::WebSocketDeflate, Encoding::WebSocket),
        };
        self.forms[encoding.index()].get_or_init(|| {
            count_build(encoding);
            count_compression();
            let payload = self.payload();
            let wire = match self.seq.filter(|_| sequenced) {
                Some(seq) => {
                    compressed_frame(Opcode::Binary, &[&seq_prefix(seq, self.kind), payload], 0)
                }
                None => compressed_frame(self.kind.opcode(), &[payload], 0),
            };
            match wire {
                Some(wire) => PreparedFrame::published(Bytes::from(wire), self.published_at),
                None => self.frame(plain).clone(),
            }
        })
    }

    /// The form a connection gets: sequenced when it asked for numbers and the
    /// publication has one, else plain; compressed when `deflate_min` is
    /// `Some(min_size)` (it negotiated permessage-deflate) and the message body is at
    /// least `min_size` bytes.
    #[inline]
    pub fn frame_for(&self, sequenced: bool, deflate_min: Option<usize>) -> &PreparedFrame {
        self.frame(self.encoding_for(sequenced, deflate_min))
    }

    /// The WebSocket encoding [`Publication::frame_for`] picks for a client that asked
    /// (`sequenced`) or not for numbers and negotiated permessage-deflate with
    /// threshold `deflate_min` (`None`: no compression).
    pub fn encoding_for(&self, sequenced: bool, deflate_min: Option<usize>) -> Encoding {
        let sequenced = sequenced && self.seq.is_some();
        let body = self.payload().len() + if sequenced { SEQ_PREFIX_LEN } else { 0 };
        match (sequenced, deflate_min.is_some_and(|min| body >= min)) {
            (false, false) => Encoding::WebSocket,
            (true, false) => Encoding::WebSocketSequenced,
            (false, true) => Encoding::WebSocketDeflate,
            (true, true) => Encoding::WebSocketSequencedDeflate,
        }
    }

    /// Size of its sequence-framed form in bytes (what the history's byte bound
    /// counts), whether or not that form is built.
    pub fn sequenced_len(&self) -> usize {
        sequenced_len(self.data.len() - self.header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::sequence::parse_seq_payload;

    #[test]
    fn forms_are_built_once_and_shared() {
        let payload = Payload::encode(Kind::Text, b"hello");
        let p = Arc::new(Publication::new(Arc::from("r"), payload, None));
        let plain = p.frame(Encoding::WebSocket).clone();
        assert_eq!(plain.bytes(), b"\x81\x05hello");
        assert_eq!(p.payload(), b"hello");
        assert_eq!(
            p.payload_bytes().as_ptr(),
            plain.bytes()[2..].as_ptr(),
            "one buffer"
        );
        assert_eq!(plain.published_at(), Some(p.published_at()));
        assert!(
            p.frame(Encoding::WebSocketSequenced)
                .shares_buffer_with(&plain),
            "unnumbered: no sequenced form"
        );
        let p = p.numbered(7);
        assert_eq!(p.seq(), Some(7));
        let seq = p.frame(Encoding::WebSocketSequenced).clone();
        for _ in 0..10 {
            assert!(p.frame_for(true, None).shares_buffer_with(&seq));
            assert!(p.frame_for(false, None).shares_buffer_with(&plain));
        }
        assert_eq!(seq.len(), p.sequenced_len());
        assert_eq!(seq.bytes()[0], 0x82);
        let (n, op, body) = parse_seq_payload(&seq.bytes()[2..]).unwrap();
        assert_eq!((n, op, body), (7, 1, &b"hello"[..]));
    }

    #[test]
    fn a_payload_from_elsewhere_builds_its_websocket_form_on_first_use() {
        let payload = Payload::from_bytes(Kind::Binary, Bytes::from_static(b"xyz"), Instant::now());
        let p = Arc::new(Publication::new(Arc::from("r"), payload, None));
        let shared = p.clone();
        let p = p.numbered(3); // shared: a new publication with the same payload
        assert!(!Arc::ptr_eq(&p, &shared));
        assert_eq!(p.payload().as_ptr(), shared.payload().as_ptr(), "no copy");
        let a = p.frame(Encoding::WebSocket).clone();
        assert_eq!(a.bytes(), b"\x82\x03xyz");
        assert!(p.frame(Encoding::WebSocket).shares_buffer_with(&a));
    }

    #[test]
    fn compressed_forms_are_built_once_used_only_when_smaller_and_survive_numbering() {
        let text = r#"{"type":"quote","symbol":"ACME","bid":101.25,"ask":101.5}"#.repeat(8);
        let p = Arc::new(Publication::new(
            Arc::from("r"),
            Payload::encode(Kind::Text, text.as_bytes()),
            None,
        ));
        let before = builds(Encoding::WebSocketDeflate);
        let small = p.frame_for(false, Some(text.len() + 1)).clone();
        assert!(
            small.shares_buffer_with(p.frame(Encoding::WebSocket)),
            "under the minimum"
        );
        assert_eq!(
            builds(Encoding::WebSocketDeflate),
            before,
            "no compression ran"
        );
        let z = p.frame_for(false, Some(64)).clone();
        assert_eq!(z.bytes()[0], 0xC1, "FIN, RSV1, text");
        assert!(z.len() < text.len() / 3);
        for _ in 0..5 {
            assert!(p.frame_for(false, Some(64)).shares_buffer_with(&z));
        }
        let p = p.clone().numbered(9);
        assert!(
            p.frame_for(false, Some(64)).shares_buffer_with(&z),
            "kept when numbered"
        );
        let zs = p.frame_for(true, Some(64)).clone();
        assert_eq!(zs.bytes()[0], 0xC2, "FIN, RSV1, binary");
        let (header, at) = crate::proto::frame::parse_header(&{
            let mut plain_header = zs.bytes().to_vec();
            plain_header[0] &= !0x40;
            plain_header
        })
        .unwrap()
        .unwrap();
        let body = crate::proto::deflate::Inflater::new()
            .inflate(&zs.bytes()[at..], 1 << 20, false)
            .unwrap();
        assert_eq!(header.payload_len as usize, zs.len() - at);
        assert_eq!(parse_seq_payload(&body).unwrap(), (9, 1, text.as_bytes()));
        assert_eq!(builds(Encoding::WebSocketDeflate) - before, 1);

        let noise = Payload::encode(Kind::Binary, &[0x5a, 0xc3, 0x17, 0x88, 0x21]);
        let q = Publication::new(Arc::from("r"), noise, None);
        assert!(
            q.frame_for(false, Some(1))
                .shares_buffer_with(q.frame(Encoding::WebSocket)),
            "not smaller: the plain form"
        );
    }
}
