//! The analysis's stages one at a time, for `examples/stages.rs` only (feature `internals`; not
//! an API: it changes with the code).
//!
//! The benchmark of the whole (`examples/bench.rs`) gives one figure per file. To know which part
//! to work on, this runs the parts alone on the same moves: reading the words of every move line
//! (the window parser, in the build the line loop uses), modelling and planning every move from
//! words already read, planning alone the moves the model hands the planner, and the whole line
//! loop over the same bytes in memory. (Built with the feature, every move the planner takes also
//! checks whether it is being recorded for `plan`: one branch, always predicted, in `model` and
//! `whole`; `examples/bench.rs` is built without it.)

use crate::gcode::{CHUNK, DEFAULT_LIMITS, Lines, Motion, MoveWords, Processor, parse_move};
use crate::planner::{MoveKind, Planner};
use crate::report::{LimitsSource, MachineLimits};
use crate::{Diags, Options, words};

/// A G-code text in memory, with its move lines found and read once.
#[derive(Debug)]
pub struct Stages {
    /// The text, then [`words::READ`] bytes of padding, so every move line has a full window.
    text: Vec<u8>,
    len: usize,
    /// Move lines: where the words start (after `G0 `/`G1 `) and how many bytes they run.
    moves: Vec<(usize, usize)>,
    words: Vec<MoveWords>,
    lines: usize,
    /// The machine limits the file's configuration block states, as [`crate::analyze`] uses
    /// them.
    limits: Option<(MachineLimits, [f64; 3])>,
    /// What [`Stages::model`] hands the planner: every move's delta, speed and kind.
    pushes: Vec<([f64; 4], f64, MoveKind)>,
}

impl Stages {
    pub fn new(mut text: Vec<u8>) -> Self {
        let len = text.len();
        let mut moves = Vec::new();
        let mut words = Vec::new();
        let mut start = 0;
        let mut lines = 0;
        for end in memchr::memchr_iter(b'\n', &text) {
            lines += 1;
            if let [b'G', b'0' | b'1', b' ', ..] = text[start..end] {
                moves.push((start + 3, end - start - 3));
                words.push(parse_move(&text[start + 3..end]));
            }
            start = end + 1;
        }
        let limits = crate::tail_limits(&mut std::io::Cursor::new(&text), &Options::default())
            .ok()
            .flatten();
        text.resize(len + words::READ, b'\n');
        let mut s = Self {
            text,
            len,
            moves,
            words,
            lines,
            limits,
            pushes: Vec::new(),
        };
        let mut m = s.motion();
        m.planner.recorded = Some(Vec::new());
        for w in &s.words {
            m.linear(w);
        }
        s.pushes = m.planner.recorded.take().unwrap_or_default();
        s
    }

    fn motion(&self) -> Motion {
        let mut m = Motion::new(DEFAULT_LIMITS, LimitsSource::Defaults);
        if let Some((limits, caps)) = self.limits {
            m.use_config_limits(limits, caps);
        }
        m
    }

    /// Lines of the text (newlines).
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// Move lines (`G0 `/`G1 `).
    pub fn moves(&self) -> usize {
        self.moves.len()
    }

    /// Reads the words of every move line with the window parser; returns how many it read
    /// (the others are what the line loop would read byte by byte).
    pub fn parse(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        if crate::gcode::v3_available() {
            // SAFETY: the processor has AVX2, BMI1/2 and LZCNT (checked above).
            #[allow(unsafe_code)]
            return unsafe { self.parse_v3() };
        }
        self.parse_with::<words::Baseline>()
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,bmi1,bmi2,lzcnt")]
    fn parse_v3(&self) -> usize {
        self.parse_with::<words::Avx2>()
    }

    #[inline(always)]
    fn parse_with<C: words::Classify>(&self) -> usize {
        let mut out = MoveWords::EMPTY;
        let mut read = 0;
        for &(start, len) in &self.moves {
            if let Some(w) = self.text[start..].first_chunk::<{ words::READ }>() {
                read += usize::from(words::parse::<C>(w, len, &mut out));
                std::hint::black_box(&out);
            }
        }
        read
    }

    /// Models and plans every move from its words, read beforehand; returns the estimate (s).
    pub fn model(&self) -> f64 {
        let mut m = self.motion();
        for w in &self.words {
            m.linear(w);
        }
        m.finish(0, &[], &[], &[]).estimated_time_s
    }

    /// Plans every move [`Stages::model`] plans, from the deltas it hands the planner; returns
    /// the estimate (s), which is [`Stages::model`]'s.
    pub fn plan(&self) -> f64 {
        let mut p = Planner::new(*self.motion().planner.limits());
        for &(d, feed, kind) in &self.pushes {
            p.push(d, feed, kind);
        }
        p.finish()
    }

    /// The whole line loop over the text, in the chunks the streaming reader uses; returns the
    /// estimate (s), which differs from [`Stages::model`]'s as the other lines count here.
    pub fn whole(&self) -> f64 {
        let mut p = Processor::new(Diags::new(100), Some(self.motion()));
        let mut lines = Lines::default();
        for chunk in self.text[..self.len].chunks(CHUNK) {
            lines.feed(chunk, &mut p);
        }
        lines.finish(&mut p);
        let n = p.line;
        p.motion
            .map_or(0.0, |m| m.finish(n, &[], &[], &[]).estimated_time_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stages do the analysis's own work: the whole loop gives `analyze`'s estimate, and the
    /// window parser reads every move line of a slicer's file.
    #[test]
    fn the_stages_are_the_analysis() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/test_data/samples/wavy_small_prusaslicer_mk3s.gcode"
        );
        let text = std::fs::read(path).expect("sample");
        let report =
            crate::analyze(std::io::Cursor::new(&text), &Options::default()).expect("analysis");
        let analysis = report.analysis.expect("full analysis");
        let s = Stages::new(text);
        assert_eq!(s.whole().to_bits(), analysis.estimated_time_s.to_bits());
        assert_eq!(s.lines() as u64, analysis.lines);
        assert!(s.moves() > 10_000, "{}", s.moves());
        assert_eq!(s.plan().to_bits(), s.model().to_bits());
        assert_eq!(s.parse(), s.moves());
        // The same moves, without the lines between them (accelerations set per feature): the
        // same order of time, not the same value.
        let model = s.model();
        let ratio = model / analysis.estimated_time_s;
        assert!(
            (0.5..2.0).contains(&ratio),
            "{model} against {}",
            analysis.estimated_time_s
        );
    }
}
