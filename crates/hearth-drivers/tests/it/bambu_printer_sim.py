#!/usr/bin/env python3
"""Bambu Lab printer in LAN mode, simulated for hearth-drivers' integration tests.

Runs with the `bambusim` venv that scripts/peers.sh installs (Python 3.11, paho-mqtt 2.1.0), plus the
system's Mosquitto (Debian package, /usr/sbin/mosquitto) and mosquitto_passwd.

    bambu_printer_sim.py --serial 01P00A123456789 --access-code 12345678 \\
        --cert printer.pem --key printer.key --state-dir DIR \\
        [--model X1C|P1S|A1] [--dev-mode on|off] [--mosquitto /usr/sbin/mosquitto] \\
        [--print-seconds 3.0] [--push-interval 0.5] [--ams "PLA:FFFFFFFF,PETG:000000FF,,"] [--no-ams] \\
        [--camera-jpeg FILE]

What it is made of, each following PROTOCOLS.md A4 ("Bambu Lab LAN mode"):

* The printer's MQTT broker is the real Mosquitto: a TLS-only listener (A4 "TLS only"), user `bblp`
  with the access code as password (A4), anonymous access off. The tests get a free port instead of
  8883. DIR gets mosquitto.conf, the password file and mosquitto.log.
* The printer's logic is a paho client on that broker (MQTT 3.1.1). It subscribes to
  `device/<SERIAL>/request` and publishes on `device/<SERIAL>/report` (A4 topics).
  - A request is `{"<type>":{"sequence_id":..,"command":..,...}}`. The reply echoes the request's fields
    and adds `result` ("success"|"failed") and `reason` (A4 "Requests and replies"). Replies go at
    QoS 1; reports go at QoS 0.
  - `pushing.pushall` is answered with the full report object, not with an echo. `pushing.start`
    resumes reports after they stopped (A4, ha-bambulab START_PUSH) and is echoed with success.
  - `info.get_version` returns `module[]` with `name`, `sw_ver` and `sn` (A4).
  - Reports are `{"print":{"command":"push_status",...}}` with the A4 report fields. The X1C pushes
    the full object every time; the P1S and A1 push only the top-level fields that changed since the
    last push, and nothing when nothing changed (A4: "P1 and A1 machines push only changed fields").
    A pushall always returns the full object.
  - Developer mode (A4 "The 2025 authorization change"): when it is off, reports, pushall,
    get_version and pushing.start still work. Every other request (`print.*` and any other type) is
    answered `"result":"failed","reason":"mqtt message verify failed","err_code":84033543` and has no
    effect. The X1C reports `fun` (a hex string) with bit 0x20000000 CLEAR when developer mode is ON
    (bambuddy's detection). The P1S and A1 have no `fun`, so a client must probe with a harmless
    write, e.g. `print.gcode_line`.
  - `print.project_file` follows A4: `param` "Metadata/plate_<N>.gcode"; `url` "ftp://<file>",
    "ftp:///<path>" or "file:///sdcard/<path>"; `md5` of the plate G-code ("" skips the check);
    `use_ams` plus `ams_mapping` (one entry per filament, ams_id*4+tray_id, 254/255 = external spool);
    `subtask_name`, `task_id` and `subtask_id` are echoed in the report. The P1S clamps a task or
    subtask id above 2^31-1 to 2147483647 (A4, bambuddy #1011/#1042, read as saturation).
  - `print.gcode_file` takes an absolute `/sdcard/<file>` path (A4). `print.pause`, `print.resume`,
    `print.stop`, `print.gcode_line` and `print.print_speed` ("1".."4") are also handled (A4).
  - AMS: `ams.ams[].tray[]` with `tray_type`, `tray_color` (RRGGBBAA), `nozzle_temp_min/max`,
    `remain`, `tag_uid`, `tray_uuid`, `tray_info_idx`; `ams.tray_now` ("255" none, "254" external);
    `vt_tray` is the external spool (A4).
* The printer's implicit FTPS server, written here with threads and `ssl` (A4 "File upload"). TLS
  starts before the 220 banner. The login is `bblp` plus the access code. Data connections must use
  `PROT P` and must resume the control connection's TLS session: the server checks `session_reused`
  and otherwise answers `522 SSL connection failed: session reuse required`, as vsftpd does with
  `require_ssl_reuse=YES`. Files go to the root or to `/cache/` (DIR/sdcard/, DIR/sdcard/cache/). A
  data connection that ends without a TLS close_notify counts as end of file (ha-bambulab skips
  `unwrap()`).
* The P1S's and A1's camera server (OpenBambuAPI `video.md`, "A1 and P1"), with --camera-jpeg: TLS
  with the same certificate; the client first sends an 80-byte packet (little-endian u32 0x40,
  u32 0x3000, u32 0, u32 0, then `bblp` and the access code, each right-padded with NUL to 32
  bytes); the server then sends frames, each a 16-byte header (u32 payload size, u32 itrack 0,
  u32 flags 1, u32 0) and the JPEG. The X1C has no such server (X1 machines stream RTSPS on 322).
  The tests get a free port instead of 6000.
* The same certificate and key serve MQTT and FTPS. It is expected to be issued by a test "BBL CA"
  with CN = serial and no subjectAltName (A4 "Certificates").

The simulator's own simplifications (not protocol facts):

* Print timing. PREPARE lasts one push interval, then RUNNING. `mc_percent` rises linearly over
  --print-seconds of RUNNING time and stops while paused. The run ends in FINISH with mc_percent 100.
  `layer_num` rises to `total_layer_num`, which is the number of `;LAYER_CHANGE` / `; CHANGE_LAYER`
  lines in the G-code; if there are none, the `; total layer number: N` header; if neither, 1.
  `mc_remaining_time` (minutes, rounded up) scales the slicer's estimate by the remaining fraction.
  The estimate comes from `total estimated time`, else `model printing time` (BambuStudio header), else
  `estimated printing time (normal mode)`. Without any of these it uses --print-seconds.
* Temperatures. Ambient is 25 °C. Targets come from the first `M104/M109 S` and `M140/M190 S` in the
  G-code (default nozzle 220, bed 60); the actual temperatures approach the targets exponentially
  (time constant 0.3 s). Targets drop to 0 on FINISH, on FAILED and on stop.
* Rules that A4 does not state. Prints start only from IDLE, FINISH or FAILED. Pause only from
  RUNNING, resume only from PAUSE, stop only from PREPARE, RUNNING or PAUSE. stop leaves FAILED with
  print_error 0. Any other case is answered failed with a reason. A new print clears print_error and
  hms.
* `ams_mapping` entries must be integers, each naming a loaded tray or 254/255; -1 is refused. An
  `hms` entry injected with `error <code>` is `{"attr": <code>, "code": 131073}` (0x00020001,
  "serious" in ha-bambulab's severity table).
* `system.ledctrl` (A4's command list) switches the chamber light: `led_node` "chamber_light",
  `led_mode` "on" or "off" (the field names of the published clients' chamber-light command); the
  report's `lights_report` (A4) lists it as `{"node": "chamber_light", "mode": "on"|"off"}`. The
  light is on at start. Other nodes and modes (flashing) are refused.
* Unsupported requests (everything not listed above, e.g. `ams_control`) are
  answered `"result":"failed","reason":"unsupported command"`.
* `silence` (stdin) stops reports: periodic pushes and pushall. Replies still flow.
* The camera closes the connection on a wrong login packet (what a printer does is not published)
  and sends the --camera-jpeg file as every frame, one every 0.5 s.
* The FTPS server accepts a resumed session from any connection; it does not check that the session
  is the control connection's own. With TLS 1.3 each control connection issues 8 session tickets
  (Python's default is 2), so a client whose TLS stack uses every ticket only once (rustls does) can
  open several data connections per control connection. Data connections issue none; otherwise a client
  that never reads from a STOR data socket would close it with unread tickets queued, and the kernel
  would send RST instead of FIN. A data connection that ends with an RST is a failed transfer (426).

Control on stdin, one command a line: `error <code>` (print_error=code, an hms entry, RUNNING or
PREPARE -> PAUSE), `clear` (print_error 0, hms []), `fail` (FAILED, print_error 50348044, targets 0),
`devmode on|off`, `silence`, `tray <0-3> TYPE:RRGGBBAA[:TRAYUUID]|empty` (a spool put in or taken
out of an AMS tray; a full report follows), `quit`. EOF counts as quit.

Events on stdout, one flushed line each: first exactly `READY mqtt=<port> ftps=<port> camera=<port>`
(camera=0 when there is no camera server), then
`UPLOAD <name> <size> <md5hex>`, `DELETE <name>`, `COMMAND <type>.<cmd> <compact JSON of the request
body>`, `STATE <gcode_state>` and `FTPS-REJECT <reason>`. The reason is one of bad-login,
prot-not-private, data-not-protected, no-session-reuse, data-tls-failed or tls-handshake-failed.
`BAD-REQUEST <reason>` is printed for MQTT payloads that are not requests. <name> is the path below
the FTP root, e.g. `job.gcode.3mf` or `cache/job.gcode.3mf`. `CAMERA-LOGIN` follows an accepted
camera login, `CAMERA-REJECT bad-login` a refused one. Diagnostics go to stderr.
"""
from __future__ import annotations

