"""POST /v1/sandboxes/{id}/commands/run: argv and shell commands, env, cwd, user, stdin, timeouts,
bounded output, encodings, and the errors of the contract. One sandbox per module, terminated at the end."""
import base64
import threading
import time

import pytest


@pytest.fixture(scope="module")
def box(daemon):
    client = daemon.admin()
    r = client.post("/v1/sandboxes", json={"env": {"FROM_SANDBOX": "yes", "SHARED": "sandbox"},
                                           "metadata": {"suite": "commands"}}, timeout=60)
    assert r.status == 201, r
    sid = r.json["sandbox_id"]
    yield client, sid
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)


def run(box, body, **kw):
    client, sid = box
    return client.post(f"/v1/sandboxes/{sid}/commands/run", json=body, **kw)


def test_shell_command(box):
    r = run(box, {"cmd": "echo hello && ls /nope"})
    assert r.status == 200
    res = r.json
    assert res["stdout"] == "hello\n" and "nope" in res["stderr"]
    assert res["exit_code"] != 0 and res["reason"] == "exited" and res["signal"] is None
    assert res["stdout_bytes"] == 6 and not res["stdout_truncated"] and res["encoding"] == "utf-8"
    assert res["pid"] >= 1 and res["duration_ms"] >= 0


def test_argv_stdin_env_cwd(box):
    r = run(box, {"argv": ["/bin/sh", "-c", 'cat; echo "$FROM_SANDBOX $SHARED $MINE"; pwd'],
                  "stdin": "piped\n", "env": {"MINE": "mine", "SHARED": "request"}, "cwd": "/tmp"})
    assert r.status == 200 and r.json["exit_code"] == 0
    assert r.json["stdout"] == "piped\nyes request mine\n/tmp\n"


def test_user(box):
    r = run(box, {"cmd": "id -u; id -g", "user": "1000:1001"})
    assert r.json["stdout"] == "1000\n1001\n"
    r = run(box, {"cmd": "id -u", "user": "root"})
    assert r.json["stdout"] == "0\n"
    r = run(box, {"cmd": "id -u", "user": "nosuchuser"})
    assert r.status == 422 and r.error_code == "unknown_user"
    r = run(box, {"cmd": "id -u", "user": "70000"})
    assert r.status == 422 and r.error_code == "unknown_user"


def test_exit_code_and_signal(box):
    assert run(box, {"cmd": "exit 7"}).json["exit_code"] == 7
    r = run(box, {"cmd": "kill -TERM $$"}).json
    assert r["reason"] == "signaled" and r["signal"] == "SIGTERM" and r["exit_code"] == 143


def test_timeout_kills(box):
    t0 = time.monotonic()
    r = run(box, {"cmd": "sleep 30", "timeout": 0.5})
    assert time.monotonic() - t0 < 10
    assert r.status == 200 and r.json["reason"] == "timeout" and r.json["exit_code"] == 124


def test_output_is_bounded_to_its_tail(box):
    r = run(box, {"cmd": "seq 1 100000", "max_output_bytes": 100})
    res = r.json
    assert res["stdout_truncated"] and len(res["stdout"]) == 100 and res["stdout"].endswith("99999\n100000\n")
    assert res["stdout_bytes"] == len("".join(f"{i}\n" for i in range(1, 100001)))


def test_base64(box):
    r = run(box, {"argv": ["cat"], "stdin": base64.b64encode(b"\x00\xff\x01").decode(), "stdin_encoding": "base64",
                  "encoding": "base64"})
    assert r.json["encoding"] == "base64" and base64.b64decode(r.json["stdout"]) == b"\x00\xff\x01"


def test_command_not_found(box):
    r = run(box, {"argv": ["/no/such/program"]})
    assert r.status == 200 and r.json["reason"] == "failed_to_start" and r.json["exit_code"] in (126, 127)


@pytest.mark.parametrize("body,field", [
    ({}, "cmd"),
    ({"cmd": "true", "argv": ["true"]}, "argv"),
    ({"cmd": ""}, "cmd"),
    ({"argv": []}, "argv"),
    ({"argv": ["ok", 3]}, "argv[1]"),
    ({"cmd": "true", "timeout": 0}, "timeout"),
    ({"cmd": "true", "env": {"A-B": "x"}}, "env.A-B"),
    ({"cmd": "true", "max_output_bytes": -1}, "max_output_bytes"),
    ({"cmd": "true", "encoding": "latin-1"}, "encoding"),
    ({"cmd": "true", "stdin": "!!", "stdin_encoding": "base64"}, "stdin"),
    ({"cmd": "true", "user": "Bad User"}, "user"),
    ({"cmd": "true", "extra": 1}, "extra"),
])
def test_bad_requests_are_400(box, body, field):
    r = run(box, body)
    assert r.status == 400 and r.error_code == "invalid_field" and r.json["error"]["field"] == field, r


def test_unknown_sandbox_is_404(daemon):
    r = daemon.admin().post("/v1/sandboxes/sb-0000000000000000/commands/run", json={"cmd": "true"})
    assert r.status == 404 and r.error_code == "sandbox_not_found"


def test_io_threads_stay_free_during_a_long_command(box, daemon):
    """A blocking command runs on a worker: health checks and other calls are answered meanwhile, even
    with more long commands in flight than the daemon has I/O threads (2)."""
    results = []
    threads = [threading.Thread(target=lambda: results.append(run(box, {"cmd": "sleep 1.5"}, timeout=30)))
               for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    assert daemon.healthy()
    client, sid = box
    assert client.get(f"/v1/sandboxes/{sid}").status == 200
    assert time.monotonic() - t0 < 1.0
    for t in threads:
        t.join()
    assert [r.status for r in results] == [200, 200, 200]
