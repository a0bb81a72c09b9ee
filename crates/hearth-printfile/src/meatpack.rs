//! MeatPack decoding (binary G-code encodings 1 and 2), following the MeatPack description by
//! Scott Mudge and the decoder behaviour of prusa3d/libbgcode.
//!
//! Packed bytes carry two 4-bit codes for the 15 most common G-code characters, low nibble first;
//! the code `0b1111` means "the character comes in full in a following byte". `0xFF 0xFF cmd`
//! switches packing on or off and the "no spaces" mode (where code 11 means `E` instead of a space).
//! Because "no spaces" drops the spaces of G lines, the decoder puts a space back before each
//! parameter letter of a line starting with `G`, and drops repeated newlines, as libbgcode does, so
//! that the output equals PrusaSlicer's text G-code.

const SIGNAL: u8 = 0xFF;
const ENABLE_PACKING: u8 = 251;
const DISABLE_PACKING: u8 = 250;
const RESET_ALL: u8 = 249;
const ENABLE_NO_SPACES: u8 = 247;
const DISABLE_NO_SPACES: u8 = 246;

struct State {
    packing: bool,
    no_spaces: bool,
    /// Full-width characters still expected.
    full_pending: u8,
    /// A packed character waiting behind a full-width one.
    held: Option<u8>,
}

impl State {
    fn code(&self, c: u8) -> u8 {
        match c {
            0..=9 => b'0' + c,
            10 => b'.',
            11 if self.no_spaces => b'E',
            11 => b' ',
            12 => b'\n',
            13 => b'G',
            _ => b'X',
        }
    }

    /// Feeds one data byte; emits up to two characters.
    fn byte(&mut self, c: u8, emit: &mut impl FnMut(u8)) {
        if !self.packing {
            emit(c);
            return;
        }
        if self.full_pending > 0 {
            emit(c);
            if let Some(h) = self.held.take() {
                emit(h);
            }
            self.full_pending -= 1;
            return;
        }
        let (lo, hi) = (c & 0x0F, c >> 4);
        if lo == 0x0F {
            self.full_pending += 1;
            if hi == 0x0F {
                self.full_pending += 1;
            } else {
                self.held = Some(self.code(hi));
            }
        } else {
            let first = self.code(lo);
            emit(first);
            if first != b'\n' {
                if hi == 0x0F {
                    self.full_pending += 1;
                } else {
                    emit(self.code(hi));
                }
            }
        }
    }
}

fn is_g_parameter(c: u8) -> bool {
    matches!(
        c,
        b'X' | b'Y'
            | b'Z'
            | b'E'
            | b'F'
            | b'I'
            | b'J'
            | b'R'
            | b'G'
            | b'P'
            | b'W'
            | b'H'
            | b'C'
            | b'A'
    )
}

/// Decodes one G-code block.
pub(crate) fn decode(src: &[u8]) -> Vec<u8> {
    let mut st = State {
        packing: false,
        no_spaces: false,
        full_pending: 0,
        held: None,
    };
    let mut out: Vec<u8> = Vec::with_capacity(src.len() * 2);
    let mut add_space = false;
    let mut emit = |c: u8| {
        let last = out.last().copied();
        let mut new_line = false;
        if c == b'G' && (last.is_none() || last == Some(b'\n')) {
            add_space = true;
            new_line = true;
        } else if c == b'\n' {
            add_space = false;
        }
        if !new_line && add_space && last.is_some() && last != Some(b' ') && is_g_parameter(c) {
            out.push(b' ');
        }
        if c != b'\n' || out.last().is_some_and(|&l| l != b'\n') {
            out.push(c);
        }
    };
    let mut signals = 0u8;
    let mut command_next = false;
    for &c in src {
        if c == SIGNAL {
            if signals > 0 {
                command_next = true;
                signals = 0;
            } else {
                signals += 1;
            }
            continue;
        }
        if command_next {
            command_next = false;
            match c {
                ENABLE_PACKING => st.packing = true,
                DISABLE_PACKING | RESET_ALL => st.packing = false,
                ENABLE_NO_SPACES => st.no_spaces = true,
                DISABLE_NO_SPACES => st.no_spaces = false,
                _ => {}
            }
            continue;
        }
        if signals > 0 {
            st.byte(SIGNAL, &mut emit);
            signals = 0;
        }
        st.byte(c, &mut emit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_and_restores_spaces() {
        // Packing and no-spaces on; "G1X1\n" packs as (G,1) (X,1) (\n,-).
        let (g, x, nl) = (13u8, 14u8, 12u8);
        let src = [
            SIGNAL,
            SIGNAL,
            ENABLE_PACKING,
            SIGNAL,
            SIGNAL,
            ENABLE_NO_SPACES,
            (1 << 4) | g,
            (1 << 4) | x,
            nl,
        ];
        assert_eq!(decode(&src), b"G1 X1\n");
    }

    #[test]
    fn full_width_characters_and_plain_comments() {
        // 'Y' is not packable: low nibble 0xF then 'Y'; the high nibble '2' waits until after it.
        let src = [
            SIGNAL,
            SIGNAL,
            ENABLE_PACKING,
            (2 << 4) | 0x0F,
            b'Y',
            (12 << 4) | 2,
            SIGNAL,
            SIGNAL,
            DISABLE_PACKING,
            b';',
            b'c',
            b'\n',
        ];
        assert_eq!(decode(&src), b"Y22\n;c\n");
    }
}