import argparse
import atexit
import ctypes
import hashlib
import json
import math
import os
import posixpath
import pwd
import queue
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass

import paho.mqtt.client as mqtt

STOP = threading.Event()            # set when the simulator must exit
EXIT_CODE = [0]
_OUT_LOCK = threading.Lock()

AMBIENT = 25.0
VERIFY_FAILED = ("mqtt message verify failed", 84033543)
FAIL_PRINT_ERROR = 50348044
DEV_MODE_BIT = 0x20000000           # in `fun`: clear => developer mode ON (bambuddy)
FUN_BASE = 0x3EC1AFFF9CFF
HMS_SERIOUS = 0x00020001
INT32_MAX = 2**31 - 1
BUSY_STATES = ("PREPARE", "RUNNING", "PAUSE")
SPEED_MAG = {1: 50, 2: 100, 3: 124, 4: 166}
READ_ONLY = {("pushing", "pushall"), ("pushing", "start"), ("info", "get_version")}
FILAMENT = {  # tray_type -> (nozzle_temp_min, nozzle_temp_max, generic tray_info_idx)
    "PLA": ("190", "230", "GFL99"), "PETG": ("220", "260", "GFG99"), "ABS": ("240", "270", "GFB99"),
    "ASA": ("240", "270", "GFB98"), "TPU": ("200", "250", "GFU99"), "PC": ("260", "290", "GFC99"),
    "PA": ("260", "290", "GFN99"),
}


def emit(line: str) -> None:
    """One event line on stdout. If the reader is gone, the simulator shuts down."""
    with _OUT_LOCK:
        try:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            STOP.set()


