//! `user_data` of io_uring operations: op kind, slot generation and slot key in 64 bits.
//!
//! A completion that arrives after its slot was freed and reused carries the old
//! generation and is recognised as stale. The shard's generations are 32-bit; the
//! low [`GENERATION_BITS`] of them fit here, so a stale completion goes unrecognised
//! only if its slot was reused 2^24 times while it was in flight.

use crate::hub::ConnKey;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    Accept = 1,
    Wake = 2,
    Recv = 3,
    Send = 4,
    Cancel = 5,
}

impl Op {
    fn from_bits(bits: u8) -> Option<Op> {
        Some(match bits {
            1 => Op::Accept,
            2 => Op::Wake,
            3 => Op::Recv,
            4 => Op::Send,
            5 => Op::Cancel,
            _ => return None,
        })
    }
}

/// How many low bits of a slot's generation `user_data` carries.
pub const GENERATION_BITS: u32 = 24;
const GENERATION_MASK: u32 = (1 << GENERATION_BITS) - 1;

/// Pack: kind (8 bits) | generation (low 24 bits) | key (32 bits).
pub fn encode(op: Op, key: ConnKey, generation: u32) -> u64 {
    (u64::from(op as u8) << 56)
        | (u64::from(generation & GENERATION_MASK) << 32)
        | (key as u64 & 0xFFFF_FFFF)
}

/// Is `decoded` (from [`decode`]) the generation `slot` (a shard's full generation)?
pub fn same_generation(slot: u32, decoded: u32) -> bool {
    slot & GENERATION_MASK == decoded
}

pub fn decode(data: u64) -> Option<(Op, ConnKey, u32)> {
    let op = Op::from_bits((data >> 56) as u8)?;
    Some((
        op,
        (data & 0xFFFF_FFFF) as ConnKey,
        ((data >> 32) as u32) & GENERATION_MASK,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for op in [Op::Accept, Op::Wake, Op::Recv, Op::Send, Op::Cancel] {
            let d = encode(op, 123_456, 0x00AB_CDEF);
            assert_eq!(decode(d), Some((op, 123_456, 0x00AB_CDEF)));
        }
        assert_eq!(decode(0), None);
    }

    #[test]
    fn generations_are_compared_on_their_low_bits() {
        let full = 0x1234_5678;
        let (_, _, decoded) = decode(encode(Op::Recv, 7, full)).unwrap();
        assert_eq!(decoded, 0x0034_5678);
        assert!(same_generation(full, decoded));
        assert!(!same_generation(full + 1, decoded));
    }
}
