//! The streaming G-code pass: lines in, metadata and motion analysis out.
//!
//! [`Lines`] cuts arbitrary chunks into lines (bounded carry-over, so memory does not grow with a
//! file or a line), [`Processor`] parses each line without allocating and drives the
//! [`MetaCollector`] (comments) and, for a full analysis, the [`Motion`] state machine (positions,
//! extrusion per tool, extents, layers, and the [`Planner`] time estimate).

use std::io::Read;

use crate::meta::{Key, MetaCollector};
use crate::num::parse_decimal;
use crate::planner::{MoveKind, Planner};
use crate::report::{Analysis, Extents, Layers, LimitsSource, MachineLimits, ToolUsage};
use crate::words;
use crate::{Diags, Error};

/// Longest line kept; longer lines are cut (a diagnostic says so).
const MAX_LINE: usize = 1 << 20;
/// Read buffer size for streaming: small enough that the bytes the kernel copies in are still in
/// the processor's L2 cache (512 KiB to 1 MiB per core on current x86) when they are parsed.
pub(crate) const CHUNK: usize = 1 << 17;
/// Highest tool number tracked; beyond it `T` commands are ignored with a diagnostic.
const MAX_TOOLS: usize = 64;

/// Marlin-like defaults used when the file states no limits.
pub(crate) const DEFAULT_LIMITS: MachineLimits = MachineLimits {
    max_acceleration: [3000.0, 3000.0, 100.0, 10000.0],
    max_feedrate: [300.0, 300.0, 5.0, 25.0],
    max_jerk: [10.0, 10.0, 0.4, 5.0],
    junction_deviation_mm: None,
    print_acceleration: 1500.0,
    retract_acceleration: 1500.0,
    travel_acceleration: 1500.0,
    min_extruding_feedrate: 0.0,
    min_travel_feedrate: 0.0,
};

/// Splits a byte stream into lines.
#[derive(Debug, Default)]
pub(crate) struct Lines {
    carry: Vec<u8>,
    overflow: bool,
}

impl Lines {
    pub(crate) fn feed(&mut self, chunk: &[u8], p: &mut Processor) {
        #[cfg(target_arch = "x86_64")]
        if v3_available() {
            // SAFETY: the processor has every feature `feed_v3` is built for (checked above).
            #[allow(unsafe_code)]
            unsafe {
                self.feed_v3(chunk, p);
            }
            return;
        }
        self.feed_with::<words::Baseline>(chunk, p);
    }

    /// [`Lines::feed`] built for x86-64-v3 processors (AVX2, BMI1/2, LZCNT): the move words are
    /// classified 32 bytes at once, and the bit operations on their masks (shifts by a variable
    /// amount, counts of zeros) are single instructions.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    fn feed_v3(&mut self, chunk: &[u8], p: &mut Processor) {
        self.feed_with::<words::Avx2>(chunk, p);
    }

    #[inline(always)]
    fn feed_with<C: words::Classify>(&mut self, mut chunk: &[u8], p: &mut Processor) {
        if !self.carry.is_empty() || self.overflow {
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    self.push_carry(&chunk[..i], p);
                    let line = std::mem::take(&mut self.carry);
                    p.line(trim_cr(&line));
                    self.carry = line;
                    self.carry.clear();
                    self.overflow = false;
                    chunk = &chunk[i + 1..];
                }
                None => {
                    self.push_carry(chunk, p);
                    return;
                }
            }
        }
        let mut start = 0;
        // Each line's end from the 64 bytes at its start, as a bit mask: the loop goes on while
        // 64 bytes remain, which the processor predicts, instead of leaving a loop over the
        // newlines of each 64-byte block after two or three lines, which it could not.
        while let Some(block) = chunk.get(start..).and_then(<[u8]>::first_chunk::<64>) {
            let ends = newline_mask(block);
            let end = if ends != 0 {
                start + ends.trailing_zeros() as usize
            } else {
                match memchr::memchr(b'\n', &chunk[start + 64..]) {
                    Some(i) => start + 64 + i,
                    None => break,
                }
            };
            p.line_in::<C>(chunk, start, end);
            start = end + 1;
        }
        let base = start;
        for end in memchr::memchr_iter(b'\n', &chunk[base..]) {
            let end = base + end;
            p.line(trim_cr(&chunk[start..end]));
            start = end + 1;
        }
        if start < chunk.len() {
            self.push_carry(&chunk[start..], p);
        }
    }

    fn push_carry(&mut self, part: &[u8], p: &mut Processor) {
        let room = MAX_LINE.saturating_sub(self.carry.len());
        if part.len() > room {
            if !self.overflow {
                p.diags.warn(
                    Some(p.line + 1),
                    format!("line longer than {MAX_LINE} bytes, the rest of it was ignored"),
                );
            }
            self.overflow = true;
            self.carry.extend_from_slice(&part[..room]);
        } else {
            self.carry.extend_from_slice(part);
        }
    }

    pub(crate) fn finish(&mut self, p: &mut Processor) {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            p.line(trim_cr(&line));
        }
    }
}

/// Whether this processor runs [`Lines::feed_v3`] (x86-64-v3's AVX2, BMI1/2 and LZCNT).
#[cfg(target_arch = "x86_64")]
pub(crate) fn v3_available() -> bool {
    use std::arch::is_x86_feature_detected as has;
    has!("avx2") && has!("bmi1") && has!("bmi2") && has!("lzcnt")
}

/// One bit per `\n` in `b`.
#[inline(always)]
fn newline_mask(b: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i..i + 8]);
            i64::from_le_bytes(w)
        };
        let mut m = 0u64;
        for q in 0..4 {
            // SAFETY: SSE2 is part of x86-64 itself (every x86-64 processor and the default
            // target have it), so a function built for it runs wherever this code runs.
            #[allow(unsafe_code)]
            let bits = unsafe { sse2::eq_mask16(word(16 * q), word(16 * q + 8), b'\n') };
            m |= u64::from(bits) << (16 * q);
        }
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        b.iter()
            .enumerate()
            .fold(0u64, |m, (j, &c)| m | u64::from(c == b'\n') << j)
    }
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};

    /// One bit per byte equal to `c` among 16, given as two little-endian words.
    #[inline]
    #[target_feature(enable = "sse2")]
    #[allow(
        clippy::cast_possible_wrap,
        clippy::cast_sign_loss,
        clippy::cast_possible_truncation
    )]
    pub(super) fn eq_mask16(lo: i64, hi: i64, c: u8) -> u16 {
        let v = _mm_set_epi64x(hi, lo);
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8))) as u16
    }
}

