//! The streaming message decoder: a sans-IO state machine that turns client
//! bytes into complete messages and control frames.
//!
//! It is fed from whatever buffer the driver has and keeps all carry-over
//! state itself (partial header bytes, payload progress, mask offset, the
//! message being assembled), so the caller never keeps unconsumed bytes.
//! Payload bytes are unmasked while being copied into the message buffer, and
//! text is UTF-8-checked chunk by chunk, so invalid text fails fast (1007)
//! even mid-frame; a complete text message is delivered as a `String` without a
//! second pass over its bytes (the only check is the incremental one). Every rule is checked on the header byte that decides it,
//! so the outcome does not depend on how the stream is split into reads.
//!
//! Control frames that interleave a fragmented message are appended to the
//! same buffer and split off when complete; this keeps the decoder at one
//! `Vec` (≤ 64 bytes in all) and allocation-free while idle.
//!
//! With permessage-deflate negotiated ([`Decoder::enable_deflate`], RFC 7692), RSV1
//! on a message's first frame marks it compressed: its (compressed) bytes are
//! assembled as usual, capped at the message limit, then inflated under the same limit
//! on the decompressed size, and a text message is UTF-8-checked after inflating. RSV1
//! on a control frame or continuation, or without the extension, is a 1002.

use std::mem;

use super::close::parse_close_payload;
use super::deflate::Inflater;
pub use super::error::ProtocolError;
use super::frame::{self, Opcode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// Largest up-front reservation for a message, whatever length the peer
/// declares; beyond it the buffer grows as bytes actually arrive.
const MAX_UPFRONT_RESERVE: usize = 64 * 1024;

/// One complete unit delivered to the application.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A complete text message (validated as UTF-8 once, while it arrived).
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    /// A close frame: `None` for an empty payload, else the (valid) code and
    /// the (valid UTF-8) reason.
    Close(Option<(u16, String)>),
}

/// What one [`Decoder::decode`] call did.
#[derive(Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of `input` consumed by this call.
    pub consumed: usize,
    /// `Ok(Some)`: an event completed; `Ok(None)`: all input consumed, no
    /// event yet; `Err`: fail the connection with this close code.
    pub result: Result<Option<Event>, ProtocolError>,
}

/// Whether permessage-deflate was negotiated, and if so whether the client keeps its
/// compression context between messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Deflate {
    #[default]
    Off,
    /// It agreed to `client_no_context_takeover`.
    NoContext,
    Takeover,
}

/// The data message being assembled, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum MessageKind {
    #[default]
    None,
    Text,
    Binary,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Collecting header bytes (`len` of them so far).
    Header { buf: [u8; MAX_HEADER_LEN], len: u8 },
    /// Copying payload bytes of the current frame.
    Payload {
        remaining: u64,
        mask: [u8; 4],
        mask_offset: u8,
        opcode: Opcode,
        fin: bool,
        /// Payload length of a control frame (≤ 125), 0 for data frames.
        control_len: u8,
    },
    /// A protocol error occurred; the decoder stays failed.
    Failed(ProtocolError),
}

impl Default for Phase {
    fn default() -> Self {
        Phase::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }
}

/// Outcome of one state-machine step.
enum Step {
    /// Input exhausted.
    NeedMore,
    /// Keep going with the remaining input.
    Continue,
    /// A frame ended; deliver this event.
    Deliver(Event),
}

/// Streaming decoder for client-to-server frames (see the module doc).
#[derive(Debug, Default)]
pub struct Decoder {
    phase: Phase,
    /// The message being assembled, followed by the payload of an
    /// interleaved control frame while one is being read.
    message: Vec<u8>,
    kind: MessageKind,
    utf8: Utf8Validator,
    /// permessage-deflate (RFC 7692): off, or on with the client's context mode.
    deflate: Deflate,
    /// Per-connection inflate state (one pointer; null unless the client keeps its
    /// context and has sent a compressed message).
    inflater: Inflater,
    /// The message being assembled is compressed (RSV1 on its first frame): its bytes
    /// are inflated, and only then checked as UTF-8, when it is complete.
    compressed: bool,
}

impl Decoder {
    /// An idle decoder (no heap allocation).
    pub fn new() -> Self {
        Self::default()
    }

