#!/usr/bin/env python3
"""The real PrusaLink 0.8.1 (Raspberry Pi build) as a peer for hearth-drivers' integration tests.

Run it with the `prusalink` venv that scripts/peers.sh installs:

    $HOME/.cache/hearth-peers/prusalink/bin/python prusalink_peer.py \\
        --dir DIR --user maker --password PASS [--api-key KEY] [--serial-port PATH]

It prints exactly one line `READY port=<port>` on stdout once PrusaLink, on 127.0.0.1:<port>,
answers an authenticated `GET /api/version` with 200 and lists `/local` as available in
`GET /api/v1/storage` (about 5.5 s after launch), and nothing else on stdout. It stays up until stdin
reaches EOF or it gets SIGTERM/SIGINT, then ends PrusaLink's whole process group. It exits 1 with a
message on stderr when PrusaLink does not come up within 60 s (or dies before).

What goes into DIR (created if missing; reusable across runs):

* `prusalink.ini`: [daemon] data_dir = DIR; [http] address 127.0.0.1, port 0 (PrusaLink binds the
  free port itself; see "port" below); [printer] port = the serial device, `DIR/no-such-serial` by
  default: it does not exist, so PrusaLink opens no real hardware and its printer stays in state
  ERROR ("Serial device does not exist"); directory = `DIR/PrusaLink gcodes` (PrusaLink's default
  folder name; this folder is the `/local` storage of the API); [cameras] auto_detect = False.
* `prusa_printer_settings.ini`: [printer] type = MK3S (without a type PrusaLink runs its set-up
  wizard instead of the API); [service::local] username, `digest` = md5("user:Administrator:pass")
  and `api_key`; [service::connect] token empty (no Prusa Connect).
* `prusalink.log`: PrusaLink's own log (stderr). Its tail goes to our stderr when it fails to start.
* `http.port`: the port PrusaLink bound, written by the child (below).
* PrusaLink's own files: prusalink.pid, threshold.data.

The child. PrusaLink runs as `python prusalink_peer.py --child DIR` in a new session (its own process
group) with PR_SET_PDEATHSIG=SIGKILL, so nothing survives a SIGKILLed launcher. The child patches
three things in PrusaLink before calling its normal `main()` (`prusalink -f -c DIR/prusalink.ini`):

* Service discovery (zeroconf, mDNS multicast on every interface, plus self-pings to ports 80 and
  the configured one) is replaced by a no-op: tests must send no traffic off loopback.
* PrusaLink refuses storage folders under /dev, /sys, /proc and /tmp (`const.BLACKLISTED_PATHS`;
  it logs "Ignoring ... because it's blacklisted by /tmp" and then has no /local storage). Test
  directories live under /tmp, so "/tmp" is taken out of that list.
* `make_server` is wrapped so that the port actually bound (the ini asks for port 0) is written to
  DIR/http.port; the launcher reads it from there. No port race.

PrusaLink 0.8.1 runs as root in foreground mode (it only drops to the [daemon] user when it
daemonizes), so no extra system user is needed.
"""
import argparse
import ctypes
import hashlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time

REALM = "Administrator"  # prusa/link/web/lib/auth.py
START_TIMEOUT = 60.0


# --- child side: runs inside the venv, in its own process group ---------------------------------

def run_child(data_dir):
    # pylint: disable=import-outside-toplevel
    import prusa.link.const as const

    if "/tmp" in const.BLACKLISTED_PATHS:
        const.BLACKLISTED_PATHS.remove("/tmp")  # same list object storage.py imported

    import prusa.link.service_discovery as sd

    class NoServiceDiscovery:
        def __init__(self, port):
            self.port = port

        def unregister(self):
            pass

    sd.ServiceDiscovery = NoServiceDiscovery
    import prusa.link.printer_adapter.prusa_link as pl
    pl.ServiceDiscovery = NoServiceDiscovery

    import prusa.link.web as web
    real_make_server = web.make_server

    def make_server(host, port, app, **kwargs):
        server = real_make_server(host, port, app, **kwargs)
        tmp = os.path.join(data_dir, "http.port.tmp")
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{server.server_address[1]}\n")
        os.replace(tmp, os.path.join(data_dir, "http.port"))
        return server

    web.make_server = make_server

    from prusa.link.__main__ import main
    sys.argv = ["prusalink", "-f", "-c", os.path.join(data_dir, "prusalink.ini")]
    sys.exit(main())


# --- launcher side -------------------------------------------------------------------------------

def write_config(data_dir, user, password, api_key, serial_port):
    os.makedirs(os.path.join(data_dir, "PrusaLink gcodes"), exist_ok=True)
    with open(os.path.join(data_dir, "prusalink.ini"), "w", encoding="utf-8") as f:
        f.write(f"""[daemon]
data_dir = {data_dir}

[http]
address = 127.0.0.1
port = 0

[printer]
port = {serial_port}
directory = ./PrusaLink gcodes

[cameras]
auto_detect = False
""")
    digest = hashlib.md5(f"{user}:{REALM}:{password}".encode()).hexdigest()
    with open(os.path.join(data_dir, "prusa_printer_settings.ini"), "w", encoding="utf-8") as f:
        f.write(f"""[printer]
type = MK3S
name = Hearth test printer
location = test bench
farm_mode = False

[network]
hostname = prusalink-peer

[service::connect]
hostname = connect.prusa3d.com
tls = True
port = 0
token =

[service::local]
enable = 1
username = {user}
digest = {digest}
api_key = {api_key}
""")