#[inline]
fn trim_cr(l: &[u8]) -> &[u8] {
    match l.last() {
        Some(b'\r') => &l[..l.len() - 1],
        _ => l,
    }
}

/// Reads `r` to the end through `p`.
pub(crate) fn stream<R: Read>(mut r: R, p: &mut Processor) -> Result<(), Error> {
    let mut buf = vec![0u8; CHUNK];
    let mut lines = Lines::default();
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::Io(e)),
        };
        lines.feed(&buf[..n], p);
    }
    lines.finish(p);
    Ok(())
}

/// Parameters of one command: a value per letter, and which letters were present.
struct Params {
    vals: [f64; 26],
    mask: u32,
}

impl Params {
    #[inline]
    fn get(&self, c: u8) -> Option<f64> {
        let i = (c - b'A') as usize;
        (self.mask & (1 << i) != 0).then(|| self.vals[i])
    }
    #[inline]
    fn has(&self, c: u8) -> bool {
        self.mask & (1 << (c - b'A')) != 0
    }
}

const fn bit(c: u8) -> u32 {
    1 << (c - b'A')
}

/// The index after the quoted string that starts at `s[i]` (a `"`), or past the end of `s` when it
/// is not closed: its letters are not words.
#[inline(always)]
fn after_quoted(s: &[u8], i: usize) -> usize {
    let rest = &s[i + 1..];
    i + 2 + memchr::memchr(b'"', rest).unwrap_or(rest.len())
}

/// Parses `X12.3 Y4 E.5 ; comment` into `Params`. Stops at a comment or a checksum.
#[inline]
fn parse_params(s: &[u8]) -> Params {
    let mut p = Params {
        vals: [0.0; 26],
        mask: 0,
    };
    let mut i = 0;
    let n = s.len();
    while i < n {
        let c = s[i];
        if c == b';' || c == b'*' {
            break;
        }
        let u = c & !0x20;
        if u.is_ascii_uppercase() {
            i += 1;
            if let Some((v, k)) = parse_decimal(&s[i..]) {
                let idx = (u - b'A') as usize;
                p.vals[idx] = v;
                p.mask |= 1 << idx;
                i += k;
            } else {
                // A bare letter (`G28 X`): present, value 0.
                let idx = (u - b'A') as usize;
                p.vals[idx] = 0.0;
                p.mask |= 1 << idx;
            }
        } else if c == b'"' {
            i = after_quoted(s, i);
        } else {
            i += 1;
        }
    }
    p
}

/// The words of a G0/G1 move: X, Y, Z, E, F (other letters are skipped).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MoveWords {
    /// One value per kept letter, in the order X, Y, Z, E, F.
    pub(crate) vals: [f64; 5],
    /// Bit `i`: slot `i` was set.
    pub(crate) mask: u8,
}

const W_X: u8 = 1;
const W_Y: u8 = 2;
const W_Z: u8 = 4;
const W_E: u8 = 8;
const W_F: u8 = 16;
/// Slot of each letter A..Z in [`MoveWords`]; 5 = not kept.
const MOVE_SLOT: [u8; 26] = {
    let mut t = [5u8; 26];
    t[(b'X' - b'A') as usize] = 0;
    t[(b'Y' - b'A') as usize] = 1;
    t[(b'Z' - b'A') as usize] = 2;
    t[(b'E' - b'A') as usize] = 3;
    t[(b'F' - b'A') as usize] = 4;
    t
};

impl MoveWords {
    pub(crate) const EMPTY: Self = Self {
        vals: [0.0; 5],
        mask: 0,
    };

    #[inline]
    fn get(&self, bit: u8) -> Option<f64> {
        (self.mask & bit != 0).then(|| self.vals[bit.trailing_zeros() as usize])
    }

    fn from_params(p: &Params) -> Self {
        let mut w = Self::EMPTY;
        for (i, c) in [b'X', b'Y', b'Z', b'E', b'F'].into_iter().enumerate() {
            if let Some(v) = p.get(c) {
                w.vals[i] = v;
                w.mask |= 1 << i;
            }
        }
        w
    }
}

/// [`parse_params`] for G0/G1, the bulk of every file: keeps only the five letters a move uses.
/// `s` is the rest of the line after `G1`.
#[inline]
pub(crate) fn parse_move(s: &[u8]) -> MoveWords {
    let mut w = MoveWords::EMPTY;
    let n = s.len();
    let mut i = 0;
    while i < n {
        let c = s[i];
        let u = (c & !0x20).wrapping_sub(b'A');
        if u < 26 {
            i += 1;
            let (v, k) = parse_decimal(&s[i..]).unwrap_or((0.0, 0));
            let slot = MOVE_SLOT[usize::from(u)];
            if slot < 5 {
                w.vals[usize::from(slot)] = v;
                w.mask |= 1 << slot;
            }
            i += k;
        } else if c == b';' || c == b'*' {
            break;
        } else if c == b'"' {
            i = after_quoted(s, i);
        } else {
            i += 1;
        }
    }
    w
}

/// The per-line driver.
#[derive(Debug)]
pub(crate) struct Processor {
    pub(crate) meta: MetaCollector,
    pub(crate) diags: Diags,
    pub(crate) motion: Option<Motion>,
    pub(crate) line: u64,
    /// The words of the current move, read in place by [`words::parse`] (a field, so that they
    /// are not moved between the reading and the model).
    words: MoveWords,
    first_nozzle_temp: Option<f64>,
    first_bed_temp: Option<f64>,
}

impl Processor {
    pub(crate) fn new(diags: Diags, motion: Option<Motion>) -> Self {
        Self {
            meta: MetaCollector::default(),
            diags,
            motion,
            line: 0,
            words: MoveWords::EMPTY,
            first_nozzle_temp: None,
            first_bed_temp: None,
        }
    }