def log(msg: str) -> None:
    try:
        print(f"bambu-sim: {msg}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


def compact(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True)


# --------------------------------------------------------------------------------------------------
# Mosquitto, the printer's broker
# --------------------------------------------------------------------------------------------------

_LIBC = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    def preexec():
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:      # the parent died before prctl took effect
            os._exit(1)
    return preexec


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    READY_TIMEOUT = 10.0

    def __init__(self, exe: str, state_dir: str, cert: str, key: str, access_code: str):
        self.exe, self.state_dir, self.cert, self.key = exe, state_dir, cert, key
        self.access_code = access_code
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def _write_password_file(self) -> str:
        path = os.path.join(self.state_dir, "mosquitto.passwd")
        passwd_exe = os.path.join(os.path.dirname(self.exe), "mosquitto_passwd")
        if not os.path.exists(passwd_exe):
            passwd_exe = "/usr/bin/mosquitto_passwd"
        if os.path.exists(path):
            os.unlink(path)
        r = subprocess.run([passwd_exe, "-b", "-c", path, "bblp", self.access_code],
                           capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd failed: {r.stderr.strip() or r.stdout.strip()}")
        os.chmod(path, 0o600)
        return path

    def _write_conf(self, port: int, passwd: str) -> str:
        path = os.path.join(self.state_dir, "mosquitto.conf")
        user = pwd.getpwuid(os.getuid()).pw_name   # never drop privileges (that would clear PDEATHSIG)
        conf = f"""# written by bambu_printer_sim.py: the printer's broker (PROTOCOLS.md A4)
per_listener_settings false
allow_anonymous false
password_file {passwd}
persistence false
user {user}
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
listener {port} 127.0.0.1
certfile {os.path.abspath(self.cert)}
keyfile {os.path.abspath(self.key)}
require_certificate false
"""
        with open(path, "w") as f:
            f.write(conf)
        return path

    def start(self) -> int:
        passwd = self._write_password_file()
        logf = open(os.path.join(self.state_dir, "mosquitto.log"), "a", buffering=1)
        last_output: list[str] = []
        for attempt in range(3):
            port = free_port()
            conf = self._write_conf(port, passwd)
            ready = threading.Event()
            lines: list[str] = []
            proc = subprocess.Popen([self.exe, "-c", conf], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                    preexec_fn=_die_with_parent(os.getpid()))
            self.proc = proc

            def pump(proc=proc, ready=ready, lines=lines):
                for raw in proc.stderr:
                    line = raw.decode("utf-8", "replace").rstrip("\n")
                    logf.write(line + "\n")
                    if not ready.is_set():
                        lines.append(line)
                        if re.search(r"mosquitto version \S+ running", line):
                            ready.set()
            threading.Thread(target=pump, name="mosquitto-log", daemon=True).start()

            deadline = time.monotonic() + self.READY_TIMEOUT
            while not ready.is_set() and proc.poll() is None and time.monotonic() < deadline:
                ready.wait(0.05)
            if ready.is_set() and proc.poll() is None:
                self.port = port
                return port
            if proc.poll() is None:
                self.stop()
                raise RuntimeError(f"mosquitto did not report ready within {self.READY_TIMEOUT:.0f}s: "
                                   + " | ".join(lines[-5:]))
            rc = proc.wait(timeout=5)
            time.sleep(0.05)                 # let the log pump read the last lines
            last_output = lines + [f"(exit status {rc})"]
            if not any("in use" in l for l in lines):
                break                        # not a port race: do not retry
        self.proc = None
        raise RuntimeError("mosquitto failed to start: " + " | ".join(last_output[-5:]))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)


# --------------------------------------------------------------------------------------------------
# G-code and project-file inspection
# --------------------------------------------------------------------------------------------------

@dataclass
class GcodeInfo:
    layers: int
    est_seconds: float | None
    nozzle_target: float
    bed_target: float


def parse_duration(text: str) -> float | None:
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([dhms])", text)
    if not parts:
        return None
    unit = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(float(n) * unit[u] for n, u in parts)


def inspect_gcode(data: bytes) -> GcodeInfo:
    text = data.decode("utf-8", "replace")
    layers = 0
    header_layers = None
    total_est = model_est = normal_est = None
    nozzle = bed = None
    for line in text.splitlines():
        s = line.strip()
        if s in (";LAYER_CHANGE", "; CHANGE_LAYER"):
            layers += 1
            continue
        if s.startswith(";"):
            if header_layers is None and (m := re.match(r";\s*total layer number:\s*(\d+)", s)):
                header_layers = int(m.group(1))
            if total_est is None and (m := re.search(r"total estimated time:\s*([^;]+)", s)):
                total_est = parse_duration(m.group(1))
            if model_est is None and (m := re.search(r"model printing time:\s*([^;]+)", s)):
                model_est = parse_duration(m.group(1))
            if normal_est is None and (m := re.search(r"estimated printing time \(normal mode\)\s*=\s*(.+)", s)):
                normal_est = parse_duration(m.group(1))
            continue
        code = s.split(";", 1)[0].upper()
        if nozzle is None and (m := re.match(r"M10[49]\b.*?\bS(\d+(?:\.\d+)?)", code)):
            nozzle = float(m.group(1))
        elif bed is None and (m := re.match(r"M1(?:40|90)\b.*?\bS(\d+(?:\.\d+)?)", code)):
            bed = float(m.group(1))
    if layers == 0:
        layers = header_layers or 1
    est = next((e for e in (total_est, model_est, normal_est) if e), None)
    return GcodeInfo(max(1, layers), est, nozzle if nozzle is not None else 220.0,
                     bed if bed is not None else 60.0)


def temps_in_gcode_lines(text: str) -> tuple[float | None, float | None]:
    nozzle = bed = None
    for line in text.splitlines():
        code = line.split(";", 1)[0].strip().upper()
        if m := re.match(r"M10[49]\b.*?\bS(\d+(?:\.\d+)?)", code):
            nozzle = float(m.group(1))
        elif m := re.match(r"M1(?:40|90)\b.*?\bS(\d+(?:\.\d+)?)", code):
            bed = float(m.group(1))
    return nozzle, bed


def strip_ext(name: str) -> str:
    base = posixpath.basename(name)
    for ext in (".gcode.3mf", ".3mf", ".gcode"):
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


# --------------------------------------------------------------------------------------------------
# The printer (state machine + MQTT client)
# --------------------------------------------------------------------------------------------------

class CommandError(Exception):
    """A request refused with a reason; no state change."""


@dataclass
class Job:
    info: GcodeInfo
    prepare_started: float
    elapsed: float = 0.0


class Printer:
    TEMP_TAU = 0.3

    def __init__(self, args, sdcard: str):
        self.args = args
        self.serial = args.serial
        self.model = args.model
        self.sdcard = sdcard
        self.full_push = args.model == "X1C"
        self.lock = threading.RLock()
        self.dev_mode = args.dev_mode == "on"
        self.silenced = False
        self.job: Job | None = None
        self.last_pushed: dict | None = None
        self.push_seq = 0
        self.nozzle = self.bed = self.chamber = AMBIENT
        self.client: mqtt.Client | None = None
        self.req_topic = f"device/{self.serial}/request"
        self.rep_topic = f"device/{self.serial}/report"
        self.trays = args.ams_trays           # None (no AMS) or a list of 4 (type, color, uuid) | None
        self.f = self._initial_fields()

    # ---- report ---------------------------------------------------------------------------------

    def _initial_fields(self) -> dict:
        f = {
            "gcode_state": "IDLE", "mc_percent": 0, "mc_remaining_time": 0,
            "layer_num": 0, "total_layer_num": 0,
            "nozzle_temper": AMBIENT, "nozzle_target_temper": 0.0,
            "bed_temper": AMBIENT, "bed_target_temper": 0.0,
            "subtask_name": "", "gcode_file": "", "task_id": "0", "subtask_id": "0",
            "gcode_start_time": "0",
            "print_error": 0, "mc_print_error_code": "0", "hms": [],
            "spd_lvl": 2, "spd_mag": 100, "wifi_signal": "-40dBm", "sdcard": True,
            "lights_report": [{"node": "chamber_light", "mode": "on"}],
        }
        if self.model == "X1C":
            f["chamber_temper"] = AMBIENT
            f["fun"] = self._fun()
        if self.trays is not None:
            f["ams"] = {"ams": [{"id": "0", "humidity": "4", "temp": "25.0",
                                 "tray": [self._tray_json(i, t) for i, t in enumerate(self.trays)]}],
                        "tray_now": "255"}
            f["vt_tray"] = {"id": "254", "tray_type": "PLA", "tray_color": "000000FF"}
        return f

    @staticmethod
    def _tray_json(i: int, tray) -> dict:
        if tray is None:
            return {"id": str(i)}
        kind, color, uuid = tray
        tmin, tmax, idx = FILAMENT.get(kind.upper(), ("190", "250", "GFL99"))
        # A Bambu Lab spool's RFID tag gives its identity and what is left; another spool reads
        # zeros and an unknown remain (-1).
        return {"id": str(i), "tray_type": kind, "tray_color": color, "nozzle_temp_min": tmin,
                "nozzle_temp_max": tmax, "remain": 80 if uuid else -1,
                "tag_uid": uuid[:16] if uuid else "0" * 16,
                "tray_uuid": uuid or "0" * 32, "tray_info_idx": idx}

    def _fun(self) -> str:
        v = FUN_BASE & ~DEV_MODE_BIT if self.dev_mode else FUN_BASE | DEV_MODE_BIT
        return f"{v:X}"

    def _snapshot(self) -> dict:
        f = self.f
        f["nozzle_temper"] = round(self.nozzle, 1)
        f["bed_temper"] = round(self.bed, 1)
        if "chamber_temper" in f:
            f["chamber_temper"] = round(self.chamber, 1)
        return json.loads(json.dumps(f))    # deep copy

    def push(self, full: bool) -> None:
        """Publish a report: full object, or (P1S/A1 periodic) only the changed top-level fields."""
        with self.lock:
            if self.silenced or self.client is None:
                return
            cur = self._snapshot()
            if full or self.full_push or self.last_pushed is None:
                body = cur
            else:
                body = {k: v for k, v in cur.items() if self.last_pushed.get(k) != v}
                if not body:
                    return
            self.push_seq += 1
            msg = {"print": {"command": "push_status", "sequence_id": str(self.push_seq), **body}}
            self.client.publish(self.rep_topic, compact(msg), qos=0)
            self.last_pushed = cur

    def reply(self, typ: str, body: dict, ok: bool, reason: str, **extra) -> None:
        out = dict(body)
        out["result"] = "success" if ok else "failed"
        out["reason"] = reason
        out.update(extra)
        if self.client is not None:
            self.client.publish(self.rep_topic, compact({typ: out}), qos=1)

    # ---- state ----------------------------------------------------------------------------------

    def set_state(self, state: str) -> bool:
        if self.f["gcode_state"] == state:
            return False
        self.f["gcode_state"] = state
        emit(f"STATE {state}")
        return True

    def _set_targets(self, nozzle: float, bed: float) -> None:
        self.f["nozzle_target_temper"] = float(nozzle)
        self.f["bed_target_temper"] = float(bed)

    def _end_job(self, state: str) -> None:
        self.job = None
        self._set_targets(0, 0)
        if "ams" in self.f:
            self.f["ams"]["tray_now"] = "255"
        self.set_state(state)

    def _update_progress(self) -> None:
        job = self.job
        frac = min(1.0, job.elapsed / self.args.print_seconds)
        total = job.info.layers
        self.f["mc_percent"] = min(99, int(frac * 100))
        self.f["layer_num"] = min(total, 1 + int(frac * total))
        base = job.info.est_seconds or self.args.print_seconds
        self.f["mc_remaining_time"] = math.ceil(base * (1.0 - frac) / 60.0)

    def tick(self, dt: float, now: float) -> bool:
        """Advance the simulation by dt seconds; True when gcode_state changed."""
        with self.lock:
            changed = False
            st = self.f["gcode_state"]
            if self.job and st == "PREPARE" and now - self.job.prepare_started >= self.args.push_interval:
                changed |= self.set_state("RUNNING")
                self._update_progress()
            elif self.job and st == "RUNNING":
                self.job.elapsed += dt
                if self.job.elapsed >= self.args.print_seconds:
                    self.f.update(mc_percent=100, layer_num=self.job.info.layers, mc_remaining_time=0)
                    self._end_job("FINISH")
                    changed = True
                else:
                    self._update_progress()
            k = min(1.0, dt / self.TEMP_TAU)
            for attr, key in (("nozzle", "nozzle_target_temper"), ("bed", "bed_target_temper")):
                target = self.f[key] or AMBIENT
                v = getattr(self, attr)
                v += (target - v) * k
                setattr(self, attr, target if abs(target - v) < 0.5 else v)
            return changed

    def start_job(self, info: GcodeInfo, gcode_file: str, subtask_name: str, task_id: str,
                  subtask_id: str, tray_now: str | None) -> None:
        self.job = Job(info=info, prepare_started=time.monotonic())
        self.f.update(mc_percent=0, layer_num=0, total_layer_num=info.layers,
                      mc_remaining_time=math.ceil((info.est_seconds or self.args.print_seconds) / 60.0),
                      subtask_name=subtask_name, gcode_file=gcode_file, task_id=task_id,
                      subtask_id=subtask_id, gcode_start_time=str(int(time.time())),
                      print_error=0, hms=[])
        self._set_targets(info.nozzle_target, info.bed_target)
        if "ams" in self.f:
            self.f["ams"]["tray_now"] = tray_now or "255"
        self.set_state("PREPARE")

    # ---- stdin control --------------------------------------------------------------------------

    def control(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        cmd, rest = words[0].lower(), words[1:]
        with self.lock:
            changed = False
            if cmd == "error" and len(rest) == 1:
                try:
                    code = int(rest[0], 0)
                except ValueError:
                    log(f"control: bad error code {rest[0]!r}")
                    return
                self.f["print_error"] = code
                self.f["hms"] = self.f["hms"] + [{"attr": code, "code": HMS_SERIOUS}]
                if self.f["gcode_state"] in ("RUNNING", "PREPARE"):
                    changed = self.set_state("PAUSE")
            elif cmd == "clear" and not rest:
                self.f["print_error"] = 0
                self.f["hms"] = []
            elif cmd == "fail" and not rest:
                self.f["print_error"] = FAIL_PRINT_ERROR
                self._end_job("FAILED")
                changed = True
            elif cmd == "devmode" and rest in (["on"], ["off"]):
                self.dev_mode = rest[0] == "on"
                if "fun" in self.f:
                    self.f["fun"] = self._fun()
            elif cmd == "silence" and not rest:
                self.silenced = True
            elif cmd == "tray" and len(rest) == 2 and rest[0] in "0123" and self.trays is not None:
                try:
                    self.trays[int(rest[0])] = None if rest[1] == "empty" else parse_tray(rest[1])
                except argparse.ArgumentTypeError as e:
                    log(f"control: {e}")
                    return
                self.f["ams"]["ams"][0]["tray"] = [self._tray_json(i, t) for i, t in enumerate(self.trays)]
                self.push(full=True)
            else:
                log(f"control: unknown command {line.strip()!r}")
                return
            if changed:
                self.push(full=False)

    # ---- MQTT requests --------------------------------------------------------------------------

    def on_message(self, client, userdata, msg) -> None:
        try:
            req = json.loads(msg.payload)
        except (ValueError, UnicodeDecodeError):
            emit("BAD-REQUEST not-json")
            return
        if not isinstance(req, dict) or not req:
            emit("BAD-REQUEST not-an-object")
            return
        for typ, body in req.items():
            if not isinstance(body, dict) or not isinstance(body.get("command"), str):
                emit(f"BAD-REQUEST no-command-in-{typ}")
                continue
            cmd = body["command"]
            emit(f"COMMAND {typ}.{cmd} {compact(body)}")
            try:
                self.handle(typ, cmd, body)
            except Exception as e:         # never let a request kill the network thread
                log(f"error handling {typ}.{cmd}: {e!r}")

    def handle(self, typ: str, cmd: str, body: dict) -> None:
        with self.lock:
            if (typ, cmd) == ("pushing", "pushall"):
                self.push(full=True)
                return
            if (typ, cmd) == ("pushing", "start"):
                self.silenced = False
                self.reply(typ, body, True, "success")
                self.push(full=False)
                return
            if (typ, cmd) == ("info", "get_version"):
                module = [{"name": "ota", "sw_ver": "01.08.00.00", "sn": self.serial}]
                self.reply(typ, body, True, "", module=module)
                return
            if (typ, cmd) not in READ_ONLY and not self.dev_mode:
                reason, err = VERIFY_FAILED
                self.reply(typ, body, False, reason, err_code=err)
                return
            ours = (typ == "print" and cmd != "ledctrl") or (typ, cmd) == ("system", "ledctrl")
            handler = getattr(self, f"_cmd_{cmd}", None) if ours else None
            if handler is None:
                self.reply(typ, body, False, "unsupported command")
                return
            before = (self.f["gcode_state"], self.f["lights_report"])
            try:
                handler(body)
            except CommandError as e:
                self.reply(typ, body, False, str(e))
                return
            self.reply(typ, body, True, "success")
            if (self.f["gcode_state"], self.f["lights_report"]) != before:
                self.push(full=False)

    # print.* handlers: raise CommandError to refuse (no state change before raising)

    def _require_startable(self) -> None:
        st = self.f["gcode_state"]
        if st in BUSY_STATES:
            raise CommandError(f"printer is busy (gcode_state {st})")

    def _sd_path(self, rel: str) -> str:
        rel = posixpath.normpath("/" + rel).lstrip("/")
        if not rel or rel == "." or rel.startswith("..") or "\x00" in rel:
            raise CommandError(f"invalid file path {rel!r}")
        path = os.path.join(self.sdcard, *rel.split("/"))
        if not os.path.isfile(path):
            raise CommandError(f"file not found on sdcard: {rel}")
        return path

    def _id(self, body: dict, key: str) -> str:
        v = body.get(key, "0")
        s = str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else "0"
        if self.model == "P1S" and s.isdigit() and int(s) > INT32_MAX:
            s = str(INT32_MAX)              # A4: the P1S clamps overflowing ids
        return s

    def _cmd_project_file(self, b: dict) -> None:
        self._require_startable()
        param = b.get("param")
        if not isinstance(param, str) or not re.fullmatch(r"Metadata/plate_\d+\.gcode", param):
            raise CommandError('param must be "Metadata/plate_<N>.gcode"')
        url = b.get("url")
        if not isinstance(url, str):
            raise CommandError("url missing")
        if url.startswith("file:///sdcard/"):
            rel = url[len("file:///sdcard/"):]
        elif url.startswith("ftp://"):
            rel = url[len("ftp://"):].lstrip("/")
        else:
            raise CommandError(f"unsupported url {url!r} (want ftp://<file>, ftp:///<path> or file:///sdcard/<path>)")
        path = self._sd_path(rel)
        try:
            with zipfile.ZipFile(path) as z:
                if param not in z.namelist():
                    raise CommandError(f"{param} not found in {rel}")
                data = z.read(param)
        except (zipfile.BadZipFile, OSError, RuntimeError) as e:
            raise CommandError(f"{rel} is not a readable 3mf/zip file: {e}") from None
        md5 = b.get("md5", "")
        if not isinstance(md5, str):
            raise CommandError("md5 must be a string")
        actual = hashlib.md5(data).hexdigest()
        if md5 and md5.lower() != actual:
            raise CommandError(f"md5 mismatch for {param}: request {md5}, file {actual}")
        use_ams = b.get("use_ams", False)
        if not isinstance(use_ams, bool):
            raise CommandError("use_ams must be a boolean")
        tray_now = None
        if use_ams:
            mapping = b.get("ams_mapping")
            if not isinstance(mapping, list):
                raise CommandError("use_ams is true but ams_mapping is not a list")
            for v in mapping:
                self._check_tray(v)
            if mapping:
                tray_now = str(mapping[0])
        info = inspect_gcode(data)
        subtask = b.get("subtask_name")
        subtask = subtask if isinstance(subtask, str) and subtask else strip_ext(rel)
        self.start_job(info, rel, subtask, self._id(b, "task_id"), self._id(b, "subtask_id"), tray_now)

    def _check_tray(self, v) -> None:
        if not isinstance(v, int) or isinstance(v, bool):
            raise CommandError(f"ams_mapping entry {v!r} is not an integer")
        if v in (254, 255):
            return
        if self.trays is None:
            raise CommandError(f"ams_mapping names tray {v} but no AMS is connected")
        ams_id, tray_id = divmod(v, 4)
        if v < 0 or ams_id != 0:
            raise CommandError(f"ams_mapping names tray {v}, which does not exist")
        if self.trays[tray_id] is None:
            raise CommandError(f"ams_mapping names tray {v} (AMS {ams_id} slot {tray_id}), which is empty")

    def _cmd_gcode_file(self, b: dict) -> None:
        self._require_startable()
        param = b.get("param")
        if not isinstance(param, str) or not param.startswith("/sdcard/"):
            raise CommandError("param must be an absolute path /sdcard/<file>")
        rel = param[len("/sdcard/"):]
        path = self._sd_path(rel)
        if zipfile.is_zipfile(path):
            raise CommandError(f"{rel} is not a plain G-code file (use project_file for 3mf)")
        with open(path, "rb") as fh:
            info = inspect_gcode(fh.read())
        self.start_job(info, rel, strip_ext(rel), self._id(b, "task_id"), self._id(b, "subtask_id"), None)

    def _cmd_pause(self, b: dict) -> None:
        if self.f["gcode_state"] != "RUNNING":
            raise CommandError(f"cannot pause in gcode_state {self.f['gcode_state']}")
        self.set_state("PAUSE")

    def _cmd_resume(self, b: dict) -> None:
        if self.f["gcode_state"] != "PAUSE":
            raise CommandError(f"cannot resume in gcode_state {self.f['gcode_state']}")
        self.set_state("RUNNING")

    def _cmd_stop(self, b: dict) -> None:
        if self.f["gcode_state"] not in BUSY_STATES:
            raise CommandError(f"no print to stop (gcode_state {self.f['gcode_state']})")
        self.f["print_error"] = 0
        self._end_job("FAILED")

    def _cmd_print_speed(self, b: dict) -> None:
        p = b.get("param")
        try:
            lvl = int(p) if isinstance(p, (str, int)) and not isinstance(p, bool) else 0
        except ValueError:
            lvl = 0
        if lvl not in SPEED_MAG:
            raise CommandError(f"invalid speed level {p!r} (want \"1\"..\"4\")")
        self.f["spd_lvl"], self.f["spd_mag"] = lvl, SPEED_MAG[lvl]

    def _cmd_ledctrl(self, b: dict) -> None:
        if b.get("led_node") != "chamber_light" or b.get("led_mode") not in ("on", "off"):
            raise CommandError("only the chamber light, on or off")
        self.f["lights_report"] = [{"node": "chamber_light", "mode": b["led_mode"]}]

    def _cmd_gcode_line(self, b: dict) -> None:
        p = b.get("param")
        if not isinstance(p, str):
            raise CommandError("param must be a string of G-code lines")
        nozzle, bed = temps_in_gcode_lines(p)
        if nozzle is not None:
            self.f["nozzle_target_temper"] = nozzle
        if bed is not None:
            self.f["bed_target_temper"] = bed

    # ---- MQTT connection ------------------------------------------------------------------------

    def connect(self, port: int, timeout: float = 10.0) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False          # the printer talks to its own broker
        ctx.verify_mode = ssl.CERT_NONE
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"printer-{self.serial}",
                        protocol=mqtt.MQTTv311, clean_session=True)
        c.username_pw_set("bblp", self.args.access_code)
        c.tls_set_context(ctx)
        subscribed = threading.Event()
        failure: list[str] = []

        def on_connect(client, userdata, flags, reason_code, properties):
            if reason_code.is_failure:
                failure.append(str(reason_code))
                return
            client.subscribe(self.req_topic, qos=1)

        def on_subscribe(client, userdata, mid, reason_codes, properties):
            subscribed.set()

        c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, self.on_message
        deadline = time.monotonic() + timeout
        while True:
            try:
                c.connect("127.0.0.1", port, keepalive=30)
                break
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"printer client could not connect to mosquitto: {e}") from None
                time.sleep(0.05)
        c.loop_start()
        while not subscribed.is_set() and not failure and time.monotonic() < deadline:
            subscribed.wait(0.05)
        if not subscribed.is_set():
            c.loop_stop()
            raise RuntimeError("printer client was not accepted by mosquitto: "
                               + (failure[0] if failure else "timeout"))
        self.client = c

    def disconnect(self) -> None:
        c, self.client = self.client, None
        if c is not None:
            try:
                c.disconnect()
                c.loop_stop()
            except Exception:
                pass


