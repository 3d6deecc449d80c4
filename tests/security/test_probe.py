"""The probe itself: shared helpers for the security suite, and proof that the probe is not vacuous.

Every attack test runs build/airlock-probe inside a sandbox (bound read-only at /probe). The probe
prints one line, `BLOCKED <detail>` (exit 0), `ESCAPED <detail>` (exit 1) or `ERROR <detail>`
(exit 2). The other test modules import `probe`, `assert_blocked` and friends from here.

The calibration test at the end runs the same probe outside Airlock, in a plain user namespace
without a seccomp filter: there the kernel-surface attempts must report ESCAPED, which shows their
arguments really reach the kernel when nothing filters them (EBADF/EFAULT/EINVAL or success).
"""
import os
import select
import shutil
import subprocess
import time

import pytest

PROBE = "/probe"  # where the probe binary appears inside every sandbox

# Capabilities root keeps inside a sandbox: chown, dac_override, fowner, fsetid, kill, setgid,
# setuid, setpcap, net_bind_service, audit_write, setfcap.
ROOT_CAPS = sum(1 << c for c in (0, 1, 3, 4, 5, 6, 7, 8, 10, 29, 31))
assert ROOT_CAPS == 0xA00005FB


class ProbeResult:
    """The outcome of one probe run: airlock's exit code and the probe's verdict line."""

    def __init__(self, completed, options=(), args=()):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr
        self.command = " ".join(["airlock run", *options, "--", PROBE, *args])
        lines = [line for line in (completed.stdout or "").splitlines() if line.strip()]
        self.line = lines[-1] if lines else ""
        self.verdict, _, self.detail = self.line.partition(" ")

    def describe(self):
        return (f"\n  command: {self.command}\n  exit code: {self.returncode}\n  probe said: {self.line or '(nothing)'}"
                f"\n  stderr: {(self.stderr or '').strip()[-2000:]}")


def assert_blocked(result):
    """The attack must have been stopped: verdict BLOCKED and exit code 0."""
    assert result.verdict == "BLOCKED" and result.returncode == 0, "attack not blocked:" + result.describe()


@pytest.fixture
def probe(run, probe_bin):
    """probe(*probe_args, options=(...airlock run options...), timeout=60, input=None) -> ProbeResult."""

    def _probe(*args, options=(), timeout=60, input=None):
        full_options = ("-v", f"{probe_bin}:{PROBE}:ro", *options)
        completed = run(*full_options, cmd=[PROBE, *args], input=input, timeout=timeout)
        return ProbeResult(completed, options, args)

    return _probe


def airlock_argv(airlock_bin, probe_bin, *args, options=()):
    """argv for `airlock run` with the probe bound in, for tests that need Popen."""
    return [airlock_bin, "run", "-v", f"{probe_bin}:{PROBE}:ro", *options, "--", PROBE, *args]


class LineReader:
    """Reads lines from a child's pipe with a deadline, so no test can hang on a silent sandbox."""

    def __init__(self, stream):
        self.fd = stream.fileno()
        self.buffer = b""

    def readline(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no line within {timeout}s (got so far: {self.buffer[-200:]!r})")
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(self.fd, 65536)
            if not chunk:
                line, self.buffer = self.buffer, b""
                return line.decode(errors="replace")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode(errors="replace")


def parse_uid_map(line):
    """'0 1234567 65536' -> (inside, host_base, count)."""
    inside, host, count = (int(x) for x in line.split())
    return inside, host, count


def host_processes_in_range(base, count, token=None):
    """Host PIDs whose real or effective uid lies in [base, base+count) (and whose cmdline has token)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:3]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration):
            continue
        if any(base <= int(u) < base + count for u in uids) and (token is None or token in cmdline):
            found.append((int(entry), cmdline.strip()))
    return found


# ---------------------------------------------------------------------------------------------
# Self-tests of the probe.
# ---------------------------------------------------------------------------------------------

# Probe subcommands whose attempts must all reach the kernel when no seccomp filter is in place.
CALIBRATED = [
    ["io_uring"], ["userfaultfd"], ["bpf"], ["perf_event_open"], ["keyctl"], ["add_key"], ["request_key"],
    ["mount"], ["umount2"], ["fsopen"], ["open_tree"], ["move_mount"], ["fsmount-fspick"], ["mount_setattr"],
    ["pivot_root"], ["chroot"], ["setns"], ["unshare", "user"], ["clone", "user"], ["clone3"], ["reboot"],
    ["settimeofday"], ["clock_settime"], ["adjtimex"], ["open_by_handle_at"], ["tiocsti"], ["tiocsti-high-bits"],
    ["tioclinux"], ["socket-packet"], ["socket-raw"], ["socket-vsock"], ["socket-alg"], ["socket-other"],
    ["misc-denied"], ["i386", "getpid"], ["i386", "unshare"], ["i386", "socketcall"],
]


def test_probe_reports_escape_without_the_sandbox_filter(probe_bin):
    """Outside Airlock (a bare user namespace, no seccomp) every calibrated attempt says ESCAPED.

    If one said BLOCKED here, its arguments would be stopped by the kernel itself and its test inside
    the sandbox would prove nothing about the filter.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("util-linux unshare is not installed")
    failures = []
    for args in CALIBRATED:
        argv = [unshare, "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork", "--mount-proc",
                probe_bin, *args]
        completed = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        line = completed.stdout.strip().splitlines()[-1] if completed.stdout.strip() else ""
        if not line.startswith("ESCAPED") or completed.returncode != 1:
            failures.append(f"{' '.join(args)}: exit {completed.returncode}: {line or completed.stderr.strip()}")
    assert not failures, "probe attempts that do not reach the kernel even unfiltered:\n" + "\n".join(failures)


def test_probe_runs_in_a_sandbox_and_reports(probe):
    result = probe("ids")
    assert result.returncode == 0 and result.line.startswith("IDS "), result.describe()
