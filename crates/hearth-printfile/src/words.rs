//! The words of a `G0`/`G1` line read from a fixed window of bytes, without a loop per byte.
//!
//! Most lines of every print file are moves (`G1 X95.734 Y157.032 E.00568`), so this is the
//! hottest code of the analysis. [`gcode::parse_move`](crate::gcode) walks such a line byte by
//! byte, at about ten instructions per digit. Here the window is classified at once into bit
//! masks, one bit per byte (where `X`, `Y`, `Z`, `E` and `F` are, digits, points, minus signs,
//! stops), so where each of the five words and its number start and end is a few bit operations
//! on those masks; and each number's digits become an integer eight at a time ("SWAR": the
//! digits as one 64-bit word, three multiplications). The value is then that integer divided by
//! a power of ten, exactly as the byte-by-byte parser computes it, so both give the same bits.
//!
//! What the window cannot hold it declines ([`parse`] returns `false`), and the caller falls back
//! to the byte-by-byte parser: a line whose words run past [`WINDOW`] bytes, a quoted string, a
//! `+` sign, a number with more than eight digits before or after its point. So the two parsers
//! agree on every input by construction, which the tests check on random lines and on every
//! sample file.
//!
//! Every other letter can be ignored: a number never contains a letter, so the value after an
//! `X` does not depend on what else the line holds, and when a letter repeats the last one wins,
//! as in the byte-by-byte parser.

use crate::gcode::MoveWords;
use crate::num::POW10;

/// Bytes of a move's words (after `G1 `) that the masks cover.
pub(crate) const WINDOW: usize = 32;
/// Bytes the caller must make readable: numbers are loaded 8 bytes at a time from any position
/// below 64 (positions are masked to 0..64 so that no load needs a bounds check).
pub(crate) const READ: usize = 72;

/// One bit per byte of the window, per byte class.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Classes {
    /// `X`, `Y`, `Z`, `E`, `F` in either case, in [`MoveWords`] slot order.
    pub(crate) letters: [u64; 5],
    pub(crate) digit: u64,
    pub(crate) dot: u64,
    pub(crate) minus: u64,
    /// `;` or `*`: the words end (comment, checksum).
    pub(crate) stop: u64,
    /// `"` or `+`: left to the byte-by-byte parser.
    pub(crate) odd: u64,
}

/// A way to classify the window's first [`WINDOW`] bytes.
pub(crate) trait Classify {
    fn classes(w: &[u8; READ]) -> Classes;
}

#[inline(always)]
fn word(w: &[u8; READ], i: usize) -> u64 {
    let i = i & 63;
    let mut b = [0u8; 8];
    b.copy_from_slice(&w[i..i + 8]);
    u64::from_le_bytes(b)
}

/// Classification 16 bytes at a time with SSE2, which every x86-64 processor has; elsewhere a
/// plain loop.
#[derive(Debug)]
pub(crate) struct Baseline;

impl Classify for Baseline {
    #[inline(always)]
    fn classes(w: &[u8; READ]) -> Classes {
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of x86-64 itself (every x86-64 processor and the default
            // target have it), so a function built for it runs wherever this code runs.
            #[allow(unsafe_code)]
            let (lo, hi) = unsafe { (x86::classes16(w, 0), x86::classes16(w, 16)) };
            let mut c = Classes::default();
            for (j, l) in c.letters.iter_mut().enumerate() {
                *l = lo.letters[j] | (hi.letters[j] << 16);
            }
            c.digit = lo.digit | (hi.digit << 16);
            c.dot = lo.dot | (hi.dot << 16);
            c.minus = lo.minus | (hi.minus << 16);
            c.stop = lo.stop | (hi.stop << 16);
            c.odd = lo.odd | (hi.odd << 16);
            c
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Scalar::classes(w)
        }
    }
}

/// Classification one byte at a time: the reference the vector builds are tested against, and
/// the build for processors other than x86-64.
#[derive(Debug)]
#[cfg_attr(target_arch = "x86_64", allow(dead_code))] // the tests' reference there
pub(crate) struct Scalar;