# --------------------------------------------------------------------------------------------------
# Camera server (P1 and A1)
# --------------------------------------------------------------------------------------------------

class TlsListener:
    """A TLS server socket on a free loopback port with the printer's certificate; each accepted
    connection runs `handle(conn)` on its own thread."""

    def __init__(self, cert: str, key: str, name: str):
        self.name = name
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def serve_forever(self) -> None:
        while not STOP.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            threading.Thread(target=self.handle, args=(conn,), name=self.name, daemon=True).start()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class CameraServer(TlsListener):
    LOGIN_SIZE = 80
    FRAME_INTERVAL = 0.5

    def __init__(self, cert: str, key: str, access_code: str, jpeg: bytes):
        super().__init__(cert, key, "camera")
        self.access_code, self.jpeg = access_code, jpeg

    def handle(self, raw: socket.socket) -> None:
        raw.settimeout(10.0)
        try:
            with self.ctx.wrap_socket(raw, server_side=True) as tls:
                login = b""
                while len(login) < self.LOGIN_SIZE:
                    chunk = tls.recv(self.LOGIN_SIZE - len(login))
                    if not chunk:
                        return
                    login += chunk
                size, kind, flags, zero = struct.unpack("<IIII", login[:16])
                user = login[16:48].rstrip(b"\0").decode("ascii", "replace")
                password = login[48:80].rstrip(b"\0").decode("ascii", "replace")
                if (size, kind, flags, zero) != (0x40, 0x3000, 0, 0) or user != "bblp" \
                        or password != self.access_code:
                    emit("CAMERA-REJECT bad-login")
                    return
                emit("CAMERA-LOGIN")
                header = struct.pack("<IIII", len(self.jpeg), 0, 1, 0)
                while not STOP.is_set():
                    tls.sendall(header + self.jpeg)
                    if STOP.wait(self.FRAME_INTERVAL):
                        return
        except (OSError, ssl.SSLError):
            return


