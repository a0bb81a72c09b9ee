//! Print-time estimate: a trapezoidal motion model with lookahead, in the manner of Marlin's planner
//! and PrusaSlicer's `GCodeProcessor` time estimator.
//!
//! Each move becomes a block with a nominal (cruise) speed, an acceleration limited per axis and a
//! maximum entry speed from the jerk (or junction-deviation) rule at its junction with the previous
//! block. Blocks wait in a bounded buffer; when it fills, reverse and forward passes settle the
//! junction speeds and the oldest blocks are timed and dropped, keeping [`KEEP`] blocks of
//! lookahead. Memory is constant whatever the file size.

use crate::report::MachineLimits;

/// Blocks kept as lookahead each time the buffer is settled (PrusaSlicer's planner queue size).
const KEEP: usize = 64;
/// Buffer size at which blocks are settled and timed.
const REFRESH: usize = KEEP * 4;
const EPS: f64 = 1e-9;

/// A planned move. Entry speeds are kept squared, as Marlin's planner keeps them: the passes
/// then add `2 a d` instead of taking a square root per junction, and the one square root per
/// block is taken when it is timed, where blocks are independent of each other.
#[derive(Debug, Clone, Copy)]
struct Block {
    distance: f64,
    acceleration: f64,
    /// 1 / acceleration, so the timing needs no division per ramp.
    inv_acceleration: f64,
    /// 2 × acceleration × distance: the change of squared speed over the whole block.
    two_a_d: f64,
    cruise: f64,
    entry2: f64,
    max_entry2: f64,
    safe_feedrate: f64,
    /// The block is long enough to reach its cruise speed from any entry speed.
    nominal_length: bool,
}

impl Block {
    /// Time of the trapezoid from the entry to the exit speed (`v0`, `v1`, and their squares)
    /// through (at most) the cruise speed.
    fn time(&self, v0: f64, v0_2: f64, v1: f64, v1_2: f64) -> f64 {
        let (vc, d) = (self.cruise, self.distance);
        if self.acceleration <= EPS || vc <= EPS {
            return if vc > EPS { d / vc } else { 0.0 };
        }
        let half_inv_a = 0.5 * self.inv_acceleration;
        let vc2 = vc * vc;
        let mut accel_d = ((vc2 - v0_2) * half_inv_a).max(0.0);
        let decel_d = ((vc2 - v1_2) * half_inv_a).max(0.0);
        let mut cruise_d = d - accel_d - decel_d;
        let mut peak = vc;
        if cruise_d < 0.0 {
            // Not enough room to reach the cruise speed: accelerate then decelerate.
            accel_d = ((self.two_a_d - v0_2 + v1_2) * 0.5 * half_inv_a).clamp(0.0, d);
            cruise_d = 0.0;
            peak = (v0_2 + 2.0 * self.acceleration * accel_d).sqrt();
        }
        let ramps = ((peak - v0).max(0.0) + (peak - v1).max(0.0)) * self.inv_acceleration;
        let t_cruise = if peak > EPS { cruise_d / peak } else { 0.0 };
        ramps + t_cruise
    }
}

/// Moves batched before planning.
const PENDING: usize = 64;

/// A move waiting to be planned.
#[derive(Debug, Clone, Copy)]
struct Pending {
    delta: [f64; 4],
    feed: f64,
    kind: MoveKind,
    /// The move's length (XYZ, or E alone for an extruder-only move), whether it moves in XYZ,
    /// and 1 / length: computed when the move is queued, where nothing waits for these
    /// long-latency results and the parsing of the next lines overlaps them.
    distance: f64,
    has_xyz: bool,
    inv: f64,
}

/// Kind of move, which picks the acceleration setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MoveKind {
    Extrude,
    Travel,
    /// Extruder-only move (retract or unretract).
    ExtruderOnly,
}

#[derive(Debug, Clone, Copy, Default)]
struct Previous {
    feedrate: f64,
    safe_feedrate: f64,
    axis_feedrate: [f64; 4],
    unit_xyz: [f64; 3],
    has_xyz: bool,
}

