//! A rig: a fake hub, a simulated printer on a manual clock behind a recording driver, a test opener, and
//! an agent that can be started, stopped gracefully or killed, and started again on the same state.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hearth_agent::config::{AgentConfig, PrinterConfig, Timing};
use hearth_agent::{JobOpener, KeyFileIdentity, OpenError, OpenedJob, Printer, Refusal, Setup};
use hearth_drivers::simulated::{ManualClock, SimulatedDriver};
use hearth_drivers::{
    Driver, DriverConfig, DriverError, DriverInfo, Fault, JobStatus, OwnAction, PrintHints,
    PrinterStatus, RunsWhen, SimulatedConfig, Upload,
};
use hearth_proto::agent::AgentJob;
use hearth_proto::ids::{AgentId, JobId};

use crate::hub::Hub;

pub const PRINTER: &str = "sim-1";
const SEALED_PREFIX: &[u8] = b"test-sealed\n";

/// "Seals" a payload the way `TestOpener` opens it.
pub fn seal(plain: &[u8]) -> Vec<u8> {
    let mut v = SEALED_PREFIX.to_vec();
    v.extend(plain.iter().map(|b| b ^ 0x5a));
    v
}

/// Opens what `seal` made. The manifest is `{"job_id", "seconds", "layers", "refuse"?}`; it checks the job
/// id like the real verifier would, and records the mode of the file it was given.
#[derive(Debug, Default)]
pub struct TestOpener {
    pub modes: Mutex<Vec<u32>>,
}

impl JobOpener for TestOpener {
    fn open(&self, job: &AgentJob, sealed: &Path, out: &mut File) -> Result<OpenedJob, OpenError> {
        self.modes
            .lock()
            .unwrap()
            .push(out.metadata().map_err(OpenError::Io)?.permissions().mode() & 0o777);
        let m = &job.manifest;
        let refuse = |reason, detail: &str| {
            Err(OpenError::Refused {
                reason,
                detail: detail.into(),
            })
        };
        match m["refuse"].as_str() {
            Some("expired") => return refuse(Refusal::Expired, "manifest expired"),
            Some("signature") => return refuse(Refusal::BadSignature, "signature does not verify"),
            _ => {}
        }
        if m["job_id"].as_str() != Some(job.job_id.to_string().as_str()) {
            return refuse(Refusal::NotForThisAgent, "manifest names another job");
        }
        let bytes = std::fs::read(sealed).map_err(OpenError::Io)?;
        let Some(body) = bytes.strip_prefix(SEALED_PREFIX) else {
            return refuse(Refusal::OpenFailed, "not sealed");
        };
        let plain: Vec<u8> = body.iter().map(|b| b ^ 0x5a).collect();
        out.write_all(&plain).map_err(OpenError::Io)?;
        Ok(OpenedJob {
            hints: PrintHints {
                estimated_seconds: m["seconds"].as_f64(),
                layers: m["layers"].as_u64().map(|l| l as u32),
            },
        })
    }
}

/// What the test printer offers of its own, as a Bambu printer does.
pub const OWN_ACTIONS: [OwnAction; 2] = [
    OwnAction {
        id: "light-off",
        label: "Light off",
        when: RunsWhen::Always,
    },
    OwnAction {
        id: "speed-sport",
        label: "Speed: sport",
        when: RunsWhen::Printing,
    },
];

/// A driver that records every command and checks the plaintext it is given.
#[derive(Debug)]
pub struct Recording {
    pub inner: Arc<dyn Driver>,
    /// The inner driver's description, with the capabilities this recording adds.
    info: DriverInfo,
    /// The actions the printer offers of its own.
    own: &'static [OwnAction],
    /// What ends a dwell (`G4`) the printer is running: one permit each.
    pub dwell: tokio::sync::Semaphore,
    pub log: Mutex<Vec<String>>,
    /// (mode, contents) of every uploaded file at upload time.
    pub uploads: Mutex<Vec<(u32, Vec<u8>, PathBuf)>>,
    /// Makes the next `start` answer "unreachable"; `Some(true)` after starting the print anyway (the
    /// answer was lost), `Some(false)` without starting it (the request was lost).
    pub lose_next_start: Mutex<Option<bool>>,
    /// Makes the next `upload` fail as unreachable.
    pub fail_next_upload: Mutex<bool>,
    /// Makes this many `remove`s fail as unreachable.
    pub fail_removals: Mutex<u32>,
    /// What `start` says fed the job's filaments (as a Bambu printer's AMS mapping does).
    pub feeding: Mutex<Vec<String>>,
}