def parse_challenge(header):
    """Parses `Digest k="v",k=v,...` (values here contain no commas)."""
    out = {}
    for part in header.split(" ", 1)[1].split(","):
        key, _, value = part.strip().partition("=")
        out[key] = value.strip('"')
    return out


def digest_get(port, path, user, password):
    """GET with HTTP Digest (MD5 / MD5-sess, qop=auth) the way curl --digest does it.

    Returns (status, body). PrusaLink binds its nonces to the User-Agent; http.client sends none on
    either request, so they match."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        body = res.read()
        if res.status != 401:
            return res.status, body
        ch = parse_challenge(res.getheader("WWW-Authenticate", ""))
        algo = ch.get("algorithm", "MD5")
        cnonce, nc = secrets.token_hex(8), "00000001"

        def md5(s):
            return hashlib.md5(s.encode()).hexdigest()

        ha1 = md5(f"{user}:{ch['realm']}:{password}")
        if algo.lower().endswith("-sess"):
            ha1 = md5(f"{ha1}:{ch['nonce']}:{cnonce}")
        ha2 = md5(f"GET:{path}")
        resp = md5(f"{ha1}:{ch['nonce']}:{nc}:{cnonce}:auth:{ha2}")
        auth = (f'Digest username="{user}", realm="{ch["realm"]}", nonce="{ch["nonce"]}", '
                f'uri="{path}", cnonce="{cnonce}", nc={nc}, qop=auth, response="{resp}", '
                f'algorithm="{algo}"')
        if "opaque" in ch:
            auth += f', opaque="{ch["opaque"]}"'
        conn.request("GET", path, headers={"Authorization": auth})
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def local_storage_ready(port, user, password):
    status, _ = digest_get(port, "/api/version", user, password)
    if status != 200:
        return False
    status, body = digest_get(port, "/api/v1/storage", user, password)
    if status != 200:
        return False
    storages = json.loads(body)["storage_list"]
    return any(s.get("path") == "/local" and s.get("available") for s in storages)


def set_pdeathsig():
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)


def fail(msg, log_path=None):
    print(f"prusalink_peer: {msg}", file=sys.stderr)
    if log_path and os.path.exists(log_path):
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = f.readlines()[-40:]
        sys.stderr.write("prusalink_peer: last lines of prusalink.log:\n" + "".join(tail))
    sys.stderr.flush()


def kill_group(proc):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left in the group
    except ProcessLookupError:
        pass
    proc.wait()


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        run_child(sys.argv[2])
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--user", default="maker")
    ap.add_argument("--password", required=True)
    ap.add_argument("--api-key", default="")
    ap.add_argument("--serial-port", default=None,
                    help="serial device for PrusaLink (default: DIR/no-such-serial, absent)")
    args = ap.parse_args()

    data_dir = os.path.abspath(args.dir)
    os.makedirs(data_dir, exist_ok=True)
    serial_port = args.serial_port or os.path.join(data_dir, "no-such-serial")
    write_config(data_dir, args.user, args.password, args.api_key, serial_port)
    port_file = os.path.join(data_dir, "http.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    log_path = os.path.join(data_dir, "prusalink.log")

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    env = dict(os.environ, HOME=data_dir, PYTHONUNBUFFERED="1")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn
            [sys.executable, os.path.abspath(__file__), "--child", data_dir],
            cwd=data_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            start_new_session=True, preexec_fn=set_pdeathsig)
    try:
        # PrusaLink gives no readiness signal of its own (no sd_notify, no line on a pipe), so we
        # poll: first for the port file, then for an authenticated GET /api/version == 200 (it
        # answers 503 until the printer adapter object exists), then for GET /api/v1/storage to
        # list /local as available (its storage scanner attaches the folder a moment later, and a
        # PUT before that answers 404). Short sleeps, bounded by 60 s.
        deadline = time.monotonic() + START_TIMEOUT
        port = None
        while True:
            if stop.is_set():
                return 0
            if proc.poll() is not None:
                fail(f"PrusaLink exited with status {proc.returncode} before it was ready",
                     log_path)
                return 1
            if time.monotonic() > deadline:
                fail(f"PrusaLink did not come up within {START_TIMEOUT:.0f} s", log_path)
                return 1
            if port is None and os.path.exists(port_file):
                with open(port_file, encoding="ascii") as f:
                    port = int(f.read().strip())
            if port is not None:
                try:
                    if local_storage_ready(port, args.user, args.password):
                        break
                except (OSError, ValueError, KeyError):
                    pass
            time.sleep(0.1)

        sys.stdout.write(f"READY port={port}\n")
        sys.stdout.flush()

        def wait_stdin():
            try:  # the raw fd: a daemon thread blocked in sys.stdin's buffer aborts the exit
                while os.read(0, 65536):
                    pass
            except OSError:
                pass
            stop.set()

        threading.Thread(target=wait_stdin, daemon=True).start()
        while not stop.wait(0.5):
            if proc.poll() is not None:
                fail(f"PrusaLink exited with status {proc.returncode}", log_path)
                return 1
        return 0
    finally:
        kill_group(proc)


if __name__ == "__main__":
    sys.exit(main())
