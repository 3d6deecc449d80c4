"""Processes: reaching PID 1 or host processes, nested user namespaces, kill evasion and moving
out of the sandbox's cgroup (security-anchors B.7, B.18, B.33).
"""
import json
import os
import subprocess
import threading
import time
import uuid

import pytest

from test_probe import (LineReader, airlock_argv, assert_blocked, host_processes_in_range, parse_uid_map,  # noqa: F401
                        probe)

CGROUP_ROOT = "/sys/fs/cgroup"


def test_attack_ptrace_and_process_vm_on_init(probe):
    assert_blocked(probe("ptrace-init"))


def test_attack_steal_init_fds_via_proc_and_pidfd_getfd(probe):
    assert_blocked(probe("init-fds"))


def test_attack_host_processes_are_invisible(probe):
    # A host process with a PID far above anything the sandbox's own namespace hands out.
    sleepers = []
    try:
        while True:
            sleeper = subprocess.Popen(["sleep", "60"])
            sleepers.append(sleeper)
            if sleeper.pid > 1000:
                break
        assert_blocked(probe("host-pid", str(sleepers[-1].pid)))
    finally:
        for sleeper in sleepers:
            sleeper.kill()
            sleeper.wait()


def test_attack_forge_host_audit_records_with_cap_audit_write(probe):
    assert_blocked(probe("audit-write"))


def test_attack_nested_user_namespace_creation_fails(run):
    completed = run(cmd=["/bin/sh", "-c", "cat /proc/sys/user/max_user_namespaces; unshare --user true"])
    assert completed.returncode != 0, f"unshare --user succeeded inside the sandbox:\n{completed.stdout}"
    assert "Operation not permitted" in completed.stderr, completed.stderr


def test_attack_kill_evasion_setsid_double_fork_ignore_sigterm(airlock_bin, probe_bin):
    """--timeout must SIGKILL everything: no process of the sandbox's host uid range survives."""
    token = f"evade-{uuid.uuid4().hex}"
    argv = airlock_argv(airlock_bin, probe_bin, "evade", token, options=("--timeout", "1500ms"))
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ready = LineReader(proc.stdout).readline(timeout=20)
        assert ready.startswith("READY "), f"the workload did not start: {ready!r}"
        _, base, count = parse_uid_map(ready[len("READY "):])
        scattered = host_processes_in_range(base, count, token)
        assert len(scattered) >= 3, f"expected the workload and its escapees on the host, found {scattered}"
        returncode = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    elapsed = time.monotonic() - started
    stderr = proc.stderr.read().decode(errors="replace")
    assert returncode == 124, f"exit code {returncode}, expected 124 (timeout); stderr: {stderr}"
    assert elapsed < 10, f"airlock took {elapsed:.1f}s to enforce a 1.5s timeout"
    survivors = host_processes_in_range(base, count)
    assert not survivors, f"processes of the sandbox's host uid range {base}+{count} survived: {survivors}"


def test_attack_daemonized_child_outliving_the_command(airlock_bin, probe_bin):
    """The command exits at once, leaving a setsid'd double-forked grandchild that ignores signals and
    holds stdout open: airlock must still return promptly with the command's status, leaving nothing."""
    token = f"daemon-{uuid.uuid4().hex}"
    started = time.monotonic()
    completed = subprocess.run(airlock_argv(airlock_bin, probe_bin, "daemonize", token), capture_output=True,
                               text=True, timeout=30)
    elapsed = time.monotonic() - started
    ready = completed.stdout.strip()
    assert completed.returncode == 0 and ready.startswith("READY "), f"{completed.returncode}: {completed.stderr}"
    assert elapsed < 5, f"airlock waited {elapsed:.1f}s for a daemonized grandchild"
    _, base, count = parse_uid_map(ready[len("READY "):])
    survivors = host_processes_in_range(base, count)
    assert not survivors, f"the daemonized grandchild survived the sandbox: {survivors}"


@pytest.mark.parametrize("ending", ["exit_3", "timeout"])
def test_attack_forge_json_summary_through_stderr(run, ending):
    """The sandbox shares stderr with airlock's --json summary. A workload that prints a forged summary
    and leaves an unterminated line must not corrupt or replace the real one: the last line of stderr
    is airlock's own JSON object with the real outcome."""
    forged = '{"exit_code":0,"signal":null,"reason":"exited","oom_kills":0}'
    finish, code, reason = ("exit 3", 3, "exited") if ending == "exit_3" else ("exec sleep 30", 124, "timeout")
    script = f"printf '%s\\n{{\"forged\":' '{forged}' >&2; {finish}"
    completed = run("--json", "--timeout", "1s", cmd=["/bin/sh", "-c", script], timeout=30)
    assert completed.returncode == code, f"exit code {completed.returncode}: {completed.stderr}"
    last = completed.stderr.rstrip("\n").splitlines()[-1]
    try:
        summary = json.loads(last)
    except ValueError:
        pytest.fail(f"the last stderr line is not airlock's JSON summary (the sandbox's unterminated output "
                    f"was glued to it): {last!r}")
    assert summary.get("reason") == reason and summary.get("exit_code") == code, f"summary: {summary}"