impl Recording {
    pub fn new(inner: Arc<dyn Driver>) -> Self {
        Self {
            info: inner.describe().clone(),
            own: &[],
            dwell: tokio::sync::Semaphore::new(0),
            inner,
            log: Mutex::default(),
            uploads: Mutex::default(),
            lose_next_start: Mutex::default(),
            feeding: Mutex::default(),
            fail_next_upload: Mutex::default(),
            fail_removals: Mutex::default(),
        }
    }

    /// The printer also has actions of its own (as a Bambu's: [`OWN_ACTIONS`]), which are
    /// recorded.
    pub fn with_own_actions(mut self) -> Self {
        self.own = &OWN_ACTIONS;
        self
    }

    pub fn count(&self, prefix: &str) -> usize {
        self.entries(prefix).len()
    }

    /// The calls logged that start with `prefix`, in order.
    pub fn entries(&self, prefix: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .cloned()
            .collect()
    }
}

#[async_trait]
impl Driver for Recording {
    fn describe(&self) -> &DriverInfo {
        &self.info
    }
    fn watching(&self, name: &str) {
        self.log.lock().unwrap().push(format!("watching {name}"));
        self.inner.watching(name);
    }
    async fn status(&self) -> Result<PrinterStatus, DriverError> {
        self.inner.status().await
    }
    async fn upload(&self, upload: Upload<'_>) -> Result<(), DriverError> {
        if std::mem::take(&mut *self.fail_next_upload.lock().unwrap()) {
            self.log
                .lock()
                .unwrap()
                .push(format!("upload {} false", upload.name));
            return Err(DriverError::Unreachable {
                endpoint: "test".into(),
                source: "connection reset".into(),
            });
        }
        let mode = std::fs::metadata(upload.path).unwrap().permissions().mode() & 0o777;
        let bytes = std::fs::read(upload.path).unwrap();
        let r = self.inner.upload(upload).await;
        self.log
            .lock()
            .unwrap()
            .push(format!("upload {} {}", upload.name, r.is_ok()));
        self.uploads
            .lock()
            .unwrap()
            .push((mode, bytes, upload.path.to_owned()));
        r
    }
    async fn start(&self, name: &str) -> Result<hearth_drivers::Started, DriverError> {
        let lose = self.lose_next_start.lock().unwrap().take();
        let feeding = self.feeding.lock().unwrap().clone();
        let r = match lose {
            None => self
                .inner
                .start(name)
                .await
                .map(|started| hearth_drivers::Started {
                    slots: if feeding.is_empty() {
                        started.slots
                    } else {
                        feeding
                    },
                }),
            Some(started) => {
                if started {
                    self.inner.start(name).await.unwrap();
                }
                Err(DriverError::Unreachable {
                    endpoint: "test".into(),
                    source: "connection reset".into(),
                })
            }
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("start {name} {}", r.is_ok()));
        r
    }
    async fn pause(&self) -> Result<(), DriverError> {
        let r = self.inner.pause().await;
        self.log
            .lock()
            .unwrap()
            .push(format!("pause {}", r.is_ok()));
        r
    }
    async fn resume(&self) -> Result<(), DriverError> {
        let r = self.inner.resume().await;
        self.log
            .lock()
            .unwrap()
            .push(format!("resume {}", r.is_ok()));
        r
    }
    async fn cancel(&self) -> Result<(), DriverError> {
        let r = self.inner.cancel().await;
        self.log
            .lock()
            .unwrap()
            .push(format!("cancel {}", r.is_ok()));
        r
    }
    async fn current_job(&self) -> Result<Option<JobStatus>, DriverError> {
        self.inner.current_job().await
    }
    async fn set_temperatures(&self, t: hearth_drivers::HeatTargets) -> Result<(), DriverError> {
        let r = self.inner.set_temperatures(t).await;
        self.log
            .lock()
            .unwrap()
            .push(format!("heat {:?} {:?} {}", t.nozzle_c, t.bed_c, r.is_ok()));
        r
    }
    async fn run_gcode(&self, lines: &[String]) -> Result<(), DriverError> {
        // A dwell (`G4`) lasts until the test ends it (`dwell.add_permits`).
        if lines.iter().any(|l| l.starts_with("G4")) {
            self.log
                .lock()
                .unwrap()
                .push(format!("dwelling {}", lines.join("|")));
            self.dwell.acquire().await.unwrap().forget();
        }
        let r = self.inner.run_gcode(lines).await;
        self.log
            .lock()
            .unwrap()
            .push(format!("gcode {} {}", lines.join("|"), r.is_ok()));
        r
    }
    fn own_actions(&self) -> &'static [OwnAction] {
        self.own
    }
    async fn run_own_action(&self, id: &str) -> Result<(), DriverError> {
        self.log.lock().unwrap().push(format!("own {id}"));
        Ok(())
    }
    async fn remove(&self, name: &str) -> Result<(), DriverError> {
        let fail = {
            let mut left = self.fail_removals.lock().unwrap();
            let fail = *left > 0;
            *left = left.saturating_sub(1);
            fail
        };
        let r = if fail {
            Err(DriverError::Unreachable {
                endpoint: "test".into(),
                source: "connection reset".into(),
            })
        } else {
            self.inner.remove(name).await
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("remove {name} {}", r.is_ok()));
        r
    }
    async fn inject_fault(&self, fault: Fault) -> Result<(), DriverError> {
        self.inner.inject_fault(fault).await
    }
    async fn clear_faults(&self) -> Result<(), DriverError> {
        self.inner.clear_faults().await
    }
}