# --------------------------------------------------------------------------------------------------
# Implicit FTPS server
# --------------------------------------------------------------------------------------------------

class FtpsServer(TlsListener):
    def __init__(self, cert: str, key: str, sdcard: str, access_code: str):
        super().__init__(cert, key, "ftps")
        self.sdcard, self.access_code = sdcard, access_code
        # A peer that closes without close_notify (ha-bambulab skips unwrap()) gives a clean EOF;
        # a reset connection still raises (data sockets are wrapped with suppress_ragged_eofs=False).
        self.ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
        self.ctx_lock = threading.Lock()    # num_tickets is read when an SSL object is created

    CONTROL_TICKETS = 8                 # TLS 1.3 tickets per control connection (see module docstring)

    def wrap(self, sock: socket.socket, data: bool) -> ssl.SSLSocket:
        """Server-side TLS for a control (tickets issued) or data (no tickets) connection."""
        with self.ctx_lock:
            self.ctx.num_tickets = 0 if data else self.CONTROL_TICKETS
            return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False,
                                        suppress_ragged_eofs=not data)

    def handle(self, conn: socket.socket) -> None:
        FtpsSession(self, conn).run()


class FtpsSession:
    HANDSHAKE_TIMEOUT = 10.0
    IDLE_TIMEOUT = 300.0
    DATA_TIMEOUT = 30.0
    NEED_LOGIN_OK = {"USER", "PASS", "QUIT", "FEAT", "SYST", "NOOP", "PBSZ", "PROT", "AUTH", "OPTS"}

    def __init__(self, server: FtpsServer, raw: socket.socket):
        self.srv, self.raw = server, raw
        self.ctl: ssl.SSLSocket | None = None
        self.user = None
        self.logged_in = False
        self.prot_p = False
        self.cwd = "/"
        self.pasv: socket.socket | None = None

    # ---- plumbing -------------------------------------------------------------------------------

    def send(self, line: str) -> None:
        self.ctl.sendall((line + "\r\n").encode("utf-8"))

    def run(self) -> None:
        try:
            self.raw.settimeout(self.HANDSHAKE_TIMEOUT)
            self.ctl = self.srv.wrap(self.raw, data=False)
            self.ctl.do_handshake()
        except (ssl.SSLError, OSError) as e:
            emit("FTPS-REJECT tls-handshake-failed")
            log(f"ftps: control TLS handshake failed: {e}")
            self._close(self.raw)
            return
        try:
            self.ctl.settimeout(self.IDLE_TIMEOUT)
            self.send("220 Bambu Lab printer FTPS (hearth simulator) ready.")
            rfile = self.ctl.makefile("rb")
            while not STOP.is_set():
                raw = rfile.readline(4097)
                if not raw:
                    break
                if len(raw) > 4096:
                    self.send("500 Command line too long.")
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb, _, arg = line.partition(" ")
                if not self.dispatch(verb.upper(), arg):
                    break
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            self._close_pasv()
            self._close(self.ctl)

    @staticmethod
    def _close(sock) -> None:
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    def _close_pasv(self) -> None:
        if self.pasv is not None:
            self._close(self.pasv)
            self.pasv = None

    # ---- paths ----------------------------------------------------------------------------------

    def resolve(self, arg: str) -> str | None:
        """FTP path -> name below the root ("x.3mf" or "cache/x.3mf"); None if not allowed."""
        if not arg or "\x00" in arg:
            return None
        p = posixpath.normpath(posixpath.join(self.cwd, arg))
        parts = [x for x in p.split("/") if x]
        if len(parts) == 1 and parts[0] != "cache":
            name = parts[0]
        elif len(parts) == 2 and parts[0] == "cache":
            name = "cache/" + parts[1]
        else:
            return None
        if parts[-1].startswith(".") or ".." in parts:
            return None
        return name

    def local(self, name: str) -> str:
        return os.path.join(self.srv.sdcard, *name.split("/"))

    def dir_for(self, arg: str) -> str | None:
        args = [a for a in arg.split() if not a.startswith("-")]
        p = posixpath.normpath(posixpath.join(self.cwd, args[0] if args else "."))
        return {"/": "", "/cache": "cache"}.get(p)

    # ---- data connections -----------------------------------------------------------------------

    def open_data(self) -> ssl.SSLSocket | None:
        """Accept the passive data connection, send 150, do TLS, check session reuse."""
        if not self.prot_p:
            self._close_pasv()
            emit("FTPS-REJECT data-not-protected")
            self.send("522 Data connections must be encrypted (PROT P).")
            return None
        if self.pasv is None:
            self.send("425 Use PASV or EPSV first.")
            return None
        listener, self.pasv = self.pasv, None
        try:
            listener.settimeout(10.0)
            conn, _ = listener.accept()
        except OSError:
            self.send("425 Failed to establish connection.")
            return None
        finally:
            self._close(listener)
        self.send("150 Ok to send data.")
        try:
            conn.settimeout(self.HANDSHAKE_TIMEOUT)
            data = self.srv.wrap(conn, data=True)
            data.do_handshake()
        except (ssl.SSLError, OSError) as e:
            log(f"ftps: data TLS handshake failed: {e}")
            emit("FTPS-REJECT data-tls-failed")
            self._close(conn)
            self.send("522 SSL connection failed.")
            return None
        if not data.session_reused:
            emit("FTPS-REJECT no-session-reuse")
            self._close(data)
            self.send("522 SSL connection failed: session reuse required")
            return None
        data.settimeout(self.DATA_TIMEOUT)
        return data

    def finish_data(self, data: ssl.SSLSocket) -> None:
        """Send our close_notify (and take the peer's if it comes); a plain close is fine too."""
        try:
            data.settimeout(5.0)
            data.unwrap()
        except (ssl.SSLError, OSError, ValueError):
            pass
        self._close(data)

    def send_data(self, payload: bytes) -> None:
        data = self.open_data()
        if data is None:
            return
        try:
            data.sendall(payload)
        except (ssl.SSLError, OSError):
            self._close(data)
            self.send("426 Failure writing network stream.")
            return
        self.finish_data(data)
        self.send("226 Transfer complete.")

    # ---- commands -------------------------------------------------------------------------------

    def dispatch(self, verb: str, arg: str) -> bool:
        """Handle one command; False ends the session."""
        if not self.logged_in and verb not in self.NEED_LOGIN_OK:
            self.send("530 Please login with USER and PASS.")
            return True
        h = getattr(self, f"cmd_{verb}", None) if verb.isalpha() else None
        if h is None:
            self.send("502 Command not implemented.")
            return True
        return h(arg) is not False

    def cmd_USER(self, arg):
        self.user, self.logged_in = arg, False
        self.send("331 Please specify the password.")

    def cmd_PASS(self, arg):
        if self.user == "bblp" and arg == self.srv.access_code:
            self.logged_in = True
            self.send("230 Login successful.")
        else:
            emit("FTPS-REJECT bad-login")
            self.send("530 Login incorrect.")

    def cmd_AUTH(self, arg):
        self.send("534 Already using implicit TLS.")

    def cmd_PBSZ(self, arg):
        self.send("200 PBSZ set to 0.")

    def cmd_PROT(self, arg):
        if arg.strip().upper() == "P":
            self.prot_p = True
            self.send("200 PROT now Private.")
        else:
            emit("FTPS-REJECT prot-not-private")
            self.send("536 PROT level not supported: this printer requires PROT P.")

    def cmd_OPTS(self, arg):
        if arg.strip().upper() in ("UTF8 ON", "UTF-8 ON"):
            self.send("200 Always in UTF8 mode.")
        else:
            self.send("501 Option not understood.")

    def cmd_FEAT(self, arg):
        self.ctl.sendall(b"211-Features:\r\n EPSV\r\n PASV\r\n PBSZ\r\n PROT\r\n SIZE\r\n UTF8\r\n211 End\r\n")

    def cmd_SYST(self, arg):
        self.send("215 UNIX Type: L8")

    def cmd_NOOP(self, arg):
        self.send("200 NOOP ok.")

    def cmd_QUIT(self, arg):
        self.send("221 Goodbye.")
        return False

    def cmd_TYPE(self, arg):
        t = arg.strip().upper()
        if t.startswith("I") or t == "L 8":
            self.send("200 Switching to Binary mode.")
        elif t.startswith("A"):
            self.send("200 Switching to ASCII mode.")
        else:
            self.send("504 Unrecognised TYPE command.")

    def cmd_PWD(self, arg):
        self.send(f'257 "{self.cwd}" is the current directory')

    def cmd_CWD(self, arg):
        p = posixpath.normpath(posixpath.join(self.cwd, arg.strip() or "/"))
        if p in ("/", "/cache"):
            self.cwd = p
            self.send("250 Directory successfully changed.")
        else:
            self.send("550 Failed to change directory.")

    def cmd_CDUP(self, arg):
        self.cwd = "/"
        self.send("250 Directory successfully changed.")

    def _new_pasv(self) -> int:
        self._close_pasv()
        self.pasv = socket.create_server(("127.0.0.1", 0), backlog=1)
        return self.pasv.getsockname()[1]

    def cmd_PASV(self, arg):
        port = self._new_pasv()
        self.send(f"227 Entering Passive Mode (127,0,0,1,{port >> 8},{port & 0xFF}).")

    def cmd_EPSV(self, arg):
        port = self._new_pasv()
        self.send(f"229 Entering Extended Passive Mode (|||{port}|)")

    def cmd_SIZE(self, arg):
        name = self.resolve(arg.strip())
        if name and os.path.isfile(self.local(name)):
            self.send(f"213 {os.path.getsize(self.local(name))}")
        else:
            self.send("550 Could not get file size.")

    def cmd_DELE(self, arg):
        name = self.resolve(arg.strip())
        try:
            if not name:
                raise FileNotFoundError
            os.unlink(self.local(name))
        except OSError:
            self.send("550 Delete operation failed.")
            return
        emit(f"DELETE {name}")
        self.send("250 Delete operation successful.")

    def _listing(self, arg: str, long: bool) -> bytes | None:
        d = self.dir_for(arg)
        if d is None:
            return None
        base = os.path.join(self.srv.sdcard, d) if d else self.srv.sdcard
        lines = []
        for entry in sorted(os.scandir(base), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not long:
                lines.append(entry.name)
                continue
            st = entry.stat()
            mode = "drwxr-xr-x" if entry.is_dir() else "-rw-r--r--"
            stamp = time.strftime("%b %d %H:%M", time.localtime(st.st_mtime))
            lines.append(f"{mode}    1 0        0 {st.st_size:>12} {stamp} {entry.name}")
        return "".join(l + "\r\n" for l in lines).encode("utf-8")

    def cmd_LIST(self, arg):
        payload = self._listing(arg, long=True)
        if payload is None:
            self._close_pasv()
            self.send("550 No such directory.")
        else:
            self.send_data(payload)

    def cmd_NLST(self, arg):
        payload = self._listing(arg, long=False)
        if payload is None:
            self._close_pasv()
            self.send("550 No such directory.")
        else:
            self.send_data(payload)

    def cmd_RETR(self, arg):
        name = self.resolve(arg.strip())
        try:
            if not name:
                raise FileNotFoundError
            with open(self.local(name), "rb") as fh:
                payload = fh.read()
        except OSError:
            self._close_pasv()
            self.send("550 Failed to open file.")
            return
        self.send_data(payload)

    def cmd_STOR(self, arg):
        name = self.resolve(arg.strip())
        if not name:
            self._close_pasv()
            self.send("553 Could not create file (only the root and /cache/ are writable).")
            return
        data = self.open_data()
        if data is None:
            return
        final = self.local(name)
        tmp = os.path.join(os.path.dirname(final), f".{os.path.basename(final)}.part")
        md5, size, ok = hashlib.md5(), 0, True
        with open(tmp, "wb") as out:
            while True:
                try:
                    chunk = data.recv(65536)  # b"" on close_notify and on a FIN without it
                except ssl.SSLZeroReturnError:
                    chunk = b""
                except (ssl.SSLError, OSError) as e:  # e.g. the connection was reset
                    log(f"ftps: STOR {name}: {e}")
                    ok = False
                    break
                if not chunk:
                    break
                out.write(chunk)
                md5.update(chunk)
                size += len(chunk)
        self.finish_data(data)
        if not ok:
            os.unlink(tmp)
            self.send("426 Failure reading network stream.")
            return
        os.replace(tmp, final)
        emit(f"UPLOAD {name} {size} {md5.hexdigest()}")
        self.send("226 Transfer complete.")


# --------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------

def parse_ams(spec: str):
    entries = spec.split(",")
    if len(entries) > 4:
        raise argparse.ArgumentTypeError("--ams takes at most 4 entries")
    trays = []
    for e in entries + [""] * (4 - len(entries)):
        e = e.strip()
        if not e:
            trays.append(None)
            continue
        trays.append(parse_tray(e))
    return trays


def parse_tray(e: str):
    """`TYPE:RRGGBBAA`, or `TYPE:RRGGBBAA:TRAYUUID` for a Bambu Lab spool with its RFID tag."""
    kind, _, rest = e.partition(":")
    color, _, uuid = rest.partition(":")
    if not kind or not re.fullmatch(r"[0-9A-Fa-f]{8}", color) or (uuid and not re.fullmatch(r"[0-9A-Fa-f]{32}", uuid)):
        raise argparse.ArgumentTypeError(f"bad tray {e!r} (want TYPE:RRGGBBAA[:TRAYUUID] or empty)")
    return (kind, color.upper(), uuid.upper() or None)


def main() -> int:
    ap = argparse.ArgumentParser(description="Bambu Lab LAN-mode printer simulator (MQTT via Mosquitto + implicit FTPS)")
    ap.add_argument("--serial", required=True)
    ap.add_argument("--access-code", required=True)
    ap.add_argument("--cert", required=True, help="PEM server certificate (CN = serial)")
    ap.add_argument("--key", required=True, help="PEM private key of --cert")
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--model", choices=["X1C", "P1S", "A1"], default="X1C")
    ap.add_argument("--dev-mode", choices=["on", "off"], default="on")
    ap.add_argument("--mosquitto", default="/usr/sbin/mosquitto")
    ap.add_argument("--print-seconds", type=float, default=3.0)
    ap.add_argument("--push-interval", type=float, default=0.5)
    ap.add_argument("--ams", type=parse_ams, default=parse_ams("PLA:FFFFFFFF,PLA:000000FF,PETG:FF0000FF,"))
    ap.add_argument("--no-ams", action="store_true")
    ap.add_argument("--camera-jpeg", help="JPEG the P1S/A1 camera server sends as every frame")
    args = ap.parse_args()
    if args.print_seconds <= 0 or args.push_interval <= 0:
        ap.error("--print-seconds and --push-interval must be positive")
    args.ams_trays = None if args.no_ams else args.ams

    state_dir = os.path.abspath(args.state_dir)
    sdcard = os.path.join(state_dir, "sdcard")
    os.makedirs(os.path.join(sdcard, "cache"), exist_ok=True)

    def on_signal(signum, frame):
        STOP.set()
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    broker = Broker(args.mosquitto, state_dir, args.cert, args.key, args.access_code)
    printer = Printer(args, sdcard)
    ftps: FtpsServer | None = None
    camera: CameraServer | None = None

    def cleanup():
        STOP.set()
        printer.disconnect()
        if ftps is not None:
            ftps.close()
        if camera is not None:
            camera.close()
        broker.stop()
    atexit.register(cleanup)

    try:
        mqtt_port = broker.start()          # first, from the main thread (PDEATHSIG is per thread)
        ftps = FtpsServer(args.cert, args.key, sdcard, args.access_code)
        if args.camera_jpeg and args.model in ("P1S", "A1"):
            with open(args.camera_jpeg, "rb") as f:
                camera = CameraServer(args.cert, args.key, args.access_code, f.read())
        printer.connect(mqtt_port)
    except (RuntimeError, OSError, ssl.SSLError, subprocess.SubprocessError) as e:
        log(f"startup failed: {e}")
        return 1

    threading.Thread(target=ftps.serve_forever, name="ftps-accept", daemon=True).start()
    if camera is not None:
        threading.Thread(target=camera.serve_forever, name="camera-accept", daemon=True).start()

    def ticker():
        dt = min(0.05, args.push_interval / 4)
        last = time.monotonic()
        next_push = last + args.push_interval
        while not STOP.wait(dt):
            now = time.monotonic()
            if broker.proc is None or broker.proc.poll() is not None:
                log("mosquitto exited unexpectedly")
                EXIT_CODE[0] = 1
                STOP.set()
                return
            changed = printer.tick(now - last, now)
            last = now
            if changed or now >= next_push:
                printer.push(full=False)
                if now >= next_push:
                    next_push = now + args.push_interval
    threading.Thread(target=ticker, name="ticker", daemon=True).start()

    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdin():
        try:
            for line in sys.stdin:
                lines.put(line)
        except (OSError, ValueError):
            pass
        lines.put(None)
    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()

    emit(f"READY mqtt={mqtt_port} ftps={ftps.port} camera={camera.port if camera else 0}")
    while not STOP.is_set():
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None or line.strip().lower() == "quit":
            break
        printer.control(line)
    cleanup()
    return EXIT_CODE[0]


if __name__ == "__main__":
    sys.exit(main())