impl Classify for Scalar {
    #[inline(always)]
    fn classes(w: &[u8; READ]) -> Classes {
        let mut c = Classes::default();
        for (j, &b) in w[..WINDOW].iter().enumerate() {
            let bit = 1u64 << j;
            let set = |m: &mut u64, on: bool| *m |= if on { bit } else { 0 };
            for (l, name) in c.letters.iter_mut().zip(*b"xyzef") {
                set(l, b | 0x20 == name);
            }
            set(&mut c.digit, b.is_ascii_digit());
            set(&mut c.dot, b == b'.');
            set(&mut c.minus, b == b'-');
            set(&mut c.stop, b == b';' || b == b'*');
            set(&mut c.odd, b == b'"' || b == b'+');
        }
        c
    }
}

/// Classification of all 32 bytes at once with AVX2; only for processors that have it.
#[cfg(target_arch = "x86_64")]
#[derive(Debug)]
pub(crate) struct Avx2;

#[cfg(target_arch = "x86_64")]
impl Classify for Avx2 {
    #[inline(always)]
    fn classes(w: &[u8; READ]) -> Classes {
        // SAFETY: `Avx2` is used only by code that checked the processor for AVX2 first
        // (`gcode::Lines::feed`).
        #[allow(unsafe_code)]
        unsafe {
            x86::classes32(w)
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_possible_wrap, clippy::cast_sign_loss)]
mod x86 {
    use super::{Classes, READ, word};
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8, _mm_sub_epi8, _mm256_cmpeq_epi8, _mm256_min_epu8, _mm256_movemask_epi8,
        _mm256_or_si256, _mm256_set_epi64x, _mm256_set1_epi8, _mm256_sub_epi8,
    };

    /// The classes of the bytes in vector `$v`, one bit each, with one width's intrinsics.
    macro_rules! classify {
        ($v:expr, $set1:ident, $cmpeq:ident, $min:ident, $or:ident, $sub:ident, $movemask:ident,
         $mask:ty) => {{
            let v = $v;
            let splat = |c: u8| $set1(c as i8);
            let bits = |m| u64::from($movemask(m) as $mask);
            let eq = |x, c: u8| $cmpeq(x, splat(c));
            let lower = $or(v, splat(0x20));
            let d = $sub(v, splat(b'0'));
            Classes {
                letters: [b'x', b'y', b'z', b'e', b'f'].map(|c| bits(eq(lower, c))),
                digit: bits($cmpeq($min(d, splat(9)), d)),
                dot: bits(eq(v, b'.')),
                minus: bits(eq(v, b'-')),
                stop: bits($or(eq(v, b';'), eq(v, b'*'))),
                odd: bits($or(eq(v, b'"'), eq(v, b'+'))),
            }
        }};
    }

    /// Byte classes of `w[at..at + 16]`, as 16-bit masks.
    #[inline]
    #[target_feature(enable = "sse2")]
    pub(super) fn classes16(w: &[u8; READ], at: usize) -> Classes {
        classify!(
            _mm_set_epi64x(word(w, at + 8) as i64, word(w, at) as i64),
            _mm_set1_epi8,
            _mm_cmpeq_epi8,
            _mm_min_epu8,
            _mm_or_si128,
            _mm_sub_epi8,
            _mm_movemask_epi8,
            u16
        )
    }

    /// Byte classes of `w[..32]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn classes32(w: &[u8; READ]) -> Classes {
        classify!(
            _mm256_set_epi64x(
                word(w, 24) as i64,
                word(w, 16) as i64,
                word(w, 8) as i64,
                word(w, 0) as i64,
            ),
            _mm256_set1_epi8,
            _mm256_cmpeq_epi8,
            _mm256_min_epu8,
            _mm256_or_si256,
            _mm256_sub_epi8,
            _mm256_movemask_epi8,
            u32
        )
    }
}

/// `BYTES[n]`: the low `n` bytes of a word.
const BYTES: [u64; 9] = {
    let mut t = [0u64; 9];
    let mut n = 1;
    while n < 9 {
        t[n] = u64::MAX >> (64 - 8 * n);
        n += 1;
    }
    t
};
const POW10_U64: [u64; 9] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
];
const SIGNS: [f64; 2] = [1.0, -1.0];

