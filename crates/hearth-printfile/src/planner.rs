//! Print-time estimate: a trapezoidal motion model with lookahead, in the manner of Marlin's planner
//! and PrusaSlicer's `GCodeProcessor` time estimator.
//!
//! Each move becomes a block with a nominal (cruise) speed, an acceleration limited per axis and a
//! maximum entry speed from the jerk (or junction-deviation) rule at its junction with the previous
//! block. Blocks wait in a bounded buffer; when it fills, reverse and forward passes settle the
//! junction speeds and the oldest blocks are timed and dropped, keeping [`KEEP`] blocks of
//! lookahead. Memory is constant whatever the file size.
//!
//! The layout is for throughput. Moves are queued in a [`Batch`] of [`BATCH`] and planned
//! together, and blocks are kept in [`Blocks`]; both hold one array per quantity. Everything
//! about a move except the lookahead passes depends only on that move and the one before it, so
//! each step is a loop over whole arrays without branches, which the compiler turns into vector
//! instructions: the square roots and divisions (half a dozen per move, all on one unit of the
//! processor) then run several at a time. Only the two lookahead passes and the sum of the block
//! times, which go from block to block, stay scalar; each pass runs as [`CHAINS`] chains at once
//! with an exact correction (see [`reverse_pass`]), and the block times are added in four
//! running sums per settled range. Ranges are settled at the same blocks however the moves were
//! batched, so the estimate does not depend on the batching.

use crate::report::MachineLimits;

/// Blocks kept as lookahead each time the buffer is settled (PrusaSlicer's planner queue size).
const KEEP: usize = 64;
/// Buffer size at which blocks are settled and timed.
const REFRESH: usize = KEEP * 4;
/// Moves batched before planning.
const BATCH: usize = 64;
const EPS: f64 = 1e-9;
/// A move shorter than this (squared) in XYZ is an extruder-only move.
const EPS2: f64 = EPS * EPS;

/// Kind of move, which picks the acceleration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveKind {
    Extrude,
    Travel,
    /// Extruder-only move (retract or unretract).
    ExtruderOnly,
}

/// `a.max(b)` for values that are never NaN: one instruction instead of a NaN-aware sequence.
#[inline(always)]
fn fmax(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}

#[inline(always)]
fn fmin(a: f64, b: f64) -> f64 {
    if a < b { a } else { b }
}