    /// One line, without its end.
    pub(crate) fn line(&mut self, l: &[u8]) {
        self.line += 1;
        let mut i = 0;
        while i < l.len() && (l[i] == b' ' || l[i] == b'\t') {
            i += 1;
        }
        let s = &l[i..];
        // The common case first: `G1 X.. Y.. E..` during a full analysis.
        if let [b'G', b'0' | b'1', b' ', ..] = s
            && let Some(m) = self.motion.as_mut()
        {
            m.linear(&parse_move(&s[3..]));
            return;
        }
        self.command_or_comment(s);
    }

    /// The line `chunk[start..end]`: a move whose words fit [`words::WINDOW`] is read from the
    /// chunk in place (when the chunk goes on at least [`words::READ`] bytes past the words), the
    /// rest as by [`Processor::line`].
    #[inline(always)]
    fn line_in<C: words::Classify>(&mut self, chunk: &[u8], start: usize, end: usize) {
        if let Some(m) = self.motion.as_mut()
            && let Some([b'G', b'0' | b'1', b' ', rest @ ..]) = chunk
                .get(start..)
                .and_then(<[u8]>::first_chunk::<{ 3 + words::READ }>)
            && words::parse::<C>(rest, end - start - 3, &mut self.words)
        {
            self.line += 1;
            m.linear(&self.words);
            return;
        }
        self.line(trim_cr(&chunk[start..end]));
    }

    #[inline(never)]
    fn command_or_comment(&mut self, s: &[u8]) {
        match s.first() {
            None => {}
            Some(b';') => {
                if let (Some(t), Some(m)) = (s[1..].strip_prefix(b"TYPE:"), self.motion.as_mut()) {
                    // PrusaSlicer marks start/end G-code `;TYPE:Custom`.
                    m.in_custom = t.trim_ascii() == b"Custom";
                }
                self.meta.comment(&s[1..], self.line, &mut self.diags);
                if self.meta.limits_dirty {
                    self.config_changed();
                }
            }
            Some(_) => self.command(s),
        }
    }

    /// The slicer configuration stated machine limits: use them if no move has been planned yet
    /// and no G-code command has set limits (configuration blocks at the head of Orca/Bambu files,
    /// metadata blocks of binary G-code).
    pub(crate) fn config_changed(&mut self) {
        self.meta.limits_dirty = false;
        let Some(m) = self.motion.as_mut() else {
            return;
        };
        if m.moves == 0
            && m.limits_source != LimitsSource::Gcode
            && let Some(l) = self.meta.config_limits(&DEFAULT_LIMITS)
        {
            m.use_config_limits(l, self.meta.accel_caps());
        }
    }

    #[inline]
    fn command(&mut self, mut s: &[u8]) {
        // Optional line number `N123 `.
        if (s[0] == b'N' || s[0] == b'n') && s.get(1).is_some_and(u8::is_ascii_digit) {
            let mut i = 1;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            while i < s.len() && s[i] == b' ' {
                i += 1;
            }
            s = &s[i..];
            if s.is_empty() {
                return;
            }
        }
        let letter = s[0] & !0x20;
        if !matches!(letter, b'G' | b'M' | b'T') || !s.get(1).is_some_and(u8::is_ascii_digit) {
            self.extended(s);
            return;
        }
        let mut i = 1;
        let mut code: u32 = 0;
        while i < s.len() && s[i].is_ascii_digit() {
            code = code
                .saturating_mul(10)
                .saturating_add(u32::from(s[i] - b'0'));
            i += 1;
        }
        let mut sub: Option<u32> = None;
        if s.get(i) == Some(&b'.') {
            i += 1;
            let mut v = 0u32;
            while i < s.len() && s[i].is_ascii_digit() {
                v = v.saturating_mul(10).saturating_add(u32::from(s[i] - b'0'));
                i += 1;
            }
            sub = Some(v);
        }
        let rest = &s[i..];
        match (letter, code) {
            (b'G', 0 | 1) if sub.is_none() => {
                if let Some(m) = self.motion.as_mut() {
                    m.linear(&parse_move(rest));
                }
            }
            (b'T', t) => {
                if let Some(m) = self.motion.as_mut() {
                    m.tool_change(t as usize, self.line, &mut self.diags);
                }
            }
            (b'M', 104 | 109) => {
                if self.first_nozzle_temp.is_none() {
                    let p = parse_params(rest);
                    self.first_nozzle_temp = p.get(b'S').filter(|t| *t > 0.0);
                }
            }
            (b'M', 140 | 190) => {
                if self.first_bed_temp.is_none() {
                    let p = parse_params(rest);
                    self.first_bed_temp = p.get(b'S').filter(|t| *t > 0.0);
                }
            }
            (b'M', 486) => {
                // `M486 S0 A"cube"`: the A parameter names the object (not an `A` in a comment).
                let code = rest.split(|&c| c == b';').next().unwrap_or(rest);
                if let Some(i) = memchr::memchr(b'A', code)
                    && let Ok(n) = std::str::from_utf8(&code[i + 1..])
                {
                    self.meta.object(n);
                }
            }
            _ => {
                if let Some(m) = self.motion.as_mut() {
                    let p = parse_params(rest);
                    m.other(letter, code, sub, &p, self.line, &mut self.diags);
                }
            }
        }
    }

    /// Klipper-style extended commands (`EXCLUDE_OBJECT_DEFINE NAME=...`).
    fn extended(&mut self, s: &[u8]) {
        let Ok(text) = std::str::from_utf8(s) else {
            return;
        };
        let text = text.split(';').next().unwrap_or(text);
        let mut words = text.split_whitespace();
        let cmd = words.next().unwrap_or("");
        let arg = |name: &str, words: std::str::SplitWhitespace<'_>| {
            words
                .filter_map(|w| w.split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.to_owned())
        };
        if cmd.eq_ignore_ascii_case("EXCLUDE_OBJECT_DEFINE") {
            if let Some(name) = arg("NAME", words) {
                self.meta.object(&name);
            }
        } else if cmd.eq_ignore_ascii_case("SET_VELOCITY_LIMIT")
            && let Some(m) = self.motion.as_mut()
        {
            {
                let num = |k: &str| arg(k, words.clone()).and_then(|v| crate::num::parse_f64(&v));
                m.klipper_limits(num("VELOCITY"), num("ACCEL"), num("SQUARE_CORNER_VELOCITY"));
            }
        }
    }

    /// Hands temperatures seen in commands to the metadata, for slicers that state none.
    pub(crate) fn finish_meta(&mut self) {
        if let Some(t) = self.first_nozzle_temp {
            self.meta.set_default(Key::FirstLayerTemp, t.to_string());
        }
        if let Some(t) = self.first_bed_temp {
            self.meta.set_default(Key::FirstLayerBed, t.to_string());
        }
    }
}