    /// permessage-deflate was negotiated: from now on a data message may be compressed
    /// (RSV1 on its first frame). `client_no_context_takeover`: the client agreed to
    /// compress each message alone (no per-connection inflate state is ever kept).
    pub fn enable_deflate(&mut self, client_no_context_takeover: bool) {
        self.deflate = if client_no_context_takeover {
            Deflate::NoContext
        } else {
            Deflate::Takeover
        };
    }

    /// True when it holds per-connection inflate state (a client that keeps its
    /// compression context sent a compressed message).
    pub fn holds_inflate_context(&self) -> bool {
        self.inflater.holds_context()
    }

    /// Consume bytes from `input` until one event is complete (returned with
    /// the count consumed so far), or input is exhausted (`Ok(None)`,
    /// `consumed == input.len()`), or a protocol error occurs.
    ///
    /// Errors poison the decoder: the buffered message is dropped and every
    /// later call returns the same error and consumes *all* of its input (so a
    /// caller loop `while !input.is_empty()` always terminates). On the call
    /// that fails, `consumed` counts the bytes examined up to the failure.
    pub fn decode(&mut self, input: &[u8], max_message_size: usize) -> Decoded {
        if let Phase::Failed(e) = self.phase {
            return Decoded {
                consumed: input.len(),
                result: Err(e),
            };
        }
        let mut pos = 0;
        let result = loop {
            let step = match self.phase {
                Phase::Header { .. } => self.read_header(input, &mut pos, max_message_size),
                Phase::Payload { .. } => self.read_payload(input, &mut pos, max_message_size),
                Phase::Failed(e) => Err(e),
            };
            match step {
                Ok(Step::NeedMore) => break Ok(None),
                Ok(Step::Continue) => {}
                Ok(Step::Deliver(event)) => break Ok(Some(event)),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = result {
            self.phase = Phase::Failed(e);
            self.message = Vec::new();
            self.kind = MessageKind::None;
            self.compressed = false;
            self.utf8.reset();
        }
        Decoded {
            consumed: pos,
            result,
        }
    }

    /// No partial frame or message buffered (false once poisoned).
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Header { len: 0, .. })
            && self.kind == MessageKind::None
            && self.message.is_empty()
    }

    /// Collect header bytes one at a time, checking each rule on the byte
    /// that decides it; start the payload phase once the header is complete.
    fn read_header(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        max: usize,
    ) -> Result<Step, ProtocolError> {
        let Phase::Header { mut buf, mut len } = self.phase else {
            return Ok(Step::Continue);
        };
        let message_len = self.message.len();
        loop {
            let have = usize::from(len);
            let prefix = buf.get(..have).unwrap_or_default();
            if have >= header_need(prefix) {
                break;
            }
            let Some(&byte) = input.get(*pos) else {
                self.phase = Phase::Header { buf, len };
                return Ok(Step::NeedMore);
            };
            if let Some(slot) = buf.get_mut(have) {
                *slot = byte;
            }
            len += 1;
            *pos += 1;
            let prefix = buf.get(..have + 1).unwrap_or_default();
            check_header_prefix(
                prefix,
                self.kind,
                message_len,
                max,
                self.deflate != Deflate::Off,
            )?;
        }
        let head = buf.get(..usize::from(len)).unwrap_or_default();
        self.start_frame(head, max)
    }

    /// Set up the payload phase for a complete, already-checked header.
    fn start_frame(&mut self, head: &[u8], max: usize) -> Result<Step, ProtocolError> {
        let (&b0, &b1) = match head {
            [b0, b1, ..] => (b0, b1),
            _ => return Err(ProtocolError::protocol("truncated header")),
        };
        let (fin, opcode, rsv1) = frame::parse_first_byte_ext(b0, self.deflate != Deflate::Off)?;
        let ext_end = 2 + frame::extended_len_size(b1);
        let payload_len = frame::decode_payload_len(b1, head.get(2..ext_end).unwrap_or_default())?;
        let mask = match head.get(ext_end..) {
            Some(&[a, b, c, d]) => [a, b, c, d],
            _ => return Err(ProtocolError::protocol("client frame is not masked")),
        };
        match opcode {
            Opcode::Text => {
                self.kind = MessageKind::Text;
                self.compressed = rsv1;
                self.utf8.reset();
            }
            Opcode::Binary => {
                self.kind = MessageKind::Binary;
                self.compressed = rsv1;
            }
            _ => {}
        }
        let control_len = if opcode.is_control() {
            u8::try_from(payload_len)
                .map_err(|_| ProtocolError::protocol("control frame payload over 125 bytes"))?
        } else {
            0
        };
        self.phase = Phase::Payload {
            remaining: payload_len,
            mask,
            mask_offset: 0,
            opcode,
            fin,
            control_len,
        };
        if payload_len == 0 {
            return self.finish_frame(opcode, fin, control_len, max);
        }
        Ok(Step::Continue)
    }