/// `if c { a } else { b }` without a branch (a bit mask), so that loops over a batch vectorize
/// and scalar code does not mispredict on conditions that follow the direction of each move.
#[inline(always)]
fn select(c: bool, a: f64, b: f64) -> f64 {
    let mask = u64::from(c).wrapping_neg();
    f64::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// Limits in the form the per-move arithmetic wants, derived again whenever the limits change.
#[derive(Debug, Clone, Copy)]
struct Derived {
    /// 1 / maximum feedrate per axis; 0 where there is no limit.
    inv_max_feedrate: [f64; 4],
    /// Maximum acceleration per axis; infinite where there is no limit.
    max_acceleration: [f64; 4],
    /// 1 / `max_acceleration` (0 where there is no limit), so that a move's acceleration and its
    /// inverse are both chosen by the same comparisons, without a division per move.
    inv_max_acceleration: [f64; 4],
    /// Maximum jerk per axis, finite and not negative.
    max_jerk: [f64; 4],
    /// Acceleration setting and minimum feedrate per [`MoveKind`].
    kind_acceleration: [f64; 3],
    kind_inv_acceleration: [f64; 3],
    kind_min_feed: [f64; 3],
}

/// 1 / `v`, or 0 for no acceleration (a block then takes distance / speed, without ramps).
fn inverse_acceleration(v: f64) -> f64 {
    if v > EPS { 1.0 / v } else { 0.0 }
}

impl Derived {
    fn of(l: &MachineLimits) -> Self {
        let max_acceleration = l
            .max_acceleration
            .map(|v| if v > EPS { v } else { f64::INFINITY });
        let kind_acceleration = [
            l.print_acceleration,
            l.travel_acceleration,
            l.retract_acceleration,
        ];
        Self {
            inv_max_feedrate: l.max_feedrate.map(|v| if v > EPS { 1.0 / v } else { 0.0 }),
            max_acceleration,
            inv_max_acceleration: max_acceleration.map(inverse_acceleration),
            max_jerk: l.max_jerk.map(|v| v.clamp(0.0, 1e12)),
            kind_acceleration,
            kind_inv_acceleration: kind_acceleration.map(inverse_acceleration),
            kind_min_feed: [
                l.min_extruding_feedrate,
                l.min_travel_feedrate,
                l.min_extruding_feedrate,
            ],
        }
    }
}

/// Queued moves, one array per quantity. Index 0 of the `prev_*`-style arrays (those of length
/// `BATCH + 1`) is the block planned before the batch, so move `i` sits at `i + 1` and its
/// junction reads `i`; after a stop that slot is all zeros.
#[derive(Debug)]
struct Batch {
    n: usize,
    delta: [[f64; BATCH]; 4],
    feed: [f64; BATCH],
    /// Acceleration setting (and its inverse) and minimum feedrate of the move's kind, resolved
    /// when queued; `shape` then caps the acceleration per axis.
    acceleration: [f64; BATCH],
    inv_acceleration: [f64; BATCH],
    min_feed: [f64; BATCH],
    // Results of the planning steps.
    distance: [f64; BATCH],
    inv: [f64; BATCH],
    /// Squared length in XYZ.
    xyz2: [f64; BATCH + 1],
    cruise: [f64; BATCH + 1],
    safe: [f64; BATCH + 1],
    /// Each axis' share of the move's length (X, Y, Z, E over the length): times a speed, that
    /// axis' speed.
    share: [[f64; BATCH + 1]; 4],
    /// Direction in XYZ, for junction deviation; zero for an extruder-only move.
    unit: [[f64; BATCH + 1]; 3],
    entry2: [f64; BATCH],
    max_entry2: [f64; BATCH],
    two_a_d: [f64; BATCH],
    lookahead: [f64; BATCH],
}

// The axis index walks several parallel per-axis arrays at once.
#[allow(clippy::needless_range_loop)]
impl Batch {
    fn new() -> Self {
        Self {
            n: 0,
            delta: [[0.0; BATCH]; 4],
            feed: [0.0; BATCH],
            acceleration: [0.0; BATCH],
            inv_acceleration: [0.0; BATCH],
            min_feed: [0.0; BATCH],
            distance: [0.0; BATCH],
            inv: [0.0; BATCH],
            xyz2: [0.0; BATCH + 1],
            cruise: [0.0; BATCH + 1],
            safe: [0.0; BATCH + 1],
            share: [[0.0; BATCH + 1]; 4],
            unit: [[0.0; BATCH + 1]; 3],
            entry2: [0.0; BATCH],
            max_entry2: [0.0; BATCH],
            two_a_d: [0.0; BATCH],
            lookahead: [0.0; BATCH],
        }
    }

    /// Makes the planned move at `last` the previous block of the next batch, or with `None` a
    /// standstill. Directions are computed only under junction deviation: without it
    /// (`with_direction` false) the previous block has none, so that a stale one from an earlier
    /// section cannot reach the next junction.
    fn set_previous(&mut self, last: Option<usize>, with_direction: bool) {
        let carry = |a: &mut [f64; BATCH + 1], keep: bool| {
            a[0] = match last {
                Some(n) if keep => a[n],
                _ => 0.0,
            };
        };
        carry(&mut self.xyz2, true);
        carry(&mut self.cruise, true);
        carry(&mut self.safe, true);
        for a in &mut self.share {
            carry(a, true);
        }
        for u in &mut self.unit {
            carry(u, with_direction);
        }
    }

    /// Length, cruise speed, acceleration and the speed from/to a standstill of every move.
    ///
    /// The arithmetic is PrusaSlicer's (`GCodeProcessor::process_G1`), rearranged so that the
    /// four axes are independent of each other (a minimum or maximum over the axes rather than a
    /// running factor): the same speeds up to rounding. Per-axis tests are written as
    /// `speed * |d| > limit * distance` rather than with the unit vector, so they need no division.
    #[inline(always)]
    fn shape<const JUNCTION_DEVIATION: bool>(&mut self, dv: &Derived) {
        let n = self.n.min(BATCH);
        for i in 0..n {
            let d = [
                self.delta[0][i],
                self.delta[1][i],
                self.delta[2][i],
                self.delta[3][i],
            ];
            let abs = d.map(f64::abs);
            let xyz2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
            let xyz = xyz2.sqrt();
            let has_xyz = xyz2 > EPS2;
            let distance = select(has_xyz, xyz, abs[3]);
            let inv = 1.0 / distance;
            let (feed, min_feed) = (self.feed[i], self.min_feed[i]);
            let feedrate = select(
                feed.abs() < f64::INFINITY && feed > EPS,
                fmax(feed, min_feed),
                fmax(min_feed, 1.0),
            );
            // Cruise speed limited by each axis' maximum feedrate: the axis most over its limit
            // wins. `m` is the largest |d| / max feedrate, so the axes allow at most distance / m.
            let mut m: f64 = 0.0;
            for a in 0..4 {
                m = fmax(m, abs[a] * dv.inv_max_feedrate[a]);
            }
            let cruise = select(feedrate * m > distance, distance / m, feedrate);
            // Acceleration for the kind of move, capped by each axis that takes part.
            let (mut acceleration, mut inv_acceleration) =
                (self.acceleration[i], self.inv_acceleration[i]);
            for a in 0..4 {
                let cap = dv.max_acceleration[a];
                let over = acceleration * abs[a] > cap * distance;
                acceleration = select(over, cap, acceleration);
                inv_acceleration = select(over, dv.inv_max_acceleration[a], inv_acceleration);
            }
            // The speed at which this block may start or end from/to a standstill.
            let mut safe = cruise;
            for a in 0..4 {
                let jerk = dv.max_jerk[a];
                safe = fmin(
                    safe,
                    select(cruise * abs[a] > jerk * distance, jerk, f64::INFINITY),
                );
            }
            for a in 0..4 {
                self.share[a][i + 1] = d[a] * inv;
            }
            if JUNCTION_DEVIATION {
                for a in 0..3 {
                    self.unit[a][i + 1] = select(has_xyz, d[a] * inv, 0.0);
                }
            }
            self.distance[i] = distance;
            self.inv[i] = inv;
            self.xyz2[i + 1] = xyz2;
            self.cruise[i + 1] = cruise;
            self.safe[i + 1] = safe;
            self.acceleration[i] = acceleration;
            self.inv_acceleration[i] = inv_acceleration;
        }
    }

    /// The junction speed of every move with the one before it, and its block quantities.
    #[inline(always)]
    fn junctions<const JUNCTION_DEVIATION: bool>(&mut self, dv: &Derived, jd: f64) {
        let n = self.n.min(BATCH);
        for i in 0..n {
            let (c, pf) = (self.cruise[i + 1], self.cruise[i]);
            let (safe, prev_safe) = (self.safe[i + 1], self.safe[i]);
            // Classic jerk (Marlin 1 / Prusa firmware), as PrusaSlicer's estimator computes it:
            // the previous block leaves at the smaller of the two cruise speeds, this one enters
            // at its own. PrusaSlicer scales both speeds by a running factor before each axis'
            // check; since the jerk scales with them, that factor ends as the smallest
            // `max / jerk` over the axes over their limit, computed here without the axes
            // waiting on each other: the smallest fraction is found by comparing products
            // (`max · den < num · jerk`, all positive), and divided out once.
            let vmax = fmin(c, pf);
            let (mut num, mut den) = (1.0, 1.0);
            for a in 0..4 {
                let v_exit = self.share[a][i] * vmax;
                let v_entry = self.share[a][i + 1] * c;
                // Coasting in one direction: the speed change. Reversing or starting: the larger
                // speed. (With opposite signs |exit - entry| exceeds the larger speed, so one
                // minimum picks the right case.)
                let jerk = fmin((v_exit - v_entry).abs(), fmax(v_exit.abs(), v_entry.abs()));
                let max = dv.max_jerk[a];
                let lower = jerk > max && max * den < num * jerk;
                num = select(lower, max, num);
                den = select(lower, jerk, den);
            }
            let vmax = vmax * (num / den);
            let threshold = vmax * 0.99;
            let mut junction = select(prev_safe > threshold && safe > threshold, safe, vmax);
            if JUNCTION_DEVIATION {
                // Junction deviation (Marlin 2, Klipper's square corner velocity), between two
                // moves in XYZ.
                let nominal = fmin(c, pf);
                let cos_theta = -(self.unit[0][i] * self.unit[0][i + 1]
                    + self.unit[1][i] * self.unit[1][i + 1]
                    + self.unit[2][i] * self.unit[2][i + 1]);
                let sin_half = fmax(0.5 * (1.0 - cos_theta), 0.0).sqrt();
                let v2 = self.acceleration[i] * jd * sin_half / (1.0 - sin_half);
                let v = fmin(fmax(v2, 0.0).sqrt(), nominal);
                // A full reversal stops; straight on keeps the speed.
                let v = select(
                    cos_theta > 0.999_999,
                    0.0,
                    select(cos_theta < -0.999_999, nominal, v),
                );
                junction = select(self.xyz2[i] > EPS2 && self.xyz2[i + 1] > EPS2, v, junction);
            }
            // After a stop (the previous speed is 0) the block starts from its safe speed.
            let vmax_junction = select(pf > 1e-4, junction, safe);
            let acceleration = self.acceleration[i];
            let two_a_d = 2.0 * acceleration * self.distance[i];
            let v_allowable2 = safe * safe + two_a_d;
            let max_entry2 = vmax_junction * vmax_junction;
            self.max_entry2[i] = max_entry2;
            self.entry2[i] = fmin(max_entry2, fmax(v_allowable2, 0.0));
            self.two_a_d[i] = two_a_d;
            // A block long enough to reach its cruise speed from any entry speed never limits
            // its neighbours in the passes: infinite room.
            self.lookahead[i] = select(c * c <= v_allowable2, f64::INFINITY, two_a_d);
        }
    }
}

/// Planned blocks awaiting their final entry speeds, one array per quantity.
#[derive(Debug)]
struct Blocks {
    n: usize,
    distance: [f64; REFRESH],
    acceleration: [f64; REFRESH],
    inv_acceleration: [f64; REFRESH],
    /// 2 × acceleration × distance: the change of squared speed over the whole block.
    two_a_d: [f64; REFRESH],
    /// `two_a_d`, or infinite for a block that reaches its cruise speed from any entry speed
    /// (it never limits its neighbours).
    lookahead: [f64; REFRESH],
    cruise: [f64; REFRESH],
    /// Entry speeds, squared as Marlin keeps them: the passes add `2 a d` instead of taking a
    /// square root per junction. One more slot holds the exit of the last block at the end.
    entry2: [f64; REFRESH + 1],
    max_entry2: [f64; REFRESH],
    safe_feedrate: [f64; REFRESH],
    /// Entry speeds (the square roots of `entry2`) of the blocks being timed: the exit of one
    /// block is the entry of the next, so each root is taken once.
    speed: [f64; REFRESH + 1],
    /// Block times, computed for a whole range before they are summed in order.
    time: [f64; REFRESH],
    /// Room of each block as the reverse pass sees it (see [`reverse_pass`]).
    reverse_room: [f64; REFRESH],
}

impl Blocks {
    fn new() -> Self {
        Self {
            n: 0,
            distance: [0.0; REFRESH],
            acceleration: [0.0; REFRESH],
            inv_acceleration: [0.0; REFRESH],
            two_a_d: [0.0; REFRESH],
            lookahead: [0.0; REFRESH],
            cruise: [0.0; REFRESH],
            entry2: [0.0; REFRESH + 1],
            max_entry2: [0.0; REFRESH],
            safe_feedrate: [0.0; REFRESH],
            speed: [0.0; REFRESH + 1],
            time: [0.0; REFRESH],
            reverse_room: [0.0; REFRESH],
        }
    }

    /// Appends batch moves `from..to`; the caller keeps `n` within [`REFRESH`].
    fn append(&mut self, b: &Batch, from: usize, to: usize) {
        let (at, k) = (self.n, to - from);
        let dst = at..at + k;
        self.distance[dst.clone()].copy_from_slice(&b.distance[from..to]);
        self.acceleration[dst.clone()].copy_from_slice(&b.acceleration[from..to]);
        self.inv_acceleration[dst.clone()].copy_from_slice(&b.inv_acceleration[from..to]);
        self.two_a_d[dst.clone()].copy_from_slice(&b.two_a_d[from..to]);
        self.lookahead[dst.clone()].copy_from_slice(&b.lookahead[from..to]);
        self.cruise[dst.clone()].copy_from_slice(&b.cruise[from + 1..to + 1]);
        self.entry2[dst.clone()].copy_from_slice(&b.entry2[from..to]);
        self.max_entry2[dst.clone()].copy_from_slice(&b.max_entry2[from..to]);
        self.safe_feedrate[dst].copy_from_slice(&b.safe[from + 1..to + 1]);
        self.n += k;
    }

    /// Settles the entry speeds and returns the time of all but the last `keep` blocks, which
    /// stay as lookahead for the next ones.
    #[inline(always)]
    fn settle(&mut self, keep: usize) -> f64 {
        let n = self.n.min(REFRESH);
        if n == 0 {
            return 0.0;
        }
        reverse_pass(
            &mut self.entry2[..n],
            &self.max_entry2[..n],
            &self.lookahead[..n],
            &mut self.reverse_room[..n],
        );
        forward_pass(&mut self.entry2[..n], &self.lookahead[..n]);
        let done = n.saturating_sub(keep);
        if done == n {
            // The very end: the last block stops at its safe speed.
            self.entry2[n] = self.safe_feedrate[n - 1] * self.safe_feedrate[n - 1];
        }
        let done = done.min(REFRESH);
        for (v, &v2) in self.speed[..=done].iter_mut().zip(&self.entry2[..=done]) {
            *v = v2.sqrt();
        }
        block_times(
            &mut self.time[..done],
            BlockView {
                entry2: &self.entry2[..=done],
                speed: &self.speed[..=done],
                cruise: &self.cruise[..done],
                distance: &self.distance[..done],
                acceleration: &self.acceleration[..done],
                inv_acceleration: &self.inv_acceleration[..done],
                two_a_d: &self.two_a_d[..done],
            },
        );
        // Four running sums, so that the additions do not wait on each other one by one.
        let mut sums = [0.0; 4];
        let times = &self.time[..done];
        let mut quads = times.chunks_exact(4);
        for q in &mut quads {
            for (s, t) in sums.iter_mut().zip(q) {
                *s += t;
            }
        }
        for (s, t) in sums.iter_mut().zip(quads.remainder()) {
            *s += t;
        }
        let total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        let rest = done..n;
        self.distance.copy_within(rest.clone(), 0);
        self.acceleration.copy_within(rest.clone(), 0);
        self.inv_acceleration.copy_within(rest.clone(), 0);
        self.two_a_d.copy_within(rest.clone(), 0);
        self.lookahead.copy_within(rest.clone(), 0);
        self.cruise.copy_within(rest.clone(), 0);
        self.entry2.copy_within(rest.clone(), 0);
        self.max_entry2.copy_within(rest.clone(), 0);
        self.safe_feedrate.copy_within(rest, 0);
        self.n = n - done;
        total
    }
}

/// Chains each lookahead pass runs as at once.
const CHAINS: usize = 4;
/// Below this many blocks a pass runs as one chain.
const SPLIT_MIN: usize = 8 * CHAINS;

/// The reverse pass: from the last block to the first, each block's entry (squared) becomes at
/// most what lets it slow down into the next one's: `entry2[i] = min(max[i], entry2[i + 1] +
/// room[i])`, where `room` is 2·a·d, or infinite for a block that needs none. A block already
/// entered at its maximum is left alone, as in Marlin: for the pass that is a block with infinite
/// room, which `gated` (scratch of the same length) holds, so that the step has no branch.
///
/// Every step waits for the one before it, so the pass is a chain of additions and minima. It
/// runs as [`CHAINS`] chains at once, one per part of the buffer: the top part's as usual, every
/// other part's from the value the block above it had before the pass. Then, from the top down,
/// where a part's first input turned out different, that part is run again until a block comes
/// out as it did the first time; every block below it then would too, since each step depends
/// only on the block above. The result is the serial pass's to the bit.
#[inline(always)]
fn reverse_pass(entry2: &mut [f64], max: &[f64], room: &[f64], gated: &mut [f64]) {
    let n = entry2.len();
    let (max, room, gated) = (&max[..n], &room[..n], &mut gated[..n]);
    for ((g, &e), (&m, &r)) in gated.iter_mut().zip(&*entry2).zip(max.iter().zip(room)) {
        *g = select(e == m, f64::INFINITY, r);
    }
    let room = &*gated;
    let step = |i: usize, above: f64| fmin(max[i], above + room[i]);
    if n < SPLIT_MIN {
        for i in (0..n.saturating_sub(1)).rev() {
            entry2[i] = step(i, entry2[i + 1]);
        }
        return;
    }
    // Blocks 0..n-1 are computed (the last one is the input): part c is c*q..(c+1)*q, the top
    // part also takes the remainder.
    let len = n - 1;
    let q = len / CHAINS;
    let bounds: [usize; CHAINS] = std::array::from_fn(|c| (c + 1) * q);
    // Each part starts from the block above it; the top part from the last block.
    let mut value: [f64; CHAINS] =
        std::array::from_fn(|c| entry2[if c == CHAINS - 1 { len } else { bounds[c] }]);
    let guess = value;
    for k in 0..q {
        for c in 0..CHAINS - 1 {
            let i = bounds[c] - 1 - k;
            value[c] = step(i, value[c]);
            entry2[i] = value[c];
        }
        let i = len - 1 - k;
        value[CHAINS - 1] = step(i, value[CHAINS - 1]);
        entry2[i] = value[CHAINS - 1];
    }
    let mut above = value[CHAINS - 1];
    for i in (bounds[CHAINS - 2]..len - q).rev() {
        above = step(i, above);
        entry2[i] = above;
    }
    for c in (0..CHAINS - 1).rev() {
        let mut above = entry2[bounds[c]];
        if above == guess[c] {
            continue;
        }
        for i in (bounds[c] - q..bounds[c]).rev() {
            let v = step(i, above);
            if v == entry2[i] {
                break;
            }
            entry2[i] = v;
            above = v;
        }
    }
}

/// The forward pass: from the first block to the last, no block is entered faster than the one
/// before it can accelerate to: `entry2[i] = min(entry2[i], entry2[i - 1] + room[i - 1])`. In
/// [`CHAINS`] chains as [`reverse_pass`], corrected from the bottom up. The pass only lowers
/// values, and lowering a block's input lowers its result to `min(result, input + room)`, so a
/// correction needs only the first run's results. The same bits as the serial pass.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the part's number also places it
fn forward_pass(entry2: &mut [f64], room: &[f64]) {
    let n = entry2.len();
    let room = &room[..n];
    if n < SPLIT_MIN {
        for i in 1..n {
            entry2[i] = fmin(entry2[i], entry2[i - 1] + room[i - 1]);
        }
        return;
    }
    // Blocks 1..n are computed (the first one is the input): part c is 1+c*q..1+(c+1)*q, the top
    // part also takes the remainder. Part c starts from block c*q.
    let q = (n - 1) / CHAINS;
    let guess: [f64; CHAINS] = std::array::from_fn(|c| entry2[c * q]);
    let mut value = guess;
    for k in 0..q {
        for (c, v) in value.iter_mut().enumerate() {
            let i = 1 + c * q + k;
            *v = fmin(entry2[i], *v + room[i - 1]);
            entry2[i] = *v;
        }
    }
    let mut before = value[CHAINS - 1];
    for i in 1 + CHAINS * q..n {
        before = fmin(entry2[i], before + room[i - 1]);
        entry2[i] = before;
    }
    for c in 1..CHAINS {
        let b = c * q;
        let mut before = entry2[b];
        if before == guess[c] {
            continue;
        }
        let end = if c == CHAINS - 1 { n } else { b + q + 1 };
        for i in b + 1..end {
            let v = fmin(entry2[i], before + room[i - 1]);
            if v == entry2[i] {
                break;
            }
            entry2[i] = v;
            before = v;
        }
    }
}

/// The quantities of a range of blocks that their times depend on: the entry speeds (squared
/// and not) hold one more, the exit of the last.
struct BlockView<'a> {
    entry2: &'a [f64],
    speed: &'a [f64],
    cruise: &'a [f64],
    distance: &'a [f64],
    acceleration: &'a [f64],
    inv_acceleration: &'a [f64],
    two_a_d: &'a [f64],
}

