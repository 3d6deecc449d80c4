"""Resource bombs (security-anchors B.29-B.32): each is contained inside the sandbox, Airlock
returns promptly, and the host (and the airlock process itself) stays fine.
"""
import hashlib
import json
import os
import subprocess
import time

import pytest

from test_probe import airlock_argv, assert_blocked, probe  # noqa: F401  (probe is a fixture)

MiB = 1 << 20


def json_summary(stderr):
    for line in reversed(stderr.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON summary line on stderr: {stderr!r}")


def test_resource_fork_bomb_is_contained(probe):
    started = time.monotonic()
    result = probe("forkbomb", "32", options=("--pids", "32", "--timeout", "20s"), timeout=40)
    elapsed = time.monotonic() - started
    assert_blocked(result)
    assert elapsed < 15, f"airlock needed {elapsed:.1f}s to end a contained fork bomb"
    assert subprocess.run(["/bin/true"]).returncode == 0, "the host cannot fork any more"


def test_resource_memory_bomb_is_oom_killed(probe):
    result = probe("membomb", "2048", options=("--memory", "64M", "--json", "--timeout", "30s"), timeout=60)
    assert result.returncode == 137, "expected exit 137 (OOM kill):" + result.describe()
    summary = json_summary(result.stderr)
    assert summary["reason"] == "oom", f"JSON reason {summary['reason']!r}, expected 'oom': {summary}"
    assert summary["peak_memory_bytes"] <= 64 * MiB, f"peak memory above the limit: {summary}"


def test_resource_sysv_shm_memory_bomb_is_contained(probe):
    # SysV segments outlive their creator; they are charged to the sandbox and die with its IPC namespace.
    result = probe("membomb", "2048", "sysv", options=("--memory", "64M", "--json", "--timeout", "30s"), timeout=60)
    if result.returncode == 0:
        assert_blocked(result)  # the allocation failed inside: contained as well
        return
    assert result.returncode == 137, "expected exit 137 (OOM kill):" + result.describe()
    assert json_summary(result.stderr)["reason"] == "oom", result.describe()


def test_resource_dev_shm_fill_is_bounded(probe):
    # /dev/shm is min(64 MiB, --memory); the tmpfs pages count against the sandbox's memory too.
    assert_blocked(probe("fill", str(64 * MiB), "/dev/shm/fill", options=("--memory", "256M")))


def test_resource_disk_fill_gives_enospc(probe):
    # One --disk budget covers every writable path of the root layer together (/usr is read-only).
    files = ["/root/fill", "/tmp/fill", "/var/tmp/fill"]
    assert_blocked(probe("fill", str(16 * MiB), *files, options=("--disk", "16M")))


def test_resource_inode_exhaustion_gives_enospc(probe):
    assert_blocked(probe("inodes", "/tmp/many", options=("--disk", "16M"), timeout=60))


def test_resource_fd_exhaustion_gives_emfile(probe):
    assert_blocked(probe("fd-exhaust"))


def fnv1a(args):
    h = 1469598103934665603
    for arg in args:
        for byte in arg.encode() + b"\0":
            h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


@pytest.mark.parametrize("shape", ["few_long_args", "many_short_args"])
def test_resource_near_arg_max_argv_is_passed_intact(airlock_bin, probe_bin, shape):
    env = {"PATH": "/usr/bin:/bin"}
    base = airlock_argv(airlock_bin, probe_bin, "argv")
    # What execve counts: every string with its NUL and one pointer each, argv and envp.
    used = sum(len(a) + 1 + 8 for a in base) + sum(len(k) + len(v) + 2 + 8 for k, v in env.items()) + 8
    budget = os.sysconf("SC_ARG_MAX") - used - 4096
    longest = 128 * 1024 - 1 if shape == "few_long_args" else 7  # MAX_ARG_STRLEN is 128 KiB with the NUL
    args = []
    while budget > 8 + 2:
        size = min(longest, budget - 8 - 1)
        args.append(chr(ord("a") + len(args) % 26) * size)
        budget -= size + 1 + 8
    completed = subprocess.run(base + args, capture_output=True, text=True, env=env, timeout=60)
    expected = f"ARGV count={len(args)} bytes={sum(len(a) + 1 for a in args)} fnv={fnv1a(args):016x}"
    assert completed.returncode == 0 and completed.stdout.strip() == expected, \
        (f"argv of {len(args)} strings, {sum(len(a) for a in args)} bytes: exit {completed.returncode}, "
         f"stdout {completed.stdout.strip()!r}, expected {expected!r}; stderr {completed.stderr.strip()[-500:]!r}")


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def test_resource_200mb_of_stdout_arrives_with_bounded_airlock_memory(airlock_bin, probe_bin):
    """200 MiB through airlock to a reader slower than the sandbox writes (1 KiB reads, short pauses),
    so airlock always holds unsent output: all of it arrives intact, and airlock's own peak RSS,
    sampled while it runs, stays far below the volume relayed (cf. CVE-2020-27174)."""
    total = 200 * MiB
    proc = subprocess.Popen(airlock_argv(airlock_bin, probe_bin, "flood", str(total)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    digest, received, peak, next_sample = hashlib.sha256(), 0, 0, 0
    fd = proc.stdout.fileno()
    reads = 0
    while True:
        chunk = os.read(fd, 1024)
        if not chunk:
            break
        reads += 1
        if reads % 64 == 0:
            time.sleep(0.0001)
        received += len(chunk)
        digest.update(chunk)
        if received >= next_sample:  # airlock cannot have exited: it still holds our unread bytes
            peak = max(peak, peak_rss_kib(proc.pid))
            next_sample += 8 * MiB
    returncode = proc.wait(timeout=60)
    stderr = proc.stderr.read().decode(errors="replace")
    block = bytes(ord("a") + (i % 4096) % 26 for i in range(65536))
    expected = hashlib.sha256()
    for _ in range(total // len(block)):
        expected.update(block)
    assert returncode == 0, f"exit code {returncode}; stderr {stderr!r}"
    assert received == total, f"received {received} of {total} bytes"
    assert digest.hexdigest() == expected.hexdigest(), "the output arrived corrupted"
    assert 0 < peak < 32 * 1024, f"airlock's peak RSS reached {peak} KiB while relaying {total >> 20} MiB"


def test_resource_200mb_of_stdin_to_a_slow_reader_keeps_airlock_memory_bounded(airlock_bin, probe_bin):
    """The other direction: 200 MiB into `airlock run -i` for a sandbox that reads slowly. The
    sandbox sets the pace, so airlock must hold back (bounded buffer), not queue the input."""
    total = 200 * MiB
    proc = subprocess.Popen(airlock_argv(airlock_bin, probe_bin, "sink", options=("-i",)),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    block = b"i" * MiB
    peak = 0
    for i in range(total // MiB):
        proc.stdin.write(block)  # blocks while airlock holds back: that is the point
        if i % 8 == 0:
            peak = max(peak, peak_rss_kib(proc.pid))
    proc.stdin.close()
    stdout, stderr = proc.stdout.read(), proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0 and stdout.decode().strip() == f"SINK bytes={total}", \
        f"exit {proc.returncode}, stdout {stdout[-200:]!r}, stderr {stderr[-500:]!r}"
    assert 0 < peak < 32 * 1024, f"airlock's peak RSS reached {peak} KiB while relaying {total >> 20} MiB of stdin"


def test_resource_cpu_bomb_is_throttled(probe):
    # Three spinning processes for 1.5 s under --cpus 0.5: CFS quota keeps them near half a CPU.
    result = probe("spin", "1.5", "3", options=("--cpus", "0.5", "--json"), timeout=30)
    assert result.returncode == 0, result.describe()
    summary = json_summary(result.stderr)
    share = summary["cpu_time_ms"] / summary["wall_time_ms"]
    assert share < 0.7, f"the sandbox used {share:.2f} CPUs with --cpus 0.5: {summary}"
