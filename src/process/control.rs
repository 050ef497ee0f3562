//! The fixed-size messages of a fork-server channel: a tag and two numbers, what the parent
//! and the server say to each other about spawning, killing and reaping workers.

use crate::remote::wire::u64_at;

/// A fixed-size message on a fork-server channel: a tag and two numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Control {
    pub(super) tag: u8,
    pub(super) a: u64,
    pub(super) b: u64,
}

/// Bytes of an encoded [`Control`].
pub(super) const CONTROL_BYTES: usize = 17;

impl Control {
    pub(super) fn encode(self) -> [u8; CONTROL_BYTES] {
        let mut out = [0; CONTROL_BYTES];
        out[0] = self.tag;
        out[1..9].copy_from_slice(&self.a.to_le_bytes());
        out[9..].copy_from_slice(&self.b.to_le_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Control> {
        (bytes.len() == CONTROL_BYTES).then(|| Control {
            tag: bytes[0],
            a: u64_at(&bytes[1..9]),
            b: u64_at(&bytes[9..]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_round_trips() {
        let control = Control { tag: 1, a: 2, b: 3 };
        assert_eq!(Control::decode(&control.encode()), Some(control));
    }
}
