#!/usr/bin/env python3
"""A Prusa printer's own PrusaLink (Buddy firmware: MK4, XL, MINI, Core One), simulated for
hearth-drivers' integration tests. Standard library only (Python 3.11).

    prusalink_printer_sim.py --user maker --password PASS [--api-key KEY] [--storage usb]
        [--print-seconds 3.0] [--model MK4|XL|MINI|COREONE]
        [--auth-style prusalink|buddy] [--digest-algorithm MD5|MD5-sess] [--nonce-lifetime S]
        [--ended-job-visible]

It binds 127.0.0.1:0 and prints `READY port=<port>`, then one flushed line per event:

    UPLOAD <storage>/<path> <size> <sha256hex>   a PUT stored a file (path URL-decoded; it may hold
                                                 spaces, so read size and hash from the right)
    START <storage>/<path>                       a print started (POST, or Print-After-Upload: ?1)
    DELETE <storage>/<path>                      a file was deleted
    JOB <state>                                  the job's state changed: PRINTING, PAUSED,
                                                 ATTENTION, FINISHED, STOPPED or ERROR
    AUTH-FAIL <why>                              a request was refused with 401. <why> is one of
                                                 no-credentials (also the first leg of every digest
                                                 exchange), bad-api-key, stale-nonce,
                                                 unknown-nonce, nc-replay, bad-response, bad-uri,
                                                 bad-realm, bad-qop, bad-algorithm, bad-opaque,
                                                 unknown-user, malformed

It reads control lines on stdin and exits at EOF or on `quit`:

    attention <text>   the printer wants the user (a filament runout while printing): state
                       ATTENTION, the print is frozen. PUT .../resume or .../continue, or `continue`
                       or `clear` here, take it back to PRINTING (or IDLE when there was no job).
    error <text>       a printer error: state ERROR; a running job ends as ERROR.
    clear              the user acknowledges the printer's screen: ERROR, FINISHED and STOPPED go
                       to IDLE; ATTENTION continues as above.
    continue           as PUT .../continue from ATTENTION.
    quit               exit.

Sources. "A3" is PROTOCOLS.md section A3 (PrusaLink API v1). "Pi capture" is what the real
PrusaLink 0.8.1 answered (crates/hearth-drivers/tests/fixtures/prusalink/). "Buddy source" is the
printer firmware, prusa3d/Prusa-Firmware-Buddy: lib/WUI/nhttp/req_parser.cpp (digest),
lib/WUI/link_content/prusa_link_api_v1.cpp (routes, job commands), basic_gets.cpp (job, info,
storage, version), lib/WUI/nhttp/status_renderer.cpp (status), gcode_upload.cpp (PUT),
src/state/printer_state.cpp (states, has_job). Where A3 is silent the Buddy source wins over the
Pi capture, because this simulates the printers; where both are silent the choice is our own.

Authentication
* --auth-style prusalink (default, as asked, following the Pi capture and A3): 401 with
  `WWW-Authenticate: Digest realm="Administrator",qop="auth",algorithm="MD5-sess",nonce="<64 hex>",
  opaque="<64 hex>"` (exact format of the capture, `,stale=true` appended when stale).
  --digest-algorithm MD5 announces and checks plain MD5 with qop=auth instead. A request must echo
  realm, qop=auth, the algorithm and the opaque (PoorWSGI checks all four; capture: a request
  without opaque is refused), a nonce we issued, nc, cnonce, a uri equal to the request target
  and a response computed with the request method. Own choices: nonces live --nonce-lifetime
  seconds (default 300; the real 0.8.1 keeps them 60-120 s and binds them to the User-Agent, we
  don't); nc must grow for each nonce (PoorWSGI does not check it; RFC 7616 asks for it).
* --auth-style buddy (Buddy source; what MK4/XL/MINI/Core One firmware does): 401 with
  `WWW-Authenticate: Digest realm="Printer API", nonce="<16 hex>", stale=false|true`, no qop, no
  algorithm, no opaque, so the response is RFC 2069: MD5(HA1:nonce:HA2), HA1 over realm
  "Printer API". The nonce is 8 hex digits random per boot plus 8 hex digits of seconds since boot,
  valid while younger than --nonce-lifetime (default here 5 s, as in the firmware), so a client
  gets stale=true often and must retry with the new nonce. A wrong X-Api-Key gets 401 with
  `WWW-Authenticate: ApiKey realm="Printer API"`. Own choice: the username must be --user (the
  firmware ignores the username field and always hashes "maker").
* Both: stale=true only when the response is right for the old nonce (Buddy source; PoorWSGI
  says stale=true for any unknown nonce, even with a wrong password). X-Api-Key (when --api-key is
  given) is checked before digest; a wrong key is 401 (A3/brief; the Pi answers 403 "Bad X-Api-Key.").

Endpoints (A3 list; shapes from the Buddy source unless noted)
* GET /api/version: {"api":"2.0.0","server":"2.1.2","nozzle_diameter":0.4,"text":"PrusaLink",
  "hostname",...,"capabilities":{"upload-by-put":true}} (Buddy get_version; "api" as on the Pi).
* GET /api/v1/info: nozzle_diameter, mmu, serial, hostname, min_extrusion_temp (Buddy get_info).
* GET /api/v1/status: "job" {id, progress, time_remaining, time_printing} only while there is a
  job; "storage" is ONE object {"path":"/usb/","name":"usb","read_only":false} (the Pi has a
  list); "printer" {state, temp_bed, target_bed, temp_nozzle, target_nozzle, axis_z, axis_x and
  axis_y only when not printing, flow, speed, fan_hotend, fan_print} (status_renderer.cpp). Own
  addition: printer.status_printer {ok:false, message} while ATTENTION/ERROR has a text (a Pi
  field; Buddy has none).
* GET /api/v1/job: 204 when there is no job. With a job: {id, state, progress, time_remaining,
  time_printing, file:{refs:{icon,thumbnail,download}, name, display_name, path, size,
  m_timestamp}}. `path` is the folder ("/usb"), as in the Buddy source; `name` is the long name
  (the firmware gives the 8.3 name there: own simplification). ATTENTION shows as job state PAUSED
  here (Buddy get_job_v1); status and events say ATTENTION.
* DELETE /api/v1/job/{id}: 204 from PRINTING, PAUSED or ATTENTION (then STOPPED), else 409.
  PUT /api/v1/job/{id}/pause: 204 from PRINTING, else 409. .../resume: 204 from PAUSED, and
  (brief; the firmware says 409) from ATTENTION. .../continue (A3; not in the firmware version
  read): 204 from ATTENTION or PAUSED, else 409. Another command: 400. A non-numeric id: 400; an
  id that is not the last job's id: 404; the id check uses the last job even after it ended, so a
  stop of a finished job is 409, not 404 (Buddy: `id != marlin_vars().job_id`).
* GET /api/v1/storage: {"storage_list":[{"path":"/usb/","name":"usb","type":"USB",
  "read_only":false,"available":true}]} (Buddy get_storage; note the trailing slash).
  --storage local|sdcard renames it (type LOCAL|SDCARD).
* PUT /api/v1/files/<storage>/<path>: raw body. No Content-Length (or chunked) -> 411 (A3; Buddy).
  Content-Length 0 is accepted (Buddy; the Pi says 411). Content-Type is ignored (Buddy does not
  read it; the Pi 0.8.1 accepts only text/x.gcode: see the fixtures README). Extension not
  .gcode/.gco/.g/.bgcode/.bgc -> 415 "Not a GCODE" (Buddy check_filename). Exists and
  `Overwrite` is not ?1 -> 409 "File already exists"; the file being printed -> 409 "File is busy"
  (Buddy). `Print-After-Upload: ?1` starts it; when the printer can't print the file stays and the
  answer is 409 "Can't print right now" (Buddy finish()). Boolean headers are true only for
  exactly `?1` (Pi get_boolean_header). Success: 201 with the file's metadata JSON (Buddy answers
  the upload with FileInfo; the Pi answers 201 with an empty body). Sub-folders are created.
* POST same path: 204 starts the print from IDLE, READY, FINISHED or STOPPED (Buddy
  remote_print_ready), else 409; 404 when there is no such file.
* HEAD: 200 with `Read-Only: False` and `Currently-Printed: True|False` (A3 names; the values are
  written as the Pi capture writes them).
* GET: file metadata {type:"PRINT_FILE", name, read_only, m_timestamp, size, display_name,
  refs:{download, icon, thumbnail}, meta:{estimated_print_time}} (Pi capture shape); a folder:
  {type:"FOLDER", name, read_only, m_timestamp, children:[...], display_name}.
* DELETE: 204; 409 while the file is printed (PRINTING, PAUSED, ATTENTION); 404 when missing.
* Error bodies are text/plain "<code>: <reason>\\n\\n<detail>\\n" (Buddy status_page.cpp).

A print (own model)
* PRINTING; progress rises linearly over --print-seconds of printing time (it stops while PAUSED
  or ATTENTION), in whole percents; time_remaining counts down in whole seconds; then FINISHED.
  Telemetry: targets 215 / 60 (or the first M104/M109 S and M140/M190 S of a plain .gcode), actual
  temperatures approach them exponentially (time constant 0.3 s), axis_z rises to 10 mm, fans spin.
* FINISHED and STOPPED stay as printer.state until a new print starts or `clear` (the firmware
  shows them until the user dismisses the screen). As in the firmware's has_job(), the ended job
  is gone at once: GET /api/v1/job answers 204 and status has no "job". With --ended-job-visible
  the ended job stays visible with state FINISHED/STOPPED/ERROR until the next print or `clear`
  (closer to PrusaLink on a Pi).
* .gcode and .bgcode print alike; the content is not parsed beyond the temperatures above.
"""
import argparse
import hashlib
import http.server
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.parse