/// Axis-aligned bounds under construction.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    min: [f64; 3],
    max: [f64; 3],
}

impl Bounds {
    const EMPTY: Self = Self {
        min: [f64::INFINITY; 3],
        max: [f64::NEG_INFINITY; 3],
    };
    #[inline(always)]
    fn record(&mut self, p: &[f64; 3]) {
        // Plain comparisons (a NaN changes nothing, as with `f64::min`), one instruction each,
        // stored whatever they chose: a conditional store would be a branch per axis.
        for ((lo, hi), &v) in self.min.iter_mut().zip(self.max.iter_mut()).zip(p) {
            *lo = if v < *lo { v } else { *lo };
            *hi = if v > *hi { v } else { *hi };
        }
    }
    fn extents(&self) -> Option<Extents> {
        (self.min[0] <= self.max[0]).then_some(Extents {
            min: self.min,
            max: self.max,
        })
    }
}

/// Layers from the Z of extruding moves.
#[derive(Debug)]
struct LayerTracker {
    count: u64,
    top: f64,
    first: Option<f64>,
    /// (height in µm, count) after the first layer; few distinct values in practice.
    heights: Vec<(i64, u64)>,
    min: Option<f64>,
    max: Option<f64>,
    /// The height a move must exceed to start a new layer, for a flat and for a rising move, or
    /// NaN before the first layer (no height is at or below NaN). Derived from the fields above
    /// whenever they change, so that the common case, a move on the current layer, is one
    /// comparison.
    flat_limit: f64,
    rising_limit: f64,
}

impl Default for LayerTracker {
    fn default() -> Self {
        Self {
            count: 0,
            top: 0.0,
            first: None,
            heights: Vec::new(),
            min: None,
            max: None,
            flat_limit: f64::NAN,
            rising_limit: f64::NAN,
        }
    }
}

impl LayerTracker {
    /// An extruding move that ends at `z`. `rising` is true when the move itself climbs (spiral
    /// vase mode): those count as a new layer only once they have climbed a whole layer height,
    /// not at every segment.
    #[inline(always)]
    fn extrude_at(&mut self, z: f64, rising: bool) {
        // `z <= NaN` is false: before the first layer every move goes on.
        if z <= if rising {
            self.rising_limit
        } else {
            self.flat_limit
        } {
            return;
        }
        self.new_layer(z);
    }

    #[inline(never)]
    fn new_layer(&mut self, z: f64) {
        let h = z - if self.count == 0 { 0.0 } else { self.top };
        if self.count == 0 {
            self.first = Some(z);
        } else {
            #[allow(clippy::cast_possible_truncation)]
            let key = (h * 1000.0).round() as i64;
            if let Some(e) = self.heights.iter_mut().find(|(k, _)| *k == key) {
                e.1 += 1;
            } else if self.heights.len() < 256 {
                self.heights.push((key, 1));
            }
            self.min = Some(self.min.map_or(h, |m| m.min(h)));
            self.max = Some(self.max.map_or(h, |m| m.max(h)));
        }
        self.count += 1;
        self.top = z;
        let step = self.max.or(self.first).unwrap_or(0.0) * 0.99;
        self.flat_limit = self.top + 1e-3;
        self.rising_limit = self.top + step.max(1e-3);
    }

    fn report(&self) -> Layers {
        let typical = self
            .heights
            .iter()
            .max_by_key(|(_, n)| *n)
            .map(|(k, _)| *k as f64 / 1000.0);
        Layers {
            count: self.count,
            first_layer_height_mm: self.first,
            typical_height_mm: typical,
            min_height_mm: self.min,
            max_height_mm: self.max,
            top_z_mm: (self.count > 0).then_some(self.top),
        }
    }
}

/// The machine state during a full analysis.
#[derive(Debug)]
pub(crate) struct Motion {
    pos: [f64; 3],
    /// The current tool's extruder. It lives here rather than in `extruders` while the tool is
    /// current, so that a move reads and writes plain fields (no vector, no bounds checks).
    e: Extruder,
    /// Every tool's extruder; the current tool's entry is stale until a tool change or the end.
    extruders: Vec<Extruder>,
    /// The current feature is the slicer's custom (start/end) G-code.
    in_custom: bool,
    tool: usize,
    relative_xyz: bool,
    relative_e: bool,
    scale: f64,
    /// Requested feedrate, mm/s.
    feed: f64,
    print: Bounds,
    travel: Bounds,
    layers: LayerTracker,
    pub(crate) planner: Planner,
    /// Caps on M204 values from the slicer configuration (print, retract, travel), 0 = none.
    accel_caps: [f64; 3],
    limits_source: LimitsSource,
    moves: u64,
    tool_changes: u64,
    fw_retract_len: f64,
    fw_retract_feed: f64,
    fw_recover_extra: f64,
    fw_recover_feed: f64,
}

/// One tool's extrusion.
#[derive(Debug, Clone, Copy, Default)]
struct Extruder {
    /// Position of the extruder axis.
    pos: f64,
    /// Total extruded and its running maximum (OctoPrint's accounting: a retraction followed by
    /// the same unretraction counts once).
    total: f64,
    max: f64,
    /// Positive extrusion inside the slicer's custom G-code (`;TYPE:Custom`).
    custom: f64,
}

const X: u32 = bit(b'X');
const Y: u32 = bit(b'Y');
const Z: u32 = bit(b'Z');
const E: u32 = bit(b'E');

