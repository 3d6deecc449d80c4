"""sandbox.commands.run in the foreground: the blocking endpoint (no callbacks) and the streaming one
(callbacks), shell strings and argv, stdin, env/cwd/user, exit codes as results, timeouts."""
import threading
import time

import pytest

import airlock
from airlock import errors


@pytest.fixture(scope="module")
def box(daemon):
    sb = airlock.Sandbox.create(timeout=900, env={"FROM_SANDBOX": "yes"}, metadata={"suite": "sdk-commands"},
                                api_url=daemon.url, api_key=daemon.admin_key)
    yield sb
    sb.kill()


# --- blocking (commands/run) -----------------------------------------------------------------------

def test_stdout_stderr_and_exit_code(box):
    r = box.commands.run("echo hello; echo oops >&2")
    assert isinstance(r, airlock.CommandResult)
    assert r.stdout == "hello\n" and r.stderr == "oops\n" and r.exit_code == 0
    assert r.ok and r.reason == "exited" and r.signal is None and r.error is None
    assert r.pid >= 1 and r.duration_ms >= 0 and r.stdout_bytes == 6 and not r.stdout_truncated
    assert r.started_at is not None and r.ended_at >= r.started_at
    assert r.check() is r


def test_non_zero_exit_is_a_result_not_an_exception(box):
    r = box.commands.run("echo partial; ls /nope; exit 3")
    assert r.exit_code == 3 and not r.ok and r.stdout == "partial\n" and "nope" in r.stderr
    with pytest.raises(errors.CommandExitError) as exc:
        r.check()
    e = exc.value
    assert isinstance(e, airlock.AirlockError)
    assert e.exit_code == 3 and e.result is r and e.stdout == "partial\n" and "nope" in e.stderr


def test_signal_is_a_result(box):
    r = box.commands.run("kill -TERM $$")
    assert r.reason == "signaled" and r.signal == "SIGTERM" and r.exit_code == 143 and not r.ok
    with pytest.raises(errors.CommandExitError):
        r.check()


def test_shell_string_versus_argv(box):
    shell = box.commands.run("echo $FROM_SANDBOX | tr a-z A-Z")
    assert shell.stdout == "YES\n"
    argv = box.commands.run(["echo", "$FROM_SANDBOX", "|", "a b", "'q'", ";"])
    assert argv.stdout == "$FROM_SANDBOX | a b 'q' ;\n"  # no shell: every argument verbatim
    py = box.commands.run(["python3", "-c", "import sys; print(len(sys.argv), sys.argv[1:])", "x y", ""])
    assert py.stdout == "3 ['x y', '']\n"


def test_stdin_text_and_bytes(box):
    r = box.commands.run(["python3", "-c", "import sys; print(sys.stdin.read().upper())"], stdin="hi there")
    assert r.stdout == "HI THERE\n"
    data = bytes(range(256))
    r = box.commands.run(["python3", "-c", "import sys, hashlib; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"],
                         stdin=data)
    import hashlib
    assert r.stdout.strip() == hashlib.sha256(data).hexdigest()
    assert box.commands.run("cat").stdout == ""  # no stdin: empty, and closed


def test_envs_cwd_user(box):
    r = box.commands.run('echo "$FROM_SANDBOX $MINE"; pwd; id -u', envs={"MINE": "mine"}, cwd="/tmp")
    assert r.stdout == "yes mine\n/tmp\n0\n"
    r = box.commands.run("id -u; id -g", user="1000:1001")
    assert r.stdout == "1000\n1001\n"
    r = box.commands.run("id -u", user=1000)
    assert r.stdout == "1000\n"
    with pytest.raises(errors.InvalidArgumentError) as exc:
        box.commands.run("true", user="nosuchuser")
    assert exc.value.status == 422 and exc.value.code == "unknown_user"


def test_timeout_raises_with_the_partial_result(box):
    t0 = time.monotonic()
    with pytest.raises(errors.TimeoutError) as exc:
        box.commands.run("echo started; sleep 30", timeout=0.5)
    assert time.monotonic() - t0 < 10
    e = exc.value
    assert e.code == "command_timeout" and e.result is not None
    assert e.result.reason == "timeout" and e.result.exit_code == 124 and e.result.stdout == "started\n"


def test_command_not_found_is_a_result(box):
    r = box.commands.run(["/no/such/program"])
    assert r.reason == "failed_to_start" and r.exit_code in (126, 127) and r.error
    r = box.commands.run("no-such-command-xyz")
    assert r.exit_code == 127 and "not found" in r.stderr


