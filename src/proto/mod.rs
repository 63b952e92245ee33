//! The WebSocket protocol layer of ringcast: pure sans-IO code (bytes in,
//! events/bytes out; no sockets, clocks or threads) for the HTTP/1.1 request head (classified as an
//! upgrade or a plain request) and the upgrade handshake, frame encoding, masking, UTF-8 validation, close handling,
//! permessage-deflate (RFC 7692) and the streaming message decoder. Nothing here panics on peer input.

pub mod close;
pub mod codes;
pub mod decoder;
pub mod deflate;
pub mod error;
pub mod frame;
pub mod handshake;
pub mod head;
pub mod mask;
pub mod request;
pub mod sse;
pub mod utf8;

pub use close::{encode_close_payload, is_valid_close_code, parse_close_payload};
pub use decoder::{Decoded, Decoder, Event, ProtocolError};
pub use frame::{
    encode_close_frame, encode_frame, encode_masked_frame, header_len, write_header, Opcode,
};
pub use handshake::{
    accept_response, reject_response, HeadParse, Rejection, Transport, UpgradeRequest,
};
pub use mask::apply_mask;
pub use request::{parse_request, parse_upgrade, BodyFraming, PlainRequest, Request, RequestParse};
pub use utf8::{Utf8Invalid, Utf8Validator};

/// Default cap on the HTTP upgrade request head (request line + headers).
pub const DEFAULT_MAX_HEAD_BYTES: usize = 8 * 1024;
/// Default cap on a reassembled message.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * 1024 * 1024;