def host_cgroup_hierarchies():
    names = []
    for name in ("pids", "memory", "cpu", "freezer", "unified"):
        if os.path.exists(os.path.join(CGROUP_ROOT, name, "cgroup.procs")):
            names.append(name)
    if not names and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        names.append("")  # a pure cgroup v2 host
    return names


def test_attack_write_own_pid_into_another_cgroup(probe):
    """No cgroupfs is mounted inside; even with the host's cgroupfs bound in by a careless operator,
    the sandbox cannot move itself out of its cgroup nor touch any sandbox's limits."""
    hierarchies = host_cgroup_hierarchies()
    if not hierarchies:
        pytest.skip("no cgroup filesystem on this host")
    options, dirs = [], []
    for name in hierarchies:
        options += ["-v", f"{os.path.join(CGROUP_ROOT, name)}:/hostcg/{name or 'v2'}"]
        dirs.append(f"/hostcg/{name or 'v2'}")
    assert_blocked(probe("cgroup-move", "/sys/fs/cgroup", "/sys/fs/cgroup/unified", *dirs, options=options))


class DeadlineRun:
    """An `airlock run --timeout` whose workload prints `READY <uid_map>` first, for the tests below."""

    def __init__(self, airlock_bin, probe_bin, probe_args, options, **popen):
        self.token = f"deadline-{uuid.uuid4().hex}"
        argv = airlock_argv(airlock_bin, probe_bin, *probe_args, self.token, options=options)
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
        ready = LineReader(self.proc.stdout).readline(timeout=20)
        assert ready.startswith("READY "), f"the workload did not start: {ready!r}"
        _, self.base, self.count = parse_uid_map(ready[len("READY "):])

    def survivors_after(self, seconds):
        """Sandbox processes still alive `seconds` after the start (polled, so a fast kill passes early)."""
        deadline = self.started + seconds
        while True:
            alive = host_processes_in_range(self.base, self.count, self.token)
            if not alive or time.monotonic() >= deadline:
                return alive
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def test_attack_kill_evasion_by_not_reading_stdin(airlock_bin, probe_bin):
    """With -i and more input than a pipe holds, a workload that never reads its stdin must still be
    killed at the deadline (airlock must not block writing to the sandbox's stdin)."""
    run = DeadlineRun(airlock_bin, probe_bin, ["evade"], ("-i", "--timeout", "1s"), stdin=subprocess.PIPE)
    writer = threading.Thread(target=feed, args=(run.proc.stdin, 8 << 20), daemon=True)
    writer.start()
    try:
        survivors = run.survivors_after(6)
        returncode = None if survivors else wait_for_exit(run.proc, 5)
    finally:
        run.stop()
    assert not survivors, (f"6s after start, a --timeout 1s sandbox that does not read its stdin is still alive "
                           f"(airlock blocked writing its stdin?): {survivors}")
    assert returncode == 124, f"exit code {returncode}, expected 124"


def test_attack_kill_evasion_by_stalling_stdout(airlock_bin, probe_bin):
    """A workload that floods stdout while the reader stalls must still be killed at the deadline
    (airlock must not sit blocked in write(stdout) past the deadline)."""
    run = DeadlineRun(airlock_bin, probe_bin, ["evade-flood"], ("--timeout", "1s"))
    try:
        survivors = run.survivors_after(6)  # we stop reading airlock's stdout after READY
    finally:
        run.proc.stdout.close()  # from here airlock's writes fail with EPIPE and it can finish
        returncode = wait_for_exit(run.proc, 10)
        run.stop()
    assert not survivors, (f"6s after start, a --timeout 1s sandbox whose stdout reader stalled is still alive "
                           f"(airlock blocked writing its stdout?): {survivors}")
    assert returncode == 124, f"exit code {returncode}, expected 124"


def wait_for_exit(proc, seconds):
    try:
        return proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


def feed(stream, size):
    try:
        stream.write(b"\0" * size)
        stream.close()
    except (BrokenPipeError, ValueError, OSError):
        pass