/// Time of each block's trapezoid from its entry to its exit speed through (at most) the cruise
/// speed, without branches, into `time`. Slices of one length each, so that the loop has no
/// bounds checks and runs several blocks at a time.
#[inline(always)]
fn block_times(time: &mut [f64], b: BlockView<'_>) {
    let n = time.len();
    let (entry2, speed) = (&b.entry2[..=n], &b.speed[..=n]);
    let (cruise, distance) = (&b.cruise[..n], &b.distance[..n]);
    let (acceleration, inv_acceleration) = (&b.acceleration[..n], &b.inv_acceleration[..n]);
    let two_a_d = &b.two_a_d[..n];
    for i in 0..n {
        let (v0_2, v1_2) = (entry2[i], entry2[i + 1]);
        let (v0, v1) = (speed[i], speed[i + 1]);
        let (vc, d) = (cruise[i], distance[i]);
        let (acceleration, inv_a) = (acceleration[i], inv_acceleration[i]);
        // Without acceleration `inv_a` is 0: no ramps, and the block takes d / vc.
        let half_inv_a = 0.5 * inv_a;
        let vc2 = vc * vc;
        let accel_d = fmax((vc2 - v0_2) * half_inv_a, 0.0);
        let decel_d = fmax((vc2 - v1_2) * half_inv_a, 0.0);
        let cruise_d = d - accel_d - decel_d;
        // Not enough room to reach the cruise speed: accelerate then decelerate.
        let short = cruise_d < 0.0;
        let peak_d = fmin(fmax((two_a_d[i] - v0_2 + v1_2) * 0.5 * half_inv_a, 0.0), d);
        let peak = select(short, (v0_2 + 2.0 * acceleration * peak_d).sqrt(), vc);
        let cruise_d = select(short, 0.0, cruise_d);
        let ramps = (fmax(peak - v0, 0.0) + fmax(peak - v1, 0.0)) * inv_a;
        let t_cruise = select(peak > EPS, cruise_d / peak, 0.0);
        time[i] = select(vc > EPS, ramps + t_cruise, 0.0);
    }
}

