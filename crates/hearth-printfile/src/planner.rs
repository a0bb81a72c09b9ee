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

#[derive(Debug, Clone, Copy)]
struct Block {
    distance: f64,
    acceleration: f64,
    /// 1 / acceleration, so the timing needs no division per ramp.
    inv_acceleration: f64,
    cruise: f64,
    entry: f64,
    max_entry: f64,
    safe_feedrate: f64,
    /// The block is long enough to reach its cruise speed from any entry speed.
    nominal_length: bool,
}

impl Block {
    /// Time of the trapezoid from `entry` to `exit` through (at most) the cruise speed.
    fn time(&self, exit: f64) -> f64 {
        let a = self.acceleration;
        let (v0, v1, vc, d) = (self.entry, exit, self.cruise, self.distance);
        if a <= EPS || vc <= EPS {
            return if vc > EPS { d / vc } else { 0.0 };
        }
        let half_inv_a = 0.5 * self.inv_acceleration;
        let mut accel_d = ((vc * vc - v0 * v0) * half_inv_a).max(0.0);
        let decel_d = ((vc * vc - v1 * v1) * half_inv_a).max(0.0);
        let mut cruise_d = d - accel_d - decel_d;
        let mut peak = vc;
        if cruise_d < 0.0 {
            // Not enough room to reach the cruise speed: accelerate then decelerate.
            accel_d = ((2.0 * a * d - v0 * v0 + v1 * v1) * 0.5 * half_inv_a).clamp(0.0, d);
            cruise_d = 0.0;
            peak = (v0 * v0 + 2.0 * a * accel_d).sqrt();
        }
        let ramps = ((peak - v0).max(0.0) + (peak - v1).max(0.0)) * self.inv_acceleration;
        let t_cruise = if peak > EPS { cruise_d / peak } else { 0.0 };
        ramps + t_cruise
    }
}

/// Speed reachable at the start of `distance` when ending at `target` with deceleration `-acc`.
#[inline]
fn max_allowable_speed(acc: f64, target: f64, distance: f64) -> f64 {
    (target * target + 2.0 * acc * distance).max(0.0).sqrt()
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

/// The time estimator. Feed it moves with [`Planner::push`], then read [`Planner::finish`].
#[derive(Debug)]
pub(crate) struct Planner {
    pub(crate) limits: MachineLimits,
    blocks: Vec<Block>,
    time: f64,
    /// The previous block's speeds; `feedrate == 0` after a stop (start, dwell, homing).
    prev: Previous,
}

impl Planner {
    pub(crate) fn new(limits: MachineLimits) -> Self {
        Self {
            limits,
            blocks: Vec::with_capacity(REFRESH + 1),
            time: 0.0,
            prev: Previous::default(),
        }
    }

    /// Adds a fixed delay (G4 dwell; 0 for a plain stop such as homing). The machine stops before it.
    pub(crate) fn dwell(&mut self, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.settle(0);
            self.prev = Previous::default();
            self.time += seconds;
        }
    }

    /// Adds one straight move. `delta` is X, Y, Z, E in mm; `feed` is the requested speed in mm/s.
    // The axis index walks several parallel per-axis arrays at once.
    #[allow(clippy::needless_range_loop)]
    pub(crate) fn push(&mut self, delta: [f64; 4], feed: f64, kind: MoveKind) {
        let l = &self.limits;
        let xyz = (delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2]).sqrt();
        let distance = if xyz > EPS { xyz } else { delta[3].abs() };
        if distance <= EPS || !distance.is_finite() {
            return;
        }
        let min_feed = if kind == MoveKind::Travel {
            l.min_travel_feedrate
        } else {
            l.min_extruding_feedrate
        };
        let feedrate = if feed.is_finite() && feed > EPS {
            feed.max(min_feed)
        } else {
            min_feed.max(1.0)
        };
        let inv = 1.0 / distance;

        // Cruise speed limited by each axis' maximum feedrate.
        let mut axis_feedrate = [0.0; 4];
        let mut factor: f64 = 1.0;
        for a in 0..4 {
            axis_feedrate[a] = feedrate * delta[a] * inv;
            let abs = axis_feedrate[a].abs();
            // Divide only when the axis is really over its limit (rare in sliced files).
            if abs * factor > l.max_feedrate[a] && l.max_feedrate[a] > EPS {
                factor = l.max_feedrate[a] / abs;
            }
        }
        let cruise = feedrate * factor;
        if factor < 1.0 {
            for v in &mut axis_feedrate {
                *v *= factor;
            }
        }

        // Acceleration for the kind of move, capped by each axis that takes part.
        let mut acceleration = match kind {
            MoveKind::Travel => l.travel_acceleration,
            MoveKind::ExtruderOnly => l.retract_acceleration,
            MoveKind::Extrude => l.print_acceleration,
        };
        for a in 0..4 {
            if l.max_acceleration[a] > EPS
                && acceleration * delta[a].abs() * inv > l.max_acceleration[a]
            {
                acceleration = l.max_acceleration[a];
            }
        }

        // The speed at which this block may start or end from/to a standstill.
        let mut safe_feedrate = cruise;
        for (a, v) in axis_feedrate.iter().enumerate() {
            let jerk = l.max_jerk[a];
            if v.abs() > jerk {
                safe_feedrate = safe_feedrate.min(jerk);
            }
        }

        let unit_xyz = if xyz > EPS && l.junction_deviation_mm.is_some() {
            [delta[0] * inv, delta[1] * inv, delta[2] * inv]
        } else {
            [0.0; 3]
        };
        let mut vmax_junction = safe_feedrate;
        let prev = &self.prev;
        if prev.feedrate > 1e-4 {
            vmax_junction = match l.junction_deviation_mm {
                Some(jd) if xyz > EPS && prev.has_xyz => {
                    junction_deviation_speed(jd, acceleration, prev, unit_xyz, cruise)
                }
                _ => jerk_junction_speed(l, prev, &axis_feedrate, cruise, safe_feedrate),
            };
        }
        // Compared squared: the square root is needed only when it limits the entry speed.
        let v_allowable2 = safe_feedrate * safe_feedrate + 2.0 * acceleration * distance;
        let entry = if vmax_junction * vmax_junction <= v_allowable2 {
            vmax_junction
        } else {
            v_allowable2.max(0.0).sqrt()
        };
        self.blocks.push(Block {
            distance,
            acceleration,
            inv_acceleration: if acceleration > EPS {
                1.0 / acceleration
            } else {
                0.0
            },
            cruise,
            entry,
            max_entry: vmax_junction,
            safe_feedrate,
            nominal_length: cruise * cruise <= v_allowable2,
        });
        self.prev = Previous {
            feedrate: cruise,
            safe_feedrate,
            axis_feedrate,
            unit_xyz,
            has_xyz: xyz > EPS,
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
            let next_entry = b[i].entry;
            let curr = &mut b[i - 1];
            if curr.entry != curr.max_entry {
                curr.entry = if !curr.nominal_length && curr.max_entry > next_entry {
                    curr.max_entry.min(max_allowable_speed(
                        curr.acceleration,
                        next_entry,
                        curr.distance,
                    ))
                } else {
                    curr.max_entry
                };
            }
        }
        // Forward pass: no block may be entered faster than the previous one can accelerate to.
        for i in 1..n {
            let prev = b[i - 1];
            if !prev.nominal_length && prev.entry < b[i].entry {
                let reachable = max_allowable_speed(prev.acceleration, prev.entry, prev.distance);
                b[i].entry = b[i].entry.min(reachable);
            }
        }
        let done = n.saturating_sub(keep);
        for i in 0..done {
            let exit = if i + 1 < n {
                b[i + 1].entry
            } else {
                b[i].safe_feedrate
            };
            self.time += b[i].time(exit);
        }
        self.blocks.drain(..done);
    }

    /// Times every remaining block and returns the total, in seconds.
    pub(crate) fn finish(&mut self) -> f64 {
        self.settle(0);
        self.time
    }
}