GCODE_EXTENSIONS = (".gcode", ".gco", ".g", ".bgcode", ".bgc")
STORAGE_TYPES = {"usb": "USB", "local": "LOCAL", "sdcard": "SDCARD"}
MODELS = {
    "MK4": "prusa-mk4",
    "XL": "prusa-xl",
    "MINI": "prusa-mini",
    "COREONE": "prusa-core-one",
}
AMBIENT = 25.0
ACTIVE_JOB = ("PRINTING", "PAUSED", "ATTENTION")
CAN_START = ("IDLE", "READY", "FINISHED", "STOPPED")

_out_lock = threading.Lock()


def emit(line):
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


class Refused(Exception):
    def __init__(self, why, stale=False):
        super().__init__(why)
        self.why = why
        self.stale = stale


class HttpError(Exception):
    def __init__(self, status, reason, detail=""):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail


# --- authentication --------------------------------------------------------------------------

class DigestAuth:
    def __init__(self, args):
        self.user = args.user
        self.password = args.password
        self.api_key = args.api_key
        self.style = args.auth_style
        self.algorithm = args.digest_algorithm
        self.lifetime = args.nonce_lifetime
        self.lock = threading.Lock()
        self.started = time.monotonic()
        if self.style == "buddy":
            self.realm = "Printer API"
            self.boot_random = secrets.randbits(32) or 1
        else:
            self.realm = "Administrator"
            self.secret = secrets.token_hex(16)
            self.opaque = hashlib.sha256(b"prusalink-printer-sim").hexdigest()
            self.nonces = {}  # nonce -> [issued (monotonic), highest nc seen]

    # challenges
    def new_nonce(self):
        if self.style == "buddy":
            age = int(time.monotonic() - self.started) & 0xFFFFFFFF
            return f"{self.boot_random:08x}{age:08x}"
        with self.lock:
            now = time.monotonic()
            for n in [n for n, (t, _) in self.nonces.items() if now - t > 2 * self.lifetime]:
                del self.nonces[n]
            nonce = hashlib.sha256(f"{self.secret}:{now}:{secrets.token_hex(8)}".encode()).hexdigest()
            self.nonces[nonce] = [now, 0]
            return nonce

    def challenge(self, stale):
        nonce = self.new_nonce()
        if self.style == "buddy":
            return f'Digest realm="{self.realm}", nonce="{nonce}", stale={"true" if stale else "false"}'
        header = (f'Digest realm="{self.realm}",qop="auth",algorithm="{self.algorithm}",'
                  f'nonce="{nonce}",opaque="{self.opaque}"')
        return header + (",stale=true" if stale else "")

    def api_key_challenge(self):
        if self.style == "buddy":
            return 'ApiKey realm="Printer API"'
        return self.challenge(False)

    # checks
    def check(self, method, target, headers):
        """Returns None when the request may pass; raises Refused otherwise."""
        key = headers.get("X-Api-Key")
        if key is not None and self.api_key:
            if secrets.compare_digest(key, self.api_key):
                return
            raise Refused("bad-api-key")
        auth = headers.get("Authorization")
        if not auth or not auth.lower().startswith("digest "):
            raise Refused("no-credentials")
        params = dict((m.group(1).lower(), m.group(3) if m.group(3) is not None else m.group(4))
                      for m in re.finditer(r'(\w+)\s*=\s*("([^"]*)"|([^,\s]*))', auth[7:]))
        for field in ("username", "realm", "nonce", "uri", "response"):
            if field not in params:
                raise Refused("malformed")
        if params["realm"] != self.realm:
            raise Refused("bad-realm")
        if params["username"] != self.user:
            raise Refused("unknown-user")
        if urllib.parse.unquote(params["uri"]) != urllib.parse.unquote(target):
            raise Refused("bad-uri")
        if self.style == "buddy":
            self._check_buddy(method, params)
        else:
            self._check_prusalink(method, params)

    def _check_buddy(self, method, p):
        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        ha2 = md5(f"{method}:{p['uri']}")
        right = secrets.compare_digest(md5(f"{ha1}:{p['nonce']}:{ha2}"), p["response"].lower())
        nonce = p["nonce"]
        valid = False
        if re.fullmatch(r"[0-9a-fA-F]{16}", nonce):
            rnd, issued = int(nonce[:8], 16), int(nonce[8:], 16)
            age = int(time.monotonic() - self.started) - issued
            valid = rnd == self.boot_random and 0 <= age < self.lifetime
        if not valid:
            raise Refused("stale-nonce" if right else "unknown-nonce", stale=right)
        if not right:
            raise Refused("bad-response")

    def _check_prusalink(self, method, p):
        if p.get("algorithm") != self.algorithm:
            raise Refused("bad-algorithm")
        if p.get("qop") != "auth" or "nc" not in p or "cnonce" not in p:
            raise Refused("bad-qop")
        if p.get("opaque") != self.opaque:
            raise Refused("bad-opaque")
        ha1 = md5(f"{self.user}:{self.realm}:{self.password}")
        if self.algorithm == "MD5-sess":
            ha1 = md5(f"{ha1}:{p['nonce']}:{p['cnonce']}")
        ha2 = md5(f"{method}:{p['uri']}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}")
        right = secrets.compare_digest(expected, p["response"].lower())
        try:
            nc = int(p["nc"], 16)
        except ValueError as err:
            raise Refused("malformed") from err
        with self.lock:
            entry = self.nonces.get(p["nonce"])
            if entry is None:
                raise Refused("unknown-nonce", stale=right)
            if time.monotonic() - entry[0] > self.lifetime:
                raise Refused("stale-nonce" if right else "bad-response", stale=right)
            if not right:
                raise Refused("bad-response")
            if nc <= entry[1]:
                raise Refused("nc-replay")
            entry[1] = nc