impl Motion {
    pub(crate) fn new(limits: MachineLimits, source: LimitsSource) -> Self {
        Self {
            pos: [0.0; 3],
            e: Extruder::default(),
            extruders: vec![Extruder::default()],
            in_custom: false,
            tool: 0,
            relative_xyz: false,
            relative_e: false,
            scale: 1.0,
            feed: 100.0,
            print: Bounds::EMPTY,
            travel: Bounds::EMPTY,
            layers: LayerTracker::default(),
            planner: Planner::new(limits),
            accel_caps: [0.0; 3],
            limits_source: source,
            moves: 0,
            tool_changes: 0,
            fw_retract_len: 3.0,
            fw_retract_feed: 45.0,
            fw_recover_extra: 0.0,
            fw_recover_feed: 8.0,
        }
    }

    /// New target position and extrusion of a move command.
    // Always inlined: returned through memory, its result stalled the caller on a partial
    // store-to-load forward (a 16-byte load of two 8-byte stores).
    #[inline(always)]
    fn target(&mut self, w: &MoveWords) -> ([f64; 3], f64) {
        let mut new = self.pos;
        for (i, n) in new.iter_mut().enumerate() {
            if w.mask & (1 << i) != 0 {
                let v = w.vals[i] * self.scale;
                *n = if self.relative_xyz { *n + v } else { v };
            }
        }
        if let Some(f) = w.get(W_F).filter(|f| *f > 0.0) {
            self.feed = f * self.scale / 60.0;
        }
        let mut de = 0.0;
        if let Some(e) = w.get(W_E) {
            let e = e * self.scale;
            let x = &mut self.e;
            de = if self.relative_e || self.relative_xyz {
                e
            } else {
                e - x.pos
            };
            x.pos += de;
            x.total += de;
            x.max = if x.total > x.max { x.total } else { x.max };
            if self.in_custom && de > 0.0 {
                x.custom += de;
            }
        }
        (new, de)
    }

    #[inline]
    pub(crate) fn linear(&mut self, w: &MoveWords) {
        if w.mask == 0 {
            return;
        }
        let (new, de) = self.target(w);
        let old = self.pos;
        if w.mask & (W_X | W_Y | W_Z) != 0 {
            // Both ends every time: the start is usually the end of the previous move, already
            // recorded, but recording a point twice changes nothing and costs less than
            // remembering whether it was.
            self.travel.record(&old);
            self.travel.record(&new);
            if de > 0.0 {
                self.print.record(&old);
                self.print.record(&new);
            }
        }
        let d = [new[0] - old[0], new[1] - old[1], new[2] - old[2], de];
        let moved = d[0] != 0.0 || d[1] != 0.0 || d[2] != 0.0;
        if moved || de != 0.0 {
            self.moves += 1;
            let kind = if !moved {
                MoveKind::ExtruderOnly
            } else if de > 0.0 {
                if d[0] != 0.0 || d[1] != 0.0 {
                    self.layers.extrude_at(new[2], d[2] > 0.0);
                }
                MoveKind::Extrude
            } else {
                MoveKind::Travel
            };
            self.planner.push(d, self.feed, kind);
        }
        self.pos = new;
    }

    fn arc(&mut self, clockwise: bool, p: &Params, line: u64, diags: &mut Diags) {
        let old = self.pos;
        let (new, de) = self.target(&MoveWords::from_params(p));
        let (sx, sy) = (old[0], old[1]);
        let (ex, ey) = (new[0], new[1]);
        let center = if let Some(r) = p.get(b'R') {
            let (dx, dy) = (ex - sx, ey - sy);
            let d = (dx * dx + dy * dy).sqrt();
            if d < 1e-9 {
                diags.warn(Some(line), "arc with R and no end point ignored".into());
                self.pos = new;
                return;
            }
            let r = r * self.scale;
            let h2 = (r - 0.5 * d) * (r + 0.5 * d);
            let h = if h2 > 0.0 { h2.sqrt() } else { 0.0 };
            let sign = if clockwise ^ (r < 0.0) { -1.0 } else { 1.0 };
            let (mx, my) = ((sx + ex) * 0.5, (sy + ey) * 0.5);
            (mx + sign * h * (-dy / d), my + sign * h * (dx / d))
        } else {
            let i = p.get(b'I').unwrap_or(0.0) * self.scale;
            let j = p.get(b'J').unwrap_or(0.0) * self.scale;
            (sx + i, sy + j)
        };
        let radius = ((sx - center.0).powi(2) + (sy - center.1).powi(2)).sqrt();
        let a0 = (sy - center.1).atan2(sx - center.0);
        let a1 = (ey - center.1).atan2(ex - center.0);
        let mut sweep = a1 - a0;
        let tau = std::f64::consts::TAU;
        if clockwise {
            if sweep >= -1e-12 {
                sweep -= tau;
            }
        } else if sweep <= 1e-12 {
            sweep += tau;
        }
        if !radius.is_finite() || !sweep.is_finite() {
            diags.warn(Some(line), "arc with unusable geometry ignored".into());
            self.pos = new;
            return;
        }
        let len = sweep.abs() * radius;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = (len.ceil() as usize).clamp(1, 720);
        let kind_extrude = de > 0.0;
        let mut prev = old;
        for k in 1..=n {
            let t = k as f64 / n as f64;
            let pt = if k == n {
                new
            } else {
                let a = a0 + sweep * t;
                [
                    center.0 + radius * a.cos(),
                    center.1 + radius * a.sin(),
                    old[2] + (new[2] - old[2]) * t,
                ]
            };
            self.travel.record(&pt);
            if kind_extrude {
                self.print.record(&pt);
            }
            let d = [
                pt[0] - prev[0],
                pt[1] - prev[1],
                pt[2] - prev[2],
                de / n as f64,
            ];
            let kind = if kind_extrude {
                MoveKind::Extrude
            } else {
                MoveKind::Travel
            };
            self.planner.push(d, self.feed, kind);
            prev = pt;
        }
        self.travel.record(&old);
        if kind_extrude {
            self.print.record(&old);
            self.layers.extrude_at(new[2], new[2] > old[2]);
        }
        self.moves += 1;
        self.pos = new;
    }

    fn tool_change(&mut self, t: usize, line: u64, diags: &mut Diags) {
        if t >= MAX_TOOLS {
            diags.warn(
                Some(line),
                format!("tool T{t} ignored (more than {MAX_TOOLS} tools)"),
            );
            return;
        }
        if t == self.tool {
            return;
        }
        if self.extruders.len() <= t {
            self.extruders.resize(t + 1, Extruder::default());
        }
        self.extruders[self.tool] = self.e;
        self.e = self.extruders[t];
        self.tool = t;
        self.tool_changes += 1;
    }

