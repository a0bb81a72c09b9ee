//! Telemetry and job updates on their way to the server (sans I/O).
//!
//! - `to_wire` maps a driver's `PrinterStatus` to the wire's `PrinterTelemetry`; the current Hearth job is
//!   recognised by its file name on the printer.
//! - `Coalescer` keeps, per printer, the last sample sent and the latest one not yet sent: a printer is
//!   sent at most once per interval and only when something changed. While disconnected only the latest
//!   sample per printer is kept (that is the bounded buffer); on reconnection every printer's latest is
//!   sent again, because the server cannot know what was lost with the old connection.
//! - `Outbox` holds job updates while disconnected, in order. When it outgrows its bound it collapses
//!   an intermediate update of a job that has a later one queued; the latest update of every job is never
//!   dropped.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use hearth_drivers::{PrinterState as DState, PrinterStatus};
use hearth_proto::agent::{Heater, PrinterState, PrinterTelemetry};
use hearth_proto::ids::JobId;

use crate::spool::job_of_file;

/// The wire form of a printer's state.
pub fn wire_state(state: DState) -> PrinterState {
    match state {
        DState::Offline => PrinterState::Offline,
        DState::Idle => PrinterState::Idle,
        DState::Printing => PrinterState::Printing,
        DState::Pausing => PrinterState::Pausing,
        DState::Paused => PrinterState::Paused,
        DState::Cancelling => PrinterState::Cancelling,
        DState::Error => PrinterState::Error,
    }
}

/// The wire form of a sample.
pub fn to_wire(status: &PrinterStatus) -> PrinterTelemetry {
    let state = wire_state(status.state);
    let job = status.job.as_ref().filter(|j| !j.phase.is_finished());
    PrinterTelemetry {
        state,
        heaters: status
            .heaters
            .iter()
            .map(|h| Heater {
                name: h.name.clone(),
                actual: h.actual as f32,
                target: Some(h.target as f32),
            })
            .collect(),
        job_id: job.and_then(|j| job_of_file(&j.file)),
        progress: job.map(|j| j.progress as f32),
        layer: job.and_then(|j| j.layer),
        total_layers: job.and_then(|j| j.total_layers),
        elapsed_seconds: job.and_then(|j| j.elapsed_seconds),
        remaining_seconds: job.and_then(|j| j.remaining_seconds),
        error: status.error.clone(),
        slots: status
            .slots
            .iter()
            .map(|s| hearth_proto::agent::MaterialSlot {
                name: s.name.clone(),
                material: s.material.clone(),
                color: s.color.clone(),
                remain_percent: s.remain_percent,
                tag: s.tag.clone(),
            })
            .collect(),
        light: status.light,
        speed_percent: status.speed_percent,
        flow_percent: status.flow_percent,
        fan_percent: status.fan_percent,
    }
}

#[derive(Debug, Default)]
struct Slot {
    sent: Option<PrinterTelemetry>,
    pending: Option<PrinterTelemetry>,
    last_sent: Option<Instant>,
}

/// Rate-limits and de-duplicates telemetry per printer.
#[derive(Debug)]
pub struct Coalescer {
    interval: Duration,
    slots: HashMap<String, Slot>,
}