    /// Copy (and unmask, and for text validate) as much payload as `input`
    /// holds; finish the frame when its last byte has arrived.
    fn read_payload(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        max: usize,
    ) -> Result<Step, ProtocolError> {
        let Phase::Payload {
            remaining,
            mask,
            mask_offset,
            opcode,
            fin,
            control_len,
        } = self.phase
        else {
            return Ok(Step::Continue);
        };
        let available = input.len().saturating_sub(*pos);
        if available == 0 {
            return Ok(Step::NeedMore);
        }
        // `take` ≤ `available`, so it fits in usize.
        let take = usize::try_from(remaining).map_or(available, |r| r.min(available));
        let chunk = input.get(*pos..*pos + take).unwrap_or_default();
        *pos += take;
        let start = self.message.len();
        reserve_for(&mut self.message, take, remaining);
        self.message.extend_from_slice(chunk);
        let fresh = self.message.get_mut(start..).unwrap_or_default();
        let next_offset = apply_mask(fresh, mask, usize::from(mask_offset));
        let is_text = match opcode {
            Opcode::Text => !self.compressed,
            Opcode::Continuation => self.kind == MessageKind::Text && !self.compressed,
            _ => false,
        };
        if is_text && self.utf8.feed(fresh).is_err() {
            return Err(ProtocolError::invalid_payload(
                "invalid utf-8 in text message",
            ));
        }
        // `take` ≤ `remaining` by construction.
        let remaining = remaining - take as u64;
        self.phase = Phase::Payload {
            remaining,
            mask,
            // apply_mask returns a value in 0..4.
            mask_offset: next_offset as u8,
            opcode,
            fin,
            control_len,
        };
        if remaining > 0 {
            return Ok(Step::NeedMore);
        }
        self.finish_frame(opcode, fin, control_len, max)
    }

    /// The current frame's payload is complete: deliver a control frame, or a
    /// data message when this was its final fragment.
    fn finish_frame(
        &mut self,
        opcode: Opcode,
        fin: bool,
        control_len: u8,
        max: usize,
    ) -> Result<Step, ProtocolError> {
        self.phase = Phase::default();
        if opcode.is_control() {
            let start = self.message.len().saturating_sub(usize::from(control_len));
            let payload = if start == 0 {
                mem::take(&mut self.message)
            } else {
                self.message.split_off(start)
            };
            let event = match opcode {
                Opcode::Ping => Event::Ping(payload),
                Opcode::Pong => Event::Pong(payload),
                _ => Event::Close(
                    parse_close_payload(&payload)?.map(|(code, reason)| (code, reason.to_owned())),
                ),
            };
            return Ok(Step::Deliver(event));
        }
        if !fin {
            return Ok(Step::Continue);
        }
        let message = mem::take(&mut self.message);
        let kind = mem::take(&mut self.kind);
        if mem::take(&mut self.compressed) {
            return self.inflate(kind, &message, max);
        }
        match kind {
            MessageKind::Text => {
                if !self.utf8.is_complete() {
                    return Err(ProtocolError::invalid_payload(
                        "text message ends mid code point",
                    ));
                }
                self.utf8.reset();
                debug_assert!(std::str::from_utf8(&message).is_ok());
                // SAFETY: every byte of `message` was fed to `self.utf8` as it was copied
                // in (`read_payload` feeds each chunk of a text frame and of its
                // continuations; control frames' bytes are split off, never fed or kept),
                // the validator was reset when the message began, it accepted every chunk
                // (a rejection fails the connection) and `is_complete` says the last code
                // point is whole: `message` is valid UTF-8.
                let text = unsafe { String::from_utf8_unchecked(message) };
                Ok(Step::Deliver(Event::Text(text)))
            }
            MessageKind::Binary => Ok(Step::Deliver(Event::Binary(message))),
            // Unreachable: a continuation without a message fails on byte 0.
            MessageKind::None => Err(ProtocolError::protocol(
                "continuation without a message in progress",
            )),
        }
    }
}