    /// Starts over with the limits of the slicer's configuration; `caps` bound later M204 values
    /// (print, retract, travel; 0 = none), as PrusaSlicer's estimator does.
    pub(crate) fn use_config_limits(&mut self, l: MachineLimits, caps: [f64; 3]) {
        self.planner = Planner::new(l);
        self.accel_caps = caps;
        self.limits_source = LimitsSource::SlicerConfig;
    }

    /// True when no configuration or command limits were applied (the built-in defaults ran).
    pub(crate) fn limits_unused_config(&self) -> bool {
        self.limits_source == LimitsSource::Defaults
    }

    fn set_limit_source(&mut self) {
        self.limits_source = LimitsSource::Gcode;
    }

    fn capped(&self, v: f64, which: usize) -> f64 {
        let cap = self.accel_caps[which];
        if cap > 0.0 { v.min(cap) } else { v }
    }

    fn klipper_limits(&mut self, velocity: Option<f64>, accel: Option<f64>, scv: Option<f64>) {
        let l = self.planner.limits_mut();
        if let Some(v) = velocity.filter(|v| *v > 0.0) {
            l.max_feedrate[0] = v;
            l.max_feedrate[1] = v;
        }
        if let Some(a) = accel.filter(|a| *a > 0.0) {
            l.print_acceleration = a;
            l.travel_acceleration = a;
            l.max_acceleration[0] = a;
            l.max_acceleration[1] = a;
        }
        if let Some(v) = scv.filter(|v| *v >= 0.0) {
            // Klipper's square corner velocity as a junction deviation.
            let a = l.print_acceleration.max(1.0);
            l.junction_deviation_mm = Some(v * v * (std::f64::consts::SQRT_2 - 1.0) / a);
        }
        self.set_limit_source();
    }

    fn other(
        &mut self,
        letter: u8,
        code: u32,
        sub: Option<u32>,
        p: &Params,
        line: u64,
        diags: &mut Diags,
    ) {
        match (letter, code, sub) {
            (b'G', 2 | 3, None) => self.arc(code == 2, p, line, diags),
            (b'G', 4, _) => {
                let s = p.get(b'S').unwrap_or(0.0) + p.get(b'P').unwrap_or(0.0) / 1000.0;
                self.planner.dwell(s);
            }
            (b'G', 10, None) if !p.has(b'L') && !p.has(b'P') => {
                self.planner.push(
                    [0.0, 0.0, 0.0, -self.fw_retract_len],
                    self.fw_retract_feed,
                    MoveKind::ExtruderOnly,
                );
            }
            (b'G', 11, None) => {
                self.planner.push(
                    [0.0, 0.0, 0.0, self.fw_retract_len + self.fw_recover_extra],
                    self.fw_recover_feed,
                    MoveKind::ExtruderOnly,
                );
            }
            (b'G', 20, _) => self.scale = 25.4,
            (b'G', 21, _) => self.scale = 1.0,
            (b'G', 28, _) => {
                let any = p.mask & (X | Y | Z) != 0;
                for (i, a) in [b'X', b'Y', b'Z'].into_iter().enumerate() {
                    if !any || p.has(a) {
                        self.pos[i] = 0.0;
                    }
                }
                self.planner.dwell(0.0);
            }
            (b'G', 90, _) => self.relative_xyz = false,
            (b'G', 91, _) => self.relative_xyz = true,
            (b'G', 92, _) => {
                if p.mask & (X | Y | Z | E) == 0 {
                    self.pos = [0.0; 3];
                    self.e.pos = 0.0;
                } else {
                    for (i, a) in [b'X', b'Y', b'Z'].into_iter().enumerate() {
                        if let Some(v) = p.get(a) {
                            self.pos[i] = v * self.scale;
                        }
                    }
                    if let Some(e) = p.get(b'E') {
                        self.e.pos = e * self.scale;
                    }
                }
            }
            (b'M', 82, _) => self.relative_e = false,
            (b'M', 83, _) => self.relative_e = true,
            (b'M', 201, _) => {
                for (i, a) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
                    if let Some(v) = p.get(a).filter(|v| *v > 0.0) {
                        self.planner.limits_mut().max_acceleration[i] = v;
                    }
                }
                self.set_limit_source();
            }
            (b'M', 203, _) => {
                // Marlin states mm/s; RepRapFirmware mm/min. XY speeds above 2000 can only be mm/min.
                let per_min = p.get(b'X').or(p.get(b'Y')).is_some_and(|v| v > 2000.0);
                let div = if per_min { 60.0 } else { 1.0 };
                for (i, a) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
                    if let Some(v) = p.get(a).filter(|v| *v > 0.0) {
                        self.planner.limits_mut().max_feedrate[i] = v / div;
                    }
                }
                self.set_limit_source();
            }
            (b'M', 204, _) => {
                if let Some(s) = p.get(b'S').filter(|v| *v > 0.0) {
                    // Legacy form: S sets printing and travel acceleration, T the retraction.
                    self.planner.limits_mut().print_acceleration = self.capped(s, 0);
                    self.planner.limits_mut().travel_acceleration = self.capped(s, 2);
                    if let Some(t) = p.get(b'T').filter(|v| *v > 0.0) {
                        self.planner.limits_mut().retract_acceleration = self.capped(t, 1);
                    }
                } else {
                    if let Some(v) = p.get(b'P').filter(|v| *v > 0.0) {
                        self.planner.limits_mut().print_acceleration = self.capped(v, 0);
                    }
                    if let Some(v) = p.get(b'R').filter(|v| *v > 0.0) {
                        self.planner.limits_mut().retract_acceleration = self.capped(v, 1);
                    }
                    if let Some(v) = p.get(b'T').filter(|v| *v > 0.0) {
                        self.planner.limits_mut().travel_acceleration = self.capped(v, 2);
                    }
                }
                self.set_limit_source();
            }
            (b'M', 205, _) => {
                let l = self.planner.limits_mut();
                for (i, a) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
                    if let Some(v) = p.get(a).filter(|v| *v >= 0.0) {
                        l.max_jerk[i] = v;
                    }
                }
                if let Some(v) = p.get(b'S').filter(|v| *v >= 0.0) {
                    l.min_extruding_feedrate = v;
                }
                if let Some(v) = p.get(b'T').filter(|v| *v >= 0.0) {
                    l.min_travel_feedrate = v;
                }
                if let Some(v) = p.get(b'J').filter(|v| *v > 0.0) {
                    l.junction_deviation_mm = Some(v);
                }
                self.set_limit_source();
            }
            (b'M', 566, _) => {
                // RepRapFirmware jerk, mm/min.
                for (i, a) in [b'X', b'Y', b'Z', b'E'].into_iter().enumerate() {
                    if let Some(v) = p.get(a).filter(|v| *v >= 0.0) {
                        self.planner.limits_mut().max_jerk[i] = v / 60.0;
                    }
                }
                self.set_limit_source();
            }
            (b'M', 207, _) => {
                if let Some(s) = p.get(b'S') {
                    self.fw_retract_len = s.max(0.0);
                }
                if let Some(f) = p.get(b'F').filter(|f| *f > 0.0) {
                    self.fw_retract_feed = f / 60.0;
                }
            }
            (b'M', 208, _) => {
                if let Some(s) = p.get(b'S') {
                    self.fw_recover_extra = s;
                }
                if let Some(f) = p.get(b'F').filter(|f| *f > 0.0) {
                    self.fw_recover_feed = f / 60.0;
                }
            }
            _ => {}
        }
    }

    /// Ends the pass. `diameters` and `densities` are per tool from the metadata.
    pub(crate) fn finish(
        mut self,
        lines: u64,
        diameters: &[Option<f64>],
        densities: &[Option<f64>],
        materials: &[String],
    ) -> Analysis {
        let time = self.planner.finish();
        self.extruders[self.tool] = self.e;
        let mut tools = Vec::new();
        for (t, x) in self.extruders.iter().enumerate() {
            let len = x.max;
            if len <= 0.0 && t > 0 {
                continue;
            }
            let diameter = diameters
                .get(t)
                .or(diameters.first())
                .copied()
                .flatten()
                .filter(|d| *d > 0.0)
                .unwrap_or(1.75);
            let density = densities
                .get(t)
                .or(densities.first())
                .copied()
                .flatten()
                .filter(|d| *d > 0.0)
                .or_else(|| {
                    materials
                        .get(t)
                        .or(materials.first())
                        .and_then(|m| default_density(m))
                });
            let r = diameter / 2.0;
            let volume_cm3 = len * std::f64::consts::PI * r * r / 1000.0;
            tools.push(ToolUsage {
                tool: u32::try_from(t).unwrap_or(u32::MAX),
                length_mm: len,
                custom_gcode_length_mm: x.custom.min(len),
                volume_cm3,
                mass_g: density.map(|d| d * volume_cm3),
                diameter_mm: diameter,
                density_g_cm3: density,
            });
        }
        let filament_length_mm = tools.iter().map(|t| t.length_mm).sum();
        let filament_volume_cm3 = tools.iter().map(|t| t.volume_cm3).sum();
        let filament_mass_g = tools
            .iter()
            .map(|t| t.mass_g)
            .try_fold(0.0, |acc, m| m.map(|m| acc + m));
        Analysis {
            lines,
            moves: self.moves,
            layers: self.layers.report(),
            extents: self.print.extents(),
            travel_extents: self.travel.extents(),
            tools,
            filament_length_mm,
            filament_volume_cm3,
            filament_mass_g,
            tool_changes: self.tool_changes,
            estimated_time_s: time,
            limits: *self.planner.limits(),
            limits_source: self.limits_source,
        }
    }
}