/// Limits in the form the per-move arithmetic wants, derived again whenever the limits change.
#[derive(Debug, Clone, Copy)]
struct Derived {
    /// 1 / maximum feedrate per axis; 0 where there is no limit.
    inv_max_feedrate: [f64; 4],
    /// Maximum acceleration per axis; infinite where there is no limit.
    max_acceleration: [f64; 4],
    /// Maximum jerk per axis, finite and not negative.
    max_jerk: [f64; 4],
}

impl Derived {
    fn of(l: &MachineLimits) -> Self {
        Self {
            inv_max_feedrate: l.max_feedrate.map(|v| if v > EPS { 1.0 / v } else { 0.0 }),
            max_acceleration: l
                .max_acceleration
                .map(|v| if v > EPS { v } else { f64::INFINITY }),
            max_jerk: l.max_jerk.map(|v| v.clamp(0.0, 1e12)),
        }
    }
}

/// `a.max(b)` for values that are never NaN: one instruction instead of a NaN-aware sequence.
#[inline]
fn fmax(a: f64, b: f64) -> f64 {
    if a > b { a } else { b }
}

#[inline]
fn fmin(a: f64, b: f64) -> f64 {
    if a < b { a } else { b }
}

/// `if c { a } else { b }` without a branch: for conditions that follow the direction of each
/// move, which the processor cannot predict (a mispredicted branch costs more than this).
#[inline]
fn select(c: bool, a: f64, b: f64) -> f64 {
    let mask = u64::from(c).wrapping_neg();
    f64::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// The time estimator. Feed it moves with [`Planner::push`], then read [`Planner::finish`].
#[derive(Debug)]
pub(crate) struct Planner {
    limits: MachineLimits,
    derived: Derived,
    /// The limits changed since `derived` was computed.
    dirty: bool,
    /// The last acceleration seen and its inverse (moves share a handful of accelerations).
    last_acceleration: (f64, f64),
    /// Moves not yet turned into blocks (see [`Planner::push`]).
    pending: Vec<Pending>,
    blocks: Vec<Block>,
    time: f64,
    /// The previous block's speeds; `feedrate == 0` after a stop (start, dwell, homing).
    prev: Previous,
}

impl Planner {
    pub(crate) fn new(limits: MachineLimits) -> Self {
        Self {
            derived: Derived::of(&limits),
            limits,
            dirty: false,
            last_acceleration: (0.0, 0.0),
            pending: Vec::with_capacity(PENDING),
            blocks: Vec::with_capacity(REFRESH + 1),
            time: 0.0,
            prev: Previous::default(),
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
            self.settle(0);
            self.prev = Previous::default();
            self.time += seconds;
        }
    }

    /// Adds one straight move. `delta` is X, Y, Z, E in mm; `feed` is the requested speed in mm/s.
    ///
    /// Moves wait in a small batch and are planned together: the planning of one move is a long
    /// chain of dependent square roots and divisions, and the parsing between two moves is too
    /// long for the processor to overlap consecutive chains; in a batch it overlaps them.
    #[inline]
    pub(crate) fn push(&mut self, delta: [f64; 4], feed: f64, kind: MoveKind) {
        let xyz = (delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2]).sqrt();
        let has_xyz = xyz > EPS;
        let distance = if has_xyz { xyz } else { delta[3].abs() };
        if distance <= EPS || !distance.is_finite() {
            return;
        }
        self.pending.push(Pending {
            delta,
            feed,
            kind,
            distance,
            has_xyz,
            inv: 1.0 / distance,
        });
        if self.pending.len() >= PENDING {
            self.flush();
        }
    }

    /// Plans the batched moves, in order.
    fn flush(&mut self) {
        // Limits cannot change during a flush (`limits_mut` flushes first).
        if self.dirty {
            self.derived = Derived::of(&self.limits);
            self.dirty = false;
        }
        let mut pending = std::mem::take(&mut self.pending);
        for m in &pending {
            self.plan(m);
        }
        pending.clear();
        self.pending = pending;
    }

    /// Turns one move into a block.
    ///
    /// The arithmetic is PrusaSlicer's (`GCodeProcessor::process_G1`), rearranged so that the four
    /// axes are independent of each other (a minimum or maximum over the axes rather than a
    /// running factor): the same speeds up to rounding, without a chain of dependent divisions.
    // The axis index walks several parallel per-axis arrays at once.
    #[allow(clippy::needless_range_loop)]
    #[inline]
    fn plan(&mut self, m: &Pending) {
        let &Pending {
            delta,
            feed,
            kind,
            distance,
            has_xyz,
            inv,
        } = m;
        let l = &self.limits;
        let dv = &self.derived;
        let min_feed = if kind == MoveKind::Travel {
            l.min_travel_feedrate
        } else {
            l.min_extruding_feedrate
        };
        let feedrate = if feed.is_finite() && feed > EPS {
            fmax(feed, min_feed)
        } else {
            fmax(min_feed, 1.0)
        };
        // Per-axis tests are written as `speed * |d| > limit * distance` rather than with the
        // unit vector: the division by the distance is then needed only at the end (for the
        // per-axis speeds), and the rest does not wait for it.
        let abs = delta.map(f64::abs);

        // Cruise speed limited by each axis' maximum feedrate: the axis most over its limit wins.
        // `m` is the largest |d| / max feedrate, so the axes allow at most distance / m.
        let mut m: f64 = 0.0;
        for a in 0..4 {
            m = fmax(m, abs[a] * dv.inv_max_feedrate[a]);
        }
        let cruise = if feedrate * m > distance {
            distance / m
        } else {
            feedrate
        };

        // Acceleration for the kind of move, capped by each axis that takes part.
        let mut acceleration = match kind {
            MoveKind::Travel => l.travel_acceleration,
            MoveKind::ExtruderOnly => l.retract_acceleration,
            MoveKind::Extrude => l.print_acceleration,
        };
        for a in 0..4 {
            let cap = dv.max_acceleration[a];
            acceleration = select(acceleration * abs[a] > cap * distance, cap, acceleration);
        }

        // The speed at which this block may start or end from/to a standstill.
        let mut safe_feedrate = cruise;
        for a in 0..4 {
            let jerk = dv.max_jerk[a];
            let limit = select(cruise * abs[a] > jerk * distance, jerk, f64::INFINITY);
            safe_feedrate = fmin(safe_feedrate, limit);
        }

        let cruise_inv = cruise * inv;
        let axis_feedrate = delta.map(|d| d * cruise_inv);
        let unit_xyz = if has_xyz && l.junction_deviation_mm.is_some() {
            [delta[0] * inv, delta[1] * inv, delta[2] * inv]
        } else {
            [0.0; 3]
        };
        let mut vmax_junction = safe_feedrate;
        let prev = &self.prev;
        if prev.feedrate > 1e-4 {
            vmax_junction = match l.junction_deviation_mm {
                Some(jd) if has_xyz && prev.has_xyz => {
                    junction_deviation_speed(jd, acceleration, prev, unit_xyz, cruise)
                }
                _ => jerk_junction_speed(&dv.max_jerk, prev, &axis_feedrate, cruise, safe_feedrate),
            };
        }
        let two_a_d = 2.0 * acceleration * distance;
        let v_allowable2 = safe_feedrate * safe_feedrate + two_a_d;
        let max_entry2 = vmax_junction * vmax_junction;
        let inv_acceleration = if acceleration == self.last_acceleration.0 {
            self.last_acceleration.1
        } else {
            let inv = if acceleration > EPS {
                1.0 / acceleration
            } else {
                0.0
            };
            self.last_acceleration = (acceleration, inv);
            inv
        };
        self.blocks.push(Block {
            distance,
            acceleration,
            inv_acceleration,
            two_a_d,
            cruise,
            entry2: fmin(max_entry2, v_allowable2.max(0.0)),
            max_entry2,
            safe_feedrate,
            nominal_length: cruise * cruise <= v_allowable2,
        });
        self.prev = Previous {
            feedrate: cruise,
            safe_feedrate,
            axis_feedrate,
            unit_xyz,
            has_xyz,
        };
        if self.blocks.len() >= REFRESH {
            self.settle(KEEP);
        }
    }

    /// Plans the buffered blocks and times all but the last `keep`.
    fn settle(&mut self, keep: usize) {
        let n = self.blocks.len();
        if n == 0 {
            return;
        }
        let b = &mut self.blocks;
        // Reverse pass: make every block able to decelerate into the next one.
        for i in (1..n).rev() {
            let next_entry2 = b[i].entry2;
            let curr = &mut b[i - 1];
            if curr.entry2 != curr.max_entry2 {
                curr.entry2 = if !curr.nominal_length && curr.max_entry2 > next_entry2 {
                    fmin(curr.max_entry2, next_entry2 + curr.two_a_d)
                } else {
                    curr.max_entry2
                };
            }
        }
        // Forward pass: no block may be entered faster than the previous one can accelerate to.
        for i in 1..n {
            let prev = b[i - 1];
            if !prev.nominal_length && prev.entry2 < b[i].entry2 {
                b[i].entry2 = fmin(b[i].entry2, prev.entry2 + prev.two_a_d);
            }
        }
        let done = n.saturating_sub(keep);
        let mut v0_2 = b.first().map_or(0.0, |b| b.entry2);
        let mut v0 = v0_2.sqrt();
        for i in 0..done {
            let v1_2 = if i + 1 < n {
                b[i + 1].entry2
            } else {
                b[i].safe_feedrate * b[i].safe_feedrate
            };
            let v1 = v1_2.sqrt();
            self.time += b[i].time(v0, v0_2, v1, v1_2);
            (v0, v0_2) = (v1, v1_2);
        }
        self.blocks.drain(..done);
    }

    /// Times every remaining block and returns the total, in seconds.
    pub(crate) fn finish(&mut self) -> f64 {
        self.flush();
        self.settle(0);
        self.time
    }
}

