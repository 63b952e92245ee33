//! permessage-deflate (RFC 7692), sans-IO: negotiation from the client's
//! `Sec-WebSocket-Extensions` ([`negotiate`]), compressing one message for any number
//! of subscribers ([`compress`]) and inflating a client's messages under a size cap
//! ([`Inflater`]).
//!
//! The codec is flate2 on its zlib-rs backend (pure Rust); the README's compression
//! section gives the measurement that chose it over miniz_oxide. Compressors and the
//! shared decompressor live one per thread (`thread_local!`): they are scratch state,
//! never shared between threads and never holding data between messages.

pub mod compress;
pub mod inflate;
pub mod negotiate;

pub use compress::{compress, compressed_frame, encode_compressed_frame, RSV1, SYNC_TAIL};
pub use inflate::Inflater;
pub use negotiate::{negotiate, Agreement, EXTENSION};