/// Typical densities (g/cm³) by material type, used when the file states none.
fn default_density(material: &str) -> Option<f64> {
    let m = material.trim().to_ascii_uppercase();
    let base = m.split(['-', ' ', '+']).next().unwrap_or("");
    Some(match base {
        "PLA" => 1.24,
        "PETG" | "PET" => 1.27,
        "ABS" => 1.04,
        "ASA" => 1.07,
        "TPU" | "FLEX" => 1.21,
        "PC" => 1.20,
        "PA" | "NYLON" | "PA6" | "PA12" => 1.14,
        "PVA" => 1.23,
        "HIPS" => 1.04,
        "PP" => 0.90,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(src: &str) -> (Analysis, Diags) {
        run_in_chunks(src.as_bytes(), 7)
    }

    fn run_in_chunks(src: &[u8], size: usize) -> (Analysis, Diags) {
        let mut p = Processor::new(
            Diags::new(100),
            Some(Motion::new(DEFAULT_LIMITS, LimitsSource::Defaults)),
        );
        let mut l = Lines::default();
        for chunk in src.chunks(size) {
            l.feed(chunk, &mut p);
        }
        l.finish(&mut p);
        let lines = p.line;
        let m = p.motion.take().unwrap();
        (m.finish(lines, &[], &[], &[]), p.diags)
    }

    /// Lines are cut the same way whatever the chunks (the splitter works 64 bytes at a time
    /// and falls back to a search for the rest of a chunk and for lines across chunks).
    #[test]
    fn the_analysis_does_not_depend_on_how_the_file_is_cut() {
        let sample = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test_data/samples/cube20_prusaslicer_mk3s.gcode"
        ))
        .unwrap();
        // With Windows line ends too, and an empty line and a line without an end.
        let mut crlf = Vec::new();
        for l in sample.split(|&c| c == b'\n') {
            crlf.extend_from_slice(l);
            crlf.extend_from_slice(b"\r\n");
        }
        crlf.extend_from_slice(b"\nG1 X1 Y1 E1");
        for src in [&sample, &crlf] {
            let (whole, _) = run_in_chunks(src, src.len());
            assert!(whole.moves > 1000 && whole.filament_length_mm > 100.0);
            let want = format!("{whole:?}");
            for size in [1, 63, 64, 65, 127, 4096] {
                let (a, _) = run_in_chunks(src, size);
                assert_eq!(format!("{a:?}"), want, "chunks of {size}");
            }
        }
    }

    #[test]
    fn every_build_of_the_line_reader_gives_the_same_analysis() {
        // `Lines::feed` runs its x86-64-v3 build where the processor has one; the baseline build
        // must give the same analysis, to the bit.
        for name in [
            "cube20_prusaslicer_mk3s.gcode",
            "cube20_curaengine.gcode",
            "wavy_small_prusaslicer_mk3s.gcode",
        ] {
            let path = format!("{}/test_data/samples/{name}", env!("CARGO_MANIFEST_DIR"));
            let src = std::fs::read(path).unwrap();
            let run = |baseline: bool| {
                let mut p = Processor::new(
                    Diags::new(100),
                    Some(Motion::new(DEFAULT_LIMITS, LimitsSource::Defaults)),
                );
                let mut l = Lines::default();
                for chunk in src.chunks(CHUNK) {
                    if baseline {
                        l.feed_with::<words::Baseline>(chunk, &mut p);
                    } else {
                        l.feed(chunk, &mut p);
                    }
                }
                l.finish(&mut p);
                let lines = p.line;
                format!(
                    "{:?}",
                    p.motion.take().unwrap().finish(lines, &[], &[], &[])
                )
            };
            assert_eq!(run(true), run(false), "{name}");
        }
    }

    /// Letters inside a quoted string are not words, closed or not.
    #[test]
    fn quoted_strings_hide_their_letters() {
        let w = parse_move(br#"X1 "Y9 E5" Y2"#);
        assert_eq!(
            (w.get(W_X), w.get(W_Y), w.get(W_E)),
            (Some(1.0), Some(2.0), None)
        );
        let w = parse_move(br#"X1 "Y9 E5"#);
        assert_eq!(
            (w.get(W_X), w.get(W_Y), w.get(W_E)),
            (Some(1.0), None, None)
        );
        let p = parse_params(br#"S1 P"a T7" R3"#);
        assert_eq!(
            (p.get(b'S'), p.get(b'T'), p.get(b'R')),
            (Some(1.0), None, Some(3.0))
        );
        assert!(p.has(b'P'));
        let p = parse_params(br#"S1 "T7"#);
        assert_eq!((p.get(b'S'), p.get(b'T')), (Some(1.0), None));
    }

    #[test]
    fn absolute_and_relative_extrusion_with_retractions() {
        let (a, _) =
            run("G90\nM82\nG92 E0\nG1 X10 Y0 Z0.2 E5 F1200\nG1 E3\nG1 X20 E5\nG1 X30 E10\n");
        assert!((a.filament_length_mm - 10.0).abs() < 1e-9);
        let (b, _) = run("M83\nG1 X10 Z0.2 E5\nG1 E-2\nG1 E2\nG1 X20 E5\n");
        assert!((b.filament_length_mm - 10.0).abs() < 1e-9);
    }

    #[test]
    fn tool_changes_count_per_tool() {
        let (a, _) = run("M83\nT0\nG1 X10 Z0.2 E5\nT1\nG1 X20 E3\nT0\nG1 X30 E1\n");
        assert_eq!(a.tools.len(), 2);
        assert!((a.tools[0].length_mm - 6.0).abs() < 1e-9);
        assert!((a.tools[1].length_mm - 3.0).abs() < 1e-9);
        assert_eq!(a.tool_changes, 2);
    }

    #[test]
    fn extents_and_layers_from_extruding_moves() {
        let (a, _) = run(
            "M83\nG1 X50 Y50 Z0.3 F3000\nG1 X60 Y50 E1\nG1 X60 Y60 Z0.5\nG1 X55 Y58 E1\nG1 X100 Y100 Z0.7\nG1 X101 E1\n",
        );
        let e = a.extents.unwrap();
        assert_eq!(e.min, [50.0, 50.0, 0.3]);
        assert_eq!(e.max, [101.0, 100.0, 0.7]);
        assert_eq!(a.layers.count, 3);
        assert_eq!(a.layers.first_layer_height_mm, Some(0.3));
        assert_eq!(a.layers.typical_height_mm, Some(0.2));
    }

    #[test]
    fn spiral_vase_counts_one_layer_per_layer_height() {
        // Two flat 0.2 mm layers, then a spiral climbing 0.2 mm per turn of 50 segments for 10 turns.
        let mut src = String::from("M83\nG1 X0 Y0 Z0.2\nG1 X10 E1\nG1 Z0.4\nG1 X0 E1\n");
        for i in 1..=500 {
            let z = 0.4 + 0.2 * f64::from(i) / 50.0;
            let x = if i % 2 == 0 { 0 } else { 10 };
            src.push_str(&format!("G1 X{x} Z{z:.4} E0.1\n"));
        }
        let (a, _) = run(&src);
        assert_eq!(a.layers.count, 12);
        assert_eq!(a.layers.typical_height_mm, Some(0.2));
    }

    #[test]
    fn arcs_extend_the_extents_through_the_quadrant() {
        // Half circle counter-clockwise from (10,0) to (-10,0) around the origin passes (0,10).
        let (a, _) = run("G1 X10 Y0 Z0.2\nG3 X-10 Y0 I-10 J0 E5\n");
        let e = a.extents.unwrap();
        assert!((e.max[1] - 10.0).abs() < 1e-9);
        assert!(e.min[1].abs() < 1e-9);
        assert!((a.filament_length_mm - 5.0).abs() < 1e-9);
    }

    #[test]
    fn object_labels_from_m486_and_klipper() {
        let mut p = Processor::new(Diags::new(10), None);
        let mut l = Lines::default();
        l.feed(
            b"M486 S0 A\"cube\"\nM486 S1 ; A comment\nEXCLUDE_OBJECT_DEFINE NAME=part_2 CENTER=1,2\n",
            &mut p,
        );
        l.finish(&mut p);
        let (m, _) = p.meta.finish(&mut p.diags);
        assert_eq!(m.objects, ["cube", "part_2"]);
    }

    #[test]
    fn never_panics_on_garbage_lines() {
        let (_, _) =
            run("G1 X\nG1 X-\nG2 R0\nG3 I0 J0\nT99999999999\nM204 S-1\nN12 G1 X1*55\n\u{0}\u{ff}G");
    }
}