# --- the printer -----------------------------------------------------------------------------

class Printer:
    def __init__(self, args):
        self.lock = threading.RLock()
        self.args = args
        self.storage = args.storage
        self.hostname = MODELS[args.model]
        self.files = {}  # path within storage -> {"size", "sha256", "m_timestamp", "temps"}
        self.folders = {"": int(time.time())}
        self.state = "IDLE"
        self.job = None  # dict while a job exists (also an ended one, see has_job)
        self.last_job_id = 0
        self.message = None
        self.t_nozzle = self.t_bed = AMBIENT
        self.last_tick = time.monotonic()

    # --- time ---
    def tick(self):
        with self.lock:
            now = time.monotonic()
            dt, self.last_tick = now - self.last_tick, now
            job = self.job
            if self.state == "PRINTING" and self.active():
                job["printed"] += dt
                if job["printed"] >= self.args.print_seconds:
                    job["printed"] = self.args.print_seconds
                    self._end_job("FINISHED")
            target_n, target_b = self.targets()
            target_n, target_b = max(target_n, AMBIENT), max(target_b, AMBIENT)  # 0 = heater off
            k = 1.0 - pow(2.718281828, -dt / 0.3)
            self.t_nozzle += (target_n - self.t_nozzle) * k
            self.t_bed += (target_b - self.t_bed) * k

    def active(self):
        """A job is running: PRINTING, PAUSED or ATTENTION with a job that has not ended."""
        return bool(self.job and not self.job["ended"] and self.state in ACTIVE_JOB)

    def targets(self):
        return self.job["temps"] if self.active() else (0.0, 0.0)

    def _set_job_state(self, state):
        self.state = state
        if self.job:
            self.job["state"] = state
        emit(f"JOB {state}")

    def _end_job(self, state):
        self._set_job_state(state)
        self.job["ended"] = True

    def has_job(self):
        if self.active():
            return True
        return bool(self.job and self.job["ended"] and self.args.ended_job_visible)

    def progress(self):
        job = self.job
        pct = 100.0 * job["printed"] / self.args.print_seconds if self.args.print_seconds > 0 else 100.0
        return float(int(min(100.0, pct)))

    def time_remaining(self):
        left = max(0.0, self.args.print_seconds - self.job["printed"])
        return int(left + 0.999)

    # --- actions (caller holds the lock) ---
    def start(self, path):
        if self.state not in CAN_START:
            raise HttpError(409, "Conflict", "Can't print right now")
        info = self.files[path]
        self.last_job_id += 1
        self.message = None
        self.job = {"id": self.last_job_id, "path": path, "printed": 0.0, "state": "PRINTING",
                    "temps": info["temps"], "ended": False}
        emit(f"START {self.storage}/{path}")
        self._set_job_state("PRINTING")

    def is_printed(self, path):
        return self.active() and self.job["path"] == path

    def job_command(self, job_id, command):
        if self.last_job_id == 0 or job_id != self.last_job_id:
            raise HttpError(404, "Not Found", "Given job id does not belong to current job")
        if command == "stop":
            if not self.active():
                raise HttpError(409, "Conflict")
            self._end_job("STOPPED")
        elif command == "pause":
            if not self.active() or self.state != "PRINTING":
                raise HttpError(409, "Conflict")
            self._set_job_state("PAUSED")
        elif command == "resume":
            if not self.active() or self.state not in ("PAUSED", "ATTENTION"):
                raise HttpError(409, "Conflict")
            self.message = None
            self._set_job_state("PRINTING")
        elif command == "continue":
            if not self.active() or self.state not in ("ATTENTION", "PAUSED"):
                raise HttpError(409, "Conflict")
            self.message = None
            self._set_job_state("PRINTING")
        else:
            raise HttpError(400, "Bad Request", f"Unknown command {command}")

    def control(self, line):
        cmd, _, text = line.strip().partition(" ")
        with self.lock:
            self.tick()
            if cmd == "attention":
                self.message = text or "Attention"
                if self.active():
                    self._set_job_state("ATTENTION")
                else:
                    self.state = "ATTENTION"
            elif cmd == "error":
                self.message = text or "Error"
                if self.active():
                    self._end_job("ERROR")
                else:
                    self.state = "ERROR"
            elif cmd in ("clear", "continue"):
                if self.state == "ATTENTION":
                    self.message = None
                    if self.active():
                        self._set_job_state("PRINTING")
                    else:
                        self.state = "IDLE"
                        self.job = None
                elif cmd == "clear" and self.state in ("ERROR", "FINISHED", "STOPPED"):
                    self.message = None
                    self.state = "IDLE"
                    self.job = None
            elif cmd == "quit":
                return False
            elif cmd:
                print(f"prusalink_printer_sim: unknown control line {line.strip()!r}",
                      file=sys.stderr, flush=True)
        return True

    # --- JSON ---
    def file_meta(self, path):
        info = self.files[path]
        name = path.rsplit("/", 1)[-1]
        full = f"/{self.storage}/{path}"
        return {
            "type": "PRINT_FILE", "name": name, "read_only": False,
            "m_timestamp": info["m_timestamp"], "size": info["size"], "display_name": name,
            "refs": {"download": full, "icon": f"/thumb/s{full}", "thumbnail": f"/thumb/l{full}"},
            "meta": {"estimated_print_time": int(self.args.print_seconds)},
        }

    def folder_meta(self, folder):
        prefix = folder + "/" if folder else ""
        children, seen = [], set()
        for sub in sorted(self.folders):
            if sub and sub.startswith(prefix) and "/" not in sub[len(prefix):]:
                name = sub[len(prefix):]
                children.append({"type": "FOLDER", "name": name, "read_only": False,
                                 "m_timestamp": self.folders[sub], "display_name": name})
                seen.add(name)
        for path in sorted(self.files):
            if path.startswith(prefix) and "/" not in path[len(prefix):]:
                meta = self.file_meta(path)
                del meta["meta"]
                children.append(meta)
        name = folder.rsplit("/", 1)[-1] if folder else self.storage
        return {"type": "FOLDER", "name": name, "read_only": False,
                "m_timestamp": self.folders.get(folder, 0), "children": children,
                "display_name": name}

    def status_json(self):
        out = {}
        if self.has_job():
            out["job"] = self.job_summary()
        out["storage"] = {"path": f"/{self.storage}/", "name": self.storage, "read_only": False}
        printing = self.active()
        tn, tb = self.targets()
        z = 0.2 + 9.8 * self.progress() / 100.0 if printing else 10.0
        printer = {
            "state": self.state,
            "temp_bed": round(self.t_bed, 1), "target_bed": round(tb, 1),
            "temp_nozzle": round(self.t_nozzle, 1), "target_nozzle": round(tn, 1),
            "axis_z": round(z, 1),
        }
        if not printing:
            printer["axis_x"] = 241.0
            printer["axis_y"] = 170.0
        printer.update({
            "flow": 100, "speed": 100,
            "fan_hotend": 6800 if self.t_nozzle > 50 else 0,
            "fan_print": 4500 if self.state == "PRINTING" else 0,
        })
        if self.message and self.state in ("ATTENTION", "ERROR"):
            printer["status_printer"] = {"ok": False, "message": self.message}
        out["printer"] = printer
        return out

    def job_summary(self):
        out = {"id": self.job["id"], "progress": self.progress()}
        if self.active():
            out["time_remaining"] = self.time_remaining()
        out["time_printing"] = int(self.job["printed"])
        return out

    def job_json(self):
        job = self.job
        state = {"ATTENTION": "PAUSED"}.get(job["state"], job["state"])
        out = {"id": job["id"], "state": state, "progress": self.progress()}
        if self.active():
            out["time_remaining"] = self.time_remaining()
        out["time_printing"] = int(job["printed"])
        path = job["path"]
        full = f"/{self.storage}/{path}"
        folder = full.rsplit("/", 1)[0]
        info = self.files.get(path)
        file_ = {"refs": {"icon": f"/thumb/s{full}", "thumbnail": f"/thumb/l{full}",
                          "download": full},
                 "name": path.rsplit("/", 1)[-1], "display_name": path.rsplit("/", 1)[-1],
                 "path": folder}
        if info:
            file_["size"] = info["size"]
            file_["m_timestamp"] = info["m_timestamp"]
        out["file"] = file_
        return out


