"""sandbox.pty: a terminal over the attach WebSocket (the SDK's own RFC 6455 client): typing, window size,
resize, exit status, re-attaching, and attaching to a plain (non-PTY) process."""
import pytest

import airlock
from airlock import errors
from sdk_helpers import wait_until


def _text(chunks):
    return b"".join(chunks).decode("utf-8", "replace")


def test_pty_shell_types_resizes_and_exits(sandbox):
    out = []
    term = sandbox.pty.create(cols=100, rows=30, on_data=out.append)
    assert isinstance(term, airlock.PtyHandle) and term.pid >= 1
    info = sandbox.commands.get(term.pid)
    assert info.pty == {"cols": 100, "rows": 30} and info.stdin_open
    term.send_stdin("stty size; echo TERM=$TERM; tty\n")
    wait_until(lambda: "30 100" in _text(out), message="the terminal size")
    wait_until(lambda: "TERM=xterm-256color" in _text(out) and "/dev/pts/" in _text(out), message="a tty")
    term.resize(120, 40)
    term.send_stdin("stty size\n")
    wait_until(lambda: "40 120" in _text(out), message="the new size")
    term.send_stdin("exit 3\n")
    result = term.wait(timeout=20)
    assert isinstance(result, airlock.CommandResult)
    assert result.exit_code == 3 and result.reason == "exited" and "40 120" in result.stdout


def test_pty_iteration_and_reattach(sandbox):
    term = sandbox.pty.create(cmd=["sh"], cols=80, rows=24)
    term.send_stdin("echo first-$((6*7))\n")
    got = b""
    for chunk in term:
        got += chunk
        if b"first-42" in got:
            break
    term.disconnect()  # the process keeps running
    assert sandbox.commands.get(term.pid).is_running
    again = sandbox.pty.connect(term.pid, offset=0)  # replays the output from the start
    wait_until(lambda: b"first-42" in again.output, message="the replayed output")
    again.send_stdin("echo second\nexit\n")
    result = again.wait(timeout=20)
    assert result.exit_code == 0 and "second" in result.stdout


def test_attach_to_a_background_process(sandbox):
    handle = sandbox.commands.run(["cat"], background=True)
    session = sandbox.pty.connect(handle.pid)
    session.attached.wait(10)
    session.send_stdin(b"through the websocket\n")
    wait_until(lambda: b"through the websocket\n" in session.output, message="cat's echo")
    session.close_stdin()
    result = session.wait(timeout=20)
    assert result.exit_code == 0
    assert handle.wait(timeout=20).stdout == "through the websocket\n"


def test_signal_over_the_websocket(sandbox):
    term = sandbox.pty.create(cmd="sleep 600")
    term.signal("SIGTERM")
    result = term.wait(timeout=20)
    assert result.signal == "SIGTERM" and result.reason == "signaled"


def test_attach_errors(sandbox):
    with pytest.raises(errors.ProcessNotFoundError):
        sandbox.pty.connect(4000000)
    with pytest.raises(errors.SandboxNotFoundError):
        airlock.Sandbox("sb-0000000000000000", api_url=sandbox.api_url, api_key=sandbox._http.api_key).pty.connect(1)
