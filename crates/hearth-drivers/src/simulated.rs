//! A printer simulated in-process, so the whole system can be tested and demonstrated without hardware.
//!
//! The simulator never runs in the background: every call reads a `Clock` and advances the model by the
//! time passed since the last call. With a `ManualClock` a test decides exactly how much time passes
//! (a "20 minute" print takes no real time at all); with a `ScaledClock` a demo runs faster than life.
//!
//! The model: heaters ramp linearly toward their targets; a started job first heats up, then prints for
//! the file's estimated duration (from `PrintHints`, else from its size), advancing progress and layers;
//! at the end heaters switch off. Faults are injected on command (`Driver::inject_fault`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::driver::{Driver, Upload};
use crate::error::DriverError;
use crate::model::{
    Capabilities, DriverInfo, DriverKind, Fault, HeatTargets, Heater, JobPhase, JobStatus,
    LIGHT_ACTIONS, OwnAction, PrintHints, PrinterState, PrinterStatus, Started,
};

/// Room temperature the heaters cool down to.
const AMBIENT: f64 = 21.0;
/// Bytes of G-code printed per second when a file comes without a time estimate. A 160 kB PrusaSlicer
/// cube is estimated at ~16 minutes, i.e. about 160 B/s.
const BYTES_PER_SECOND: f64 = 160.0;
/// Seconds per layer assumed when the layer count is unknown.
const SECONDS_PER_LAYER: f64 = 30.0;

/// Where the simulator reads time from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Time since an arbitrary, fixed origin; never decreases.
    fn now(&self) -> Duration;
}

/// Real time, multiplied by a factor (`scale = 60` turns a 20-minute print into 20 seconds).
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: Instant,
    scale: f64,
}

