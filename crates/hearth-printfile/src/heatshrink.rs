//! Heatshrink decompression (LZSS with a bit-packed stream), as used by binary G-code blocks
//! with compression 2 (window 2^11, lookahead 2^4) and 3 (window 2^12, lookahead 2^4).
//!
//! The stream is a sequence of bits, most significant first: a `1` is followed by an 8-bit
//! literal; a `0` by a back-reference of `window` bits (distance − 1) and `lookahead` bits
//! (count − 1). The window starts as zeros, so a reference before the start yields zero bytes.
//! Trailing bits that do not make a whole item are padding.

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    bit: u32,
}

impl Bits<'_> {
    #[inline]
    fn take(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos)?;
            let b = (byte >> (7 - self.bit)) & 1;
            v = (v << 1) | u32::from(b);
            self.bit += 1;
            if self.bit == 8 {
                self.bit = 0;
                self.pos += 1;
            }
        }
        Some(v)
    }
}

/// Decodes `data`; stops at `limit` output bytes so a hostile stream cannot grow without bound.
pub(crate) fn decode(data: &[u8], window_bits: u32, lookahead_bits: u32, limit: usize) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(limit);
    let mut bits = Bits {
        data,
        pos: 0,
        bit: 0,
    };
    while out.len() < limit {
        let Some(tag) = bits.take(1) else { break };
        if tag == 1 {
            let Some(byte) = bits.take(8) else { break };
            out.push(byte as u8);
        } else {
            let Some(index) = bits.take(window_bits) else {
                break;
            };
            let Some(count) = bits.take(lookahead_bits) else {
                break;
            };
            let dist = index as usize + 1;
            for _ in 0..=count {
                if out.len() >= limit {
                    break;
                }
                let b = if dist <= out.len() {
                    out[out.len() - dist]
                } else {
                    0
                };
                out.push(b);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packs items MSB-first, as the encoder would.
    fn pack(items: &[(u32, u32)]) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut acc, mut n) = (0u32, 0u32);
        for &(v, bits) in items {
            for i in (0..bits).rev() {
                acc = (acc << 1) | ((v >> i) & 1);
                n += 1;
                if n == 8 {
                    out.push(acc as u8);
                    acc = 0;
                    n = 0;
                }
            }
        }
        if n > 0 {
            out.push((acc << (8 - n)) as u8);
        }
        out
    }

    #[test]
    fn literals_and_back_references() {
        // "ab" then copy 4 bytes from distance 2 -> "ababab"
        let s = pack(&[
            (1, 1),
            (b'a'.into(), 8),
            (1, 1),
            (b'b'.into(), 8),
            (0, 1),
            (1, 11),
            (3, 4),
        ]);
        assert_eq!(decode(&s, 11, 4, 6), b"ababab");
        // A reference before the start reads the zeroed window.
        let s = pack(&[(0, 1), (4, 12), (1, 4)]);
        assert_eq!(decode(&s, 12, 4, 2), [0, 0]);
        // Output is capped.
        assert_eq!(decode(&s, 12, 4, 1), [0]);
    }
}
