//! A small fake Klippy for the real Moonraker to talk to over its Unix socket.
//!
//! Protocol (`shared/peers/PROTOCOLS.md`, Moonraker): JSON objects terminated by byte 0x03; requests
//! `{"id", "method", "params"}`, answers `{"id", "result"}` or `{"id", "error": {"message"}}`; an
//! `objects/subscribe` request carries a `response_template` that Klippy fills with
//! `{"params": {"eventtime", "status"}}` for every later update.
//!
//! It answers what Moonraker asks on connect (`info`, `list_endpoints`, `objects/list`, subscriptions)
//! and what the driver's calls become (`gcode/script` with `SDCARD_PRINT_FILE`, `pause_resume/*`,
//! `objects/query`), and simulates a print by reading the uploaded file from Moonraker's `gcodes`
//! directory at a fixed byte rate, counting PrusaSlicer's `;LAYER_CHANGE` markers as layers.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const ETX: u8 = 0x03;

/// The `[gcode_macro NAME]`s of the fake printer's configuration: what printers commonly have,
/// one helper (`_`), and Klipper's usual pause and resume. They run without effect.
const MACROS: [&str; 5] = [
    "CLEAN_NOZZLE",
    "LOAD_FILAMENT",
    "PAUSE",
    "RESUME",
    "_HOME_IF_NEEDED",
];

/// What the fake printer's `[gcode_macro NAME]` sections run: CLEAN_NOZZLE reads parameters, as
/// printers' cleaning macros commonly do.
fn macro_template(name: &str) -> &'static str {
    match name {
        "CLEAN_NOZZLE" => {
            "{% set temp = params.TEMP|default(170)|float %}\nM109 S{temp}\nG1 X{params.X} F6000"
        }
        _ => "M400",
    }
}

/// The simulated printer behind the fake Klippy.
#[derive(Debug)]
pub struct Printer {
    gcodes: PathBuf,
    bytes_per_second: f64,
    origin: Instant,
    last_tick: Instant,
    state: &'static str,
    filename: String,
    size: u64,
    position: f64,
    layer_offsets: Vec<u64>,
    print_duration: f64,
    message: String,
    extruder: (f64, f64),
    /// `gcode_move.speed_factor` (M220) and `extrude_factor` (M221).
    speed_factor: f64,
    extrude_factor: f64,
    /// `fan.speed`, 0 to 1 (M106 S0..255, M107).
    fan: f64,
    bed: (f64, f64),
    /// Happy Hare's `mmu` object, for a printer with an MMU (`FakeKlippy::set_mmu`).
    mmu: Option<Value>,
}

impl Printer {
    fn tick(&mut self) {
        let now = Instant::now();
        let dt = now.duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        for (actual, target) in [&mut self.extruder, &mut self.bed] {
            let goal = if *target > 0.0 { *target } else { 21.0 };
            let step = 100.0 * dt;
            *actual = if (goal - *actual).abs() <= step {
                goal
            } else {
                *actual + step * (goal - *actual).signum()
            };
        }
        if self.state == "printing" {
            self.print_duration += dt;
            self.position = (self.position + self.bytes_per_second * dt).min(self.size as f64);
            if self.position >= self.size as f64 {
                self.state = "complete";
                self.extruder.1 = 0.0;
                self.bed.1 = 0.0;
            }
        }
    }

