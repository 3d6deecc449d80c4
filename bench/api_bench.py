#!/usr/bin/python3
"""API benchmark of airlockd: create-to-first-exec, exec round trip (vs `runc exec` / `crun exec`),
200 concurrent exec clients, and 1,000 idle sandboxes, all in one run against a daemon it starts itself.

    /usr/bin/python3 bench/api_bench.py --airlockd build/airlockd [--output FILE] [--json FILE]

Starts `airlockd --data-dir TMP/data --listen 127.0.0.1:0 --log-level warn` in cgroups of its own
(`apibench-<pid>/airlockd` in the hierarchies the engine uses, so every sandbox cgroup of this run lies
below it), talks to it with http.client over keep-alive connections, deletes every sandbox it made,
checks that nothing is left behind, stops the daemon and removes its cgroups and files. Method and
columns: bench/README.md. Prints markdown on stdout (or --output).

Run as root, standard library only, with /usr/bin/python3 (the pyenv shim on PATH costs ~0.2 s per start).
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import queue
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers as peers_mod  # noqa: E402
from peers import SANDBOX_ENV, UNIFIED_MOUNT, Context  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup"
# The hierarchies airlock's engine makes sandbox cgroups in (src/engine/cgroup.cc: kControllers, plus the
# cgroup2 tree when it is mounted): the daemon is moved into apibench-<pid>/airlockd in each of them.
ENGINE_HIERARCHIES = ["memory", "cpu", "cpuacct", "pids", "freezer", "unified"]
SLEEP_CMD = ["/bin/sleep", "100000"]
TRUE_ARGV = ["/bin/true"]
SANDBOX_BODY = {"timeout": 900, "memory_mb": 64}  # small memory_mb: 1,000 of them fit a 64 GiB quota
RUN_BODY = {"argv": TRUE_ARGV}
HTTP_TIMEOUT_S = 120.0


def log(msg: str) -> None:
    print(f"[api-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- small helpers ----------------------------------------------------------------------------------------

_SCRATCH = None


def scratch_fd() -> int:
    """An unlinked private file used as stdio of every child instead of /dev/null: OCI runtimes fchown
    the stdio they are handed to the container's root (this once left the host's /dev/null owned by
    nobody). Reads as empty, swallows output."""
    global _SCRATCH
    if _SCRATCH is None:
        f = tempfile.TemporaryFile(prefix="airlock-apibench-stdio-")
        _SCRATCH = os.dup(f.fileno())
        f.close()
    return _SCRATCH


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), as start_bench.py."""
    s = sorted(values)
    if not s:
        return float("nan")
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": percentile(ms, 0.5), "p90": percentile(ms, 0.9), "p99": percentile(ms, 0.99),
            "min": min(ms), "max": max(ms), "mean": statistics.fmean(ms)}


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def host_sample(n: int = 5, gap: float = 0.2) -> dict:
    """Medians over n samples of MemAvailable and of unreclaimable use (as start_bench.py's host column)."""
    avail, used = [], []
    for i in range(n):
        mi = meminfo()
        avail.append(mi["MemAvailable"])
        used.append(mi["MemTotal"] - mi["MemFree"] - mi["Buffers"] - (mi["Cached"] - mi["Shmem"]) - mi["SReclaimable"])
        if i + 1 < n:
            time.sleep(gap)
    return {"available": statistics.median(avail), "used": statistics.median(used)}


# Kernel-side counters only: user-space ones (AnonPages...) move by hundreds of MiB with other work here.
MEMINFO_KEYS = ["SUnreclaim", "Percpu", "KernelStack", "PageTables", "VmallocUsed"]


def meminfo_breakdown(n: int = 5, gap: float = 0.2) -> dict:
    """Medians of the /proc/meminfo counters that say where kernel memory goes."""
    samples = {k: [] for k in MEMINFO_KEYS}
    for i in range(n):
        mi = meminfo()
        for k in MEMINFO_KEYS:
            samples[k].append(mi.get(k, 0))
        if i + 1 < n:
            time.sleep(gap)
    return {k: statistics.median(v) for k, v in samples.items()}


def proc_status(pid: int) -> dict:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        pass
    return out


def kib(v: str | None) -> int:
    return int(v.split()[0]) if v else 0


def first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, stdin=scratch_fd(), capture_output=True, text=True, timeout=20)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else f"(no output, rc={out.returncode})"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(unknown: {e})"