impl Coalescer {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            slots: HashMap::new(),
        }
    }

    /// A new sample; it replaces any unsent one, and is dropped if equal to what was sent last.
    pub fn offer(&mut self, printer: &str, t: PrinterTelemetry) {
        let slot = self.slots.entry(printer.to_owned()).or_default();
        if slot.sent.as_ref() == Some(&t) {
            slot.pending = None;
        } else {
            slot.pending = Some(t);
        }
    }

    /// What may be sent now (changed, and not sent within the interval). Marks it sent.
    pub fn due(&mut self, now: Instant) -> Vec<(String, PrinterTelemetry)> {
        let mut out = Vec::new();
        for (name, slot) in &mut self.slots {
            let ready = slot
                .last_sent
                .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
            if ready && let Some(t) = slot.pending.take() {
                slot.sent = Some(t.clone());
                slot.last_sent = Some(now);
                out.push((name.clone(), t));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// A new connection: everything latest is unsent again (the rate limit still applies).
    pub fn reconnected(&mut self) {
        for slot in self.slots.values_mut() {
            if slot.pending.is_none() {
                slot.pending = slot.sent.take();
            }
            slot.sent = None;
        }
    }
}

/// A job update waiting for a connection.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUpdate {
    pub job_id: JobId,
    pub state: hearth_proto::agent::JobState,
    pub message: Option<String>,
    /// With a final state: how far the printer got (`JobRecord::progress`).
    pub progress: Option<f32>,
    /// With a final state: the slots that fed the job's filaments (`JobRecord::slots`).
    pub slots: Vec<String>,
}

/// Job updates held while disconnected.
#[derive(Debug)]
pub struct Outbox {
    limit: usize,
    queue: VecDeque<JobUpdate>,
}

impl Outbox {
    pub fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, u: JobUpdate) {
        self.queue.push_back(u);
        while self.queue.len() > self.limit {
            // The oldest update superseded by a later one of the same job.
            let victim = (0..self.queue.len()).find(|&i| {
                let id = self.queue[i].job_id;
                self.queue
                    .iter()
                    .skip(i + 1)
                    .any(|later| later.job_id == id)
            });
            match victim {
                Some(i) => {
                    self.queue.remove(i);
                }
                // Only one update per job: keep them all (bounded by the number of jobs).
                None => break,
            }
        }
    }

    pub fn drain(&mut self) -> Vec<JobUpdate> {
        self.queue.drain(..).collect()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hearth_drivers::{JobPhase, JobStatus};
    use hearth_proto::agent::JobState;

    fn sample(actual: f64, progress: f64) -> PrinterStatus {
        PrinterStatus {
            state: DState::Printing,
            heaters: vec![hearth_drivers::Heater {
                name: "tool0".into(),
                actual,
                target: 215.0,
            }],
            job: Some(JobStatus {
                file: crate::spool::printer_file_name(JobId::new()),
                phase: JobPhase::Printing,
                progress,
                layer: Some(3),
                total_layers: Some(10),
                elapsed_seconds: Some(5),
                remaining_seconds: Some(50),
            }),
            error: None,
            slots: Vec::new(),
            light: None,
            speed_percent: None,
            flow_percent: None,
            fan_percent: None,
        }
    }

    #[test]
    fn wire_form_names_the_hearth_job() {
        let s = sample(200.0, 0.25);
        let w = to_wire(&s);
        assert_eq!(w.state, PrinterState::Printing);
        assert_eq!(
            w.job_id,
            job_of_file(&s.job.as_ref().unwrap().file),
            "job from the file name"
        );
        assert_eq!((w.progress, w.layer), (Some(0.25), Some(3)));
        assert_eq!(w.heaters[0].target, Some(215.0));
        let mut done = s.clone();
        done.state = DState::Idle;
        done.job.as_mut().unwrap().phase = JobPhase::Completed;
        assert_eq!(to_wire(&done).job_id, None, "a finished job is not current");
    }

    #[test]
    fn at_most_one_message_per_interval_only_on_change_latest_wins() {
        let t0 = Instant::now();
        let sec = Duration::from_secs(1);
        let mut c = Coalescer::new(sec);
        let a = to_wire(&sample(100.0, 0.1));
        c.offer("p", a.clone());
        assert_eq!(c.due(t0), vec![("p".to_owned(), a.clone())]);
        c.offer("p", to_wire(&sample(110.0, 0.1)));
        let latest = to_wire(&sample(120.0, 0.2));
        c.offer("p", latest.clone());
        assert!(c.due(t0 + sec / 2).is_empty(), "rate limited");
        assert_eq!(c.due(t0 + sec), vec![("p".to_owned(), latest.clone())]);
        c.offer("p", latest.clone());
        assert!(c.due(t0 + sec * 5).is_empty(), "unchanged");
        c.reconnected();
        assert_eq!(
            c.due(t0 + sec * 6),
            vec![("p".to_owned(), latest)],
            "resent after reconnection"
        );
    }

    #[test]
    fn the_outbox_is_bounded_and_keeps_every_jobs_latest_update() {
        let mut o = Outbox::new(3);
        let a = JobId::new();
        let b = JobId::new();
        let u = |job_id, state| JobUpdate {
            job_id,
            state,
            message: None,
            progress: None,
            slots: Vec::new(),
        };
        o.push(u(a, JobState::Transferring));
        o.push(u(a, JobState::Printing));
        o.push(u(b, JobState::Transferring));
        o.push(u(a, JobState::Paused));
        o.push(u(a, JobState::Printing));
        o.push(u(a, JobState::Completed));
        assert_eq!(o.len(), 3);
        let d = o.drain();
        assert_eq!(
            d,
            vec![
                u(b, JobState::Transferring),
                u(a, JobState::Printing),
                u(a, JobState::Completed)
            ]
        );
        assert!(o.is_empty());
    }
}