def gcode_temps(head):
    nozzle = bed = None
    for m in re.finditer(rb"^\s*M(104|109|140|190)\s[^;\n]*?S(\d+(?:\.\d+)?)", head, re.M):
        value = float(m.group(2))
        if m.group(1) in (b"104", b"109") and nozzle is None and value > 0:
            nozzle = value
        elif m.group(1) in (b"140", b"190") and bed is None and value > 0:
            bed = value
    return (nozzle or 215.0, bed or 60.0)


# --- HTTP --------------------------------------------------------------------------------------

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "PrusaLink"
    sys_version = ""
    printer: Printer = None
    auth: DigestAuth = None

    def log_message(self, format, *args):  # noqa: A002 - keep stderr quiet
        pass

    def version_string(self):
        return "PrusaLink"

    # plumbing
    def _drain(self):
        length = self.headers.get("Content-Length")
        if length is None or getattr(self, "_drained", False):
            return
        self._drained = True
        left = int(length)
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                break
            left -= len(chunk)

    def _send(self, status, body=b"", content_type="application/json", headers=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def _error(self, status, reason, detail=""):
        body = "" if status == 204 else f"{status}: {reason}\n\n{detail}\n"
        self._send(status, body.encode(), "text/plain")

    def _authorize(self):
        try:
            self.auth.check(self.command, self.path, self.headers)
            return True
        except Refused as refused:
            emit(f"AUTH-FAIL {refused.why}")
            self._drain()
            if refused.why == "bad-api-key":
                header = self.auth.api_key_challenge()
            else:
                header = self.auth.challenge(refused.stale)
            body = b"401: Unauthorized\n\n\n"
            self.send_response(401)
            self.send_header("Content-Type", "text/plain")
            self.send_header("WWW-Authenticate", header)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return False

    def _dispatch(self):
        self._drained = False
        try:
            if not self._authorize():
                return
            route = urllib.parse.urlsplit(self.path).path
            p = self.printer
            with p.lock:
                p.tick()
            if route == "/api/version":
                self._get_only()
                return self._send(200, {"api": "2.0.0", "server": "2.1.2", "nozzle_diameter": 0.4,
                                        "text": "PrusaLink", "hostname": p.hostname,
                                        "capabilities": {"upload-by-put": True}})
            if route == "/api/v1/info":
                self._get_only()
                return self._send(200, {"nozzle_diameter": 0.4, "mmu": False,
                                        "serial": f"SIM{self.printer.args.model}0000000001",
                                        "hostname": p.hostname, "min_extrusion_temp": 170})
            if route == "/api/v1/status":
                self._get_only()
                with p.lock:
                    return self._send(200, p.status_json())
            if route == "/api/v1/storage":
                self._get_only()
                return self._send(200, {"storage_list": [{
                    "path": f"/{p.storage}/", "name": p.storage,
                    "type": STORAGE_TYPES.get(p.storage, "USB"), "read_only": False,
                    "available": True}]})
            if route == "/api/v1/job":
                self._get_only()
                with p.lock:
                    if not p.has_job():
                        return self._send(204)
                    return self._send(200, p.job_json())
            if route.startswith("/api/v1/job/"):
                return self._job(route[len("/api/v1/job/"):])
            if route.startswith("/api/v1/files/"):
                return self._files(route[len("/api/v1/files/"):])
            raise HttpError(404, "Not Found")
        except HttpError as err:
            self._drain()
            self._error(err.status, err.reason, err.detail)

    def _get_only(self):
        if self.command not in ("GET", "HEAD"):
            raise HttpError(405, "Method Not Allowed")

    def _job(self, rest):
        id_part, _, command = rest.partition("/")
        if not id_part.isdigit():
            raise HttpError(400, "Bad Request")
        if self.command == "DELETE" and not command:
            action = "stop"
        elif self.command == "PUT" and command:
            action = command
        else:
            raise HttpError(405, "Method Not Allowed")
        with self.printer.lock:
            self.printer.job_command(int(id_part), action)
        self._send(204)

    def _files(self, rest):
        storage, _, raw_path = rest.partition("/")
        p = self.printer
        if storage != p.storage:
            raise HttpError(404, "Not Found", "Location not found")
        path = urllib.parse.unquote(raw_path).strip("/")
        parts = path.split("/") if path else []
        if any(part in ("", ".", "..") for part in parts):
            raise HttpError(400, "Bad Request", "Invalid path")
        method = self.command
        if method == "PUT":
            return self._upload(path)
        with p.lock:
            is_file = path in p.files
            is_folder = not is_file and path in p.folders
            if method in ("GET", "HEAD"):
                if is_file:
                    headers = {"Read-Only": "False",
                               "Currently-Printed": "True" if p.is_printed(path) else "False"}
                    return self._send(200, p.file_meta(path), headers=headers)
                if is_folder:
                    return self._send(200, p.folder_meta(path),
                                      headers={"Read-Only": "False", "Currently-Printed": "False"})
                raise HttpError(404, "Not Found", "File not found")
            if method == "POST":
                if not is_file:
                    raise HttpError(404, "Not Found", "File not found")
                p.start(path)
                return self._send(204)
            if method == "DELETE":
                if is_file:
                    if p.is_printed(path):
                        raise HttpError(409, "Conflict", "File is busy")
                    del p.files[path]
                    emit(f"DELETE {p.storage}/{path}")
                    return self._send(204)
                if is_folder and path:
                    inside = [f for f in list(p.files) + list(p.folders) if f.startswith(path + "/")]
                    if inside and self.headers.get("Force") != "?1":
                        raise HttpError(409, "Conflict", "Folder is not empty")
                    if any(p.is_printed(f) for f in inside):
                        raise HttpError(409, "Conflict", "File is busy")
                    for f in inside:
                        p.files.pop(f, None)
                        p.folders.pop(f, None)
                    del p.folders[path]
                    emit(f"DELETE {p.storage}/{path}")
                    return self._send(204)
                raise HttpError(404, "Not Found", "File not found")
        raise HttpError(405, "Method Not Allowed")

    def _upload(self, path):
        p = self.printer
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit() or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise HttpError(411, "Length Required")
        if not path or not path.lower().endswith(GCODE_EXTENSIONS):
            raise HttpError(415, "Unsupported Media Type", "Not a GCODE")
        overwrite = self.headers.get("Overwrite") == "?1"
        print_after = self.headers.get("Print-After-Upload") == "?1"
        with p.lock:
            if path in p.folders:
                raise HttpError(409, "Conflict", "A folder has that name")
            if path in p.files:
                if not overwrite:
                    raise HttpError(409, "Conflict", "File already exists")
                if p.is_printed(path):
                    raise HttpError(409, "Conflict", "File is busy")
        left, digest, head = int(length), hashlib.sha256(), b""
        self._drained = True
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 16))
            if not chunk:
                self.close_connection = True
                raise HttpError(400, "Bad Request", "Truncated body")
            digest.update(chunk)
            if len(head) < 65536:
                head += chunk[:65536 - len(head)]
            left -= len(chunk)
        temps = gcode_temps(head) if not path.lower().endswith((".bgcode", ".bgc")) else (215.0, 60.0)
        with p.lock:
            # the checks again: another request may have raced us while the body was read
            if path in p.files and (not overwrite or p.is_printed(path)):
                raise HttpError(409, "Conflict",
                                "File is busy" if overwrite else "File already exists")
            now = int(time.time())
            folder = ""
            for part in path.split("/")[:-1]:
                folder = f"{folder}/{part}" if folder else part
                p.folders.setdefault(folder, now)
            p.files[path] = {"size": int(length), "sha256": digest.hexdigest(),
                             "m_timestamp": now, "temps": temps}
            emit(f"UPLOAD {p.storage}/{path} {length} {digest.hexdigest()}")
            if print_after:
                try:
                    p.tick()
                    p.start(path)
                except HttpError as err:
                    raise HttpError(409, "Conflict", "Can't print right now") from err
            return self._send(201, p.file_meta(path))

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _dispatch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--user", default="maker")
    ap.add_argument("--password", required=True)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--storage", default="usb")
    ap.add_argument("--print-seconds", type=float, default=3.0)
    ap.add_argument("--model", default="MK4", type=str.upper, choices=sorted(MODELS))
    ap.add_argument("--auth-style", choices=("prusalink", "buddy"), default="prusalink")
    ap.add_argument("--digest-algorithm", choices=("MD5", "MD5-sess"), default="MD5-sess")
    ap.add_argument("--nonce-lifetime", type=float, default=None,
                    help="seconds (default 300; 5 with --auth-style buddy)")
    ap.add_argument("--ended-job-visible", action="store_true")
    args = ap.parse_args()
    if args.nonce_lifetime is None:
        args.nonce_lifetime = 5.0 if args.auth_style == "buddy" else 300.0

    Handler.printer = Printer(args)
    Handler.auth = DigestAuth(args)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def ticker():
        while True:
            time.sleep(0.05)
            Handler.printer.tick()

    threading.Thread(target=ticker, daemon=True).start()
    emit(f"READY port={server.server_address[1]}")

    for line in sys.stdin:
        if not Handler.printer.control(line):
            break
    server.shutdown()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
