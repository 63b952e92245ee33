//! Frame header codec (RFC 6455 §5.2): opcodes, header parsing pieces used by
//! the streaming decoder, and encoding of whole frames (unmasked server
//! frames, and masked client frames for tests and the load generator).
//!
//! Leniency: the RFC says the minimal number of bytes MUST be used for the
//! payload length, but we accept non-minimal encodings on receive (e.g. 126
//! followed by a 16-bit length < 126). Autobahn does not test it and rejecting
//! buys nothing. A 64-bit length with its most significant bit set is a 1002.

use super::close;
use super::error::ProtocolError;
use super::mask::apply_mask;

/// Largest possible header: 2 + 8 (64-bit length) + 4 (mask key).
pub const MAX_HEADER_LEN: usize = 14;
/// Largest payload of a control frame.
pub const MAX_CONTROL_PAYLOAD: usize = 125;

const FIN_BIT: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
/// RSV1: "per-message compressed" once permessage-deflate is negotiated (RFC 7692 §6).
const RSV1_BIT: u8 = 0x40;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN7_BITS: u8 = 0x7F;

/// The six opcodes RFC 6455 defines. Reserved opcodes (3-7, 0xB-0xF) are a
/// parse error and never become an `Opcode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    /// Close, Ping and Pong.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }

    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// The opcode for a 4-bit wire value; `None` for reserved values.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        match value {
            0x0 => Some(Opcode::Continuation),
            0x1 => Some(Opcode::Text),
            0x2 => Some(Opcode::Binary),
            0x8 => Some(Opcode::Close),
            0x9 => Some(Opcode::Ping),
            0xA => Some(Opcode::Pong),
            _ => None,
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
}

/// Check the first header byte: RSV1-3 clear (no extension negotiated), opcode not
/// reserved, control frames not fragmented. Returns (fin, opcode).
pub fn parse_first_byte(b0: u8) -> Result<(bool, Opcode), ProtocolError> {
    parse_first_byte_ext(b0, false).map(|(fin, opcode, _)| (fin, opcode))
}

/// [`parse_first_byte`] with permessage-deflate negotiated or not (`deflate`): RSV1
/// is then allowed on the first frame of a data message (text or binary), and a 1002
/// on a control frame or a continuation (RFC 7692 §6, §6.1). RSV2 and RSV3 are always
/// a 1002. Returns (fin, opcode, rsv1).
pub fn parse_first_byte_ext(b0: u8, deflate: bool) -> Result<(bool, Opcode, bool), ProtocolError> {
    let rsv1 = b0 & RSV1_BIT != 0;
    if b0 & RSV_BITS & !RSV1_BIT != 0 || (rsv1 && !deflate) {
        return Err(ProtocolError::protocol("reserved bits set"));
    }
    let opcode =
        Opcode::from_u8(b0 & OPCODE_BITS).ok_or(ProtocolError::protocol("reserved opcode"))?;
    let fin = b0 & FIN_BIT != 0;
    if opcode.is_control() && !fin {
        return Err(ProtocolError::protocol("fragmented control frame"));
    }
    if rsv1 && !matches!(opcode, Opcode::Text | Opcode::Binary) {
        return Err(ProtocolError::protocol(
            "rsv1 on a control frame or continuation",
        ));
    }
    Ok((fin, opcode, rsv1))
}

/// Whether the second header byte has the mask bit set.
pub fn is_masked(b1: u8) -> bool {
    b1 & MASK_BIT != 0
}

/// The 7-bit length field of the second header byte (126/127 = extended).
pub fn len7(b1: u8) -> u8 {
    b1 & LEN7_BITS
}

/// Number of extended-length bytes that follow the second byte: 0, 2 or 8.
pub fn extended_len_size(b1: u8) -> usize {
    match len7(b1) {
        126 => 2,
        127 => 8,
        _ => 0,
    }
}

/// Total header length implied by the second byte (mask key included).
pub fn header_len_from_second_byte(b1: u8) -> usize {
    2 + extended_len_size(b1) + if is_masked(b1) { 4 } else { 0 }
}

/// Payload length from the second byte and its extended-length bytes
/// (`ext.len()` must be `extended_len_size(b1)`). A 64-bit length with the
/// top bit set is a 1002; non-minimal encodings are accepted.
pub fn decode_payload_len(b1: u8, ext: &[u8]) -> Result<u64, ProtocolError> {
    match (len7(b1), ext) {
        (126, &[a, b]) => Ok(u64::from(u16::from_be_bytes([a, b]))),
        (127, &[a, b, c, d, e, f, g, h]) => {
            let len = u64::from_be_bytes([a, b, c, d, e, f, g, h]);
            if len >> 63 != 0 {
                Err(ProtocolError::protocol("64-bit length has its top bit set"))
            } else {
                Ok(len)
            }
        }
        (n, &[]) if n < 126 => Ok(u64::from(n)),
        _ => Err(ProtocolError::protocol("malformed length")),
    }
}