pub struct RunningAgent {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), hearth_agent::RunError>>,
}

pub struct Rig {
    pub dir: tempfile::TempDir,
    pub clock: ManualClock,
    pub driver: Arc<Recording>,
    pub opener: Arc<TestOpener>,
    pub identity: Arc<KeyFileIdentity>,
    pub hub: Hub,
    /// Overrides the hub's URL (e.g. a TLS front).
    pub server: Option<String>,
    pub ca_cert: Option<PathBuf>,
    pub timing: Timing,
    /// More printers for the same agent.
    pub extra_printers: Vec<Printer>,
    /// The first printer's `[printer.heat]`.
    pub heat: hearth_agent::config::HeatConfig,
    /// The first printer's `[printer.tune]`.
    pub tune: hearth_agent::config::TuneConfig,
    /// The first printer's `[[printer.action]]`s.
    pub actions: Vec<hearth_agent::config::ActionConfig>,
    /// Replaces the test opener (e.g. the real `CryptoOpener`).
    pub opener_override: Option<Arc<dyn JobOpener>>,
    agent: Option<RunningAgent>,
}

pub fn fast_timing() -> Timing {
    Timing {
        telemetry_interval_ms: 20,
        heartbeat_ms: 200,
        dead_after_ms: 2000,
        backoff_min_ms: 20,
        backoff_max_ms: 200,
        stable_after_ms: 500,
        retry_ms: 50,
        lost_after_ms: 300,
        job_backlog: 64,
    }
}

impl Rig {
    /// The printers the agent announced, once it has.
    pub async fn announced(&self) -> Vec<hearth_proto::agent::PrinterInfo> {
        self.hub
            .wait("printers", |s| {
                (!s.printers.is_empty()).then(|| s.printers.clone())
            })
            .await
    }

    /// The printer's first telemetry saying it is idle.
    pub async fn idle(&self) -> hearth_proto::agent::PrinterTelemetry {
        self.hub
            .wait("idle telemetry", |s| {
                s.last_telemetry(PRINTER)
                    .filter(|t| t.state == hearth_proto::agent::PrinterState::Idle)
                    .cloned()
            })
            .await
    }

