#!/usr/bin/python3
"""Cold-start latency and idle density of `airlock run` against its peers, all in one run.

    /usr/bin/python3 bench/start_bench.py [--runs 50] [--airlock build/airlock] [--density 200 | --no-density]

Latency: wall time from posix_spawn() of the launcher to waitpid() returning, for each workload
(`/bin/true`, `/usr/bin/python3 -c pass`) and each peer (see peers.py), stdio on /dev/null. The peers are
interleaved (each round runs every peer once, the starting peer rotating), so that background load on the
machine hits every row alike. Density: N idle `sleep 1000` sandboxes per peer; memory is read from a memory
cgroup holding every launcher (see README.md for the method). Prints markdown on stdout (or --output).

Run as root, with the standard library only (the pyenv `python3` shim on PATH is slow: use /usr/bin/python3).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peers as peers_mod  # noqa: E402
from peers import SANDBOX_ENV, UNIFIED_MOUNT, Context, Peer  # noqa: E402

WORKLOADS = {
    "true": ["/bin/true"],
    "python": ["/usr/bin/python3", "-c", "pass"],
}
WORKLOAD_TITLES = {"true": "`/bin/true`", "python": "`/usr/bin/python3 -c pass`"}
SLEEP_CMD = ["/bin/sleep", "1000"]
CGROUP_ROOT = "/sys/fs/cgroup"
MEMCG = os.path.join(CGROUP_ROOT, "memory")
RUN_TIMEOUT_S = 30.0


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- timing ---------------------------------------------------------------------------------------------

class RunTimeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise RunTimeout()


_DEVNULL = None


def devnull() -> int:
    """An empty, unlinked scratch file standing in for /dev/null as every launcher's stdio.

    Not the real /dev/null: runc (and other OCI runtimes) fchown their stdio to the container's
    root user, which on this host once left the host's /dev/null owned by nobody. A private file
    reads as empty and swallows output just the same.
    """
    global _DEVNULL
    if _DEVNULL is None:
        import tempfile
        scratch = tempfile.TemporaryFile()
        _DEVNULL = os.dup(scratch.fileno())  # non-inheritable, like every fd Python makes
        scratch.close()
    return _DEVNULL


def spawn(argv: list[str], *, stdio_null: bool = True) -> int:
    fd = devnull()
    actions = [(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
    return os.posix_spawn(argv[0], argv, SANDBOX_ENV, file_actions=actions if stdio_null else None)


def time_once(argv: list[str]) -> tuple[int, int]:
    """(wall ns, wait status). The timer around spawn+wait only; a hung run is killed after RUN_TIMEOUT_S."""
    fd = devnull()
    actions = [(os.POSIX_SPAWN_DUP2, fd, 0), (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
    pid = -1
    signal.setitimer(signal.ITIMER_REAL, RUN_TIMEOUT_S)
    try:
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, SANDBOX_ENV, file_actions=actions)
        _, status = os.waitpid(pid, 0)
        t1 = time.perf_counter_ns()
    except RunTimeout:
        kill_tree(pid)
        return -1, -1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return t1 - t0, status


def status_text(status: int) -> str:
    if status == -1:
        return f"timed out after {RUN_TIMEOUT_S:.0f} s"
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def probe(peer: Peer, workload: str) -> str | None:
    """Runs the workload once with stderr captured; returns an error text or None."""
    argv = peer.argv(WORKLOADS[workload], peer.next_ident("probe"), workload)
    try:
        out = subprocess.run(argv, stdin=devnull(), stdout=devnull(), stderr=subprocess.PIPE,
                             env=SANDBOX_ENV, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"timed out after {RUN_TIMEOUT_S:.0f} s"
    except OSError as e:
        return str(e)
    if out.returncode != 0:
        err = out.stderr.decode(errors="replace").strip().splitlines()
        return f"exit status {out.returncode}: {err[-1] if err else '(no stderr)'}"[:300]
    return None


# -- processes ------------------------------------------------------------------------------------------

def proc_table() -> dict[int, dict]:
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read().decode(errors="replace")
        except OSError:
            continue
        lpar, rpar = data.find("("), data.rfind(")")
        rest = data[rpar + 2:].split()
        table[int(name)] = {"pid": int(name), "comm": data[lpar + 1:rpar], "state": rest[0],
                            "ppid": int(rest[1]), "start": int(rest[19])}
    return table


def descendants(root: int, table: dict[int, dict]) -> list[dict]:
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p["ppid"], []).append(p["pid"])
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(table[pid])
        todo.extend(children.get(pid, []))
    return out


def start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
        return int(data[data.rfind(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def alive(pid: int, start: int) -> bool:
    """Is this exact process (pid + start time, so a reused pid does not count) still there, not a zombie?"""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
        rest = data[data.rfind(")") + 2:].split()
        return int(rest[19]) == start and rest[0] not in ("Z", "X")
    except (OSError, ValueError, IndexError):
        return False


def kill_tree(pid: int) -> None:
    """SIGKILL a process we spawned and its descendants (by pid), then reap it."""
    if pid <= 0:
        return
    for p in descendants(pid, proc_table()):
        try:
            os.kill(p["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


# -- worker: peers that need a private mount namespace (crun) -----------------------------------------

class Worker:
    """A copy of this script in `unshare -m` with the cgroup2 mount removed, run over JSON lines."""

    def __init__(self, ctx: Context):
        script = os.path.abspath(__file__)
        shell = (f"if mountpoint -q {UNIFIED_MOUNT}; then umount {UNIFIED_MOUNT} || exit 99; fi; "
                 'exec "$@"')
        argv = [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private", "--",
                "/bin/sh", "-c", shell, "sh", sys.executable, script, "--_worker"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.call({"op": "init", "ctx": ctx.to_dict()})

    def call(self, req: dict) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker died (rc={self.proc.poll()})")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.call({"op": "exit"})
        except (RuntimeError, BrokenPipeError, ValueError):
            pass
        self.proc.wait(timeout=30)


def worker_main() -> int:
    signal.signal(signal.SIGALRM, _on_alarm)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    ctx = None
    peers: dict[str, Peer] = {}
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        if op == "init":
            ctx = Context.from_dict(req["ctx"])
            peers = {p.key: p for p in peers_mod.make_peers(ctx)}
            reply = {"ok": True}
        elif op == "probe":
            reply = {"error": probe(peers[req["peer"]], req["workload"])}
        elif op == "time":
            p = peers[req["peer"]]
            ns, status = time_once(p.argv(WORKLOADS[req["workload"]], p.next_ident("t"), req["workload"]))
            reply = {"ns": ns, "status": status}
        elif op == "density":
            reply = density(peers[req["peer"]], ctx, req["n"], req["cgroup"])
        elif op == "exit":
            out.write(json.dumps({"ok": True}) + "\n")
            out.flush()
            return 0
        else:
            reply = {"error": f"unknown op {op}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


# -- latency --------------------------------------------------------------------------------------------

def measure_latency(peers: list[Peer], workloads: list[str], runs: int, warmup: int, gap_s: float,
                    worker: Worker | None) -> dict:
    """results[mode][workload][peer.key] = {"ns": [...]} or {"error": "..."}, mode in MODES.

    back-to-back: each peer runs warmup+runs times in a row (what hyperfine does): the kernel's fast paths
      stay warm, e.g. the RCU-synchronised lock behind every cgroup-v1 migration.
    spaced: rounds over all peers (the first peer rotating), each run after gap_s of sleep, so every run
      starts on a machine that sandboxed nothing for a while, as a request arriving at an idle host would.
    """
    def run_one(p: Peer, w: str) -> tuple[int, int]:
        if p.private_cgroupfs:
            rep = worker.call({"op": "time", "peer": p.key, "workload": w})
            return rep["ns"], rep["status"]
        return time_once(p.argv(WORKLOADS[w], p.next_ident("t"), w))

    def record(r: dict, p: Peer, w: str, i: int, ns: int, status: int, mode: str) -> None:
        if ns < 0 or status != 0:
            r["error"] = f"run {i + 1} failed: {status_text(status)}"
            log(f"{mode} {p.key} / {w}: {r['error']}")
        elif i >= warmup:
            r["ns"].append(ns)

    modes = ["back-to-back"] + (["spaced"] if gap_s > 0 else [])
    results: dict[str, dict[str, dict[str, dict]]] = {m: {w: {} for w in workloads} for m in modes}
    active: dict[str, list[Peer]] = {}
    for w in workloads:
        active[w] = []
        for p in peers:
            err = p.error
            if not err:
                err = worker.call({"op": "probe", "peer": p.key, "workload": w})["error"] \
                    if p.private_cgroupfs else probe(p, w)
                if err:
                    log(f"{p.key} / {w}: {err}")
            for m in modes:
                results[m][w][p.key] = {"error": err} if err else {"ns": []}
            if not err:
                active[w].append(p)
    pairs = sum(len(v) for v in active.values())
    log(f"latency, back-to-back: {runs} runs (+{warmup} warm-up) x {pairs} peer/workload pairs")
    for w in workloads:
        for p in active[w]:
            r = results["back-to-back"][w][p.key]
            for i in range(warmup + runs):
                if "error" in r:
                    break
                ns, status = run_one(p, w)
                record(r, p, w, i, ns, status, "back-to-back")
    if "spaced" not in modes:
        return results
    log(f"latency, spaced by {gap_s * 1000:.0f} ms: {runs} rounds (+{warmup} warm-up) x {pairs} pairs")
    for i in range(warmup + runs):
        for w in workloads:
            ring = active[w]
            k = i % len(ring) if ring else 0
            for p in ring[k:] + ring[:k]:
                r = results["spaced"][w][p.key]
                if "error" in r:
                    continue
                time.sleep(gap_s)
                ns, status = run_one(p, w)
                record(r, p, w, i, ns, status, "spaced")
        if (i + 1) % 10 == 0:
            log(f"latency, spaced: round {i + 1}/{warmup + runs}")
    return results


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(r: dict) -> dict:
    if "error" in r or not r.get("ns"):
        return {"error": r.get("error", "no samples")}
    ms = [n / 1e6 for n in r["ns"]]
    return {"median_ms": statistics.median(ms), "p95_ms": percentile(ms, 0.95), "min_ms": min(ms), "n": len(ms)}


# -- density --------------------------------------------------------------------------------------------

def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def host_used(mi: dict[str, int]) -> int:
    """Memory nobody can reclaim: total - free - buffers - file cache (Cached minus tmpfs/shmem) - reclaimable slab."""
    return mi["MemTotal"] - mi["MemFree"] - mi["Buffers"] - (mi["Cached"] - mi["Shmem"]) - mi["SReclaimable"]


def sample_host(n: int = 5, gap: float = 0.2) -> dict[str, float]:
    used, avail = [], []
    for i in range(n):
        mi = meminfo()
        used.append(host_used(mi))
        avail.append(mi["MemAvailable"])
        if i + 1 < n:
            time.sleep(gap)
    return {"used": statistics.median(used), "available": statistics.median(avail)}


def memcg_charge(path: str) -> int:
    """Bytes charged to a v1 memory cgroup and its children, minus file-backed page cache (reclaimable and
    shared with everyone). What remains is anonymous memory, tmpfs/shm and kernel memory (slab, page tables,
    kernel stacks: v1 charges kmem to memory.usage_in_bytes too)."""
    with open(os.path.join(path, "memory.usage_in_bytes")) as f:
        usage = int(f.read())
    stat = {}
    with open(os.path.join(path, "memory.stat")) as f:
        for line in f:
            k, v = line.split()
            stat[k] = int(v)
    return usage - stat.get("total_active_file", 0) - stat.get("total_inactive_file", 0)


def memcg_kmem(path: str) -> int:
    try:
        with open(os.path.join(path, "memory.kmem.usage_in_bytes")) as f:
            return int(f.read())
    except OSError:
        return 0


def pss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def density(peer: Peer, ctx: Context, n: int, cgroup_rel: str) -> dict:
    """Starts n `sleep 1000` sandboxes of this peer, each its own launcher process joined to the memory
    cgroup cgroup_rel (the OCI runtimes and airlock make their per-sandbox cgroups below it), waits until
    all are up, measures, then kills exactly the processes it started and checks that they are gone."""
    cg_path = MEMCG + cgroup_rel
    os.makedirs(cg_path, exist_ok=True)
    procs_file = os.path.join(cg_path, "cgroup.procs")
    join = 'echo $$ > "$0" && exec "$@"'
    mi = meminfo()
    guard = max(2 << 30, mi["MemTotal"] // 5)  # stop launching below this much MemAvailable
    host_before = sample_host()
    cg_before = memcg_charge(cg_path)
    kmem_before = memcg_kmem(cg_path)
    t_start = time.monotonic()
    launched: list[dict] = []  # {"pid", "start", "ident", "ready", "exited"}
    tracked: dict[int, int] = {}  # pid -> start time of every process we started or saw below one
    up: list[dict] = []
    procs: list[dict] = []
    stop_reason = None
    failures: list[str] = []

    def wait_ready(pending: list[dict], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            table = proc_table()
            for s in pending:
                if s["ready"] or s["exited"] is not None:
                    continue
                pid, st = os.waitpid(s["pid"], os.WNOHANG)
                if pid:
                    s["exited"] = st
                    failures.append(f"sandbox {s['ident']} exited early: {status_text(st)}")
                    continue
                if peer.density_ready(s["ident"], descendants(s["pid"], table)):
                    s["ready"] = True
            if all(s["ready"] or s["exited"] is not None for s in pending) or time.monotonic() > deadline:
                return
            time.sleep(0.05)

    try:
        batch: list[dict] = []
        for i in range(n):
            if meminfo()["MemAvailable"] < guard:
                stop_reason = f"stopped at {i}: MemAvailable below {guard >> 20} MiB"
                break
            ident = peer.next_ident("d")
            argv = ["/bin/sh", "-c", join, procs_file] + peer.density_argv(SLEEP_CMD, i, ident, cgroup_rel)
            pid = spawn(argv)
            s = {"pid": pid, "start": start_time(pid), "ident": ident, "ready": False, "exited": None}
            launched.append(s)
            if s["start"] is not None:
                tracked[pid] = s["start"]
            batch.append(s)
            if len(batch) >= 10:
                wait_ready(batch, 60)
                batch = []
            if len(failures) > 5:
                stop_reason = f"stopped at {i + 1}: too many failures"
                break
        wait_ready(launched, 60)
        up = [s for s in launched if s["ready"] and s["exited"] is None]
        t_up = time.monotonic() - t_start
        time.sleep(3.0)  # let the last ones finish their lazy set-up
        table = proc_table()
        procs: list[dict] = []
        for s in up:
            procs.extend(descendants(s["pid"], table))
        tracked.update({p["pid"]: p["start"] for p in procs})
        pss_total = sum(pss(p["pid"]) for p in procs)
        cg_after = memcg_charge(cg_path)
        kmem_after = memcg_kmem(cg_path)
        host_after = sample_host()
        outside = sum(1 for p in procs if not in_memcg(p["pid"], cgroup_rel))
    finally:
        cleanup = stop_sandboxes(peer, launched, tracked)
    k = len(up)
    res = {
        "requested": n, "up": k, "seconds_to_up": round(t_up, 1), "stop_reason": stop_reason,
        "failures": failures[:5], "procs_per_sandbox": len(procs) / k if k else None,
        "cleanup": cleanup, "outside_cgroup": outside,
    }
    if k:
        res.update({
            "cgroup_mib": (cg_after - cg_before) / k / 2**20,
            "kmem_mib": (kmem_after - kmem_before) / k / 2**20,
            "pss_mib": pss_total / k / 2**20,
            "host_used_mib": (host_after["used"] - host_before["used"]) / k / 2**20,
            "host_avail_mib": (host_before["available"] - host_after["available"]) / k / 2**20,
        })
    return res


def in_memcg(pid: int, cgroup_rel: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if "memory" in ctrls.split(","):
                    return path == cgroup_rel or path.startswith(cgroup_rel + "/")
    except OSError:
        return False
    return True  # no v1 memory controller


def stop_sandboxes(peer: Peer, launched: list[dict], tracked: dict[int, int]) -> str:
    """SIGTERM our launchers, SIGKILL what is left of them and of their recorded descendants (pid + start
    time checked, never a name), reap, delete runtime state, and verify every recorded process is gone."""
    table = proc_table()
    for s in launched:  # descendants that appeared since the last look
        if s["exited"] is None and s["start"] is not None and alive(s["pid"], s["start"]):
            for p in descendants(s["pid"], table):
                tracked.setdefault(p["pid"], p["start"])
    for s in launched:
        if s["exited"] is None and s["start"] is not None and alive(s["pid"], s["start"]):
            if peer.stop_signal is not None:
                try:
                    os.kill(s["pid"], peer.stop_signal)
                except ProcessLookupError:
                    pass
            for argv in peer.stop_argvs(s["ident"]):
                subprocess.run(argv, stdin=devnull(), stdout=devnull(),
                               stderr=devnull(), timeout=30)
    if peer.stop_signal == signal.SIGKILL:  # nothing to wait for
        for pid, st in tracked.items():
            if alive(pid, st):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for s in launched:
            if s["exited"] is None:
                pid, st = os.waitpid(s["pid"], os.WNOHANG)
                if pid:
                    s["exited"] = st
        if all(s["exited"] is not None for s in launched) and \
                not any(alive(p, st) for p, st in tracked.items()):
            break
        time.sleep(0.1)
    killed = 0
    for pid, st in tracked.items():
        if alive(pid, st):
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    for s in launched:
        if s["exited"] is None:
            try:
                os.waitpid(s["pid"], 0)
            except ChildProcessError:
                pass
            s["exited"] = 0
    for s in launched:
        for argv in peer.cleanup_argvs(s["ident"]):
            subprocess.run(argv, stdin=devnull(), stdout=devnull(), stderr=devnull(),
                           timeout=30)
    time.sleep(0.5)
    left = [pid for pid, st in tracked.items() if alive(pid, st)]
    note = f"{len(tracked)} processes stopped" + (f" ({killed} needed SIGKILL)" if killed else "")
    return note + ("; all gone" if not left else f"; STILL ALIVE: {left[:10]}")


def measure_density(peers: list[Peer], ctx: Context, n: int, n_runsc: int, worker: Worker | None) -> dict:
    out = {}
    for p in peers:
        if not p.density_default:
            continue
        if p.error:
            out[p.key] = {"error": p.error}
            continue
        count = n_runsc if p.key == "runsc" else n
        if count <= 0:
            out[p.key] = {"error": "skipped (--density-runsc 0)"}
            continue
        cg = f"/{ctx.cgroup_name}/density-{p.key}"
        log(f"density: {count} x {p.key}")
        try:
            if p.private_cgroupfs:
                out[p.key] = worker.call({"op": "density", "peer": p.key, "n": count, "cgroup": cg})
            else:
                out[p.key] = density(p, ctx, count, cg)
        except Exception as e:  # report, go on with the next peer
            out[p.key] = {"error": f"{type(e).__name__}: {e}"}
        log(f"density: {p.key}: {json.dumps(out[p.key])}")
        time.sleep(1.0)
    return out


# -- machine, cleanup, report ---------------------------------------------------------------------------

def machine_info(peers: list[Peer]) -> dict:
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/etc/debian_version") as f:
            distro = "Debian " + f.read().strip()
    except OSError:
        distro = platform.platform()
    cg = "v2" if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")) else (
        "hybrid (v1 controllers + empty cgroup2 at /sys/fs/cgroup/unified)" if os.path.ismount(UNIFIED_MOUNT)
        else "v1")
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "kernel": platform.release(), "distro": distro,
        "mem_total_mib": meminfo()["MemTotal"] >> 20, "cgroups": cg,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
        "python": platform.python_version(),
        "versions": {p.key: p.version() for p in peers if p.key != "plain"},
    }


def remove_cgroups(name: str) -> list[str]:
    """rmdir /sys/fs/cgroup/<every hierarchy>/<name> and everything below it (ours alone), deepest first."""
    problems = []
    for h in sorted(os.listdir(CGROUP_ROOT)):
        top = os.path.join(CGROUP_ROOT, h, name)
        if not os.path.isdir(top) or os.path.islink(os.path.join(CGROUP_ROOT, h)):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            for attempt in range(20):
                try:
                    os.rmdir(dirpath)
                    break
                except OSError as e:
                    if attempt == 19:
                        problems.append(f"{dirpath}: {e.strerror}")
                    time.sleep(0.1)
    return problems


def fmt_ms(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}×" if x < 10 else f"{x:.1f}×" if x < 100 else f"{x:.0f}×"


def render(machine: dict, peers: list[Peer], lat: dict, dens: dict | None, args) -> str:
    L = []
    v = machine["versions"]
    L.append(f"Measured {machine['date']} on {machine['nproc']} CPUs ({machine['cpu']}), "
             f"{machine['mem_total_mib']} MiB RAM, kernel {machine['kernel']}, {machine['distro']}, "
             f"cgroups {machine['cgroups']}; load average at start {' '.join(machine['loadavg_start'])}"
             f", at end {' '.join(machine.get('loadavg_end', ['?']))} (these include the benchmark's own sandboxes and "
             "any other work on this shared machine).")
    L.append("")
    L.append("Versions: " + "; ".join(f"{k}: {val}" for k, val in v.items()) + f"; python3 {machine['python']}.")
    L.append("")
    L.append(f"Latency: {args.runs} timed runs per cell after {args.warmup} warm-up runs; wall time from `posix_spawn` "
             "of the launcher to `waitpid`, stdio on /dev/null. *back-to-back*: each peer's runs in a row (like "
             "hyperfine). *spaced*: peers interleaved round by round, the starting peer rotating, each run after "
             f"{args.gap_ms} ms without any sandboxing, as a request reaching an idle host would be; this exposes the "
             "RCU grace period (~15 ms here) that the first cgroup-v1 migration after an idle spell waits for.")
    airlock_ok = False
    modes = list(lat.keys())
    for w in lat[modes[0]]:
        L.append("")
        L.append(f"### Cold start: {WORKLOAD_TITLES[w]}")
        L.append("")
        head = ["Peer"]
        for m in modes:
            head += [f"{m} median ms", f"{m} p95 ms"]
        head += [f"airlock ÷ peer ({m})" for m in modes] + [f"peer ÷ bubblewrap ({m})" for m in modes]
        L.append("| " + " | ".join(head) + " |")
        L.append("|---|" + "---:|" * (len(head) - 1))
        for p in peers:
            cells, r_air, r_bw, err = [], [], [], None
            for m in modes:
                rows = lat[m][w]
                s = summarize(rows[p.key])
                s_air = summarize(rows.get("airlock", {"error": "not selected"}))
                s_bw = summarize(rows.get("bwrap", {"error": "not selected"}))
                airlock_ok = airlock_ok or "error" not in s_air
                if "error" in s:
                    err = err or s["error"]
                    cells += ["", ""]
                    r_air.append("")
                    r_bw.append("")
                    continue
                cells += [fmt_ms(s["median_ms"]), fmt_ms(s["p95_ms"])]
                r_air.append(fmt_ratio(s_air["median_ms"] / s["median_ms"]) if "error" not in s_air else "—")
                r_bw.append(fmt_ratio(s["median_ms"] / s_bw["median_ms"]) if "error" not in s_bw else "—")
            if err and not any(cells):
                msg = err.replace("|", "\\|")
                if p.key == "airlock" and "not available" in msg:
                    msg = f"awaits the binary ({msg})"
                L.append(f"| {p.label} | {msg} |" + " |" * (len(head) - 2))
                continue
            L.append("| " + " | ".join([p.label] + cells + r_air + r_bw) + " |")
    if dens is not None:
        L.append("")
        L.append(f"### Density: idle `sleep 1000` sandboxes (requested {args.density}, runsc {args.density_runsc})")
        L.append("")
        L.append("| Peer | up | host processes each | MiB each (memory cgroup) | of which kernel | "
                 "beyond plain `sleep` | MiB each (PSS) | MiB each (host used Δ, noisy) | start-up s | cleanup |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        base = dens.get("plain", {}).get("cgroup_mib")
        for p in peers:
            if p.key not in dens:
                continue
            d = dens[p.key]
            if "error" in d or not d.get("up"):
                msg = d.get("error") or f"none came up: {'; '.join(d.get('failures', [])) or d.get('stop_reason')}"
                if p.key == "airlock" and "not available" in msg:
                    msg = f"awaits the binary ({msg})"
                L.append(f"| {p.label} | {msg.replace('|', chr(92) + '|')} | | | | | | | | |")
                continue
            up = f"{d['up']}/{d['requested']}" + (f" ({d['stop_reason']})" if d.get("stop_reason") else "")
            beyond = f"{d['cgroup_mib'] - base:.2f}" if base is not None and p.key != "plain" else "—"
            cg = f"{d['cgroup_mib']:.2f}" + (f" (partial: {d['outside_cgroup']} processes outside)"
                                             if d.get("outside_cgroup") else "")
            L.append(f"| {p.label} | {up} | {d['procs_per_sandbox']:.0f} | {cg} | {d['kmem_mib']:.2f} | {beyond} | "
                     f"{d['pss_mib']:.2f} | {d['host_used_mib']:.2f} | {d['seconds_to_up']} | {d['cleanup']} |")
    elif args.no_density:
        L.append("")
        L.append("Density: skipped (--no-density).")
    if not airlock_ok:
        L.append("")
        L.append(f"**airlock**: rows await the binary (`{args.airlock}` was missing or did not run "
                 "`airlock run -- /bin/true` successfully); ratios to airlock are therefore blank, the "
                 "peer ÷ bubblewrap column stands in until then.")
    return "\n".join(L) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50, help="timed runs per peer and workload (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up runs (default 3)")
    ap.add_argument("--gap-ms", type=int, default=100,
                    help="idle time before each run of the spaced series (default 100; 0 skips that series)")
    ap.add_argument("--airlock", default=str(Path(__file__).resolve().parent.parent / "build" / "airlock"),
                    help="airlock binary")
    ap.add_argument("--density", type=int, default=200, help="idle sandboxes per peer (default 200)")
    ap.add_argument("--density-runsc", type=int, default=None,
                    help="idle gVisor sandboxes (default: as --density; each costs ~16 MiB and ~0.1 s of CPU)")
    ap.add_argument("--no-density", action="store_true", help="skip the density measurement")
    ap.add_argument("--peers", default="", help="comma-separated subset of: " +
                    ",".join(c.key for c in peers_mod.ALL_PEERS))
    ap.add_argument("--workloads", default="true,python", help="comma-separated subset of: true,python")
    ap.add_argument("--output", help="write the markdown here instead of stdout")
    ap.add_argument("--json", help="also write raw results (every sample) here")
    ap.add_argument("--_worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._worker:
        return worker_main()
    if os.geteuid() != 0:
        print("start_bench.py: run as root (crun/runc/runsc and the density cgroup need it)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, lambda s, f: sys.exit(143))
    if args.density_runsc is None:
        args.density_runsc = args.density
    workloads = [w for w in args.workloads.split(",") if w]
    for w in workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w}")

    tmp = tempfile.mkdtemp(prefix="airlock-bench-")
    os.chmod(tmp, 0o755)
    ctx = Context(tmp, f"airlock-bench-{os.getpid()}", os.path.abspath(args.airlock))
    peers = peers_mod.make_peers(ctx, [k for k in args.peers.split(",") if k] or None)
    worker = None
    try:
        for p in peers:
            if not p.error:
                p.prepare({w: WORKLOADS[w] for w in workloads} | {"sleep": SLEEP_CMD})
        airlock = next((p for p in peers if p.key == "airlock"), None)
        if airlock and not airlock.error:
            err = probe(airlock, "true")
            if err:
                airlock.error = f"not available: `airlock run -- /bin/true` failed: {err}"
        machine = machine_info(peers)
        log(f"machine: {json.dumps(machine)}")
        for p in peers:
            log(f"{p.key}: {p.error or p.invocation()}")
        if any(p.private_cgroupfs and not p.error for p in peers):
            worker = Worker(ctx)
        lat = measure_latency(peers, workloads, args.runs, args.warmup, args.gap_ms / 1000, worker)
        dens = None
        if not args.no_density:
            dens = measure_density(peers, ctx, args.density, args.density_runsc, worker)
        machine["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        md = render(machine, peers, lat, dens, args)
        if args.output:
            with open(args.output, "w") as f:
                f.write(md)
        else:
            sys.stdout.write(md)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": machine, "invocations": {p.key: p.invocation() for p in peers},
                           "latency": lat, "latency_summary": {m: {w: {k: summarize(r) for k, r in rows.items()}
                                                                   for w, rows in per_w.items()}
                                                               for m, per_w in lat.items()},
                           "density": dens}, f, indent=1)
    finally:
        if worker:
            worker.close()
        problems = remove_cgroups(ctx.cgroup_name)
        if problems:
            log(f"could not remove cgroups: {problems}")
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