/// The time estimator. Feed it moves with [`Planner::push`], then read [`Planner::finish`].
#[derive(Debug)]
pub(crate) struct Planner {
    limits: MachineLimits,
    derived: Derived,
    /// The limits changed since `derived` was computed.
    dirty: bool,
    batch: Box<Batch>,
    blocks: Box<Blocks>,
    time: f64,
    /// The widest vectors the processor has (see [`Planner::flush`]).
    simd: Simd,
    /// Every move pushed, for `internals::Stages` to replay into a planner alone.
    #[cfg(feature = "internals")]
    pub(crate) recorded: Option<Vec<([f64; 4], f64, MoveKind)>>,
}

/// Builds of the batch loops, by vector width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Simd {
    /// The target's baseline (SSE2 on x86-64).
    Baseline,
    /// Four moves at a time.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Eight moves at a time.
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Simd {
    /// Every build this processor can run, the widest last.
    fn available() -> Vec<Self> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut all = vec![Self::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                all.push(Self::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                all.push(Self::Avx512);
            }
        }
        all
    }
}

impl Planner {
    pub(crate) fn new(limits: MachineLimits) -> Self {
        Self {
            derived: Derived::of(&limits),
            limits,
            dirty: false,
            batch: Box::new(Batch::new()),
            blocks: Box::new(Blocks::new()),
            time: 0.0,
            simd: Simd::available().pop().unwrap_or(Simd::Baseline),
            #[cfg(feature = "internals")]
            recorded: None,
        }
    }