/// The value of up to eight ASCII digits, the first in the lowest byte, right-aligned: the bytes
/// before the first digit are zero.
#[inline(always)]
fn eight_digits(v: u64) -> u64 {
    let v = ((v & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561)) >> 8;
    let v = ((v & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601)) >> 16;
    ((v & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001)) >> 32
}

/// `n` digits (at most 8) that start at the low byte of `v`, as an integer.
#[inline(always)]
fn digits_value(v: u64, n: usize) -> u64 {
    // Shifting the digits to the top of the word puts zero bytes (leading zeros) below them.
    // `n == 0` leaves a word that is already zero, and a shift by 64 wraps to 0.
    eight_digits((v & BYTES[n]).wrapping_shl((8 * (8 - n)) as u32))
}

/// The number `[-] digits [. digits]` that starts at `w[start]`, as `parse_decimal` reads it,
/// with 0 where there is none; `None` beyond eight digits on either side of the point.
#[inline(always)]
fn number(w: &[u8; READ], start: usize, c: &Classes) -> Option<f64> {
    // Every shift below is by less than 64: positions stay within the window.
    let negative = (c.minus >> start) & 1;
    let int_at = start + negative as usize;
    let int_len = (!(c.digit >> int_at)).trailing_zeros() as usize;
    let point = int_at + int_len;
    // Without a point, `frac_at` is the byte after the digits, not a digit: no fraction.
    let frac_at = point + ((c.dot >> point) & 1) as usize;
    let frac_len = (!(c.digit >> frac_at)).trailing_zeros() as usize;
    let total = int_len + frac_len;
    let mantissa = if total <= 8 {
        // Close the point up: the integer digits from `int_at`, the fraction's from one byte
        // later, then all of them at once.
        let joined = (word(w, int_at) & BYTES[int_len])
            | (word(w, int_at + 1) & BYTES[total] & !BYTES[int_len]);
        digits_value(joined, total)
    } else if int_len <= 8 && frac_len <= 8 {
        digits_value(word(w, int_at), int_len) * POW10_U64[frac_len]
            + digits_value(word(w, frac_at), frac_len)
    } else {
        return None;
    };
    // Exact below 2^53, and one correctly rounded division: `parse_decimal`'s arithmetic. (As a
    // signed integer: x86-64 converts those in one instruction, unsigned ones not.) Divided one
    // by one: dividing X, Y, Z and E as one vector was measured slower, as each value then waits
    // for the slowest.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_wrap)]
    let v = mantissa as i64 as f64 / POW10[frac_len];
    // A sign without digits is no number: 0, not -0. `copysign` stays in the vector registers,
    // where the division leaves its result (setting the bit as an integer moved it out and back,
    // on the critical path).
    Some(v.copysign(SIGNS[(negative & u64::from(total != 0)) as usize]))
}

