//! Recent temperatures of each printer, for the dashboards' charts (memory only, like the
//! telemetry they come from): a sample at most every [`EVERY_MS`], the last [`KEEP_MS`]. Every
//! instance of a cluster records the printer events it publishes, its own agents' and the
//! others', so each answers for every printer.

use hearth_proto::agent::Heater;
use std::collections::VecDeque;

/// The chart's resolution: one sample per this many milliseconds at most.
pub const EVERY_MS: i64 = 5_000;
/// How far back the chart goes.
pub const KEEP_MS: i64 = 30 * 60 * 1000;

/// One printer's recent temperatures, oldest first. Heater names are kept once, so a sample is
/// its time and three numbers per heater (some 70 bytes for a nozzle and a bed: about 25 kB per
/// printer for the half hour).
#[derive(Debug, Default)]
pub struct History {
    /// The heaters' names, in the order first seen; samples point into it.
    names: Vec<String>,
    samples: VecDeque<Sample>,
}

#[derive(Debug)]
struct Sample {
    at_ms: i64,
    /// Per heater: its index in `names`, its temperature and its target (NaN: none).
    values: Box<[(u16, f32, f32)]>,
}

impl History {
    /// Records the heaters reported at `at_ms`, unless the last sample is younger than
    /// [`EVERY_MS`] or there are none (an offline printer reports no heater); forgets samples
    /// older than [`KEEP_MS`].
    pub fn record(&mut self, at_ms: i64, heaters: &[Heater]) {
        let due = self
            .samples
            .back()
            .is_none_or(|last| at_ms - last.at_ms >= EVERY_MS);
        if due && !heaters.is_empty() {
            let values = heaters
                .iter()
                .filter_map(|h| {
                    let i = match self.names.iter().position(|n| *n == h.name) {
                        Some(i) => i,
                        None => {
                            self.names.push(h.name.clone());
                            self.names.len() - 1
                        }
                    };
                    Some((
                        u16::try_from(i).ok()?,
                        h.actual,
                        h.target.unwrap_or(f32::NAN),
                    ))
                })
                .collect();
            self.samples.push_back(Sample { at_ms, values });
        }
        self.forget_before(at_ms - KEEP_MS);
    }

    /// The samples since `since_ms`, oldest first, each with when it was taken (Unix
    /// milliseconds) and the heaters as reported.
    pub fn since(&self, since_ms: i64) -> impl Iterator<Item = (i64, Vec<Heater>)> + '_ {
        self.samples
            .iter()
            .filter(move |s| s.at_ms >= since_ms)
            .map(|s| {
                let heaters = s
                    .values
                    .iter()
                    .map(|&(i, actual, target)| Heater {
                        name: self.names[usize::from(i)].clone(),
                        actual,
                        target: (!target.is_nan()).then_some(target),
                    })
                    .collect();
                (s.at_ms, heaters)
            })
    }

    fn forget_before(&mut self, oldest_ms: i64) {
        while self.samples.front().is_some_and(|s| s.at_ms < oldest_ms) {
            self.samples.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nozzle(actual: f32) -> Vec<Heater> {
        vec![Heater {
            name: "tool0".into(),
            actual,
            target: Some(215.0),
        }]
    }

    #[test]
    fn one_sample_per_interval_is_kept_for_half_an_hour() {
        let mut h = History::default();
        let start = 1_000_000;
        // Reports every second for 40 minutes: one in five is kept, the last 30 minutes.
        for s in 0..2400 {
            h.record(start + s * 1000, &nozzle(s as f32));
        }
        let kept: Vec<i64> = h.since(0).map(|(at, _)| at - start).collect();
        assert_eq!(h.since(0).count(), kept.len());
        assert_eq!(kept.len(), (KEEP_MS / EVERY_MS) as usize);
        assert_eq!(kept.first(), Some(&(2_400_000 - KEEP_MS)));
        assert_eq!(kept.last(), Some(&2_395_000));
        assert!(kept.windows(2).all(|w| w[1] - w[0] == EVERY_MS));
        assert_eq!(h.since(0).last().unwrap().1, nozzle(2395.0));
        // A heater without a target, and one seen later, come back as they were reported.
        let both = vec![
            Heater {
                name: "bed".into(),
                actual: 60.0,
                target: None,
            },
            nozzle(1.0).remove(0),
        ];
        assert_eq!(h.since(start + 2_390_000).count(), 2);
        h.record(start + 2_400_000, &both);
        assert_eq!(h.since(0).last().unwrap().1, both);
    }

    #[test]
    fn an_offline_report_adds_nothing_but_still_ages_the_rest() {
        let mut h = History::default();
        h.record(0, &nozzle(20.0));
        h.record(KEEP_MS / 2, &[]);
        assert_eq!(h.since(0).count(), 1);
        h.record(KEEP_MS + 1, &[]);
        assert_eq!(h.since(0).count(), 0, "older than half an hour");
    }
}