def test_output_tail_is_kept(box):
    r = box.commands.run("seq 1 100000", max_output_bytes=100)
    assert r.stdout_truncated and len(r.stdout) == 100 and r.stdout.endswith("99999\n100000\n")
    assert r.stdout_bytes == len("".join(f"{i}\n" for i in range(1, 100001)))


def test_invalid_requests_are_invalid_argument(box):
    with pytest.raises(errors.InvalidArgumentError):
        box.commands.run("")  # refused by the SDK
    with pytest.raises(errors.InvalidArgumentError):
        box.commands.run([])
    with pytest.raises(errors.InvalidArgumentError) as exc:
        box.commands.run("true", envs={"A-B": "x"})
    assert exc.value.status == 400 and exc.value.field == "env.A-B"


def test_threads_share_one_sandbox(box):
    results = {}

    def work(i):
        results[i] = box.commands.run(f"sleep 0.2; echo {i}").stdout

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {i: f"{i}\n" for i in range(8)}  # each thread got its own answer


# --- streaming (commands/stream, with callbacks) --------------------------------------------------

def test_callbacks_receive_output_in_order(box):
    seen = []
    r = box.commands.run(
        "for i in 1 2 3; do echo out$i; sleep 0.1; echo err$i >&2; sleep 0.1; done; exit 4",
        on_stdout=lambda s: seen.append(("out", s)), on_stderr=lambda s: seen.append(("err", s)))
    assert isinstance(r, airlock.CommandResult)
    joined = [(k, line) for k, s in seen for line in s.splitlines()]
    assert joined == [("out", "out1"), ("err", "err1"), ("out", "out2"), ("err", "err2"), ("out", "out3"),
                      ("err", "err3")]
    assert r.exit_code == 4 and r.reason == "exited" and not r.ok
    assert r.stdout == "out1\nout2\nout3\n" and r.stderr == "err1\nerr2\nerr3\n"
    assert r.pid >= 1 and r.stdout_bytes == 15 and r.stderr_bytes == 15


def test_callbacks_are_called_while_the_command_runs(box):
    stamps = []
    t0 = time.monotonic()
    r = box.commands.run("echo first; sleep 2; echo second", on_stdout=lambda s: stamps.append((time.monotonic(), s)))
    end = time.monotonic()
    assert r.stdout == "first\nsecond\n"
    assert stamps and stamps[0][1].startswith("first")
    assert stamps[0][0] - t0 < end - t0 - 1.0, "the first chunk only arrived at the end: output is not streamed"


def test_streamed_timeout_raises(box):
    seen = []
    with pytest.raises(errors.TimeoutError) as exc:
        box.commands.run("echo tick; sleep 30", timeout=0.5, on_stdout=seen.append)
    assert "".join(seen) == "tick\n"
    assert exc.value.result.reason == "timeout" and exc.value.result.exit_code == 124


def test_streamed_utf8_split_across_chunks_is_intact(box):
    text = "héllo wörld ✓ " * 5000
    out = []
    r = box.commands.run(["python3", "-c", "import sys; sys.stdout.write(sys.stdin.read())"], stdin=text,
                         on_stdout=out.append)
    assert "".join(out) == text and r.stdout == text


def test_streamed_large_output(box):
    got = [0]

    def count(s):
        got[0] += len(s)

    r = box.commands.run("head -c 8000000 /dev/zero | tr '\\0' x", on_stdout=count)
    assert r.exit_code == 0 and got[0] == 8_000_000 and len(r.stdout) == 8_000_000


def test_streamed_argv_stdin_and_env(box):
    seen = []
    r = box.commands.run(["sh", "-c", 'read x; echo "$x $MINE"'], stdin="typed\n", envs={"MINE": "m"},
                         on_stdout=seen.append)
    assert r.stdout == "typed m\n" and "".join(seen) == "typed m\n"


def test_exception_in_callback_stops_the_command(box):
    marker = f"/tmp/stopped-{time.monotonic_ns()}"

    def boom(_):
        raise ValueError("stop here")

    with pytest.raises(ValueError):
        box.commands.run(f"echo go; sleep 3; touch {marker}", on_stdout=boom)
    time.sleep(3.5)
    # disconnecting killed the command: it never reached the touch
    assert box.commands.run(["test", "-e", marker]).exit_code == 1


def test_stream_generator(box):
    chunks = list(box.commands.stream("echo a; echo b >&2"))
    assert all(isinstance(c, airlock.OutputChunk) for c in chunks)
    assert "".join(c.data for c in chunks if c.stream == "stdout") == "a\n"
    assert "".join(c.data for c in chunks if c.stream == "stderr") == "b\n"