/// Parse a whole header at the start of `buf`: `Ok(None)` if more bytes are
/// needed, else the header and its length. Applies every frame-level rule
/// (RSV, opcode, control FIN and ≤ 125, 64-bit top bit) but not "must be
/// masked", which depends on the role; the server decoder checks that.
pub fn parse_header(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    let (fin, opcode) = parse_first_byte(b0)?;
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    if opcode.is_control() && usize::from(len7(b1)) > MAX_CONTROL_PAYLOAD {
        return Err(ProtocolError::protocol(
            "control frame payload over 125 bytes",
        ));
    }
    let total = header_len_from_second_byte(b1);
    let Some(head) = buf.get(..total) else {
        return Ok(None);
    };
    let ext_end = 2 + extended_len_size(b1);
    let payload_len = decode_payload_len(b1, head.get(2..ext_end).unwrap_or_default())?;
    let mask = match head.get(ext_end..) {
        Some(&[a, b, c, d]) => Some([a, b, c, d]),
        _ => None,
    };
    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
    };
    Ok(Some((header, total)))
}

/// Header length of an unmasked (server) frame: 2, 4 or 10.
pub fn header_len(payload_len: usize) -> usize {
    match payload_len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

fn write_header_with_mask(
    out: &mut Vec<u8>,
    fin: bool,
    opcode: Opcode,
    payload_len: usize,
    mask: Option<[u8; 4]>,
) {
    let b0 = if fin { FIN_BIT } else { 0 } | opcode.as_u8();
    let mask_bit = if mask.is_some() { MASK_BIT } else { 0 };
    out.push(b0);
    match payload_len {
        // The match arm bounds the value, so the casts cannot truncate.
        0..=125 => out.push(mask_bit | payload_len as u8),
        126..=0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(payload_len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(payload_len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
}

/// Append a server (unmasked) frame header.
pub fn write_header(out: &mut Vec<u8>, fin: bool, opcode: Opcode, payload_len: usize) {
    write_header_with_mask(out, fin, opcode, payload_len, None);
}

/// One whole unmasked server frame: header + payload, in one exactly-sized
/// allocation.
pub fn encode_frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(payload.len()) + payload.len());
    write_header(&mut out, fin, opcode, payload.len());
    out.extend_from_slice(payload);
    out
}

/// A whole close frame; the reason is truncated at a char boundary so the
/// payload fits in 125 bytes.
pub fn encode_close_frame(code: u16, reason: &str) -> Vec<u8> {
    let reason = close::truncate_reason(reason);
    let len = 2 + reason.len();
    let mut out = Vec::with_capacity(header_len(len) + len);
    write_header(&mut out, true, Opcode::Close, len);
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
    out
}

/// Client-side (masked) frame encoding, used by tests and the load
/// generator's reference checks.
pub fn encode_masked_frame(fin: bool, opcode: Opcode, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let head = header_len(payload.len()) + 4;
    let mut out = Vec::with_capacity(head + payload.len());
    write_header_with_mask(&mut out, fin, opcode, payload.len(), Some(key));
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(body) = out.get_mut(start..) {
        apply_mask(body, key, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Opcode; 6] = [
        Opcode::Continuation,
        Opcode::Text,
        Opcode::Binary,
        Opcode::Close,
        Opcode::Ping,
        Opcode::Pong,
    ];

    #[test]
    fn opcode_round_trip_and_control_flag() {
        for op in ALL {
            assert_eq!(Opcode::from_u8(op.as_u8()), Some(op));
        }
        let control: Vec<_> = ALL.iter().filter(|o| o.is_control()).collect();
        assert_eq!(control, [&Opcode::Close, &Opcode::Ping, &Opcode::Pong]);
    }

    #[test]
    fn reserved_opcodes_are_1002() {
        for raw in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(Opcode::from_u8(raw), None);
            let e = parse_first_byte(0x80 | raw).unwrap_err();
            assert_eq!(e, ProtocolError::protocol("reserved opcode"));
        }
    }

    #[test]
    fn rsv_bits_are_1002() {
        for rsv in [0x40u8, 0x20, 0x10, 0x70] {
            assert_eq!(parse_first_byte(0x81 | rsv).unwrap_err().code, 1002);
        }
    }

    #[test]
    fn rsv1_only_with_deflate_and_only_on_a_message_start() {
        assert_eq!(
            parse_first_byte_ext(0xC1, true),
            Ok((true, Opcode::Text, true))
        );
        assert_eq!(
            parse_first_byte_ext(0x42, true),
            Ok((false, Opcode::Binary, true))
        );
        assert_eq!(
            parse_first_byte_ext(0x81, true),
            Ok((true, Opcode::Text, false))
        );
        for b0 in [0xC0u8, 0xC8, 0xC9, 0xCA] {
            assert_eq!(parse_first_byte_ext(b0, true).unwrap_err().code, 1002);
        }
        for b0 in [0xC1u8, 0xA1, 0x91, 0xE1] {
            assert_eq!(parse_first_byte_ext(b0, false).unwrap_err().code, 1002);
        }
        assert_eq!(parse_first_byte_ext(0xA1, true).unwrap_err().code, 1002);
    }

    #[test]
    fn fragmented_control_is_1002() {
        for op in [0x8u8, 0x9, 0xA] {
            assert_eq!(parse_first_byte(op).unwrap_err().code, 1002);
        }
        assert_eq!(parse_first_byte(0x01), Ok((false, Opcode::Text)));
    }

    #[test]
    fn header_lengths() {
        assert_eq!(header_len(0), 2);
        assert_eq!(header_len(125), 2);
        assert_eq!(header_len(126), 4);
        assert_eq!(header_len(65535), 4);
        assert_eq!(header_len(65536), 10);
    }

    #[test]
    fn write_header_layouts() {
        let mut out = Vec::new();
        write_header(&mut out, true, Opcode::Text, 5);
        assert_eq!(out, [0x81, 0x05]);
        out.clear();
        write_header(&mut out, false, Opcode::Binary, 256);
        assert_eq!(out, [0x02, 126, 0x01, 0x00]);
        out.clear();
        write_header(&mut out, true, Opcode::Binary, 65536);
        assert_eq!(out, [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn encode_frame_is_exactly_sized() {
        for len in [0usize, 125, 126, 65535, 65536] {
            let payload = vec![7u8; len];
            let f = encode_frame(true, Opcode::Binary, &payload);
            assert_eq!(f.len(), header_len(len) + len);
            assert_eq!(f.capacity(), f.len());
            let (h, n) = parse_header(&f).unwrap().unwrap();
            assert_eq!(n, header_len(len));
            assert_eq!(h.payload_len, len as u64);
            assert_eq!(h.mask, None);
        }
    }

    #[test]
    fn rfc_masked_hello_example() {
        let f = encode_masked_frame(true, Opcode::Text, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(
            f,
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let (h, n) = parse_header(&f).unwrap().unwrap();
        assert_eq!(n, 6);
        assert_eq!(h.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
        assert!(h.fin);
        assert_eq!(h.opcode, Opcode::Text);
    }

    #[test]
    fn close_frame_encoding() {
        let f = encode_close_frame(1000, "bye");
        assert_eq!(f, [0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']);
        let long = encode_close_frame(1001, &"x".repeat(300));
        assert_eq!(long.len(), 2 + 125);
        assert_eq!(long.capacity(), long.len());
    }

    #[test]
    fn partial_headers_need_more() {
        let f = encode_masked_frame(true, Opcode::Binary, &[0; 70000], [1, 2, 3, 4]);
        for cut in 0..14 {
            assert_eq!(parse_header(&f[..cut]), Ok(None), "cut {cut}");
        }
        assert!(parse_header(&f[..14]).unwrap().is_some());
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let f = [0x82, 126, 0, 5];
        assert_eq!(parse_header(&f).unwrap().unwrap().0.payload_len, 5);
        let f = [0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5];
        assert_eq!(parse_header(&f).unwrap().unwrap().0.payload_len, 5);
    }

    #[test]
    fn top_bit_of_64bit_length_is_1002() {
        let f = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(parse_header(&f).unwrap_err().code, 1002);
        assert_eq!(
            decode_payload_len(127, &[0x80, 0, 0, 0, 0, 0, 0, 0])
                .unwrap_err()
                .code,
            1002
        );
    }

    #[test]
    fn decode_payload_len_rejects_wrong_ext_size() {
        assert!(decode_payload_len(126, &[1]).is_err());
        assert!(decode_payload_len(5, &[1]).is_err());
    }

    #[test]
    fn control_over_125_is_1002() {
        let f = [0x89, 126, 0, 126];
        assert_eq!(parse_header(&f).unwrap_err().code, 1002);
        let f = [0x89, 125];
        assert!(parse_header(&f).unwrap().is_some());
    }
}
