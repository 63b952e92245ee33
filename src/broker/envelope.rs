//! The envelope: what one publication looks like on a Redis channel (and in a room's
//! stream), written by the publishing node, read once per node that receives it.
//!
//! One ASCII header line, fields separated by one space, then the payload as is:
//!
//! ```text
//! RC1 <kind> <seq> <epoch> <node> <shard> <key> <t_ns>\n<payload bytes>
//! ```
//!
//! - `RC1`: magic and version 1;
//! - `kind`: `t` (text, UTF-8) or `b` (binary), RFC 6455 §5.6;
//! - `seq`, `epoch`: the room's number and the epoch of its stream (decimal u64) when
//!   history is on (written by the publish script, see [`super::script`]), `0 0`
//!   otherwise;
//! - `node`: the publishing process's origin: its `--node-id` (1..=64 bytes of
//!   `[A-Za-z0-9._:-]`), `.`, and a random 64-bit instance id chosen at start (16 hex
//!   digits), so two processes started with the same `--node-id` never take each
//!   other's messages for their own (see [`origin`]); at most [`MAX_ORIGIN`] bytes;
//! - `shard`, `key`: the connection that must not get the message back on its own node
//!   (`--exclude-sender`), `- -` for none;
//! - `t_ns`: publish time in nanoseconds since the node's clock base (meaningful to the
//!   publishing node only: its broker round-trip latency).
//!
//! A message that does not parse (another program publishing on the channel, a
//! truncated payload) is [`DecodeError`]: counted and dropped by the caller, never
//! delivered. The header is at most [`MAX_HEADER`] bytes.

use bytes::Bytes;

use crate::wire::{ConnKey, Kind};

/// The magic and version that start every envelope.
pub const MAGIC: &[u8] = b"RC1 ";

/// Longest header line accepted, newline included (bytes).
pub const MAX_HEADER: usize = 256;

/// Longest node id (bytes).
pub const MAX_NODE_ID: usize = 64;

/// Longest origin in an envelope (bytes): a node id, `.`, 16 hex digits.
pub const MAX_ORIGIN: usize = MAX_NODE_ID + 17;

/// This process's origin for envelopes: `node`, `.`, and `instance` in 16 hex digits
/// (`instance`: random, chosen once per process).
pub fn origin(node: &str, instance: u64) -> String {
    format!("{node}.{instance:016x}")
}

/// Why an envelope was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Does not start with [`MAGIC`] (not ringcast's, or another version).
    Magic,
    /// No newline within [`MAX_HEADER`] bytes (truncated or not ours).
    Truncated,
    /// A header field is missing or malformed.
    Field,
}

/// A decoded envelope; `payload` shares the received buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub kind: Kind,
    /// The room's number (0: unnumbered).
    pub seq: u64,
    /// The room stream's epoch (0 with `seq == 0`).
    pub epoch: u64,
    pub node: String,
    /// `(shard, key)` of the connection not to deliver to on `node`.
    pub exclude: Option<(usize, ConnKey)>,
    /// Nanoseconds since the publishing node's clock base.
    pub t_ns: u64,
    pub payload: Bytes,
}

/// True when `id` may be a node id (see the module doc).
pub fn valid_node_id(id: &str) -> bool {
    id.len() <= MAX_NODE_ID && valid_origin(id)
}

/// True when `node` may be an envelope's origin: 1..=[`MAX_ORIGIN`] bytes of
/// `[A-Za-z0-9._:-]`.
fn valid_origin(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= MAX_ORIGIN
        && node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

fn kind_char(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "t",
        Kind::Binary => "b",
    }
}

/// The part of the header after `seq` and `epoch`, plus the payload: what the publish
/// script prefixes with `RC1 <kind> <seq> <epoch> ` (see [`super::script`]).
pub fn tail(node: &str, exclude: Option<(usize, ConnKey)>, t_ns: u64, payload: &[u8]) -> Vec<u8> {
    let head = match exclude {
        Some((shard, key)) => format!("{node} {shard} {key} {t_ns}\n"),
        None => format!("{node} - - {t_ns}\n"),
    };
    let mut out = Vec::with_capacity(head.len() + payload.len());
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// The kind field as the publish script takes it.
pub fn kind_field(kind: Kind) -> &'static str {
    kind_char(kind)
}

