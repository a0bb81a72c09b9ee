#!/usr/bin/env python3
# Copied from the workplace peer recipes (shared/peers/tools/virtual_marlin_pty.py; only this note added), so
# that a clone needs nothing beside it. Runs with the OctoPrint venv scripts/peers.sh installs.
"""Expose OctoPrint's bundled VirtualPrinter (a simulated Marlin firmware) on a pseudo-terminal,
so any serial-port client (e.g. a Rust edge agent using serialport/tokio-serial) can talk to it.
Run with the interpreter of a venv where `pip install octoprint` was done. Needs no OctoPrint server.
usage: virtual_marlin_pty.py [--link /tmp/vmarlin] [--set key=json ...]   (keys = plugins.virtual_printer settings)
prints the pty path; Ctrl-C to stop."""
import argparse, json, os, sys, tempfile, threading, time, tty

import octoprint.plugins.virtual_printer as vp_plugin
import octoprint.plugins.virtual_printer.virtual as virtual

class _PM:                                   # stub plugin manager: no custom-action hooks
    def get_hooks(self, name):
        return {}
virtual.plugin_manager = lambda: _PM()

class Settings:                              # minimal stand-in for OctoPrint's PluginSettings
    def __init__(self, overrides, basefolder):
        self.d = vp_plugin.VirtualPrinterPlugin().get_settings_defaults()
        self.d.update(overrides); self.base = basefolder
    def get(self, path, merged=False, **kw):
        v = self.d
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        return v
    get_boolean = get
    def get_int(self, path, **kw):
        v = self.get(path); return None if v is None else int(v)
    def get_float(self, path, **kw):
        v = self.get(path); return None if v is None else float(v)
    def global_get_basefolder(self, name):
        p = os.path.join(self.base, name); os.makedirs(p, exist_ok=True); return p

class Profiles:
    def get_current_or_default(self):
        return {"volume": {"width": 250, "depth": 210, "height": 210, "origin": "lowerleft",
                           "formFactor": "rectangular", "custom_box": False},
                "extruder": {"count": 1, "sharedNozzle": False}, "heatedBed": True, "heatedChamber": False}

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--link", default=None, help="create a symlink to the pty slave here")
    ap.add_argument("--set", action="append", default=[], help='override, e.g. throttle=0 or forceChecksum=true')
    a = ap.parse_args()
    ov = {}
    for kv in a.set:
        k, v = kv.split("=", 1); ov[k] = json.loads(v)
    base = tempfile.mkdtemp(prefix="vmarlin-")
    printer = virtual.VirtualPrinter(Settings(ov, base), Profiles(), data_folder=base, read_timeout=0.5)
    master, slave = os.openpty()
    tty.setraw(slave)
    name = os.ttyname(slave)
    if a.link:
        if os.path.lexists(a.link): os.unlink(a.link)
        os.symlink(name, a.link)
    print(name, flush=True)

    def to_printer():
        buf = b""
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:
                time.sleep(0.05); continue
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                printer.write(line + b"\n")
    def from_printer():
        while True:
            line = printer.readline()
            if line:
                if not line.endswith(b"\n"):   # VirtualPrinter queues some lines without EOL
                    line += b"\n"
                os.write(master, line)
    threading.Thread(target=to_printer, daemon=True).start()
    threading.Thread(target=from_printer, daemon=True).start()
    try:
        while True: time.sleep(1)
    except KeyboardInterrupt:
        pass

if __name__ == "__main__":
    main()