// The axis index walks several parallel per-axis arrays at once.
#[allow(clippy::needless_range_loop)]
/// Classic jerk junction speed (Marlin 1 / Prusa firmware), as PrusaSlicer's estimator computes it.
fn jerk_junction_speed(
    l: &MachineLimits,
    prev: &Previous,
    axis_feedrate: &[f64; 4],
    cruise: f64,
    safe_feedrate: f64,
) -> f64 {
    let prev_larger = prev.feedrate > cruise;
    let smaller_factor = if prev_larger {
        cruise / prev.feedrate
    } else {
        prev.feedrate / cruise
    };
    let mut vmax = if prev_larger { cruise } else { prev.feedrate };
    // Written without data-dependent branches: move directions change at random, and
    // mispredicted branches cost more here than computing both sides.
    let exit_scale = if prev_larger { smaller_factor } else { 1.0 };
    let mut v_factor: f64 = 1.0;
    for a in 0..4 {
        let v_exit = prev.axis_feedrate[a] * exit_scale * v_factor;
        let v_entry = axis_feedrate[a] * v_factor;
        // Coasting in one direction: the speed change. Reversing or starting: the larger speed.
        let jerk = if v_exit * v_entry > 0.0 {
            (v_exit - v_entry).abs()
        } else {
            v_exit.abs().max(v_entry.abs())
        };
        let max = l.max_jerk[a];
        v_factor *= if jerk > max { max / jerk } else { 1.0 };
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
    fn reversal_costs_time() {
        let mut p = Planner::new(limits());
        for i in 0..100 {
            let dir = if i % 2 == 0 { 1.0 } else { -1.0 };
            p.push([10.0 * dir, 0.0, 0.0, 0.0], 100.0, MoveKind::Travel);
        }
        assert!(p.finish() > 100.0 * 10.0 / 100.0 * 1.5);
    }
}