// The axis index walks several parallel per-axis arrays at once.
#[allow(clippy::needless_range_loop)]
/// Classic jerk junction speed (Marlin 1 / Prusa firmware), as PrusaSlicer's estimator computes it.
fn jerk_junction_speed(
    jerk_limits: &[f64; 4],
    prev: &Previous,
    axis_feedrate: &[f64; 4],
    cruise: f64,
    safe_feedrate: f64,
) -> f64 {
    let (mut vmax, exit_scale) = if prev.feedrate > cruise {
        (cruise, cruise / prev.feedrate)
    } else {
        (prev.feedrate, 1.0)
    };
    // PrusaSlicer scales both speeds by the running factor before each axis' check; since the jerk
    // scales with them, that factor ends as the smallest `max / jerk` over the axes over their
    // limit, which is computed here without the axes waiting on each other.
    let mut v_factor: f64 = 1.0;
    for a in 0..4 {
        let v_exit = prev.axis_feedrate[a] * exit_scale;
        let v_entry = axis_feedrate[a];
        // Coasting in one direction: the speed change. Reversing or starting: the larger speed.
        // (With opposite signs |exit - entry| exceeds the larger speed, so one minimum picks the
        // right case without a branch the processor would mispredict at random turns.)
        let jerk = fmin((v_exit - v_entry).abs(), fmax(v_exit.abs(), v_entry.abs()));
        let max = jerk_limits[a];
        v_factor = fmin(v_factor, select(jerk > max, max / jerk, 1.0));
    }
    vmax *= v_factor;
    let threshold = vmax * 0.99;
    if prev.safe_feedrate > threshold && safe_feedrate > threshold {
        vmax = safe_feedrate;
    }
    vmax
}

/// Junction-deviation corner speed (Marlin 2, and Klipper's square corner velocity).
fn junction_deviation_speed(
    jd: f64,
    acceleration: f64,
    prev: &Previous,
    unit: [f64; 3],
    cruise: f64,
) -> f64 {
    let nominal = cruise.min(prev.feedrate);
    let cos_theta =
        -(prev.unit_xyz[0] * unit[0] + prev.unit_xyz[1] * unit[1] + prev.unit_xyz[2] * unit[2]);
    if cos_theta > 0.999_999 {
        // Full reversal: stop.
        return 0.0;
    }
    if cos_theta < -0.999_999 {
        // Straight on.
        return nominal;
    }
    let sin_half = (0.5 * (1.0 - cos_theta)).max(0.0).sqrt();
    let v2 = acceleration * jd * sin_half / (1.0 - sin_half);
    v2.max(0.0).sqrt().min(nominal)
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
