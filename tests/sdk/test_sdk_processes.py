"""Background processes through the SDK: commands.run(background=True) -> CommandHandle (wait, stdin,
signals, kill, iteration, callbacks), commands.list/get/connect, re-attaching from another client."""
import time

import pytest

import airlock
from airlock import errors
from sdk_helpers import wait_until


def test_background_returns_at_once_and_wait_gives_the_result(sandbox):
    t0 = time.monotonic()
    handle = sandbox.commands.run("sleep 1; echo done; echo warn >&2; exit 5", background=True)
    assert time.monotonic() - t0 < 0.9
    assert isinstance(handle, airlock.CommandHandle) and handle.pid >= 1
    assert handle.info.kind == "background" and handle.info.state == "running"
    assert handle.info.argv == ["/bin/sh", "-c", "sleep 1; echo done; echo warn >&2; exit 5"]
    assert handle.exit_code is None
    result = handle.wait(timeout=30)
    assert isinstance(result, airlock.CommandResult)
    assert result.exit_code == 5 and result.reason == "exited" and result.pid == handle.pid
    assert result.stdout == "done\n" and result.stderr == "warn\n"
    assert handle.exit_code == 5
    assert handle.wait() is not None  # waiting again returns at once


def test_send_stdin_and_close_stdin(sandbox):
    handle = sandbox.commands.run(["cat"], background=True)
    assert handle.info.stdin_open
    handle.send_stdin("hello\n")
    handle.send_stdin(b"\x00\x01 binary\n")
    handle.close_stdin()
    handle.close_stdin()  # idempotent
    result = handle.wait(timeout=30)
    assert result.exit_code == 0 and result.stdout == "hello\n\x00\x01 binary\n"


def test_send_stdin_interactively(sandbox):
    seen = []
    handle = sandbox.commands.run(["python3", "-u", "-c",
                                   "import sys\nfor line in sys.stdin: print('echo:' + line.strip(), flush=True)"],
                                  background=True, on_stdout=seen.append)
    for i in range(3):
        handle.send_stdin(f"line{i}\n")
        wait_until(lambda: f"echo:line{i}\n" in "".join(seen), timeout=10, message=f"line{i} echoed back")
    handle.close_stdin()
    result = handle.wait(timeout=30)
    assert result.exit_code == 0 and result.stdout == "echo:line0\necho:line1\necho:line2\n"


def _buffered(handle):
    stream = handle._open_output(follow=False)
    return list(handle._consume(stream))


def test_stdin_of_a_process_without_open_stdin(sandbox):
    handle = sandbox.commands.run("sleep 30", background=True, open_stdin=False)
    assert not handle.info.stdin_open
    with pytest.raises(errors.StdinClosedError) as exc:
        handle.send_stdin("x")
    assert exc.value.status == 409 and exc.value.code == "stdin_closed"
    handle.kill()


def test_kill_ends_the_process_and_its_children(sandbox):
    handle = sandbox.commands.run("sleep 600 & echo $! > /tmp/child; wait", background=True)
    child = wait_until(lambda: sandbox.commands.run("cat /tmp/child 2>/dev/null").stdout.strip(), timeout=10,
                       message="the child's pid")
    assert handle.kill() is True
    result = handle.wait(timeout=30)
    assert result.reason == "signaled" and result.signal == "SIGKILL" and result.exit_code == 137
    wait_until(lambda: sandbox.commands.run(["test", "-e", f"/proc/{child}"]).exit_code == 1, timeout=10,
               message="the child to be gone too")
    assert handle.kill() is False  # already exited
    assert sandbox.commands.kill(handle.pid) is False


def test_signal_by_name(sandbox):
    handle = sandbox.commands.run("trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done",
                                  background=True)
    wait_until(lambda: "ready" in _output(sandbox, handle.pid), message="the trap to be set")
    handle.signal("SIGTERM")
    result = handle.wait(timeout=30)
    assert result.exit_code == 0 and "got TERM" in result.stdout
    other = sandbox.commands.run("sleep 600", background=True)
    info = sandbox.commands.signal(other.pid, "INT")
    assert isinstance(info, airlock.ProcessInfo) and info.pid == other.pid
    assert other.wait(timeout=30).signal == "SIGINT"


def _output(sandbox, pid):
    return "".join(c.data for c in _buffered(sandbox.commands.connect(pid, offset=0)))


def test_list_and_get(sandbox):
    a = sandbox.commands.run("sleep 600", background=True)
    b = sandbox.commands.run(["sleep", "601"], background=True)
    procs = sandbox.commands.list()
    by_pid = {p.pid: p for p in procs}
    assert a.pid in by_pid and b.pid in by_pid
    assert all(isinstance(p, airlock.ProcessInfo) for p in procs)
    assert by_pid[b.pid].argv == ["sleep", "601"] and by_pid[b.pid].is_running and by_pid[b.pid].kind == "background"
    assert by_pid[a.pid].cmd == "sleep 600"
    assert [p.pid for p in procs].index(a.pid) < [p.pid for p in procs].index(b.pid)  # oldest first
    a.kill()
    a.wait(timeout=30)
    running = {p.pid for p in sandbox.commands.list(state="running")}
    exited = {p.pid for p in sandbox.commands.list(state="exited")}
    assert b.pid in running and a.pid not in running and a.pid in exited
    info = sandbox.commands.get(a.pid)
    assert info.state == "exited" and info.exit_code == 137 and info.ended_at is not None
    with pytest.raises(errors.ProcessNotFoundError) as exc:
        sandbox.commands.get(4000000)
    assert exc.value.status == 404 and exc.value.code == "process_not_found"
    b.kill()