    pub async fn new() -> Self {
        // `RUST_LOG=hearth_agent=debug cargo test ...` shows the agent's log for a failing test.
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let clock = ManualClock::new();
        let sim = SimulatedDriver::with_clock(SimulatedConfig::default(), Arc::new(clock.clone()));
        let driver = Arc::new(Recording::new(Arc::new(sim)).with_own_actions());
        let identity = Arc::new(KeyFileIdentity::generate(AgentId::new()));
        let hub = Hub::start(
            hearth_agent::AgentIdentity::agent_id(identity.as_ref()),
            &identity.public_key_base64(),
        )
        .await;
        Self {
            dir: tempfile::tempdir().unwrap(),
            clock,
            driver,
            opener: Arc::default(),
            identity,
            hub,
            server: None,
            ca_cert: None,
            timing: fast_timing(),
            extra_printers: Vec::new(),
            heat: Default::default(),
            tune: Default::default(),
            actions: Vec::new(),
            opener_override: None,
            agent: None,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn config(&self) -> AgentConfig {
        AgentConfig {
            server: self.server.clone().unwrap_or_else(|| self.hub.url()),
            state_dir: self.state_dir(),
            ca_cert: self.ca_cert.clone(),
            timing: self.timing.clone(),
            printers: vec![hearth_agent::config::PrinterConfig {
                heat: self.heat.clone(),
                tune: self.tune.clone(),
                actions: self.actions.clone(),
                ..printer_config(PRINTER)
            }],
        }
    }

    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none());
        let mut config = self.config();
        let mut printers = vec![Printer {
            config: config.printers[0].clone(),
            driver: self.driver.clone(),
        }];
        printers.extend(self.extra_printers.iter().cloned());
        config.printers = printers.iter().map(|p| p.config.clone()).collect();
        let setup = Setup {
            config,
            identity: self.identity.clone(),
            opener: self
                .opener_override
                .clone()
                .unwrap_or_else(|| self.opener.clone()),
            printers,
        };
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hearth_agent::run(setup, async move {
            let _ = rx.await;
        }));
        self.agent = Some(RunningAgent { stop, task });
    }

    /// Graceful shutdown.
    pub async fn stop_agent(&mut self) {
        let a = self.agent.take().unwrap();
        let _ = a.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), a.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }

    /// Like `kill -9`: the agent's task is dropped wherever it is.
    pub async fn kill_agent(&mut self) {
        let a = self.agent.take().unwrap();
        a.task.abort();
        let _ = a.task.await;
    }

    /// Forgets the telemetry received so far, once the hub has seen the agent's connection close,
    /// so that waiting on telemetry afterwards sees only what a new agent reports.
    pub async fn forget_telemetry(&self) {
        self.hub
            .wait("the connection closed", |s| (s.open == 0).then_some(()))
            .await;
        self.hub.with(|s| s.telemetry.clear());
    }

    /// A job with its sealed blob on the hub.
    pub fn job(&self, seconds: f64, layers: u32) -> AgentJob {
        let mut job = self.job_with(
            b"",
            serde_json::json!({"seconds": seconds, "layers": layers}),
        );
        let plain = format!("; job {}\nG28\nG1 X10 Y10\n", job.job_id).repeat(20);
        job.blob_sha256 = self.hub.put_blob(seal(plain.as_bytes()));
        job.blob_size = (SEALED_PREFIX.len() + plain.len()) as i64;
        job
    }

    /// A job for `plain`, with `manifest` plus the job id.
    pub fn job_with(&self, plain: &[u8], mut manifest: serde_json::Value) -> AgentJob {
        let job_id = JobId::new();
        manifest["job_id"] = job_id.to_string().into();
        let sealed = seal(plain);
        AgentJob {
            job_id,
            printer: PRINTER.into(),
            blob_sha256: self.hub.put_blob(sealed.clone()),
            blob_size: sealed.len() as i64,
            manifest,
        }
    }

    /// Adds a simulated printer (same clock) to the agent's configuration.
    pub fn add_printer(&mut self, name: &str) -> Arc<Recording> {
        let sim =
            SimulatedDriver::with_clock(SimulatedConfig::default(), Arc::new(self.clock.clone()));
        let driver = Arc::new(Recording::new(Arc::new(sim)));
        self.extra_printers.push(Printer {
            config: printer_config(name),
            driver: driver.clone(),
        });
        driver
    }

    /// Moves the simulated printer's time.
    pub fn advance(&self, seconds: u64) {
        self.clock.advance(Duration::from_secs(seconds));
    }

    pub fn plain_files(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.state_dir().join("spool/plain")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The state the agent's journal on disk holds for a job (what survives a crash).
    pub fn journal_state(&self, job: JobId) -> Option<String> {
        self.journal_record(job)
            .and_then(|r| r["state"].as_str().map(str::to_owned))
    }

    /// A job's record in the agent's journal on disk.
    pub fn journal_record(&self, job: JobId) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.state_dir().join("jobs.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["jobs"]
            .as_array()?
            .iter()
            .find(|r| r["job_id"].as_str() == Some(job.to_string().as_str()))
            .cloned()
    }
}

pub fn printer_config(name: &str) -> PrinterConfig {
    PrinterConfig {
        name: name.into(),
        pools: vec!["pla".into()],
        material: Some("PLA".into()),
        color: None,
        nozzle_mm: Some(0.4),
        camera: None,
        driver: DriverConfig::Simulated(SimulatedConfig::default()),
        heat: Default::default(),
        tune: Default::default(),
        actions: Vec::new(),
        builtin_actions: true,
    }
}

/// Polls `check` until it yields, failing after a bound (for state outside the hub, e.g. files).
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