    pub(crate) fn limits(&self) -> &MachineLimits {
        &self.limits
    }

    /// The limits, to change them (M201, M203, ...): later moves use the new values.
    pub(crate) fn limits_mut(&mut self) -> &mut MachineLimits {
        self.flush();
        self.dirty = true;
        &mut self.limits
    }

    /// Adds a fixed delay (G4 dwell; 0 for a plain stop such as homing). The machine stops before it.
    pub(crate) fn dwell(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.flush();
            self.time += self.blocks.settle(0);
            self.batch.set_previous(None, false);
            self.time += seconds;
        }
    }

    /// Adds one straight move. `delta` is X, Y, Z, E in mm; `feed` is the requested speed in mm/s.
    /// A move of no length, or with a coordinate that is not finite, takes no time.
    // Always inlined: called from a loop of its own (`internals::Stages::plan`), it read the delta
    // its caller had just stored with one 16-byte load across two 8-byte stores, a failed
    // store-to-load forward on every move that the line loop, where it was inlined, never had.
    #[inline(always)]
    pub(crate) fn push(&mut self, delta: [f64; 4], feed: f64, kind: MoveKind) {
        #[cfg(feature = "internals")]
        if let Some(r) = &mut self.recorded {
            r.push((delta, feed, kind));
        }
        let xyz2 = delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2];
        // The length is `sqrt(xyz2)`, or |E| for an extruder-only move (see `Batch::shape`).
        let long_enough = xyz2 > EPS2 || delta[3].abs() > EPS;
        if !long_enough || !xyz2.is_finite() || !delta[3].is_finite() {
            return;
        }
        if self.dirty {
            self.derive();
        }
        // The batch itself, not the box: stores through it cannot change the box's pointer, so
        // it is loaded once.
        let b = &mut *self.batch;
        let i = b.n;
        for (a, d) in delta.into_iter().enumerate() {
            b.delta[a][i] = d;
        }
        b.feed[i] = feed;
        b.acceleration[i] = self.derived.kind_acceleration[kind as usize];
        b.inv_acceleration[i] = self.derived.kind_inv_acceleration[kind as usize];
        b.min_feed[i] = self.derived.kind_min_feed[kind as usize];
        b.n = i + 1;
        if b.n == BATCH {
            self.flush();
        }
    }

    #[cold]
    #[inline(never)]
    fn derive(&mut self) {
        self.derived = Derived::of(&self.limits);
        self.dirty = false;
    }

    /// Plans the queued moves, in order.
    fn flush(&mut self) {
        if self.batch.n == 0 {
            return;
        }
        match self.simd {
            // SAFETY: `simd` names a build only when the processor reported its features
            // (`Simd::available`), which is all that calling a function built for them requires.
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Simd::Avx512 => unsafe { self.flush_avx512() },
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            Simd::Avx2 => unsafe { self.flush_avx2() },
            _ => self.plan_batch(),
        }
    }

    /// [`Planner::plan_batch`] built for AVX2: the batch loops then run four moves at a time
    /// (two with the baseline SSE2, where the compiler judges vectors not worth it). Vector and
    /// scalar arithmetic round alike, so the estimate is the same on every processor.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn flush_avx2(&mut self) {
        self.plan_batch();
    }

    /// [`Planner::plan_batch`] built for AVX-512: eight moves at a time.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn flush_avx512(&mut self) {
        self.plan_batch();
    }

    #[inline(always)]
    fn plan_batch(&mut self) {
        let n = self.batch.n;
        // Limits cannot change while moves are queued (`limits_mut` flushes first).
        let dv = self.derived;
        let jd = self.limits.junction_deviation_mm;
        let b = &mut *self.batch;
        // One build of the loops with junction deviation and one without: a condition inside
        // them would be turned into selects, computing both rules for every move.
        if let Some(jd) = jd {
            b.shape::<true>(&dv);
            b.junctions::<true>(&dv, jd);
        } else {
            b.shape::<false>(&dv);
            b.junctions::<false>(&dv, 0.0);
        }
        // Into the block buffer, settling whenever it fills (at the same blocks whatever the
        // batching, so the estimate does not depend on when batches are flushed).
        let mut from = 0;
        while from < n {
            let to = n.min(from + REFRESH - self.blocks.n);
            self.blocks.append(b, from, to);
            if self.blocks.n == REFRESH {
                self.time += self.blocks.settle(KEEP);
            }
            from = to;
        }
        b.set_previous(Some(n), jd.is_some());
        b.n = 0;
    }

    /// Times every remaining block and returns the total, in seconds.
    pub(crate) fn finish(&mut self) -> f64 {
        self.flush();
        self.time += self.blocks.settle(0);
        self.time
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> MachineLimits {
        MachineLimits {
            max_acceleration: [1000.0, 1000.0, 100.0, 5000.0],
            max_feedrate: [200.0, 200.0, 12.0, 120.0],
            max_jerk: [10.0, 10.0, 0.4, 2.5],
            junction_deviation_mm: None,
            print_acceleration: 1000.0,
            retract_acceleration: 1000.0,
            travel_acceleration: 1000.0,
            min_extruding_feedrate: 0.0,
            min_travel_feedrate: 0.0,
        }
    }

    #[test]
    fn long_move_takes_distance_over_speed_plus_ramps() {
        let mut p = Planner::new(limits());
        p.push([100.0, 0.0, 0.0, 0.0], 50.0, MoveKind::Travel);
        // From 10 mm/s (jerk) to 50 mm/s at 1000 mm/s²: 0.04 s and 1.2 mm on each ramp.
        let expected = 2.0 * 0.04 + (100.0 - 2.4) / 50.0;
        assert!((p.finish() - expected).abs() < 1e-9);
    }

    #[test]
    fn lookahead_keeps_speed_through_collinear_moves() {
        let mut split = Planner::new(limits());
        for _ in 0..1000 {
            split.push([0.1, 0.0, 0.0, 0.0], 50.0, MoveKind::Travel);
        }
        let mut whole = Planner::new(limits());
        whole.push([100.0, 0.0, 0.0, 0.0], 50.0, MoveKind::Travel);
        let (a, b) = (split.finish(), whole.finish());
        assert!((a - b).abs() / b < 1e-6, "{a} vs {b}");
    }

    #[test]
    fn a_limit_changed_between_batched_moves_applies_only_to_later_moves() {
        let run = |flush_each: bool, slow_down: bool| {
            let mut p = Planner::new(limits());
            for round in 0..2 {
                if round == 1 && slow_down {
                    p.limits_mut().max_feedrate[0] = 20.0;
                }
                for i in 0..10 {
                    let y = if i % 2 == 0 { 1.0 } else { -1.0 };
                    p.push([5.0, y, 0.0, 0.1], 80.0, MoveKind::Extrude);
                    if flush_each {
                        p.flush();
                    }
                }
            }
            p.finish()
        };
        // Batching changes nothing: the moves before the change keep the old limit.
        assert_eq!(run(false, true), run(true, true));
        assert!(run(false, true) > run(false, false) * 1.5);
    }

    /// The same moves through every build of the batch loops give the same estimate, to the bit
    /// (a user sees the same time on every machine).
    #[test]
    fn every_build_of_the_batch_loops_gives_the_same_estimate() {
        let run = |simd: Simd, junction_deviation: Option<f64>| {
            let mut p = Planner::new(MachineLimits {
                junction_deviation_mm: junction_deviation,
                ..limits()
            });
            p.simd = simd;
            let mut seed = 0x2545_f491_4f6c_dd1d_u64;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            };
            for i in 0..5000 {
                let kind = [MoveKind::Extrude, MoveKind::Travel, MoveKind::ExtruderOnly][i % 3];
                let delta = match kind {
                    MoveKind::ExtruderOnly => [0.0, 0.0, 0.0, next() * 4.0],
                    _ => [
                        next() * 40.0,
                        next() * 40.0,
                        next().max(0.0) * 0.4,
                        next() * 0.5,
                    ],
                };
                p.push(delta, 20.0 + 200.0 * (next() + 0.5), kind);
                if i % 997 == 0 {
                    p.dwell(0.5);
                }
                if i == 2500 {
                    p.limits_mut().max_feedrate[0] = 60.0;
                }
            }
            p.finish()
        };
        let builds = Simd::available();
        #[cfg(target_arch = "x86_64")]
        assert!(
            builds.contains(&Simd::Avx2),
            "this test compares the vector builds with the baseline; run it where AVX2 exists"
        );
        for jd in [None, Some(0.02)] {
            let base = run(Simd::Baseline, jd);
            assert!(base > 100.0, "{base}");
            for &simd in &builds {
                let vector = run(simd, jd);
                assert_eq!(
                    base.to_bits(),
                    vector.to_bits(),
                    "{base} vs {vector} ({simd:?}, {jd:?})"
                );
            }
        }
    }

    /// Junction deviation switched off and on again mid-file: the first junction after it starts
    /// from no direction, not from the last move planned while it was on.
    #[test]
    fn a_section_without_junction_deviation_leaves_no_direction_behind() {
        let mut p = Planner::new(MachineLimits {
            junction_deviation_mm: Some(0.02),
            ..limits()
        });
        for _ in 0..10 {
            p.push([5.0, 1.0, 0.0, 0.1], 80.0, MoveKind::Extrude);
        }
        p.limits_mut().junction_deviation_mm = None;
        assert!(p.batch.unit.iter().any(|u| u[0] != 0.0));
        for _ in 0..10 {
            p.push([0.0, 5.0, 0.0, 0.1], 80.0, MoveKind::Extrude);
        }
        p.limits_mut().junction_deviation_mm = Some(0.02);
        assert!(p.batch.unit.iter().all(|u| u[0] == 0.0));
    }

    /// The passes, run as several chains with corrections, give the serial passes' values to the
    /// bit, on random buffers of every length up to a full one, with blocks of infinite room
    /// and blocks already at their maximum.
    #[test]
    fn split_passes_equal_the_serial_passes() {
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut reverse_corrected, mut forward_corrected) = (0, 0);
        for round in 0..2000 {
            let n = round % (REFRESH + 1);
            let max: Vec<f64> = (0..n).map(|_| 10.0 + next() * 4000.0).collect();
            let room: Vec<f64> = (0..n)
                .map(|_| match next() {
                    r if r < 0.1 => f64::INFINITY,
                    r => r * r * 300.0,
                })
                .collect();
            let entry: Vec<f64> = max
                .iter()
                .map(|&m| if next() < 0.3 { m } else { m * next() })
                .collect();
            // The serial passes, as Marlin writes them.
            let mut want = entry.clone();
            for i in (1..n).rev() {
                if want[i - 1] != max[i - 1] {
                    want[i - 1] = fmin(max[i - 1], want[i] + room[i - 1]);
                }
            }
            for i in 1..n {
                want[i] = fmin(want[i], want[i - 1] + room[i - 1]);
            }
            let mut got = entry.clone();
            reverse_pass(&mut got, &max, &room, &mut vec![0.0; n]);
            // A boundary between the first two parts of both passes.
            let middle = |v: &[f64]| v.get(n.saturating_sub(1) / CHAINS).copied();
            reverse_corrected += usize::from(middle(&got) != middle(&entry));
            let after_reverse = middle(&got);
            forward_pass(&mut got, &room);
            forward_corrected += usize::from(middle(&got) != after_reverse);
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "round {round}, {n} blocks"
            );
        }
        // Both corrections ran, many times.
        assert!(reverse_corrected > 100 && forward_corrected > 100);
    }

    #[test]
    fn reversal_costs_time() {
        let mut p = Planner::new(limits());
        for i in 0..100 {
            let dir = if i % 2 == 0 { 1.0 } else { -1.0 };
            p.push([10.0 * dir, 0.0, 0.0, 0.0], 100.0, MoveKind::Travel);
        }
        assert!(p.finish() > 100.0 * 10.0 / 100.0 * 1.5);
    }
}