def run_quiet(argv: list[str], timeout: float = 60) -> tuple[int, str]:
    """Runs argv with scratch stdin/stdout and a private stderr file (read back); (exit code, stderr tail).
    Not a pipe for stderr: a detached container keeps it open, and the read would never see EOF."""
    with tempfile.TemporaryFile(prefix="airlock-apibench-err-") as err:
        try:
            rc = subprocess.run(argv, stdin=scratch_fd(), stdout=scratch_fd(), stderr=err, env=SANDBOX_ENV,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout:.0f} s"
        except OSError as e:
            return -1, str(e)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return rc, (lines[-1] if lines else "")[:300]


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def time_spawn(argv: list[str], timeout: float = 30.0) -> tuple[int, int]:
    """(wall ns, wait status) of posix_spawn .. waitpid, stdio on the scratch file; (-1, -1) if it hangs
    (then it is SIGKILLed). Main thread only (SIGALRM)."""
    fd = scratch_fd()
    actions = [(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
    old = signal.signal(signal.SIGALRM, _on_alarm)
    pid = -1
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, SANDBOX_ENV, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter_ns()
    except _Timeout:
        if pid > 0:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        return -1, -1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return t1 - t0, status


# -- HTTP ----------------------------------------------------------------------------------------------------

class Conn(http.client.HTTPConnection):
    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class ApiError(Exception):
    def __init__(self, status: int, body, where: str):
        self.status, self.body, self.where = status, body, where
        code = msg = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code, msg = body["error"].get("code", ""), body["error"].get("message", "")
        else:
            msg = str(body)[:200]
        self.code, self.msg = code, msg
        super().__init__(f"{where}: HTTP {status} {code}: {msg}")


class Client:
    """One keep-alive connection with one API key. http.client sends a small bytes body in the same
    send() as the headers, and TCP_NODELAY is set, so no Nagle/delayed-ACK stalls."""

    def __init__(self, host: str, port: int, key: str, timeout: float = HTTP_TIMEOUT_S):
        self.conn = Conn(host, port, timeout=timeout)
        self.auth = {"Authorization": f"Bearer {key}"}
        self.json_headers = {**self.auth, "Content-Type": "application/json"}
        self.reconnects = 0

    def call(self, method: str, path: str, body=None):
        data = json.dumps(body).encode() if body is not None else None
        try:
            if self.conn.sock is None:
                self.reconnects += 1
            self.conn.request(method, path, body=data, headers=self.json_headers if data is not None else self.auth)
            resp = self.conn.getresponse()
            raw = resp.read()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            raise
        if resp.will_close:
            self.conn.close()
        try:
            obj = json.loads(raw) if raw else None
        except ValueError:
            obj = raw[:200].decode(errors="replace")
        return resp.status, obj

    def expect(self, status: int, method: str, path: str, body=None):
        got, obj = self.call(method, path, body)
        if got != status:
            raise ApiError(got, obj, f"{method} {path}")
        return obj

    def close(self):
        self.conn.close()


# -- the daemon ------------------------------------------------------------------------------------------------

def hierarchy_dirs() -> list[str]:
    """Mounted cgroup hierarchies the engine uses, de-duplicated (cpu and cpuacct may be one mount)."""
    seen, out = set(), []
    for h in ENGINE_HIERARCHIES:
        p = os.path.join(CGROUP_ROOT, h)
        if not os.path.ismount(os.path.realpath(p)):
            continue
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            out.append(real)
    return out


class Daemon:
    def __init__(self, binary: str, tmp: str, cgroup_name: str, log_level: str):
        self.binary = binary
        self.data_dir = os.path.join(tmp, "data")
        self.log_path = os.path.join(tmp, "airlockd.log")
        self.cg_rel = f"{cgroup_name}/airlockd"
        self.cg_dirs = [os.path.join(h, self.cg_rel) for h in hierarchy_dirs()]
        self.log_level = log_level
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self.admin_key = ""

    def memcg(self) -> str | None:
        return next((d for d in self.cg_dirs if "/memory/" in d), None)

    def start(self, timeout: float = 30.0) -> None:
        for d in self.cg_dirs:
            os.makedirs(d, exist_ok=True)
        procs = [os.path.join(d, "cgroup.procs") for d in self.cg_dirs]

        def join():  # in the child, before exec: the engine reads /proc/self/cgroup at start
            for p in procs:
                with open(p, "w") as f:
                    f.write(str(os.getpid()))

        logf = open(self.log_path, "ab")
        argv = [self.binary, "--data-dir", self.data_dir, "--listen", "127.0.0.1:0", "--log-level", self.log_level]
        self.proc = subprocess.Popen(argv, stdin=scratch_fd(), stdout=logf, stderr=logf, preexec_fn=join,
                                     env={**SANDBOX_ENV}, close_fds=True)
        logf.close()
        deadline = time.monotonic() + timeout
        key_path = os.path.join(self.data_dir, "admin-key")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"airlockd exited with {self.proc.returncode}: {self.log_tail()}")
            self.port = self.port or self.find_port()
            if self.port and os.path.exists(key_path):
                with open(key_path) as f:
                    self.admin_key = f.read().strip()
                if self.admin_key:
                    c = Client("127.0.0.1", self.port, self.admin_key, timeout=5)
                    try:
                        if c.call("GET", "/healthz")[0] == 200:
                            return
                    except OSError:
                        pass
                    finally:
                        c.close()
            time.sleep(0.02)
        raise RuntimeError(f"airlockd did not come up within {timeout:.0f} s: {self.log_tail()}")

    def find_port(self) -> int:
        """The TCP port it listens on: from its log line (info level) or from /proc (any level)."""
        try:
            with open(self.log_path, errors="replace") as f:
                for line in f:
                    if "listening on http://127.0.0.1:" in line:
                        return int(line.rsplit(":", 1)[1].strip().rstrip("/"))
        except (OSError, ValueError):
            pass
        pid = self.proc.pid
        inodes = set()
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    t = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if t.startswith("socket:["):
                    inodes.add(t[8:-1])
            with open(f"/proc/{pid}/net/tcp") as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                        return int(parts[1].split(":")[1], 16)
        except (OSError, StopIteration, ValueError, IndexError):
            pass
        return 0

    def log_tail(self, n: int = 5) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                lines = f.read().strip().splitlines()
            return " | ".join(lines[-n:]) or "(empty log)"
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def status(self) -> dict:
        s = proc_status(self.proc.pid) if self.alive() else {}
        return {"rss_kib": kib(s.get("VmRSS")), "hwm_kib": kib(s.get("VmHWM")), "threads": int(s.get("Threads", 0)),
                "fds": s.get("fds", 0)}

    def sandbox_cgroups(self) -> list[str]:
        """Names of the cgroups below the daemon's (the engine names them airlock-<id range>)."""
        names = set()
        for d in self.cg_dirs:
            try:
                names.update(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)))
            except OSError:
                pass
        return sorted(names)

    def stop(self, timeout: float = 15.0) -> str:
        if not self.proc:
            return "not started"
        if self.proc.poll() is not None:
            return f"had exited with {self.proc.returncode}"
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            return f"stopped (exit {self.proc.returncode})"
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return f"did not stop within {timeout:.0f} s of SIGTERM: killed"


# -- OCI peers: a running `sleep` container to exec into -----------------------------------------------------

class OciExec:
    """`<runtime> run -d` of peers.py's sleep bundle, then `<runtime> exec ID /bin/true` timed as a CLI call."""

    def __init__(self, key: str, ctx: Context):
        cls = {"runc": peers_mod.Runc, "crun": peers_mod.Crun}[key]
        self.peer = cls(ctx)
        self.ident = f"aa{os.getpid()}-{key}"
        self.error = self.peer.error
        self.started = False

    def start(self) -> dict:
        if self.error:
            return {"error": self.error}
        p = self.peer
        p.prepare({"sleep": SLEEP_CMD})
        rc, err = run_quiet(p.run_detached_argv("sleep", self.ident))
        if rc != 0:
            self.error = f"`{p.key} run -d` failed (exit {rc}): {err}"
            run_quiet(p.cleanup_argvs(self.ident)[0])
            return {"error": self.error}
        self.started = True
        rc, err = run_quiet(p.exec_argv(self.ident, TRUE_ARGV))
        if rc != 0:
            self.error = f"`{p.key} exec` failed (exit {rc}): {err}"
            return {"error": self.error}
        return {"ok": True, "version": p.version()}

    def time_execs(self, n: int) -> dict:
        argv = self.peer.exec_argv(self.ident, TRUE_ARGV)
        ns = []
        for _ in range(n):
            t, status = time_spawn(argv)
            if t < 0 or status != 0:
                return {"ns": ns, "error": f"`{self.peer.key} exec` failed: status {status}"}
            ns.append(t)
        return {"ns": ns}

    def stop(self) -> dict:
        if not self.started:
            return {"ok": True}
        p = self.peer
        run_quiet(p.stop_argvs(self.ident)[0])
        for _ in range(50):
            out = subprocess.run(p.state_argv(self.ident), stdin=scratch_fd(), capture_output=True, text=True,
                                 timeout=20)
            try:
                if out.returncode != 0 or json.loads(out.stdout).get("status") == "stopped":
                    break
            except ValueError:
                break
            time.sleep(0.1)
        rc, err = run_quiet(p.cleanup_argvs(self.ident)[0])
        self.started = False
        return {"ok": rc == 0, "error": None if rc == 0 else err}


