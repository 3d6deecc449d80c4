"""`airlock run -t`: the command runs on a pseudo-terminal inside the sandbox.

The tests stand in for a user's terminal: they open a pty pair (os.openpty), give its slave to airlock as
stdin/stdout/stderr, and talk to the master. Waits are "until the expected text shows up", bounded by
generous deadlines that only turn a hang into a failure.
"""
import fcntl
import os
import select
import signal
import struct
import subprocess
import termios
import time

import pytest

DEADLINE = 15  # seconds; generous, only reached when something is broken


def set_winsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Terminal:
    """A pty whose slave end is airlock's terminal; the test holds the master."""

    def __init__(self, airlock_bin, *options, cmd, rows=30, cols=100, env=None):
        self.master, slave = os.openpty()
        set_winsize(slave, rows, cols)
        self.saved_attrs = termios.tcgetattr(slave)
        self.proc = subprocess.Popen([airlock_bin, "run", "-t", *options, "--", *cmd], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, start_new_session=True)
        os.close(slave)
        self.output = b""

    def read_until(self, needle, deadline=DEADLINE):
        """Reads until `needle` (bytes) has appeared in the output; returns everything read so far."""
        end = time.monotonic() + deadline
        while needle not in self.output:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} did not appear within {deadline} s; output so far: {self.output!r}")
            if not self._read_some(min(left, 0.2)) and self.proc.poll() is not None and not self._read_some(0.2):
                raise AssertionError(f"airlock exited ({self.proc.returncode}) before {needle!r} appeared; "
                                     f"output: {self.output!r}")
        return self.output

    def _read_some(self, timeout):
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.output += data
        return bool(data)

    def write(self, data):
        os.write(self.master, data)

    def wait(self, deadline=DEADLINE):
        try:
            code = self.proc.wait(timeout=deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"airlock -t still running after {deadline} s; output: {self.output!r}")
        while self._read_some(0.05):
            pass
        return code

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


@pytest.fixture
def terminal(airlock_bin):
    opened = []

    def _open(*options, cmd, **kwargs):
        t = Terminal(airlock_bin, *options, cmd=cmd, **kwargs)
        opened.append(t)
        return t

    yield _open
    for t in opened:
        t.close()


def lines(output):
    return [line for line in output.decode(errors="replace").replace("\r", "").split("\n")]


def test_output_arrives(terminal):
    t = terminal(cmd=["sh", "-c", "echo hello from the sandbox; exit 3"])
    t.read_until(b"hello from the sandbox")
    assert t.wait() == 3


def test_tty_inside_is_a_pts(terminal):
    t = terminal(cmd=["sh", "-c", "tty; echo done"])
    out = t.read_until(b"done")
    assert t.wait() == 0
    first = lines(out)[0]
    assert first.startswith("/dev/pts/") and first[len("/dev/pts/"):].isdigit(), out


def test_stty_size_matches_the_outer_terminal(terminal):
    t = terminal(cmd=["sh", "-c", "stty size; echo done"], rows=37, cols=111)
    out = t.read_until(b"done")
    assert t.wait() == 0
    assert "37 111" in lines(out), out


def test_sigwinch_resizes_the_inner_terminal(terminal):
    # A shell loop watches `stty size` until it changes, then a command started afterwards reports it.
    script = (
        'first=$(stty size); echo "first:$first"; '
        'while [ "$(stty size)" = "$first" ]; do sleep 0.05; done; '
        'echo "resized:$(stty size)"'
    )
    t = terminal(cmd=["sh", "-c", script], rows=30, cols=100)
    t.read_until(b"first:30 100")
    set_winsize(t.master, 42, 132)
    t.proc.send_signal(signal.SIGWINCH)  # what a terminal emulator's kernel tty does for its foreground job
    t.read_until(b"resized:42 132")
    assert t.wait() == 0


def test_sigwinch_reaches_the_foreground_command(terminal):
    script = "trap 'echo winch:$(stty size)' WINCH; echo ready; while :; do sleep 0.05; done"
    t = terminal(cmd=["sh", "-c", script], rows=30, cols=100)
    t.read_until(b"ready")
    set_winsize(t.master, 25, 90)
    t.proc.send_signal(signal.SIGWINCH)
    t.read_until(b"winch:25 90")


def test_typed_input_reaches_the_command(terminal):
    t = terminal(cmd=["sh", "-c", 'echo ready; read line; echo "got:$line"'])
    t.read_until(b"ready")
    t.write(b"hello sandbox\r")  # Enter in a raw terminal is CR; the inner pty turns it into a newline
    t.read_until(b"got:hello sandbox")
    assert t.wait() == 0


def test_ctrl_c_interrupts_sleep(terminal):
    t = terminal(cmd=["sh", "-c", "echo ready; exec sleep 1000"])
    t.read_until(b"ready")
    t.write(b"\x03")
    assert t.wait() == 128 + signal.SIGINT


def test_ctrl_d_ends_input(terminal):
    t = terminal(cmd=["sh", "-c", "echo ready; cat; echo cat-done"])
    t.read_until(b"ready")
    t.write(b"abc\r")
    t.read_until(b"abc\r\nabc")  # the inner terminal echoes, then cat repeats the line
    t.write(b"\x04")
    t.read_until(b"cat-done")
    assert t.wait() == 0


def test_outer_terminal_is_restored_after_exit(terminal):
    t = terminal(cmd=["sh", "-c", "echo done"])
    t.read_until(b"done")
    assert t.wait() == 0
    # The master reports the slave side's settings: raw mode must be undone on the way out.
    assert termios.tcgetattr(t.master) == t.saved_attrs


def test_tty_without_an_outer_terminal(run):
    # -t with pipes: there is no terminal to make raw or to size, but the command still gets a pty.
    r = run("-t", cmd=["sh", "-c", "tty; stty size; echo done"], input="")
    assert r.returncode == 0, r.stderr
    out = r.stdout.replace("\r", "").splitlines()
    assert out[0].startswith("/dev/pts/"), r.stdout
    rows, cols = (int(x) for x in out[1].split())
    assert rows > 0 and cols > 0
    assert "done" in out