impl ScaledClock {
    /// A clock running `scale` times faster than real time (values <= 0 are treated as 1).
    pub fn new(scale: f64) -> Self {
        let scale = if scale.is_finite() && scale > 0.0 {
            scale
        } else {
            1.0
        };
        Self {
            origin: Instant::now(),
            scale,
        }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Duration {
        self.origin.elapsed().mul_f64(self.scale)
    }
}

/// A clock that moves only when told to; clones share the same time. For tests.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<Mutex<Duration>>);

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Configuration of a simulated printer (`kind = "simulated"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimulatedConfig {
    /// Model name the printer reports.
    pub model: String,
    /// How much faster than real time the printer runs (1 = real time).
    pub time_scale: f64,
    /// Nozzle temperature a job heats to, °C.
    pub nozzle_temp: f64,
    /// Bed temperature a job heats to, °C.
    pub bed_temp: f64,
    /// Nozzle heating rate, °C per second.
    pub nozzle_rate: f64,
    /// Bed heating rate, °C per second.
    pub bed_rate: f64,
    /// Filament slots it reports, as an AMS does (none by default). It feeds every job from the
    /// first, and says so when it starts one.
    pub slots: Vec<crate::model::MaterialSlot>,
    /// It has a light of its own, as a Bambu's chamber light: reported, and offered as the actions
    /// `light-on` and `light-off` (on at start).
    pub light: bool,
}

impl Default for SimulatedConfig {
    fn default() -> Self {
        Self {
            model: "Hearth simulated printer".into(),
            time_scale: 1.0,
            nozzle_temp: 215.0,
            bed_temp: 60.0,
            nozzle_rate: 10.0,
            bed_rate: 1.0,
            slots: Vec::new(),
            light: false,
        }
    }
}

#[derive(Debug, Clone)]
struct SimHeater {
    name: &'static str,
    actual: f64,
    target: f64,
    /// °C per second, heating and cooling.
    rate: f64,
}

impl SimHeater {
    fn ramp(&mut self, seconds: f64) {
        let goal = if self.target > 0.0 {
            self.target
        } else {
            AMBIENT
        };
        let step = self.rate * seconds;
        if (goal - self.actual).abs() <= step {
            self.actual = goal;
        } else if goal > self.actual {
            self.actual += step;
        } else {
            self.actual -= step;
        }
    }

    /// Seconds until it reaches its target (0 when at or above it, or off).
    fn seconds_to_target(&self) -> f64 {
        if self.target > self.actual {
            (self.target - self.actual) / self.rate
        } else {
            0.0
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SimFile {
    duration: f64,
    layers: u32,
}

#[derive(Debug, Clone)]
struct SimJob {
    file: String,
    duration: f64,
    layers: u32,
    /// Seconds of printing done (heating excluded).
    printed: f64,
    /// Still heating up before the first move.
    heating: bool,
    phase: JobPhase,
}

#[derive(Debug)]
struct Sim {
    last: Duration,
    heaters: Vec<SimHeater>,
    files: HashMap<String, SimFile>,
    job: Option<SimJob>,
    /// Message shown while something is wrong (runout pause, thermal error).
    error: Option<String>,
    thermal_error: bool,
    disconnected: bool,
    /// Its light (with `SimulatedConfig::light`).
    light_on: bool,
    /// What M220 and M221 last set, percent, and M106/M107 (0 to 255).
    speed_percent: u16,
    flow_percent: u16,
    fan: u8,
}

impl Sim {
    fn advance(&mut self, mut dt: f64) {
        while dt > 0.0 {
            let Some(job) = self.job.as_mut().filter(|j| j.phase == JobPhase::Printing) else {
                self.heaters.iter_mut().for_each(|h| h.ramp(dt));
                return;
            };
            let step = if job.heating {
                let needed = self
                    .heaters
                    .iter()
                    .map(SimHeater::seconds_to_target)
                    .fold(0.0, f64::max);
                let step = needed.min(dt);
                if step >= needed {
                    job.heating = false;
                }
                step
            } else {
                let step = (job.duration - job.printed).min(dt);
                job.printed += step;
                if job.printed >= job.duration {
                    job.phase = JobPhase::Completed;
                    self.heaters.iter_mut().for_each(|h| h.target = 0.0);
                }
                step
            };
            self.heaters.iter_mut().for_each(|h| h.ramp(step));
            dt -= step;
        }
    }

    fn state(&self) -> PrinterState {
        if self.disconnected {
            PrinterState::Offline
        } else if self.thermal_error {
            PrinterState::Error
        } else {
            match self.job.as_ref().map(|j| j.phase) {
                Some(JobPhase::Printing) => PrinterState::Printing,
                Some(JobPhase::Paused) => PrinterState::Paused,
                _ => PrinterState::Idle,
            }
        }
    }

    fn job_status(&self) -> Option<JobStatus> {
        let job = self.job.as_ref()?;
        let progress = if job.duration > 0.0 {
            (job.printed / job.duration).clamp(0.0, 1.0)
        } else {
            1.0
        };
        let layer = (!job.heating)
            .then(|| ((progress * f64::from(job.layers)).floor() as u32 + 1).min(job.layers));
        let heating_left = if job.heating {
            self.heaters
                .iter()
                .map(SimHeater::seconds_to_target)
                .fold(0.0, f64::max)
        } else {
            0.0
        };
        let remaining = (!job.phase.is_finished())
            .then(|| (job.duration - job.printed + heating_left).max(0.0).round() as u64);
        Some(JobStatus {
            file: job.file.clone(),
            phase: job.phase,
            progress,
            layer,
            total_layers: Some(job.layers),
            elapsed_seconds: Some(job.printed.round() as u64),
            remaining_seconds: remaining,
        })
    }

    fn running(&self) -> bool {
        self.job.as_ref().is_some_and(|j| !j.phase.is_finished())
    }
}

/// The simulated printer.
#[derive(Debug)]
pub struct SimulatedDriver {
    info: DriverInfo,
    clock: Arc<dyn Clock>,
    config: SimulatedConfig,
    sim: Mutex<Sim>,
}

impl SimulatedDriver {
    /// A simulator running on a `ScaledClock` with the configured time scale.
    pub fn new(config: SimulatedConfig) -> Self {
        let clock = Arc::new(ScaledClock::new(config.time_scale));
        Self::with_clock(config, clock)
    }

    /// A simulator reading time from `clock` (tests pass a `ManualClock`).
    pub fn with_clock(config: SimulatedConfig, clock: Arc<dyn Clock>) -> Self {
        let info = DriverInfo {
            kind: DriverKind::Simulated,
            model: config.model.clone(),
            endpoint: "simulated".into(),
            capabilities: Capabilities {
                pause: true,
                layers: true,
                fault_injection: true,
                heat: true,
                gcode: true,
                tune: true,
            },
        };
        let heater = |name, rate| SimHeater {
            name,
            actual: AMBIENT,
            target: 0.0,
            rate,
        };
        let sim = Sim {
            last: clock.now(),
            heaters: vec![
                heater("tool0", config.nozzle_rate),
                heater("bed", config.bed_rate),
            ],
            files: HashMap::new(),
            job: None,
            error: None,
            thermal_error: false,
            disconnected: false,
            light_on: true,
            speed_percent: 100,
            flow_percent: 100,
            fan: 0,
        };
        Self {
            info,
            clock,
            config,
            sim: Mutex::new(sim),
        }
    }

    /// The model, advanced to now.
    fn sim(&self) -> MutexGuard<'_, Sim> {
        let mut sim = self.sim.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.now();
        let dt = now.saturating_sub(sim.last).as_secs_f64();
        sim.last = now;
        sim.advance(dt);
        sim
    }

    /// The model, advanced to now, if the printer is connected.
    fn connected(&self) -> Result<MutexGuard<'_, Sim>, DriverError> {
        let sim = self.sim();
        if sim.disconnected {
            return Err(DriverError::Unreachable {
                endpoint: self.info.endpoint.clone(),
                source: "simulated disconnect".into(),
            });
        }
        Ok(sim)
    }
}

fn rejected(operation: &'static str, message: impl Into<String>) -> DriverError {
    DriverError::Rejected {
        operation,
        code: None,
        message: message.into(),
    }
}

#[async_trait]
impl Driver for SimulatedDriver {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }

    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        let sim = self.sim();
        if sim.disconnected {
            return Ok(PrinterStatus::offline("simulated disconnect"));
        }
        Ok(PrinterStatus {
            state: sim.state(),
            heaters: sim
                .heaters
                .iter()
                .map(|h| Heater {
                    name: h.name.into(),
                    actual: h.actual,
                    target: h.target,
                })
                .collect(),
            job: sim.job_status(),
            error: sim.error.clone(),
            slots: self.config.slots.clone(),
            light: self.config.light.then_some(sim.light_on),
            speed_percent: Some(sim.speed_percent),
            flow_percent: Some(sim.flow_percent),
            fan_percent: Some(((u16::from(sim.fan) * 100 + 127) / 255) as u8),
        })
    }

    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        let size = tokio::fs::metadata(upload.path)
            .await
            .map_err(|source| DriverError::File {
                path: upload.path.to_owned(),
                source,
            })?
            .len();
        let PrintHints {
            estimated_seconds,
            layers,
        } = upload.hints;
        let duration = estimated_seconds
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or_else(|| (size as f64 / BYTES_PER_SECOND).max(5.0));
        let layers = layers
            .filter(|l| *l > 0)
            .unwrap_or_else(|| ((duration / SECONDS_PER_LAYER).ceil() as u32).max(1));
        let mut sim = self.connected()?;
        if sim.running() && sim.job.as_ref().is_some_and(|j| j.file == upload.name) {
            return Err(rejected("upload", "file is being printed"));
        }
        sim.files
            .insert(upload.name.to_owned(), SimFile { duration, layers });
        Ok(())
    }

    async fn start(&self, name: &str) -> Result<Started, DriverError> {
        let mut sim = self.connected()?;
        if sim.thermal_error {
            return Err(rejected("start", "printer is in error state"));
        }
        if sim.running() {
            return Err(rejected("start", "printer is busy"));
        }
        let Some(file) = sim.files.get(name).copied() else {
            return Err(rejected("start", format!("no such file: {name}")));
        };
        for h in &mut sim.heaters {
            h.target = if h.name == "bed" {
                self.config.bed_temp
            } else {
                self.config.nozzle_temp
            };
        }
        sim.error = None;
        sim.job = Some(SimJob {
            file: name.to_owned(),
            duration: file.duration,
            layers: file.layers,
            printed: 0.0,
            heating: true,
            phase: JobPhase::Printing,
        });
        Ok(Started {
            slots: self
                .config
                .slots
                .first()
                .map(|s| s.name.clone())
                .into_iter()
                .collect(),
        })
    }

    async fn set_temperatures(&self, targets: HeatTargets) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        if sim.job.as_ref().is_some_and(|j| !j.phase.is_finished()) {
            return Err(rejected("set_temperatures", "a job is running"));
        }
        for (target, i) in [(targets.nozzle_c, 0), (targets.bed_c, 1)] {
            if let (Some(t), Some(h)) = (target, sim.heaters.get_mut(i)) {
                h.target = f64::from(t);
            }
        }
        Ok(())
    }

    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        // The simulated firmware understands M104 and M140 (targets), M220 and M221 (speed and
        // flow), M106 and M107 (its fan); it takes any other line without effect, as a printer
        // does with commands it has nothing to show for (the speed shows, the print keeps its
        // pace).
        for line in lines {
            let mut words = line.split_whitespace();
            let Some(command) = words.next() else {
                continue;
            };
            if command == "M107" {
                sim.fan = 0;
                continue;
            }
            if !["M104", "M140", "M220", "M221", "M106"].contains(&command) {
                continue;
            }
            let value = words
                .find_map(|w| w.strip_prefix('S'))
                .and_then(|t| t.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| rejected("run_gcode", format!("no S<value> in {line:?}")))?;
            match command {
                "M104" | "M140" => {
                    if let Some(h) = sim.heaters.get_mut(usize::from(command == "M140")) {
                        h.target = value;
                    }
                }
                "M220" => sim.speed_percent = value.round().min(999.0) as u16,
                "M221" => sim.flow_percent = value.round().min(999.0) as u16,
                _ => sim.fan = value.round().min(255.0) as u8,
            }
        }
        Ok(())
    }

    fn own_actions(&self) -> &'static [OwnAction] {
        match self.config.light {
            true => &LIGHT_ACTIONS,
            false => &[],
        }
    }

    async fn run_own_action(&self, id: &str) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        sim.light_on = match (self.config.light, id) {
            (true, "light-on") => true,
            (true, "light-off") => false,
            _ => {
                return Err(DriverError::Unsupported {
                    operation: "run_own_action",
                    kind: DriverKind::Simulated,
                });
            }
        };
        Ok(())
    }

    async fn pause(&self) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        match sim.job.as_mut() {
            Some(job) if job.phase == JobPhase::Printing => {
                job.phase = JobPhase::Paused;
                Ok(())
            }
            _ => Err(rejected("pause", "no job is printing")),
        }
    }

    async fn resume(&self) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        match sim.job.as_mut() {
            Some(job) if job.phase == JobPhase::Paused => {
                job.phase = JobPhase::Printing;
                sim.error = None;
                Ok(())
            }
            _ => Err(rejected("resume", "no job is paused")),
        }
    }

    async fn cancel(&self) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        if !sim.running() {
            return Err(rejected("cancel", "no job is running"));
        }
        if let Some(job) = sim.job.as_mut() {
            job.phase = JobPhase::Cancelled;
        }
        sim.error = None;
        sim.heaters.iter_mut().for_each(|h| h.target = 0.0);
        Ok(())
    }

    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        let sim = self.connected()?;
        Ok(sim.job_status().filter(|j| !j.phase.is_finished()))
    }

    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let mut sim = self.connected()?;
        if sim.running() && sim.job.as_ref().is_some_and(|j| j.file == name) {
            return Err(rejected("remove", "file is being printed"));
        }
        sim.files.remove(name);
        Ok(())
    }

    async fn inject_fault(&self, fault: Fault) -> Result<(), DriverError> {
        let mut sim = self.sim();
        match fault {
            Fault::FilamentRunout => {
                let Some(job) = sim.job.as_mut().filter(|j| j.phase == JobPhase::Printing) else {
                    return Err(rejected(
                        "inject_fault",
                        "filament runout needs a printing job",
                    ));
                };
                job.phase = JobPhase::Paused;
                sim.error = Some("filament runout (simulated)".into());
            }
            Fault::ThermalError => {
                if let Some(job) = sim.job.as_mut().filter(|j| !j.phase.is_finished()) {
                    job.phase = JobPhase::Failed;
                }
                sim.heaters.iter_mut().for_each(|h| h.target = 0.0);
                sim.thermal_error = true;
                sim.error = Some("thermal runaway on tool0 (simulated)".into());
            }
            Fault::Disconnect => sim.disconnected = true,
        }
        Ok(())
    }

    async fn clear_faults(&self) -> Result<(), DriverError> {
        let mut sim = self.sim();
        sim.disconnected = false;
        sim.thermal_error = false;
        if !sim
            .job
            .as_ref()
            .is_some_and(|j| j.phase == JobPhase::Paused)
        {
            sim.error = None;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::io::Write;

    struct Rig {
        clock: ManualClock,
        driver: SimulatedDriver,
        file: tempfile::NamedTempFile,
    }

    fn rig() -> Rig {
        let clock = ManualClock::new();
        let driver =
            SimulatedDriver::with_clock(SimulatedConfig::default(), Arc::new(clock.clone()));
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(&[b';'; 16_000]).unwrap();
        Rig {
            clock,
            driver,
            file,
        }
    }

    impl Rig {
        async fn upload_and_start(&self, hints: PrintHints) {
            let upload = Upload {
                name: "hearth-job1.gcode",
                path: self.file.path(),
                hints,
            };
            self.driver.upload(upload).await.unwrap();
            self.driver.start("hearth-job1.gcode").await.unwrap();
        }

        fn advance(&self, seconds: u64) {
            self.clock.advance(Duration::from_secs(seconds));
        }

        async fn status(&self) -> PrinterStatus {
            self.driver.status().await.unwrap()
        }
    }

    fn hints(seconds: f64, layers: u32) -> PrintHints {
        PrintHints {
            estimated_seconds: Some(seconds),
            layers: Some(layers),
        }
    }

    fn heater<'a>(status: &'a PrinterStatus, name: &str) -> &'a Heater {
        status.heaters.iter().find(|h| h.name == name).unwrap()
    }

    #[tokio::test]
    async fn a_twenty_minute_print_heats_up_progresses_through_layers_and_completes() {
        let rig = rig();
        assert_eq!(rig.status().await.state, PrinterState::Idle);
        rig.upload_and_start(hints(1200.0, 100)).await;

        let heating = rig.status().await;
        assert_eq!(heating.state, PrinterState::Printing);
        assert_eq!(heater(&heating, "tool0").target, 215.0);
        let job = heating.job.unwrap();
        assert_eq!(
            (job.progress, job.layer),
            (0.0, None),
            "no layer while heating"
        );

        // The bed (1 °C/s from 21 to 60) is the slowest heater: 39 s of heating, then printing.
        rig.advance(39 + 600);
        let half = rig.status().await;
        let job = half.job.clone().unwrap();
        assert!((job.progress - 0.5).abs() < 1e-9, "{job:?}");
        assert_eq!(job.layer, Some(51));
        assert_eq!(job.remaining_seconds, Some(600));
        assert_eq!(heater(&half, "tool0").actual, 215.0);
        assert_eq!(
            rig.driver.current_job().await.unwrap().unwrap().file,
            "hearth-job1.gcode"
        );

        rig.advance(600);
        let done = rig.status().await;
        assert_eq!(done.state, PrinterState::Idle);
        let job = done.job.clone().unwrap();
        assert_eq!(
            (job.phase, job.progress, job.layer),
            (JobPhase::Completed, 1.0, Some(100))
        );
        assert_eq!(
            heater(&done, "tool0").target,
            0.0,
            "heaters switch off at the end"
        );
        assert!(rig.driver.current_job().await.unwrap().is_none());

        rig.advance(3600);
        assert_eq!(
            heater(&rig.status().await, "tool0").actual,
            AMBIENT,
            "cools down"
        );
    }

    #[tokio::test]
    async fn without_hints_the_duration_follows_the_file_size() {
        let rig = rig();
        rig.upload_and_start(PrintHints::default()).await;
        rig.advance(39 + 50);
        let job = rig.status().await.job.unwrap();
        // 16 000 bytes at 160 B/s = 100 s.
        assert!((job.progress - 0.5).abs() < 1e-9, "{job:?}");
        assert_eq!(job.total_layers, Some(4));
    }

    #[tokio::test]
    async fn pause_holds_progress_and_resume_continues() {
        let rig = rig();
        rig.upload_and_start(hints(100.0, 10)).await;
        rig.advance(39 + 20);
        rig.driver.pause().await.unwrap();
        rig.advance(1000);
        let paused = rig.status().await;
        assert_eq!(paused.state, PrinterState::Paused);
        assert!((paused.job.unwrap().progress - 0.2).abs() < 1e-9);
        rig.driver.resume().await.unwrap();
        rig.advance(80);
        assert_eq!(rig.status().await.job.unwrap().phase, JobPhase::Completed);
    }

    #[tokio::test]
    async fn cancel_ends_the_job_and_frees_the_printer() {
        let rig = rig();
        rig.upload_and_start(hints(100.0, 10)).await;
        rig.advance(50);
        rig.driver.cancel().await.unwrap();
        let status = rig.status().await;
        assert_eq!(status.state, PrinterState::Idle);
        assert_eq!(status.job.unwrap().phase, JobPhase::Cancelled);
        assert!(matches!(
            rig.driver.cancel().await,
            Err(DriverError::Rejected { .. })
        ));
        rig.driver.start("hearth-job1.gcode").await.unwrap();
    }

    #[tokio::test]
    async fn a_busy_printer_refuses_a_second_start_and_unknown_files() {
        let rig = rig();
        assert!(matches!(
            rig.driver.start("nope.gcode").await,
            Err(DriverError::Rejected { .. })
        ));
        rig.upload_and_start(hints(100.0, 10)).await;
        let err = rig.driver.start("hearth-job1.gcode").await.unwrap_err();
        assert!(
            matches!(
                err,
                DriverError::Rejected {
                    operation: "start",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn filament_runout_pauses_with_an_error_until_resumed() {
        let rig = rig();
        rig.upload_and_start(hints(100.0, 10)).await;
        rig.advance(39 + 30);
        rig.driver
            .inject_fault(Fault::FilamentRunout)
            .await
            .unwrap();
        rig.advance(100);
        let status = rig.status().await;
        assert_eq!(status.state, PrinterState::Paused);
        assert_eq!(status.error.as_deref(), Some("filament runout (simulated)"));
        assert!((status.job.unwrap().progress - 0.3).abs() < 1e-9);

        rig.driver.resume().await.unwrap();
        let status = rig.status().await;
        assert_eq!((status.state, status.error), (PrinterState::Printing, None));
        rig.advance(70);
        assert_eq!(rig.status().await.job.unwrap().phase, JobPhase::Completed);
    }

    #[tokio::test]
    async fn thermal_error_fails_the_job_and_blocks_printing_until_cleared() {
        let rig = rig();
        rig.upload_and_start(hints(100.0, 10)).await;
        rig.advance(60);
        rig.driver.inject_fault(Fault::ThermalError).await.unwrap();
        let status = rig.status().await;
        assert_eq!(status.state, PrinterState::Error);
        assert!(status.error.unwrap().contains("thermal"));
        assert_eq!(status.job.unwrap().phase, JobPhase::Failed);
        assert!(
            status.heaters.iter().all(|h| h.target == 0.0),
            "heaters off"
        );
        assert!(matches!(
            rig.driver.start("hearth-job1.gcode").await,
            Err(DriverError::Rejected { .. })
        ));

        rig.driver.clear_faults().await.unwrap();
        assert_eq!(rig.status().await.state, PrinterState::Idle);
        rig.driver.start("hearth-job1.gcode").await.unwrap();
    }

    #[tokio::test]
    async fn a_disconnected_printer_is_offline_keeps_printing_and_is_found_again() {
        let rig = rig();
        rig.upload_and_start(hints(100.0, 10)).await;
        rig.advance(39 + 10);
        rig.driver.inject_fault(Fault::Disconnect).await.unwrap();
        let status = rig.status().await;
        assert_eq!(
            status.state,
            PrinterState::Offline,
            "offline is a status, not an error"
        );
        assert!(status.job.is_none());
        assert!(rig.driver.pause().await.unwrap_err().is_unreachable());
        assert!(rig.driver.current_job().await.unwrap_err().is_unreachable());

        rig.advance(40);
        rig.driver.clear_faults().await.unwrap();
        let job = rig.driver.current_job().await.unwrap().unwrap();
        assert_eq!(job.file, "hearth-job1.gcode");
        assert!(
            (job.progress - 0.5).abs() < 1e-9,
            "the print went on meanwhile: {job:?}"
        );
    }

    #[test]
    fn scaled_clock_runs_faster_than_real_time() {
        let clock = ScaledClock::new(1000.0);
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(2) {}
        assert!(clock.now() >= Duration::from_secs(2));
    }
}