class OciWorker:
    """crun refuses this hybrid-cgroup host: it runs in a copy of this script in `unshare -m` with the
    cgroup2 mount unmounted there (as start_bench.py does), driven over JSON lines."""

    def __init__(self, key: str, ctx: Context):
        script = os.path.abspath(__file__)
        shell = f"if mountpoint -q {UNIFIED_MOUNT}; then umount {UNIFIED_MOUNT} || exit 99; fi; exec \"$@\""
        argv = [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", shell, "sh", sys.executable, script, "--_oci-worker"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.call({"op": "init", "key": key, "ctx": ctx.to_dict()})

    def call(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died (rc={self.proc.poll()})")
        return json.loads(line)

    def start(self):
        return self.call({"op": "start"})

    def time_execs(self, n):
        return self.call({"op": "time", "n": n})

    def stop(self):
        try:
            r = self.call({"op": "stop"})
            self.call({"op": "exit"})
        except (RuntimeError, BrokenPipeError, ValueError) as e:
            r = {"ok": False, "error": str(e)}
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return r


def oci_worker_main() -> int:
    out = sys.stdout
    sys.stdout = sys.stderr
    peer: OciExec | None = None
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        try:
            if op == "init":
                peer = OciExec(req["key"], Context.from_dict(req["ctx"]))
                reply = {"ok": True}
            elif op == "start":
                reply = peer.start()
            elif op == "time":
                reply = peer.time_execs(req["n"])
            elif op == "stop":
                reply = peer.stop()
            elif op == "exit":
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return 0
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as e:  # report to the parent, keep serving (it will ask to stop)
            reply = {"error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    if peer:
        peer.stop()
    return 0


# -- the benchmark ---------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, args, tmp: str, cgroup_name: str):
        self.args = args
        self.tmp = tmp
        self.cgroup_name = cgroup_name
        self.daemon = Daemon(args.airlockd, tmp, cgroup_name, args.log_level)
        self.res: dict = {"phases": {}, "notes": []}
        self.live: dict[str, str] = {}  # sandbox_id -> api key (everything we created and not yet deleted)
        self.live_mu = threading.Lock()
        self.engine_names: set[str] = set()
        self.keys: dict[str, str] = {}  # tenant -> key

    # -- plumbing
    def client(self, key: str | None = None, timeout: float = HTTP_TIMEOUT_S) -> Client:
        return Client("127.0.0.1", self.daemon.port, key or self.key, timeout)

    def key_for(self, tenant: str) -> str:
        if tenant not in self.keys:
            admin = self.client(self.daemon.admin_key)
            try:
                obj = admin.expect(201, "POST", "/v1/keys", {"name": f"api-bench-{tenant}", "tenant": tenant})
            finally:
                admin.close()
            self.keys[tenant] = obj["secret"]
        return self.keys[tenant]

    def create(self, c: Client, key: str) -> tuple[str, float]:
        t0 = time.perf_counter_ns()
        obj = c.expect(201, "POST", "/v1/sandboxes", SANDBOX_BODY)
        t1 = time.perf_counter_ns()
        sid = obj["sandbox_id"]
        with self.live_mu:
            self.live[sid] = key
        if obj.get("state") != "running":
            raise ApiError(201, obj, f"created sandbox {sid} is {obj.get('state')}, not running")
        return sid, (t1 - t0) / 1e6

    def exec_true(self, c: Client, sid: str) -> tuple[float, float]:
        """(round-trip ms, the daemon's duration_ms of the command)."""
        t0 = time.perf_counter_ns()
        obj = c.expect(200, "POST", f"/v1/sandboxes/{sid}/commands/run", RUN_BODY)
        t1 = time.perf_counter_ns()
        if obj.get("exit_code") != 0 or obj.get("reason") != "exited":
            raise ApiError(200, obj, f"/bin/true in {sid}: reason {obj.get('reason')} exit {obj.get('exit_code')} "
                                     f"{obj.get('error')} {obj.get('stderr', '')[:200]}")
        return (t1 - t0) / 1e6, float(obj.get("duration_ms", 0.0))

    def delete(self, c: Client, sid: str) -> float:
        t0 = time.perf_counter_ns()
        obj = c.expect(200, "DELETE", f"/v1/sandboxes/{sid}")
        t1 = time.perf_counter_ns()
        with self.live_mu:
            self.live.pop(sid, None)
        if obj.get("state") != "terminated":
            raise ApiError(200, obj, f"deleted sandbox {sid} is {obj.get('state')}")
        return (t1 - t0) / 1e6

    def note_engine_names(self):
        self.engine_names.update(n for n in self.daemon.sandbox_cgroups() if n.startswith("airlock-"))

    # -- phase 1
    def phase_create(self) -> dict:
        a = self.args
        out = {}
        c = self.client()
        try:
            for mode, n, gap in (("back-to-back", a.create_runs, 0.0), ("spaced", a.create_spaced_runs, a.gap_ms / 1000)):
                if n <= 0:
                    continue
                log(f"create→first exec, {mode}: {n} runs (+{a.warmup} warm-up)" + (f", {a.gap_ms} ms apart" if gap else ""))
                create, first, total, server, delete = [], [], [], [], []
                for i in range(a.warmup + n):
                    if gap:
                        time.sleep(gap)
                    t0 = time.perf_counter_ns()
                    sid, c_ms = self.create(c, self.key)
                    e_ms, d_ms = self.exec_true(c, sid)
                    t1 = time.perf_counter_ns()
                    self.note_engine_names()
                    del_ms = self.delete(c, sid)
                    if i >= a.warmup:
                        create.append(c_ms)
                        first.append(e_ms)
                        server.append(d_ms)
                        total.append((t1 - t0) / 1e6)
                        delete.append(del_ms)
                out[mode] = {"create": create, "first_exec": first, "first_exec_server": server, "total": total,
                             "delete": delete}
        finally:
            c.close()
        return out

    # -- phase 2
    def phase_exec(self, ctx: Context) -> dict:
        a = self.args
        c = self.client()
        out: dict = {"peers": {}}
        oci: dict = {}
        try:
            sid, _ = self.create(c, self.key)
            self.note_engine_names()
            for key in ("runc", "crun"):
                if key not in a.peers:
                    continue
                p = OciWorker(key, ctx) if key == "crun" else OciExec(key, ctx)
                r = p.start()
                if r.get("error"):
                    log(f"{key}: {r['error']}")
                    out["peers"][key] = {"error": r["error"]}
                    p.stop()
                else:
                    oci[key] = p
                    out["peers"][key] = {"ns": [], "version": r.get("version")}
            # warm-up
            for _ in range(a.warmup * 10):
                self.exec_true(c, sid)
                c.expect(200, "GET", f"/v1/sandboxes/{sid}")
            for p in oci.values():
                p.time_execs(a.warmup)
            rounds = max(1, a.exec_rounds)
            per_air = math.ceil(a.exec_runs / rounds)
            per_peer = math.ceil(a.peer_exec_runs / rounds)
            log(f"exec round trip: {rounds} rounds of {per_air} airlock execs + {per_air} GETs + {per_peer} each of "
                f"{', '.join(oci) or 'no peer'} + {per_peer} host spawns, interleaved")
            rtt, server, get_ms, spawn_ms = [], [], [], []
            order = ["airlock", "get", "spawn", *oci.keys()]
            for r in range(rounds):
                k = r % len(order)
                for what in order[k:] + order[:k]:
                    if what == "airlock":
                        for _ in range(per_air):
                            e, d = self.exec_true(c, sid)
                            rtt.append(e)
                            server.append(d)
                    elif what == "get":
                        for _ in range(per_air):
                            t0 = time.perf_counter_ns()
                            c.expect(200, "GET", f"/v1/sandboxes/{sid}")
                            get_ms.append((time.perf_counter_ns() - t0) / 1e6)
                    elif what == "spawn":
                        for _ in range(per_peer):
                            t, st = time_spawn(TRUE_ARGV)
                            if t > 0 and st == 0:
                                spawn_ms.append(t / 1e6)
                    else:
                        if "error" in out["peers"][what]:
                            continue
                        rep = oci[what].time_execs(per_peer)
                        out["peers"][what]["ns"].extend(rep.get("ns", []))
                        if rep.get("error"):
                            out["peers"][what]["error"] = rep["error"]
            out.update({"airlock": rtt, "airlock_server": server, "get": get_ms, "spawn": spawn_ms})
            self.delete(c, sid)
        finally:
            for key, p in oci.items():
                r = p.stop()
                if not r.get("ok"):
                    self.res["notes"].append(f"{key}: cleanup of the exec container: {r.get('error')}")
            c.close()
        return out

    # -- phase 3
    def phase_concurrency(self) -> dict:
        runs = []
        for n_sbx in self.args.conc_sandboxes:
            runs.append(self.concurrency_run(n_sbx))
            time.sleep(1.0)
        return {"runs": runs}

    def concurrency_run(self, n_sbx: int) -> dict:
        a = self.args
        n_clients, per = a.clients, a.execs_per_client
        log(f"concurrency: {n_clients} clients x {per} execs over {n_sbx} sandboxes")
        setup = self.client()
        sids = []
        try:
            for _ in range(n_sbx):
                sids.append(self.create(setup, self.key)[0])
            self.note_engine_names()
        finally:
            setup.close()
        lat: list[list[float]] = [[] for _ in range(n_clients)]
        errors: list[list[str]] = [[] for _ in range(n_clients)]
        barrier = threading.Barrier(n_clients + 1)
        done_at = [0.0] * n_clients

        def client(i: int):
            sid = sids[i % n_sbx]
            c = self.client()
            try:
                try:
                    c.expect(200, "GET", f"/v1/sandboxes/{sid}")  # connect + warm, untimed
                except Exception as e:
                    errors[i].append(f"setup: {type(e).__name__}: {e}")
                barrier.wait()
                for _ in range(per):
                    t0 = time.perf_counter_ns()
                    try:
                        self.exec_true(c, sid)
                        lat[i].append((time.perf_counter_ns() - t0) / 1e6)
                    except ApiError as e:
                        errors[i].append(f"HTTP {e.status} {e.code}: {e.msg}"[:200])
                    except Exception as e:
                        errors[i].append(f"{type(e).__name__}: {e}"[:200])
                done_at[i] = time.perf_counter()
            finally:
                c.close()

        old = threading.stack_size(512 * 1024)
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n_clients)]
        threading.stack_size(old)
        for t in threads:
            t.start()
        rss_before = self.daemon.status()
        barrier.wait()
        t0 = time.perf_counter()
        peak = {"threads": 0, "fds": 0, "rss_kib": 0}
        while any(t.is_alive() for t in threads):
            s = self.daemon.status()
            for k in peak:
                peak[k] = max(peak[k], s.get(k, 0))
            time.sleep(0.05)
        for t in threads:
            t.join()
        wall = max(done_at) - t0 if any(done_at) else float("nan")
        all_lat = [x for l in lat for x in l]
        errs: dict[str, int] = {}
        for l in errors:
            for e in l:
                errs[e] = errs.get(e, 0) + 1
        c = self.client()
        try:
            for sid in sids:
                try:
                    self.delete(c, sid)
                except Exception as e:
                    self.res["notes"].append(f"concurrency: delete {sid}: {e}")
        finally:
            c.close()
        return {"clients": n_clients, "sandboxes": n_sbx, "per_client": per, "attempted": n_clients * per,
                "ok": len(all_lat), "errors": errs, "wall_s": wall, "latency": all_lat,
                "throughput": len(all_lat) / wall if wall and wall == wall else 0.0,
                "daemon_before": rss_before, "daemon_peak": peak}

    # -- phase 4
    def quota_setup(self, n: int) -> list[str]:
        """One key per sandbox slot: the tenant's quota raised if the daemon has the admin route, else
        enough tenants of the default quota (100 sandboxes) to hold n."""
        tenant = "apibench-density"
        key = self.key_for(tenant)
        admin = self.client(self.daemon.admin_key)
        try:
            status, body = admin.call("PUT", f"/v1/tenants/{tenant}/quota",
                                      {"max_sandboxes": None, "max_memory_mb": None})
            if status == 200:
                self.res["density_tenancy"] = f"one tenant, quota lifted with `PUT /v1/tenants/{tenant}/quota` " \
                                              "(`max_sandboxes` and `max_memory_mb` null = unlimited)"
                return [key] * n
            code = body.get("error", {}).get("code") if isinstance(body, dict) else body
            status2, quota = self.client(key).call("GET", "/v1/quota")
        finally:
            admin.close()
        per = self.args.tenant_quota
        if status2 == 200 and isinstance(quota, dict) and isinstance(quota.get("max_sandboxes"), int):
            per = quota["max_sandboxes"]
        tenants = math.ceil(n / per)
        self.res["density_tenancy"] = (
            f"{tenants} tenant{'s' if tenants != 1 else ''} of {per} sandboxes each (`PUT /v1/tenants/{{tenant}}/quota` answered HTTP {status} "
            f"`{code}`, so the default per-tenant quota of {per} sandboxes stands; one key per tenant via `POST /v1/keys`)")
        keys = [key] + [self.key_for(f"{tenant}-{i}") for i in range(1, tenants)]
        return [keys[i // per] for i in range(n)]

    def cgroup_memory(self, names: list[str]) -> dict:
        memcg = self.daemon.memcg()
        tot = {"usage": 0, "nonfile": 0, "kmem": 0, "procs": 0, "count": 0, "rss": 0}
        if not memcg:
            return tot
        for n in names:
            d = os.path.join(memcg, n)
            try:
                with open(os.path.join(d, "memory.usage_in_bytes")) as f:
                    usage = int(f.read())
                stat = {}
                with open(os.path.join(d, "memory.stat")) as f:
                    for line in f:
                        k, v = line.split()
                        stat[k] = int(v)
                try:
                    with open(os.path.join(d, "memory.kmem.usage_in_bytes")) as f:
                        kmem = int(f.read())
                except OSError:
                    kmem = 0
                procs = 0
                for dp, _, _ in os.walk(d):
                    with open(os.path.join(dp, "cgroup.procs")) as f:
                        procs += sum(1 for _ in f)
            except OSError:
                continue
            tot["usage"] += usage
            tot["nonfile"] += usage - stat.get("total_active_file", 0) - stat.get("total_inactive_file", 0)
            tot["kmem"] += kmem
            tot["rss"] += stat.get("total_rss", 0) + stat.get("total_shmem", 0)
            tot["procs"] += procs
            tot["count"] += 1
        return tot

    def daemon_memcg(self) -> dict:
        """Hierarchical charge of the daemon's memory cgroup: the daemon, every sandbox cgroup below it, and the
        kernel objects the daemon allocated for them (task structs, cgroup and namespace objects are charged to
        the cgroup of the task that allocates them, i.e. the daemon's, not the sandbox's)."""
        d = self.daemon.memcg()
        out = {"usage": 0, "nonfile": 0, "kmem": 0}
        if not d:
            return out
        try:
            with open(os.path.join(d, "memory.usage_in_bytes")) as f:
                out["usage"] = int(f.read())
            stat = {}
            with open(os.path.join(d, "memory.stat")) as f:
                for line in f:
                    k, v = line.split()
                    stat[k] = int(v)
            out["nonfile"] = out["usage"] - stat.get("total_active_file", 0) - stat.get("total_inactive_file", 0)
            with open(os.path.join(d, "memory.kmem.usage_in_bytes")) as f:
                out["kmem"] = int(f.read())
        except OSError:
            pass
        return out

    def phase_density(self) -> dict:
        a = self.args
        n = a.density
        keys = self.quota_setup(n)
        out: dict = {"requested": n, "tenancy": self.res.get("density_tenancy")}
        time.sleep(1.0)
        host0 = host_sample()
        brk0 = meminfo_breakdown()
        dm0 = self.daemon_memcg()
        d0 = self.daemon.status()
        names0 = set(self.daemon.sandbox_cgroups())
        log(f"density: creating {n} sandboxes with {a.density_clients} clients")
        work: queue.Queue = queue.Queue()
        for i in range(n):
            work.put(i)
        created: list[tuple[int, str, float]] = []  # (index, sid, create ms)
        errs: dict[str, int] = {}
        mu = threading.Lock()
        stop = threading.Event()

        def creator():
            conns: dict[str, Client] = {}
            try:
                while not stop.is_set():
                    try:
                        i = work.get_nowait()
                    except queue.Empty:
                        return
                    key = keys[i]
                    c = conns.setdefault(key, self.client(key))
                    try:
                        sid, ms = self.create(c, key)
                        with mu:
                            created.append((i, sid, ms))
                    except Exception as e:
                        msg = (f"HTTP {e.status} {e.code}: {e.msg}" if isinstance(e, ApiError)
                               else f"{type(e).__name__}: {e}")[:200]
                        with mu:
                            errs[msg] = errs.get(msg, 0) + 1
                            if sum(errs.values()) >= 20:
                                stop.set()
                    if meminfo()["MemAvailable"] < a.min_available_mib << 20:
                        with mu:
                            out["stop_reason"] = f"MemAvailable below {a.min_available_mib} MiB"
                        stop.set()
            finally:
                for c in conns.values():
                    c.close()

        t0 = time.perf_counter()
        ths = [threading.Thread(target=creator, daemon=True) for _ in range(a.density_clients)]
        for t in ths:
            t.start()
        last_log = time.monotonic()
        while any(t.is_alive() for t in ths):
            time.sleep(0.2)
            if time.monotonic() - last_log > 10:
                log(f"density: {len(created)}/{n} created")
                last_log = time.monotonic()
        t_create = time.perf_counter() - t0
        created.sort()
        out.update({"created": len(created), "create_s": t_create, "create_errors": errs,
                    "create_ms": [ms for _, _, ms in created]})
        log(f"density: {len(created)} created in {t_create:.1f} s; settling")
        time.sleep(3.0)
        names = sorted(set(self.daemon.sandbox_cgroups()) - names0)
        self.engine_names.update(names)
        mem = self.cgroup_memory(names)
        d1 = self.daemon.status()
        host1 = host_sample()
        brk1 = meminfo_breakdown()
        dm1 = self.daemon_memcg()
        out["daemon_memcg_delta"] = {k: dm1[k] - dm0[k] for k in dm0}
        out["meminfo_delta"] = {k: brk1[k] - brk0[k] for k in MEMINFO_KEYS}
        out.update({"cgroups": len(names), "mem": mem, "daemon_before": d0, "daemon_after": d1,
                    "host_avail_delta": host0["available"] - host1["available"],
                    "host_used_delta": host1["used"] - host0["used"]})
        # all running?
        ids = {sid for _, sid, _ in created}
        seen: dict[str, str] = {}
        t_list = []
        for key in sorted(set(keys)):
            c = self.client(key)
            try:
                cursor = None
                while True:
                    q = "/v1/sandboxes?limit=1000" + (f"&cursor={cursor}" if cursor else "")
                    t = time.perf_counter_ns()
                    page = c.expect(200, "GET", q)
                    t_list.append((time.perf_counter_ns() - t) / 1e6)
                    for s in page["sandboxes"]:
                        seen[s["sandbox_id"]] = s["state"]
                    cursor = page.get("next_cursor")
                    if not cursor:
                        break
            finally:
                c.close()
        running = sum(1 for sid in ids if seen.get(sid) == "running")
        out.update({"listed_running": running, "list_ms": t_list,
                    "not_running": {sid: seen.get(sid, "missing") for sid in ids if seen.get(sid) != "running"}})
        # exec into one sandbox while all are alive
        if created:
            sid = created[len(created) // 2][1]
            c = self.client(keys[created[len(created) // 2][0]])
            try:
                for _ in range(5):
                    self.exec_true(c, sid)
                out["exec_at_density"] = [self.exec_true(c, sid)[0] for _ in range(a.density_execs)]
            except Exception as e:
                out["exec_at_density_error"] = str(e)
            finally:
                c.close()
        # one client creating and deleting sandboxes one by one while all are alive (as phase 1's creates)
        if created and a.density_creates > 0:
            c = self.client()
            try:
                cr, de = [], []
                for _ in range(a.density_creates):
                    sid, ms = self.create(c, self.key)
                    cr.append(ms)
                    de.append(self.delete(c, sid))
                out["create_at_density"], out["delete_at_density"] = cr, de
            except Exception as e:
                out["create_at_density_error"] = str(e)
            finally:
                c.close()
        # delete all
        log(f"density: deleting {len(created)}")
        work = queue.Queue()
        for i, sid, _ in created:
            work.put((keys[i], sid))
        del_ms: list[float] = []
        del_errs: dict[str, int] = {}

        def deleter():
            conns: dict[str, Client] = {}
            try:
                while True:
                    try:
                        key, sid = work.get_nowait()
                    except queue.Empty:
                        return
                    c = conns.setdefault(key, self.client(key))
                    try:
                        ms = self.delete(c, sid)
                        with mu:
                            del_ms.append(ms)
                    except Exception as e:
                        with mu:
                            m = str(e)[:200]
                            del_errs[m] = del_errs.get(m, 0) + 1
            finally:
                for c in conns.values():
                    c.close()

        t0 = time.perf_counter()
        ths = [threading.Thread(target=deleter, daemon=True) for _ in range(a.density_clients)]
        for t in ths:
            t.start()
        for t in ths:
            t.join()
        out.update({"delete_s": time.perf_counter() - t0, "delete_ms": del_ms, "delete_errors": del_errs})
        time.sleep(1.0)
        left_running = 0
        for key in sorted(set(keys)):
            c = self.client(key)
            try:
                page = c.expect(200, "GET", "/v1/sandboxes?state=running&state=starting&limit=1000")
                left_running += sum(1 for s in page["sandboxes"] if s["sandbox_id"] in ids)
            finally:
                c.close()
        out["left_running"] = left_running
        out["left_cgroups"] = sorted(set(self.daemon.sandbox_cgroups()) & set(names))
        out["daemon_end"] = self.daemon.status()
        return out

    # -- leftovers
    def check_leftovers(self, mounts_before: set[str], socks_before: set[str]) -> dict:
        cg = self.daemon.sandbox_cgroups()
        mounts_after = run_mounts()
        new_mounts = sorted(mounts_after - mounts_before)
        socks = set(list_dir("/run/airlock/sandboxes"))
        ours_socks = sorted(socks & self.engine_names)
        ids = set(list_dir("/run/airlock/ids"))
        ours_ids = sorted(f"{n.split('-', 1)[1]}.lock" for n in self.engine_names if f"{n.split('-', 1)[1]}.lock" in ids)
        return {"cgroups_below_daemon": cg, "new_run_airlock_mounts": new_mounts, "socket_dirs": ours_socks,
                "id_locks": ours_ids, "engine_names_seen": len(self.engine_names)}


def run_mounts() -> set[str]:
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            if mp.startswith("/run/airlock"):
                out.add(mp)
    return out


def list_dir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def remove_cgroup_tree(name: str) -> list[str]:
    """Kill whatever is left in our cgroups (only processes of this run can be there), then rmdir
    /sys/fs/cgroup/<every hierarchy>/<name> and below, deepest first."""
    problems = []
    killed = 0
    for h in sorted(os.listdir(CGROUP_ROOT)):
        top = os.path.join(CGROUP_ROOT, h, name)
        if os.path.islink(os.path.join(CGROUP_ROOT, h)) or not os.path.isdir(top):
            continue
        for dirpath, _, _ in os.walk(top):
            try:
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    for pid in f:
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                            killed += 1
                        except (ProcessLookupError, ValueError):
                            pass
            except OSError:
                pass
    if killed:
        problems.append(f"{killed} leftover processes in our cgroups were SIGKILLed")
        time.sleep(0.5)
    for h in sorted(os.listdir(CGROUP_ROOT)):
        top = os.path.join(CGROUP_ROOT, h, name)
        if os.path.islink(os.path.join(CGROUP_ROOT, h)) or not os.path.isdir(top):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            for attempt in range(30):
                try:
                    os.rmdir(dirpath)
                    break
                except OSError as e:
                    if attempt == 29:
                        problems.append(f"{dirpath}: {e.strerror}")
                    time.sleep(0.1)
    return problems


# -- report ------------------------------------------------------------------------------------------------------

def machine_info(args) -> dict:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        with open("/etc/debian_version") as f:
            distro = "Debian " + f.read().strip()
    except OSError:
        distro = platform.platform()
    cg = "v2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else (
        "hybrid (v1 controllers + empty cgroup2 at /sys/fs/cgroup/unified)" if os.path.ismount(UNIFIED_MOUNT) else "v1")
    return {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(), "distro": distro,
            "mem_total_mib": meminfo()["MemTotal"] >> 20, "cgroups": cg,
            "loadavg_start": open("/proc/loadavg").read().split()[:3], "python": platform.python_version(),
            "airlockd": first_line([args.airlockd, "--version"])}


def f2(x: float) -> str:
    if x != x:
        return "—"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def row(label: str, ms: list[float], extra: list[str] | None = None) -> str:
    s = summary(ms)
    if not s["n"]:
        return f"| {label} | no samples |" + " |" * (5 + len(extra or []))
    cells = [f2(s["p50"]), f2(s["p90"]), f2(s["p99"]), f2(s["min"]), f2(s["max"]), str(s["n"])]
    return "| " + " | ".join([label, *cells, *(extra or [])]) + " |"


def mib(b: float) -> str:
    return f"{b / 2**20:.1f}"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(m: dict, res: dict, args) -> str:
    L: list[str] = []
    L.append(f"Measured {m['date']} on {m['nproc']} CPUs ({m['cpu']}), {m['mem_total_mib']} MiB RAM, kernel "
             f"{m['kernel']}, {m['distro']}, cgroups {m['cgroups']}; load average at start "
             f"{' '.join(m['loadavg_start'])}, at end {' '.join(m.get('loadavg_end', ['?']))} (a shared machine: other "
             f"work ran meanwhile). {m['airlockd']}; " +
             "; ".join(f"{k}: {v}" for k, v in res.get("peer_versions", {}).items()) + f"; python3 {m['python']}.")
    L.append("")
    L.append(f"One `airlockd --listen 127.0.0.1:0 --log-level {args.log_level}` (default 2 HTTP threads, 16 workers) "
             "started by the benchmark, clients in one Python process (`http.client`, keep-alive, TCP_NODELAY). "
             f"Every sandbox is `POST /v1/sandboxes {json.dumps(SANDBOX_BODY)}` (template `host`, otherwise "
             f"defaults); every exec is `POST .../commands/run {json.dumps(RUN_BODY)}`, checked for `exit_code` 0. "
             "Times are client wall times in ms (p50/p90/p99 by linear interpolation). Method: `bench/README.md`.")
    ph = res["phases"]
    fails = res.get("failures", {})
    if "daemon" in fails:
        L.append("")
        L.append(f"**FAILED: the daemon did not come up**: {fails['daemon']}")

    # 1
    L.append("")
    L.append("### 1. Create → first exec finished")
    L.append("")
    if "create" in ph:
        L.append("| series | step | p50 ms | p90 ms | p99 ms | min ms | max ms | n |")
        L.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for mode, r in ph["create"].items():
            L.append(row(f"{mode} | **create + first exec**", r["total"]))
            L.append(row(f"{mode} | of which `POST /v1/sandboxes` (201, running)", r["create"]))
            L.append(row(f"{mode} | of which first `commands/run`", r["first_exec"]))
            L.append(row(f"{mode} | (the daemon's `duration_ms` of that exec)", r["first_exec_server"]))
            L.append(row(f"{mode} | `DELETE` afterwards (not in the total)", r["delete"]))
        b2b = ph["create"].get("back-to-back")
        sp = ph["create"].get("spaced")
        if b2b and b2b["total"]:
            p = percentile(b2b["total"], 0.5)
            t = f"Target p50 < 20 ms: {verdict(p < 20)} back-to-back ({f2(p)} ms)"
            if sp and sp["total"]:
                q = percentile(sp["total"], 0.5)
                t += f"; {verdict(q < 20)} spaced ({f2(q)} ms)"
            L.append("")
            L.append(t + ". *back-to-back*: each iteration right after the previous one's `DELETE`; *spaced*: "
                     f"{args.gap_ms} ms of idle before each create (the first cgroup-v1 migration after an idle spell "
                     "waits for an RCU grace period on this host, see above).")
    if "create" in fails:
        L.append("")
        L.append(f"**FAILED**: {fails['create']}")

    # 2
    L.append("")
    L.append("### 2. Exec round trip into a running sandbox / container")
    L.append("")
    if "exec" in ph:
        r = ph["exec"]
        air = percentile(r["airlock"], 0.5) if r["airlock"] else float("nan")
        L.append("| what | p50 ms | p90 ms | p99 ms | min ms | max ms | n | p50 ÷ airlock's |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        L.append(row("**airlock** `POST .../commands/run` `/bin/true` (keep-alive)", r["airlock"], ["1.00×"]))
        L.append(row("(the daemon's `duration_ms`: agent exec → exit, inside the above)", r["airlock_server"],
                     [f"{percentile(r['airlock_server'], .5) / air:.2f}×" if r["airlock_server"] else ""]))
        L.append(row("(HTTP floor: `GET /v1/sandboxes/{id}`, same connection)", r["get"],
                     [f"{percentile(r['get'], .5) / air:.2f}×" if r["get"] else ""]))
        for key, label in (("runc", "`runc exec ID /bin/true` (CLI wall time)"),
                           ("crun", "`crun exec ID /bin/true` (CLI wall time)")):
            pr = r["peers"].get(key)
            if pr is None:
                L.append(f"| {label} | not selected | | | | | | |")
                continue
            ms = [x / 1e6 for x in pr.get("ns", [])]
            if not ms:
                L.append(f"| {label} | unavailable: {pr.get('error', '?').replace('|', '/')} | | | | | | |")
                continue
            L.append(row(label + (f" — stopped early: {pr['error']}" if pr.get("error") else ""), ms,
                         [f"**{percentile(ms, .5) / air:.1f}×**"]))
        L.append(row("host `posix_spawn` of `/bin/true` (no sandbox: the floor)", r["spawn"],
                     [f"{percentile(r['spawn'], .5) / air:.2f}×" if r["spawn"] else ""]))
        L.append("")
        L.append(f"Target p50 < 1 ms: {verdict(air < 1)} ({f2(air)} ms). The runc/crun rows time the CLI invocation "
                 "(`posix_spawn` to `waitpid`), exec'ing into a container of peers.py's bundle that runs `sleep` "
                 "(`run -d`); crun runs in `unshare -m` without the cgroup2 mount, like in the cold-start table. "
                 "All rows interleaved in rounds (the first row rotating) so background load hits them alike.")
    if "exec" in fails:
        L.append("")
        L.append(f"**FAILED**: {fails['exec']}")

    # 3
    L.append("")
    L.append("### 3. Concurrent exec clients")
    L.append("")
    if "concurrency" in ph:
        runs = ph["concurrency"]["runs"]
        L.append("| clients | sandboxes | clients per sandbox | execs attempted | ok | errors | wall s | execs/s | "
                 "p50 ms | p90 ms | p99 ms | max ms | daemon peak threads / fds / RSS MiB |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in runs:
            s_ = summary(r["latency"])
            errs = sum(r["errors"].values())
            nan = float("nan")
            L.append(f"| {r['clients']} | {r['sandboxes']} | {r['clients'] / r['sandboxes']:g} | {r['attempted']} | "
                     f"{r['ok']} | **{errs}** | {r['wall_s']:.2f} | {r['throughput']:.0f} | {f2(s_.get('p50', nan))} | "
                     f"{f2(s_.get('p90', nan))} | {f2(s_.get('p99', nan))} | {f2(s_.get('max', nan))} | "
                     f"{r['daemon_peak']['threads']} / {r['daemon_peak']['fds']} / "
                     f"{r['daemon_peak']['rss_kib'] / 1024:.1f} |")
        per = runs[0]["per_client"] if runs else 0
        L.append("")
        L.append("Each client is a thread with its own keep-alive connection (connected and warmed with one untimed "
                 "`GET /v1/sandboxes/{id}`); all are released together by a barrier, then client *i* runs "
                 f"{per} `/bin/true` execs one after another in sandbox *i* mod *sandboxes*. Two spreads: many "
                 "clients per sandbox (the daemon serialises commands on one sandbox: one agent connection each) "
                 "and about two per sandbox (the daemon's 16 workers are the limit: a blocking command holds one). "
                 "Latency is per request, from send to parsed response, so it includes waiting for a worker and "
                 "for the sandbox's agent, and the client's own GIL scheduling (200 Python threads on the same 2 "
                 "CPUs as the daemon). *execs/s* = successful execs ÷ wall time from the barrier to the last "
                 "client's end.")
        for r in runs:
            if r["errors"]:
                L.append("")
                L.append(f"Errors with {r['sandboxes']} sandboxes (count × message):")
                L.append("")
                for msg, k in sorted(r["errors"].items(), key=lambda kv: -kv[1]):
                    L.append(f"- {k} × `{msg}`")
    if "concurrency" in fails:
        L.append("")
        L.append(f"**FAILED**: {fails['concurrency']}")

    # 4
    L.append("")
    L.append(f"### 4. {args.density} idle sandboxes at once")
    L.append("")
    if "density" in ph:
        r = ph["density"]
        k = max(r["created"], 1)
        mem = r.get("mem", {})
        d0, d1 = r["daemon_before"], r["daemon_after"]
        cm = r["create_ms"]
        first, last = cm[:100], cm[-100:]
        L.append("| measure | value |")
        L.append("|---|---|")
        L.append(f"| sandboxes created | {r['created']}/{r['requested']}"
                 + (f" (stopped: {r['stop_reason']})" if r.get("stop_reason") else "") + " |")
        L.append(f"| tenancy | {r['tenancy']} |")
        L.append(f"| time to create all ({args.density_clients} concurrent clients) | {r['create_s']:.1f} s "
                 f"({r['created'] / r['create_s']:.0f}/s) |")
        if cm:
            L.append(f"| `POST /v1/sandboxes` p50 / p99: first 100 · last 100 | {f2(percentile(first, .5))} / "
                     f"{f2(percentile(first, .99))} ms · {f2(percentile(last, .5))} / {f2(percentile(last, .99))} ms |")
        L.append(f"| `running` in `GET /v1/sandboxes` | {r['listed_running']}/{r['created']}"
                 + (f" — not running: {dict(list(r['not_running'].items())[:5])}" if r["not_running"] else "") + " |")
        if r["list_ms"]:
            L.append(f"| `GET /v1/sandboxes?limit=1000` per page (per tenant) | p50 {f2(percentile(r['list_ms'], .5))} ms, "
                     f"max {f2(max(r['list_ms']))} ms |")
        L.append(f"| airlockd RSS (VmRSS) | {d0['rss_kib'] / 1024:.1f} MiB before → **{d1['rss_kib'] / 1024:.1f} MiB** "
                 f"with {r['created']} ({(d1['rss_kib'] - d0['rss_kib']) / k:.1f} KiB per sandbox) |")
        L.append(f"| airlockd threads / open fds | {d0['threads']} / {d0['fds']} → {d1['threads']} / {d1['fds']} |")
        L.append(f"| sandbox cgroups (below the daemon's) | {r['cgroups']}; {mem.get('procs', 0)} host processes "
                 f"({mem.get('procs', 0) / k:.1f} each) |")
        L.append(f"| Σ `memory.usage_in_bytes` of the sandbox cgroups | **{mib(mem.get('usage', 0))} MiB** "
                 f"({mem.get('usage', 0) / k / 2**20:.2f} MiB each) |")
        L.append(f"| of which not page cache (usage − file) | {mib(mem.get('nonfile', 0))} MiB "
                 f"({mem.get('nonfile', 0) / k / 2**20:.2f} MiB each); kernel (kmem) {mib(mem.get('kmem', 0))} MiB "
                 f"({mem.get('kmem', 0) / k / 2**20:.2f} each) |")
        dd = r.get("daemon_memcg_delta")
        if dd:
            L.append(f"| Δ of the daemon's memory cgroup (hierarchical: daemon + sandboxes + kernel objects the daemon "
                     f"allocated for them) | **{mib(dd['usage'])} MiB** ({dd['usage'] / k / 2**20:.2f} MiB each); not page "
                     f"cache {mib(dd['nonfile'])} MiB ({dd['nonfile'] / k / 2**20:.2f} each); kmem {mib(dd['kmem'])} MiB "
                     f"({dd['kmem'] / k / 2**20:.2f} each) |")
        L.append(f"| host MemAvailable Δ (noisy) | {mib(r['host_avail_delta'])} MiB ({r['host_avail_delta'] / k / 2**20:.2f} "
                 f"MiB each); unreclaimable use Δ {mib(r['host_used_delta'])} MiB |")
        if r.get("exec_at_density"):
            L.append(f"| exec round trip with all alive | p50 {f2(percentile(r['exec_at_density'], .5))} ms, p99 "
                     f"{f2(percentile(r['exec_at_density'], .99))} ms (n={len(r['exec_at_density'])}) |")
        elif r.get("exec_at_density_error"):
            L.append(f"| exec round trip with all alive | FAILED: {r['exec_at_density_error']} |")
        if r.get("create_at_density"):
            L.append(f"| one client: create / delete one more, with all alive | p50 {f2(percentile(r['create_at_density'], .5))} "
                     f"/ {f2(percentile(r['delete_at_density'], .5))} ms (n={len(r['create_at_density'])}; compare "
                     "section 1's back-to-back rows) |")
        elif r.get("create_at_density_error"):
            L.append(f"| one client: create / delete one more, with all alive | FAILED: {r['create_at_density_error']} |")
        md = r.get("meminfo_delta")
        if md:
            L.append("| host `/proc/meminfo` kernel counters Δ per sandbox (noisy) | " +
                     ", ".join(f"{name} {md[name] / k / 1024:.0f} KiB" for name in MEMINFO_KEYS) + " |")
        L.append(f"| time to delete all | {r['delete_s']:.1f} s; `DELETE` p50 {f2(percentile(r['delete_ms'], .5))} ms, "
                 f"p99 {f2(percentile(r['delete_ms'], .99))} ms |")
        ce = sum(r["create_errors"].values()) + sum(r["delete_errors"].values())
        L.append(f"| errors | {ce}" + ("" if not ce else ": " + "; ".join(
            f"{v} × `{k2}`" for k2, v in list(r["create_errors"].items()) + list(r["delete_errors"].items()))) + " |")
        L.append(f"| after delete: still running / cgroups left | {r['left_running']} / {len(r['left_cgroups'])} |")
    if "density" in fails:
        L.append("")
        L.append(f"**FAILED**: {fails['density']}")

    lo = res.get("leftovers")
    if lo:
        L.append("")
        clean = not (lo["cgroups_below_daemon"] or lo["new_run_airlock_mounts"] or lo["socket_dirs"] or lo["id_locks"]
)
        L.append(f"**Left behind** after every sandbox was deleted (before the daemon stopped; {lo['engine_names_seen']} "
                 f"engine names seen in this run): " + ("nothing — no cgroup below the daemon's, no new mount under "
                                                       "/run/airlock, no socket directory or id-range lock of ours."
                                                       if clean else json.dumps({k: v for k, v in lo.items() if v})))
    L.append("")
    L.append(f"Daemon: {res.get('daemon_stop', '?')}; RSS at the end {res.get('daemon_end_rss_mib', '?')} MiB."
             + (" Notes: " + "; ".join(res["notes"]) if res["notes"] else ""))
    return "\n".join(L) + "\n"


# -- main -----------------------------------------------------------------------------------------------------------

def main() -> int:
    root = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--airlockd", default=str(root / "build" / "airlockd"), help="airlockd binary (airlock-init "
                    "must be next to it)")
    ap.add_argument("--log-level", default="warn", choices=["error", "warn", "info", "debug"])
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--create-runs", type=int, default=100, help="create→first exec iterations (default 100)")
    ap.add_argument("--create-spaced-runs", type=int, default=30,
                    help="the same with --gap-ms of idle before each (default 30; 0 skips)")
    ap.add_argument("--gap-ms", type=int, default=100)
    ap.add_argument("--exec-runs", type=int, default=500, help="airlock exec round trips (default 500)")
    ap.add_argument("--peer-exec-runs", type=int, default=200, help="runc/crun exec runs each (default 200)")
    ap.add_argument("--exec-rounds", type=int, default=10, help="interleaving rounds (default 10)")
    ap.add_argument("--peers", default="runc,crun", help="OCI runtimes to exec into (default runc,crun)")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--conc-sandboxes", default="10,100",
                    help="comma-separated: one concurrency run per value, the clients spread over that many "
                         "sandboxes (default 10,100)")
    ap.add_argument("--execs-per-client", type=int, default=10)
    ap.add_argument("--density", type=int, default=1000, help="idle sandboxes at once (default 1000; 0 skips)")
    ap.add_argument("--density-clients", type=int, default=4)
    ap.add_argument("--density-execs", type=int, default=100, help="exec round trips while all are alive")
    ap.add_argument("--density-creates", type=int, default=20,
                    help="sequential create+delete pairs while all are alive (default 20)")
    ap.add_argument("--tenant-quota", type=int, default=100,
                    help="per-tenant sandbox quota assumed when GET /v1/quota does not say (default 100)")
    ap.add_argument("--min-available-mib", type=int, default=2048, help="stop creating below this MemAvailable")
    ap.add_argument("--phases", default="create,exec,concurrency,density")
    ap.add_argument("--output", help="write the markdown here instead of stdout")
    ap.add_argument("--json", help="also write every sample here")
    ap.add_argument("--_oci-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._oci_worker:
        return oci_worker_main()
    if os.geteuid() != 0:
        print("api_bench.py: run as root (airlockd's engine, the OCI runtimes and cgroups need it)", file=sys.stderr)
        return 2
    args.airlockd = os.path.abspath(args.airlockd)
    args.peers = [p for p in args.peers.split(",") if p]
    args.conc_sandboxes = [int(x) for x in args.conc_sandboxes.split(",") if x]
    phases = [p for p in args.phases.split(",") if p]
    if not os.access(args.airlockd, os.X_OK):
        print(f"api_bench.py: {args.airlockd} is not an executable", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))

    tmp = tempfile.mkdtemp(prefix="airlock-apibench-")
    os.chmod(tmp, 0o755)
    cgroup_name = f"apibench-{os.getpid()}"  # not "airlock-*": the engine treats those names as its own
    ctx = Context(tmp, cgroup_name, "")
    bench = Bench(args, tmp, cgroup_name)
    res = bench.res
    res["failures"] = {}
    machine = machine_info(args)
    log(f"machine: {json.dumps(machine)}")
    res["peer_versions"] = {k: first_line([shutil.which(k) or k, "--version"]) for k in args.peers}
    mounts_before = run_mounts()
    socks_before = set(list_dir("/run/airlock/sandboxes"))
    try:
        try:
            bench.daemon.start()
            log(f"airlockd pid {bench.daemon.proc.pid} on port {bench.daemon.port}, cgroups {bench.daemon.cg_dirs}")
            res["daemon_start"] = bench.daemon.status()
            bench.key = bench.key_for("apibench")
        except Exception as e:
            res["failures"]["daemon"] = f"{type(e).__name__}: {e}"
            log(f"daemon: FAILED: {res['failures']['daemon']}")
            phases = []
        steps = [("create", bench.phase_create), ("exec", lambda: bench.phase_exec(ctx)),
                 ("concurrency", bench.phase_concurrency), ("density", bench.phase_density)]
        for name, fn in steps:
            if name not in phases or (name == "density" and args.density <= 0):
                continue
            if not bench.daemon.alive():
                res["failures"][name] = f"skipped: airlockd is gone ({bench.daemon.log_tail()})"
                continue
            try:
                res["phases"][name] = fn()
            except Exception as e:  # report it, go on
                msg = f"{type(e).__name__}: {e}"
                if not bench.daemon.alive():
                    msg += f"; airlockd exited with {bench.daemon.proc.returncode}: {bench.daemon.log_tail()}"
                res["failures"][name] = msg
                log(f"{name}: FAILED: {msg}")
            log(f"{name}: done; daemon {json.dumps(bench.daemon.status())}")
    finally:
        # delete whatever we still have, check what is left, stop the daemon, remove our cgroups and files
        if bench.daemon.alive() and bench.live:
            log(f"cleanup: deleting {len(bench.live)} sandboxes")
            for sid, key in list(bench.live.items()):
                c = bench.client(key)
                try:
                    bench.delete(c, sid)
                except Exception as e:
                    res["notes"].append(f"cleanup: delete {sid}: {e}")
                finally:
                    c.close()
        if bench.daemon.alive():
            time.sleep(0.5)
            res["leftovers"] = bench.check_leftovers(mounts_before, socks_before)
            res["daemon_end_rss_mib"] = f"{bench.daemon.status()['rss_kib'] / 1024:.1f}"
        res["daemon_stop"] = bench.daemon.stop()
        log(f"airlockd: {res['daemon_stop']}; log tail: {bench.daemon.log_tail(3)}")
        problems = remove_cgroup_tree(cgroup_name)
        # Socket directories of our sandboxes that the engine failed to remove (reported as leftovers above).
        for n in bench.engine_names:
            p = os.path.join("/run/airlock/sandboxes", n)
            if n not in socks_before and os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
                problems.append(f"removed leftover {p}")
        if problems:
            res["notes"].append("cleanup: " + "; ".join(problems))
            log(f"cleanup: {problems}")
        keep_log = os.path.join(tempfile.gettempdir(), f"airlock-apibench-{os.getpid()}-airlockd.log")
        try:
            shutil.copy(bench.daemon.log_path, keep_log)
            log(f"daemon log kept at {keep_log}")
        except OSError:
            pass
        shutil.rmtree(tmp, ignore_errors=True)
    machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    md = render(machine, res, args)
    if args.output:
        with open(args.output, "w") as f:
            f.write(md)
    else:
        sys.stdout.write(md)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": res}, f, indent=1, default=str)
    return 1 if res["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