    fn eventtime(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// Every object this Klippy has, with every field.
    fn objects(&self) -> Map<String, Value> {
        let progress = if self.size > 0 {
            self.position / self.size as f64
        } else {
            0.0
        };
        let current_layer = self
            .layer_offsets
            .iter()
            .filter(|o| (**o as f64) <= self.position)
            .count();
        let active = self.state == "printing";
        let file_path = if self.filename.is_empty() {
            Value::Null
        } else {
            json!(self.gcodes.join(&self.filename))
        };
        let objects = json!({
            "webhooks": {"state": "ready", "state_message": "Printer is ready"},
            "print_stats": {
                "filename": self.filename, "state": self.state, "print_duration": self.print_duration,
                "total_duration": self.print_duration, "filament_used": 0.0, "message": self.message,
                "info": {"total_layer": self.layer_offsets.len(), "current_layer": current_layer},
            },
            "virtual_sdcard": {
                "progress": progress, "is_active": active, "file_position": self.position as u64,
                "file_path": file_path, "file_size": self.size,
            },
            "display_status": {"progress": progress, "message": null},
            "pause_resume": {"is_paused": self.state == "paused"},
            "idle_timeout": {"state": if active { "Printing" } else { "Idle" }, "printing_time": self.print_duration},
            "heaters": {"available_heaters": ["extruder", "heater_bed"], "available_sensors": ["extruder", "heater_bed"]},
            "extruder": {"temperature": self.extruder.0, "target": self.extruder.1, "power": 0.0},
            "heater_bed": {"temperature": self.bed.0, "target": self.bed.1, "power": 0.0},
            "toolhead": {"homed_axes": "", "print_time": 0.0, "estimated_print_time": 0.0},
            "gcode_move": {"speed_factor": self.speed_factor, "extrude_factor": self.extrude_factor},
            "fan": {"speed": self.fan, "rpm": null},
            "configfile": {
                "config": {"virtual_sdcard": {"path": self.gcodes}},
                // Klipper's parsed sections, names in lower case; a macro's template as written.
                "settings": MACROS.iter().map(|m| (format!("gcode_macro {}", m.to_lowercase()),
                    json!({"gcode": macro_template(m)}))).collect::<serde_json::Map<_, _>>(),
            },
        });
        match objects {
            Value::Object(mut map) => {
                if let Some(mmu) = &self.mmu {
                    map.insert("mmu".into(), mmu.clone());
                }
                for name in MACROS {
                    map.insert(format!("gcode_macro {name}"), json!({}));
                }
                map
            }
            _ => unreachable!(),
        }
    }

    /// The requested objects and fields (`{"name": null | ["field", ...]}`).
    fn query(&mut self, request: &Value) -> Value {
        self.tick();
        let all = self.objects();
        let mut status = Map::new();
        for (name, fields) in request.as_object().into_iter().flatten() {
            let Some(Value::Object(object)) = all.get(name) else {
                continue;
            };
            let picked: Map<String, Value> = match fields.as_array() {
                Some(wanted) => object
                    .iter()
                    .filter(|(k, _)| wanted.iter().any(|w| w.as_str() == Some(k.as_str())))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                None => object.clone(),
            };
            status.insert(name.clone(), Value::Object(picked));
        }
        json!({"eventtime": self.eventtime(), "status": status})
    }

    fn start(&mut self, filename: &str) -> Result<Value, String> {
        self.tick();
        if matches!(self.state, "printing" | "paused") {
            return Err("SD busy".into());
        }
        let data = std::fs::read(self.gcodes.join(filename))
            .map_err(|e| format!("Unable to open file: {e}"))?;
        let mut offset = 0u64;
        self.layer_offsets.clear();
        for line in data.split(|b| *b == b'\n') {
            if line.starts_with(b";LAYER_CHANGE") {
                self.layer_offsets.push(offset);
            }
            offset += line.len() as u64 + 1;
        }
        self.filename = filename.to_owned();
        self.size = data.len() as u64;
        self.position = 0.0;
        self.print_duration = 0.0;
        self.message.clear();
        self.state = "printing";
        self.extruder.1 = 215.0;
        self.bed.1 = 60.0;
        Ok(json!({}))
    }

    fn pause_resume(&mut self, action: &str) -> Result<Value, String> {
        self.tick();
        match (action, self.state) {
            ("pause", "printing") => self.state = "paused",
            ("resume", "paused") => self.state = "printing",
            ("cancel", "printing" | "paused") => {
                self.state = "cancelled";
                self.extruder.1 = 0.0;
                self.bed.1 = 0.0;
            }
            ("pause", "paused") => {}
            _ => return Err(format!("Cannot {action}: print is {}", self.state)),
        }
        Ok(json!({}))
    }

    fn handle(&mut self, method: &str, params: &Value) -> Result<Value, String> {
        match method {
            "info" => Ok(json!({
                "state": "ready", "state_message": "Printer is ready", "hostname": "fake-klippy",
                "klipper_path": "/tmp/fake-klipper", "python_path": "/usr/bin/python3",
                "log_file": "/tmp/fake-klippy.log", "config_file": "/tmp/fake-printer.cfg",
                "software_version": "v0.12.0-fake", "cpu_info": "fake", "app": "Klipper",
            })),
            "list_endpoints" => Ok(json!({"endpoints": [
                "info", "emergency_stop", "register_remote_method", "objects/list", "objects/query",
                "objects/subscribe", "gcode/script", "gcode/help", "gcode/subscribe_output",
                "pause_resume/pause", "pause_resume/resume", "pause_resume/cancel",
            ]})),
            "objects/list" => Ok(json!({"objects": self.objects().keys().collect::<Vec<_>>()})),
            "objects/query" | "objects/subscribe" => Ok(self.query(&params["objects"])),
            "gcode/subscribe_output" | "register_remote_method" => Ok(json!({})),
            "gcode/script" => {
                let script = params["script"].as_str().unwrap_or("");
                if let Some(name) = script.strip_prefix("SDCARD_PRINT_FILE FILENAME=") {
                    return self.start(name.trim_matches('"'));
                }
                // Klipper's SET_HEATER_TEMPERATURE and the Marlin-style commands it also
                // takes, one per line; anything else is Klipper's "Unknown command" error.
                for line in script.lines() {
                    let words: HashMap<&str, &str> = line
                        .split_whitespace()
                        .skip(1)
                        .filter_map(|w| w.split_once('='))
                        .collect();
                    let command = line.split_whitespace().next().unwrap_or("");
                    let s_target = || {
                        line.split_whitespace()
                            .find_map(|w| w.strip_prefix('S'))
                            .and_then(|t| t.parse::<f64>().ok())
                            .ok_or_else(|| format!("bad S in {line:?}"))
                    };
                    match command.to_ascii_uppercase().as_str() {
                        "SET_HEATER_TEMPERATURE" => {}
                        "M104" => {
                            self.extruder.1 = s_target()?;
                            continue;
                        }
                        "M140" => {
                            self.bed.1 = s_target()?;
                            continue;
                        }
                        // Klipper's M220: the speed factor, percent.
                        "M220" => {
                            self.speed_factor = s_target()? / 100.0;
                            continue;
                        }
                        // M221: the extrusion factor, percent.
                        "M221" => {
                            self.extrude_factor = s_target()? / 100.0;
                            continue;
                        }
                        // Klipper's M106: S0 to 255 (255 without S); M107: off.
                        "M106" => {
                            self.fan = s_target().unwrap_or(255.0).clamp(0.0, 255.0) / 255.0;
                            continue;
                        }
                        "M107" => {
                            self.fan = 0.0;
                            continue;
                        }
                        "G28" | "M84" | "" => continue,
                        m if MACROS.contains(&m) => continue,
                        _ => return Err(format!("Unknown command:\"{command}\"")),
                    }
                    let target = words
                        .get("TARGET")
                        .and_then(|t| t.parse::<f64>().ok())
                        .ok_or_else(|| format!("bad TARGET in {line:?}"))?;
                    match words.get("HEATER") {
                        Some(&"extruder") => self.extruder.1 = target,
                        Some(&"heater_bed") => self.bed.1 = target,
                        other => return Err(format!("no heater {other:?}")),
                    }
                }
                Ok(json!({}))
            }
            "pause_resume/pause" => self.pause_resume("pause"),
            "pause_resume/resume" => self.pause_resume("resume"),
            "pause_resume/cancel" => self.pause_resume("cancel"),
            other => Err(format!("fake Klippy does not implement {other}")),
        }
    }
}

/// A fake Klippy listening on a Unix socket; stops on drop.
#[derive(Debug)]
pub struct FakeKlippy {
    task: tokio::task::JoinHandle<()>,
    printer: Arc<Mutex<Printer>>,
}

impl Drop for FakeKlippy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKlippy {
    /// Listens on `socket`; files to print are read from `gcodes` at `bytes_per_second`.
    pub fn start(socket: PathBuf, gcodes: PathBuf, bytes_per_second: f64) -> Self {
        let listener = UnixListener::bind(&socket).unwrap();
        let printer = Arc::new(Mutex::new(Printer {
            gcodes,
            bytes_per_second,
            origin: Instant::now(),
            last_tick: Instant::now(),
            state: "standby",
            filename: String::new(),
            size: 0,
            position: 0.0,
            layer_offsets: Vec::new(),
            print_duration: 0.0,
            message: String::new(),
            extruder: (21.0, 0.0),
            speed_factor: 1.0,
            extrude_factor: 1.0,
            fan: 0.0,
            bed: (21.0, 0.0),
            mmu: None,
        }));
        let served = printer.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((stream, _)) = listener.accept().await {
                connections.spawn(serve(stream, served.clone()));
            }
        });
        Self { task, printer }
    }

    /// Gives the printer an MMU driven by Happy Hare: its `mmu` object with these fields
    /// (`gate_status`, `gate_material`, `gate_color`, `ttg_map`, ...).
    pub fn set_mmu(&self, mmu: Value) {
        self.printer.lock().unwrap().mmu = Some(mmu);
    }
}