impl Decoder {
    /// Deliver a complete compressed message: inflated under the `max` cap (RFC 7692
    /// §7.2.2; 1009 past it), text then checked as UTF-8 (1007).
    fn inflate(
        &mut self,
        kind: MessageKind,
        compressed: &[u8],
        max: usize,
    ) -> Result<Step, ProtocolError> {
        let takeover = self.deflate == Deflate::Takeover;
        let message = self.inflater.inflate(compressed, max, takeover)?;
        match kind {
            MessageKind::Text => String::from_utf8(message)
                .map(|text| Step::Deliver(Event::Text(text)))
                .map_err(|_| ProtocolError::invalid_payload("invalid utf-8 in text message")),
            MessageKind::Binary => Ok(Step::Deliver(Event::Binary(message))),
            MessageKind::None => Err(ProtocolError::protocol(
                "continuation without a message in progress",
            )),
        }
    }
}

/// Total header length implied by a header prefix (2 until byte 1 is known).
fn header_need(prefix: &[u8]) -> usize {
    match prefix.get(1) {
        Some(&b1) => frame::header_len_from_second_byte(b1),
        None => 2,
    }
}

/// Check the rules decided by the last byte of `prefix` (a header prefix of
/// length ≥ 1). `message_len` is the size of the message assembled so far (compressed
/// bytes for a compressed message: those are capped at `max` too); `deflate`: RSV1 is
/// allowed on a message's first frame.
fn check_header_prefix(
    prefix: &[u8],
    kind: MessageKind,
    message_len: usize,
    max: usize,
    deflate: bool,
) -> Result<(), ProtocolError> {
    let Some(&b0) = prefix.first() else {
        return Ok(());
    };
    let (_, opcode, _) = frame::parse_first_byte_ext(b0, deflate)?;
    match prefix.len() {
        1 => match (opcode, kind) {
            (Opcode::Continuation, MessageKind::None) => Err(ProtocolError::protocol(
                "continuation without a message in progress",
            )),
            (Opcode::Text | Opcode::Binary, MessageKind::Text | MessageKind::Binary) => Err(
                ProtocolError::protocol("new message while a fragmented message is in progress"),
            ),
            _ => Ok(()),
        },
        2 => {
            let b1 = prefix.get(1).copied().unwrap_or_default();
            if !frame::is_masked(b1) {
                return Err(ProtocolError::protocol("client frame is not masked"));
            }
            if opcode.is_control() && usize::from(frame::len7(b1)) > MAX_CONTROL_PAYLOAD {
                return Err(ProtocolError::protocol(
                    "control frame payload over 125 bytes",
                ));
            }
            if frame::extended_len_size(b1) == 0 {
                check_size(opcode, u64::from(frame::len7(b1)), message_len, max)?;
            }
            Ok(())
        }
        n => {
            let b1 = prefix.get(1).copied().unwrap_or_default();
            let ext = frame::extended_len_size(b1);
            if ext > 0 && n == 2 + ext {
                let len = frame::decode_payload_len(b1, prefix.get(2..).unwrap_or_default())?;
                check_size(opcode, len, message_len, max)?;
            }
            Ok(())
        }
    }
}

/// 1009 if a data frame of `payload_len` would take the message past `max`.
fn check_size(
    opcode: Opcode,
    payload_len: u64,
    message_len: usize,
    max: usize,
) -> Result<(), ProtocolError> {
    let already = match opcode {
        Opcode::Continuation => message_len as u64,
        Opcode::Text | Opcode::Binary => 0,
        _ => return Ok(()),
    };
    if already.saturating_add(payload_len) > max as u64 {
        return Err(ProtocolError::too_big("message too big"));
    }
    Ok(())
}

/// Make room for `take` more bytes of a frame with `frame_remaining` bytes
/// left (`take` included). Grows geometrically, but never reserves more than
/// the frame still declares, and never more than 64 KiB (or the current
/// capacity) ahead of what has arrived: a peer announcing 16 MiB and then
/// stalling costs at most 64 KiB.
fn reserve_for(buf: &mut Vec<u8>, take: usize, frame_remaining: u64) {
    if buf.capacity() - buf.len() >= take {
        return;
    }
    let ahead = buf.capacity().max(MAX_UPFRONT_RESERVE) as u64;
    let want = usize::try_from(frame_remaining.min(ahead)).map_or(take, |w| w.max(take));
    buf.reserve(want);
}

#[cfg(test)]
mod tests;