/// Reads the words of a move line into `out` from `w`, which starts right after `G0 `/`G1 ` and
/// holds `len` bytes of the line (what follows in `w` is ignored). `false`: the line does not fit
/// the window's rules (see the module documentation), `out` is undefined, and the caller parses
/// the line byte by byte.
#[inline(always)]
pub(crate) fn parse<C: Classify>(w: &[u8; READ], len: usize, out: &mut MoveWords) -> bool {
    let mut c = C::classes(w);
    let end = len.min(c.stop.trailing_zeros() as usize);
    if end > WINDOW {
        return false;
    }
    let inside = (1u64 << end) - 1;
    if c.odd & inside != 0 {
        return false;
    }
    c.digit &= inside;
    c.dot &= inside;
    c.minus &= inside;
    let mut mask = 0;
    for (slot, &m) in c.letters.iter().enumerate() {
        let m = m & inside;
        if m != 0 {
            let last = 63 - m.leading_zeros() as usize;
            let Some(v) = number(w, last + 1, &c) else {
                return false;
            };
            out.vals[slot] = v;
            mask |= 1 << slot;
        }
    }
    out.mask = mask;
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcode::parse_move;

    fn window(body: &[u8]) -> ([u8; READ], usize) {
        let mut w = [b'\n'; READ];
        let n = body.len().min(READ);
        w[..n].copy_from_slice(&body[..n]);
        (w, body.len())
    }

    /// The window's parse of `body` with classifier `C`.
    fn windowed<C: Classify>(body: &[u8]) -> Option<MoveWords> {
        let (w, len) = window(body);
        let mut out = MoveWords::EMPTY;
        parse::<C>(&w, len, &mut out).then_some(out)
    }

    /// Both parsers on `body`: equal words whenever the window accepts the line (with every
    /// classifier this processor can run; they must also agree on accepting it).
    fn agree(body: &[u8]) -> bool {
        let fast = windowed::<Baseline>(body);
        let scalar = windowed::<Scalar>(body);
        assert_eq!(fast.is_some(), scalar.is_some());
        if let (Some(a), Some(b)) = (fast, scalar) {
            assert_eq!(a.mask, b.mask);
            assert_eq!(a.vals.map(f64::to_bits), b.vals.map(f64::to_bits));
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            let wide = windowed::<Avx2>(body);
            assert_eq!(fast.is_some(), wide.is_some());
            if let (Some(a), Some(b)) = (fast, wide) {
                assert_eq!(a.mask, b.mask);
                assert_eq!(a.vals.map(f64::to_bits), b.vals.map(f64::to_bits));
            }
        }
        let Some(fast) = fast else {
            return false;
        };
        let slow = parse_move(body);
        assert_eq!(
            fast.mask,
            slow.mask,
            "letters of {:?}",
            String::from_utf8_lossy(body)
        );
        for i in 0..5 {
            if fast.mask & (1 << i) != 0 {
                assert_eq!(
                    fast.vals[i].to_bits(),
                    slow.vals[i].to_bits(),
                    "word {i} of {:?}: {} vs {}",
                    String::from_utf8_lossy(body),
                    fast.vals[i],
                    slow.vals[i]
                );
            }
        }
        true
    }

    #[test]
    fn slicer_lines_parse_as_byte_by_byte() {
        for l in [
            "X95.734 Y157.032 E.00568",
            "X84 Y146.68 E.02685",
            "X118.829 Y115.435 E48.76422",
            "F3600 X118.829 Y116",
            "Z.2 F7800",
            "E-.8 F2100",
            "X-12.5 Y3 E0",
            "x1.5 y2.25 e-0.0",
            "X1 Y2 ; comment X9",
            "X1 Y2*57",
            "X12345678.12345678 E.5",
            "X",
            "X Y1",
            "X- Y.",
            "X1.2.3 Y-4-5 E-.5",
            "X1Y2E3",
            "",
            "  X  1 Y\t2\r",
            "A1 B2 C3 X4",
        ] {
            assert!(agree(l.as_bytes()), "window declined {l:?}");
        }
    }

    #[test]
    fn what_the_window_cannot_hold_is_declined() {
        for l in [
            "X1 Y2 Z3 E4 F5 A6 B7 C8 D9 X10 Y11", // longer than the window
            "X123456789 Y1",                      // nine integer digits
            "X1.123456789",                       // nine decimals
            "X1 \"quoted Y2\" E1",                // a quoted string
            "X+1 Y2",                             // a plus sign
        ] {
            assert!(windowed::<Baseline>(l.as_bytes()).is_none(), "{l:?}");
        }
    }

    #[test]
    fn random_lines_parse_as_byte_by_byte() {
        // A fixed pseudo-random sequence over the bytes that matter, many thousand lines.
        let alphabet = b"XYZEFxG0123456789..--+  ;*\"\r\tA";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let len = (next() % 40) as usize;
            let line: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            accepted += usize::from(agree(&line));
        }
        assert!(accepted > 100_000, "only {accepted} lines took the window");
    }

    #[test]
    fn every_sample_move_parses_as_byte_by_byte() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data");
        let mut moves = 0;
        for sub in ["samples", "metadata"] {
            for e in std::fs::read_dir(dir.join(sub)).expect("test data") {
                let p = e.expect("entry").path();
                if p.extension().is_none_or(|x| x != "gcode") {
                    continue;
                }
                let text = std::fs::read(&p).expect("sample");
                for l in text.split(|&b| b == b'\n') {
                    if let [b'G', b'0' | b'1', b' ', body @ ..] = l {
                        agree(body);
                        moves += 1;
                    }
                }
            }
        }
        assert!(moves > 50_000, "{moves}");
    }
}