async fn send(stream: &mut UnixStream, message: &Value) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(message).unwrap();
    bytes.push(ETX);
    stream.write_all(&bytes).await
}

/// One Moonraker connection: answers requests and pushes subscribed objects every 200 ms.
async fn serve(mut stream: UnixStream, printer: Arc<Mutex<Printer>>) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let mut subscription: Option<(Value, Value)> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            read = stream.read(&mut chunk) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.iter().position(|b| *b == ETX) {
                    let frame: Vec<u8> = buffer.drain(..=end).collect();
                    let Ok(request) = serde_json::from_slice::<Value>(&frame[..frame.len() - 1]) else { continue };
                    let method = request["method"].as_str().unwrap_or("").to_owned();
                    let params = request.get("params").cloned().unwrap_or(Value::Null);
                    if method == "objects/subscribe" {
                        subscription = Some((params["objects"].clone(), params["response_template"].clone()));
                    }
                    let answer = printer.lock().unwrap().handle(&method, &params);
                    let mut reply = match answer {
                        Ok(result) => json!({"result": result}),
                        Err(message) => json!({"error": {"error": "WebRequestError", "message": message}}),
                    };
                    reply["id"] = request["id"].clone();
                    if send(&mut stream, &reply).await.is_err() {
                        return;
                    }
                }
            }
            _ = ticker.tick() => {
                let Some((objects, template)) = &subscription else { continue };
                let update = printer.lock().unwrap().query(objects);
                let mut message = template.clone();
                message["params"] = update;
                if send(&mut stream, &message).await.is_err() {
                    return;
                }
            }
        }
    }
}
