"""`airlock shell` driven through a real pseudo-terminal, as a user at a keyboard would: the shell's
output, its exit status, window resizes, Ctrl-C going to the sandbox, and the user's terminal
restored afterwards. `exec -t` too."""
import fcntl
import os
import pty
import select
import struct
import termios
import time

from test_cli_support import airlock_cli_bin, box, cli  # noqa: F401 (fixtures)


class Terminal:
    """`airlock ARGS` on the slave side of a fresh pty; we hold the master (the 'keyboard and screen')."""

    def __init__(self, cli, *args, rows=24, cols=80, wrapper=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child: the pty is our controlling terminal
            try:
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                env = cli.env()
                if wrapper:
                    os.execve("/bin/sh", ["sh", "-c", wrapper, cli.binary, *args], env)
                os.execve(cli.binary, [cli.binary, *args], env)
            finally:
                os._exit(127)
        self.output = b""

    def read_until(self, needle, timeout=20):
        deadline = time.monotonic() + timeout
        while needle not in self.output and time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.2)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the child side is closed
                    break
                if not data:
                    break
                self.output += data
        assert needle in self.output, f"{needle!r} not in {self.output[-2000:]!r}"

    def send(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.read_until(b"\x00never", timeout=0.2)
            except AssertionError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, 9)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        raise AssertionError(f"airlock did not exit; output: {self.output[-2000:]!r}")


def test_shell_echo_and_exit_code(cli, box):
    t = Terminal(cli, "shell", box)
    t.send(b"echo hi; exit 3\r")
    t.read_until(b"hi\r\n")
    assert t.wait() == 3


def test_shell_resize_and_ctrl_c(cli, box):
    t = Terminal(cli, "shell", box, rows=30, cols=100)
    t.send(b"stty size\r")
    t.read_until(b"30 100")
    fcntl.ioctl(t.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 150, 0, 0))  # SIGWINCH to airlock
    time.sleep(0.5)
    t.send(b"stty size\r")
    t.read_until(b"50 150")
    t.send(b"sleep 60; echo not-$((1+1))\r")
    time.sleep(0.5)
    t.send(b"\x03")  # raw mode: Ctrl-C is a byte for the remote terminal, not a signal for airlock
    t.send(b"echo after-$((2+3))\r")
    t.read_until(b"after-5\r\n")  # the output, not the echo of what was typed
    assert b"not-2" not in t.output
    t.send(b"exit\r")
    assert t.wait() == 0


def test_terminal_restored(cli, box):
    # The wrapper records the terminal's settings before and after airlock, on the same pty.
    wrapper = 'before=$(stty -g); "$0" "$@"; rc=$?; after=$(stty -g); ' \
              '[ "$before" = "$after" ] && echo RESTORED || echo CHANGED; exit $rc'
    t = Terminal(cli, "shell", box, wrapper=wrapper)
    t.send(b"exit 5\r")
    t.read_until(b"RESTORED")
    assert t.wait() == 5


def test_shell_with_command(cli, box):
    t = Terminal(cli, "shell", box, "--", "sh", "-c", "tty; exit 6")
    t.read_until(b"/dev/pts/")
    assert t.wait() == 6


def test_exec_it_on_a_terminal(cli, box):
    t = Terminal(cli, "exec", "-it", box, "--", "sh", "-c", "read x; echo got-$x; exit 2")
    t.send(b"abc\r")
    t.read_until(b"got-abc")
    assert t.wait() == 2


def test_shell_errors(cli):
    r = cli.run("shell", "sb-0000000000000000")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
    r = cli.run("shell")
    assert r.returncode == 125