def test_reconnect_by_pid_from_another_client(sandbox, api):
    handle = sandbox.commands.run("for i in 1 2 3 4 5 6; do echo line$i; sleep 0.3; done", background=True)
    time.sleep(0.5)
    other = airlock.Sandbox.connect(sandbox.sandbox_id, **api)
    again = other.commands.connect(handle.pid)
    assert again.pid == handle.pid and again.info.state == "running"
    chunks = list(again)  # replays from the oldest byte kept, then follows until the exit
    assert all(isinstance(c, airlock.OutputChunk) for c in chunks)
    assert "".join(c.data for c in chunks) == "".join(f"line{i}\n" for i in range(1, 7))
    assert chunks[0].offset == 0 and chunks[-1].end_offset == len("".join(f"line{i}\n" for i in range(1, 7)))
    result = again.wait()
    assert result.exit_code == 0 and result.stdout.endswith("line6\n")
    # replay from an offset
    tail = other.commands.connect(handle.pid, offset=len("line1\n"))
    assert tail.wait(timeout=30).stdout == "".join(f"line{i}\n" for i in range(2, 7))


def test_background_callbacks(sandbox):
    out, err = [], []
    handle = sandbox.commands.run("for i in 1 2 3; do echo o$i; echo e$i >&2; sleep 0.2; done",
                                  background=True, on_stdout=out.append, on_stderr=err.append)
    wait_until(lambda: "o1" in "".join(out), timeout=10, message="the first callback")
    result = handle.wait(timeout=30)
    assert "".join(out) == "o1\no2\no3\n" and "".join(err) == "e1\ne2\ne3\n"
    assert result.stdout == "o1\no2\no3\n" and result.stderr == "e1\ne2\ne3\n" and result.exit_code == 0


def test_wait_with_callbacks_and_iteration(sandbox):
    handle = sandbox.commands.run("echo a; sleep 0.2; echo b", background=True)
    seen = []
    result = handle.wait(on_stdout=seen.append)
    assert "".join(seen) == "a\nb\n" and result.stdout == "a\nb\n"
    h2 = sandbox.commands.run("echo x; echo y >&2", background=True)
    chunks = list(h2)
    assert {c.stream for c in chunks} == {"stdout", "stderr"}
    assert h2.wait().stdout == "x\n" and h2.stdout == "x\n" and h2.stderr == "y\n"


def test_wait_timeout_leaves_the_process_running(sandbox):
    handle = sandbox.commands.run("sleep 600", background=True)
    t0 = time.monotonic()
    with pytest.raises(errors.TimeoutError) as exc:
        handle.wait(timeout=0.5)
    assert exc.value.code == "wait_timeout" and time.monotonic() - t0 < 5
    assert handle.is_running()
    handle.kill()
    assert handle.wait(timeout=30).signal == "SIGKILL"


def test_background_process_timeout(sandbox):
    handle = sandbox.commands.run("echo begin; sleep 30", background=True, timeout=0.5)
    assert handle.info.timeout == 0.5
    with pytest.raises(errors.TimeoutError) as exc:
        handle.wait(timeout=30)
    assert exc.value.code == "command_timeout" and exc.value.result.exit_code == 124
    assert exc.value.result.stdout == "begin\n"


def test_disconnect_keeps_the_process(sandbox):
    seen = []
    handle = sandbox.commands.run("while :; do echo tick; sleep 0.1; done", background=True, on_stdout=seen.append)
    wait_until(lambda: seen, message="output")
    handle.disconnect()
    count = len(seen)
    time.sleep(0.5)
    assert len(seen) == count  # no more callbacks
    assert sandbox.commands.get(handle.pid).is_running
    assert sandbox.commands.kill(handle.pid) is True


def test_streamed_command_is_listed_while_it_runs(sandbox):
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(sandbox.commands.run("sleep 1.5", on_stdout=lambda s: None)))
    t.start()
    try:
        procs = wait_until(lambda: [p for p in sandbox.commands.list(state="running") if p.kind == "stream"],
                           timeout=10, message="the streamed command in the process list")
        assert procs[0].argv == ["/bin/sh", "-c", "sleep 1.5"]
    finally:
        t.join(30)
    assert seen and seen[0].exit_code == 0


def test_wait_collects_all_output_while_following(sandbox):
    handle = sandbox.commands.start("head -c 3000000 /dev/urandom | base64 -w 100; echo end >&2",
                                    output_buffer_bytes=16 * 1024 * 1024)
    result = handle.wait(timeout=60)
    assert result.exit_code == 0 and len(result.stdout) == 4_040_000 and result.stderr == "end\n"
    assert not result.stdout_truncated and result.stdout_bytes == 4_040_000


def test_output_dropped_from_the_ring_buffer_is_reported(sandbox):
    handle = sandbox.commands.start("seq 1 100000", output_buffer_bytes=4096)
    wait_until(lambda: not sandbox.commands.get(handle.pid).is_running, message="seq to finish")
    assert sandbox.commands.get(handle.pid).output.start_offset > 0
    result = handle.wait(timeout=30)  # replays from offset 0: most of it is gone
    assert result.stdout_truncated and result.stdout.endswith("99999\n100000\n")
    assert 0 < len(result.stdout) <= 4096


def test_large_stdin_is_streamed(sandbox):
    import hashlib
    import io

    data = os_random(3 * 1024 * 1024)
    handle = sandbox.commands.run("sha256sum", background=True)
    handle.send_stdin(io.BytesIO(data))  # raw application/octet-stream, streamed
    handle.send_stdin("x" * 400_000, close=True)  # a large str goes raw too
    result = handle.wait(timeout=60)
    assert result.stdout.split()[0] == hashlib.sha256(data + b"x" * 400_000).hexdigest()


def os_random(n):
    import os
    return os.urandom(n)
