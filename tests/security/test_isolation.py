"""Isolation between two concurrent sandboxes (security-anchors B.34, B.35): each leaves files in
/tmp and /dev/shm, SysV shm/msg/sem objects, a POSIX message queue and its own processes, then
looks for the other's. Their host uid ranges must differ and not overlap.
"""
import os
import socket
import subprocess
import uuid

import pytest

from test_probe import LineReader, airlock_argv, parse_uid_map


class RunningSandbox:
    """`airlock run -i -- /probe isolate NAME`, kept alive and asked questions over stdin."""

    def __init__(self, airlock_bin, probe_bin, name):
        self.name = name
        self.proc = subprocess.Popen(airlock_argv(airlock_bin, probe_bin, "isolate", name, options=("-i",)),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.reader = LineReader(self.proc.stdout)
        self.uid_map = None

    def wait_ready(self):
        line = self.reader.readline(timeout=20)
        assert line.startswith("READY "), f"sandbox {self.name} did not start: {line!r} {self.stderr()}"
        self.uid_map = parse_uid_map(line[len("READY "):])

    def check(self, kind, other):
        self.proc.stdin.write(f"check {kind} {other.name}\n".encode())
        self.proc.stdin.flush()
        return self.reader.readline(timeout=20)

    def stderr(self):
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def two_sandboxes(airlock_bin, probe_bin):
    tag = uuid.uuid4().hex[:12]
    first = RunningSandbox(airlock_bin, probe_bin, f"sandbox-a-{tag}")
    second = RunningSandbox(airlock_bin, probe_bin, f"sandbox-b-{tag}")
    try:
        first.wait_ready()
        second.wait_ready()
        yield first, second
    finally:
        first.close()
        second.close()


def assert_isolated(two_sandboxes, kind):
    first, second = two_sandboxes
    for looker, other in ((first, second), (second, first)):
        line = looker.check(kind, other)
        assert line.startswith("BLOCKED "), f"{looker.name} sees {other.name}'s {kind}: {line}"


def test_isolation_tmp_files_are_private(two_sandboxes):
    assert_isolated(two_sandboxes, "tmp")


def test_isolation_dev_shm_files_are_private(two_sandboxes):
    assert_isolated(two_sandboxes, "shm")


def test_isolation_sysv_ipc_is_private(two_sandboxes):
    assert_isolated(two_sandboxes, "sysv")


def test_isolation_posix_message_queues_are_private(two_sandboxes):
    assert_isolated(two_sandboxes, "mqueue")


def test_isolation_processes_are_invisible(two_sandboxes):
    assert_isolated(two_sandboxes, "proc")


def test_isolation_host_uid_ranges_differ_and_do_not_overlap(two_sandboxes):
    first, second = two_sandboxes
    _, base_a, count_a = first.uid_map
    _, base_b, count_b = second.uid_map
    assert base_a + count_a <= base_b or base_b + count_b <= base_a, \
        f"host uid ranges overlap: {base_a}+{count_a} and {base_b}+{count_b}"


def test_isolation_own_traces_are_visible_to_self(two_sandboxes):
    """Control: the checks do find a sandbox's own traces, so 'not visible' above means something."""
    first, _ = two_sandboxes
    for kind in ("tmp", "shm", "sysv", "mqueue", "proc"):
        line = first.check(kind, first)
        assert line.startswith("ESCAPED "), f"the {kind} check does not even see the sandbox's own traces: {line}"


def test_isolation_hostname_and_environment_are_not_the_hosts(run):
    secret = f"airlock-sec-secret-{uuid.uuid4().hex}"
    env = dict(os.environ, AIRLOCK_SEC_SECRET=secret)
    completed = run(cmd=["/bin/sh", "-c", "hostname; cat /proc/self/environ | tr '\\0' '\\n'; "
                                          "cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'"], env=env)
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines and lines[0] != socket.gethostname(), f"the sandbox carries the host's hostname {lines[0]!r}"
    assert secret not in completed.stdout, "the host's environment leaked into the sandbox"
