//! `user_data` of io_uring operations: op kind, slot generation and slot key in 64 bits.
//!
//! A completion that arrives after its slot was freed and reused carries the old
//! generation and is recognised as stale.

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

/// Pack: kind (8 bits) | generation (24 bits) | key (32 bits).
pub fn encode(op: Op, key: ConnKey, generation: u32) -> u64 {
    (u64::from(op as u8) << 56)
        | (u64::from(generation & 0x00FF_FFFF) << 32)
        | (key as u64 & 0xFFFF_FFFF)
}

pub fn decode(data: u64) -> Option<(Op, ConnKey, u32)> {
    let op = Op::from_bits((data >> 56) as u8)?;
    Some((
        op,
        (data & 0xFFFF_FFFF) as ConnKey,
        ((data >> 32) & 0x00FF_FFFF) as u32,
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
}