/// A whole unnumbered envelope (history off: the node publishes it as is).
pub fn encode(
    kind: Kind,
    node: &str,
    exclude: Option<(usize, ConnKey)>,
    t_ns: u64,
    payload: &[u8],
) -> Vec<u8> {
    let tail = tail(node, exclude, t_ns, payload);
    let mut out = Vec::with_capacity(MAGIC.len() + 6 + tail.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(kind_char(kind).as_bytes());
    out.extend_from_slice(b" 0 0 ");
    out.extend_from_slice(&tail);
    out
}

/// Decode `msg` (see the module doc). The payload is a slice of `msg`, not a copy.
pub fn decode(msg: Bytes) -> Result<Envelope, DecodeError> {
    if !msg.starts_with(MAGIC) {
        return Err(DecodeError::Magic);
    }
    let end = msg[..msg.len().min(MAX_HEADER)]
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(DecodeError::Truncated)?;
    let header = std::str::from_utf8(&msg[MAGIC.len()..end]).map_err(|_| DecodeError::Field)?;
    let mut f = header.split(' ');
    let mut next = || f.next().ok_or(DecodeError::Field);
    let kind = match next()? {
        "t" => Kind::Text,
        "b" => Kind::Binary,
        _ => return Err(DecodeError::Field),
    };
    let num = |s: &str| s.parse::<u64>().map_err(|_| DecodeError::Field);
    let seq = num(next()?)?;
    let epoch = num(next()?)?;
    let node = next()?;
    if !valid_origin(node) {
        return Err(DecodeError::Field);
    }
    let node = node.to_owned();
    let exclude = match (next()?, next()?) {
        ("-", "-") => None,
        (shard, key) => Some((
            shard.parse().map_err(|_| DecodeError::Field)?,
            key.parse().map_err(|_| DecodeError::Field)?,
        )),
    };
    let t_ns = num(next()?)?;
    if f.next().is_some() {
        return Err(DecodeError::Field);
    }
    let payload = msg.slice(end + 1..);
    if kind == Kind::Text && std::str::from_utf8(&payload).is_err() {
        // RFC 6455 §5.6: a text message is UTF-8; never forward one that is not.
        return Err(DecodeError::Field);
    }
    Ok(Envelope {
        kind,
        seq,
        epoch,
        node,
        exclude,
        t_ns,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_numbered_by_the_script_shape() {
        let e = encode(Kind::Text, "n1:9001", Some((1, 42)), 7, b"hi there");
        let d = decode(Bytes::from(e)).unwrap();
        assert_eq!(d.kind, Kind::Text);
        assert_eq!((d.seq, d.epoch, d.t_ns), (0, 0, 7));
        assert_eq!(d.node, "n1:9001");
        assert_eq!(d.exclude, Some((1, 42)));
        assert_eq!(&d.payload[..], b"hi there");
        // What the script writes: RC1 <kind> <seq> <epoch> <tail>.
        let mut s = b"RC1 b 12 99 ".to_vec();
        s.extend(tail("n2", None, 0, &[0, 1, b'\n', 255]));
        let d = decode(Bytes::from(s)).unwrap();
        assert_eq!(
            (d.kind, d.seq, d.epoch, d.exclude),
            (Kind::Binary, 12, 99, None)
        );
        assert_eq!(&d.payload[..], &[0, 1, b'\n', 255]);
    }

    #[test]
    fn foreign_truncated_and_malformed_messages_are_refused() {
        let bad: &[(&[u8], DecodeError)] = &[
            (b"hello", DecodeError::Magic),
            (b"RC2 t 0 0 n - - 0\nx", DecodeError::Magic),
            (b"RC1 t 0 0 n - - 0", DecodeError::Truncated),
            (b"RC1 x 0 0 n - - 0\n", DecodeError::Field),
            (b"RC1 t 0 0 n - - \n", DecodeError::Field),
            (b"RC1 t 0 0 n 1 - 0\n", DecodeError::Field),
            (b"RC1 t 0 0 n - - 0 extra\n", DecodeError::Field),
            (b"RC1 t 0 0 b@d - - 0\n", DecodeError::Field),
            (b"RC1 t 0 0 n - - 0\n\xff", DecodeError::Field),
        ];
        for (msg, want) in bad {
            assert_eq!(decode(Bytes::from_static(msg)), Err(*want), "{msg:?}");
        }
        let long = [MAGIC, &[b'x'; MAX_HEADER][..]].concat();
        assert_eq!(decode(Bytes::from(long)), Err(DecodeError::Truncated));
    }

    #[test]
    fn node_ids() {
        assert!(valid_node_id("host-1.example:9001"));
        assert!(!valid_node_id("") && !valid_node_id("a b") && !valid_node_id(&"x".repeat(65)));
    }

    #[test]
    fn two_processes_with_one_node_id_have_different_origins_that_decode() {
        let id = "x".repeat(MAX_NODE_ID);
        let (a, b) = (origin(&id, 1), origin(&id, u64::MAX));
        assert_ne!(a, b);
        assert_eq!(a.len(), MAX_ORIGIN);
        let env = encode(Kind::Text, &b, None, 0, b"hi");
        assert_eq!(decode(Bytes::from(env)).unwrap().node, b);
    }
}
