"""Streaming commands and background processes: POST .../commands/stream (NDJSON and SSE), /processes
(start, list, get, wait, output replay with gaps, stdin, signals, resize), backpressure, client
disconnects, WebSocket attach, and a process that outlives a daemon SIGKILL."""
import base64
import json
import os
import socket
import struct
import time

import pytest
import ws_client


@pytest.fixture(scope="module")
def box(daemon):
    client = daemon.admin()
    r = client.post("/v1/sandboxes", json={"metadata": {"suite": "processes"}}, timeout=60)
    assert r.status == 201, r
    sid = r.json["sandbox_id"]
    yield client, sid
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)


def events(resp):
    return [json.loads(line) for line in resp.body.decode().splitlines() if line.strip()]


def start(box, body):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/processes", json=body, timeout=30)
    assert r.status == 201, r
    return r.json


def wait(box, pid, timeout=20):
    client, sid = box
    r = client.get(f"/v1/sandboxes/{sid}/processes/{pid}/wait?timeout={timeout}", timeout=timeout + 10)
    assert r.status == 200, r
    return r.json


# --- commands/stream ----------------------------------------------------------------------------------

def test_stream_orders_stdout_stderr_and_exit(box):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/commands/stream",
                    json={"cmd": "echo one; echo two >&2; sleep 0.2; echo three; exit 7"}, timeout=30)
    assert r.status == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    ev = events(r)
    assert ev[0]["type"] == "start" and ev[0]["pid"] >= 1
    assert ev[-1]["type"] == "exit" and ev[-1]["exit_code"] == 7 and ev[-1]["reason"] == "exited"
    out = "".join(e["data"] for e in ev if e["type"] == "stdout")
    err = "".join(e["data"] for e in ev if e["type"] == "stderr")
    assert out == "one\nthree\n" and err == "two\n"
    offsets = [e["offset"] for e in ev if e["type"] in ("stdout", "stderr")]
    assert offsets == sorted(offsets) and offsets[0] == 0


def test_stream_sse_format(box):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/commands/stream", json={"argv": ["/bin/echo", "hi"]},
                    headers={"Accept": "text/event-stream"}, timeout=30)
    assert r.status == 200 and r.headers["content-type"].startswith("text/event-stream")
    text = r.body.decode()
    assert "event: start\n" in text and "event: exit\n" in text
    data = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    assert any(d["type"] == "stdout" and d["data"] == "hi\n" for d in data)


def test_stream_base64_keeps_exact_bytes(box):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/commands/stream",
                    json={"cmd": "printf '\\377\\000\\001abc'", "encoding": "base64"}, timeout=30)
    raw = b"".join(base64.b64decode(e["data"]) for e in events(r) if e["type"] == "stdout")
    assert raw == b"\xff\x00\x01abc"


def test_stream_utf8_split_across_chunks_is_not_corrupted(box):
    client, sid = box
    # a 3-byte character written one byte at a time: held back until complete
    r = client.post(f"/v1/sandboxes/{sid}/commands/stream",
                    json={"cmd": "printf '\\342'; sleep 0.1; printf '\\202'; sleep 0.1; printf '\\254 ok'"}, timeout=30)
    out = "".join(e["data"] for e in events(r) if e["type"] == "stdout")
    assert out == "\u20ac ok"


def _stream_socket(daemon, sid, body):
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=20)
    payload = json.dumps(body).encode()
    s.sendall(b"POST /v1/sandboxes/%s/commands/stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
              % (sid.encode(), daemon.admin_key.encode(), len(payload), payload))
    return s


def test_slow_reader_gets_backpressure_not_buffering(daemon, box):
    """A client that reads nothing: the command blocks on its pipe; the daemon holds a bounded amount."""
    client, sid = box
    s = _stream_socket(daemon, sid, {"cmd": "head -c 200000000 /dev/zero | wc -c >&2; yes | head -c 300000000"})
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        time.sleep(3)
        rss = int(next(l for l in open(f"/proc/{daemon.proc.pid}/status") if l.startswith("VmRSS:")).split()[1])
        # the command is still running: it could not push 300 MB through a reader that takes nothing
        r = client.get(f"/v1/sandboxes/{sid}/processes?state=running")
        assert any(p["kind"] == "stream" for p in r.json["processes"])
        assert rss < 200 * 1024, f"daemon RSS {rss} KiB while a stream is stalled"
    finally:
        s.close()


def test_client_disconnect_kills_streamed_command(daemon, box):
    client, sid = box
    marker = f"/tmp/stream-{os.getpid()}"
    s = _stream_socket(daemon, sid, {"cmd": f"sleep 0.5; while true; do date >> {marker}; sleep 0.1; done"})
    s.recv(4096)  # the start event
    time.sleep(1.0)
    s.close()
    time.sleep(1.0)
    size1 = client.get(f"/v1/sandboxes/{sid}/files/stat?path={marker}").json["size"]
    time.sleep(1.0)
    size2 = client.get(f"/v1/sandboxes/{sid}/files/stat?path={marker}").json["size"]
    assert size1 == size2, "the command kept running after its client left"
    r = client.get(f"/v1/sandboxes/{sid}/processes?state=running")
    assert not [p for p in r.json["processes"] if p["kind"] == "stream"]


# --- background processes -----------------------------------------------------------------------------

def test_background_stdin_wait_and_output_replay(box):
    client, sid = box
    p = start(box, {"cmd": "cat; echo done >&2", "open_stdin": True})
    pid = p["pid"]
    assert p["state"] == "running" and p["kind"] == "background" and p["stdin_open"]
    r = client.post(f"/v1/sandboxes/{sid}/processes/{pid}/stdin", json={"data": "hello\n"})
    assert r.status == 200 and r.json["bytes_written"] == 6 and r.json["stdin_open"]
    r = client.post(f"/v1/sandboxes/{sid}/processes/{pid}/stdin", body=b"raw\x00bytes\n",
                    headers={"Content-Type": "application/octet-stream"})
    assert r.status == 200 and r.json["bytes_written"] == 10
    r = client.post(f"/v1/sandboxes/{sid}/processes/{pid}/stdin/close")
    assert r.status == 200 and r.json["stdin_open"] is False
    done = wait(box, pid)
    assert done["state"] == "exited" and done["exit_code"] == 0 and done["reason"] == "exited"
    r = client.get(f"/v1/sandboxes/{sid}/processes/{pid}/output?encoding=base64")
    ev = events(r)
    out = b"".join(base64.b64decode(e["data"]) for e in ev if e["type"] == "stdout")
    assert out == b"hello\nraw\x00bytes\n"
    assert any(e["type"] == "stderr" for e in ev) and ev[-1]["type"] == "exit"
    # replay from an offset
    r = client.get(f"/v1/sandboxes/{sid}/processes/{pid}/output?offset=6&follow=false")
    assert "".join(e["data"] for e in events(r) if e["type"] == "stdout").startswith("raw")
    # stdin of an exited process
    r = client.post(f"/v1/sandboxes/{sid}/processes/{pid}/stdin", json={"data": "x"})
    assert r.status == 409


def test_ring_buffer_drops_oldest_and_reports_gap(box):
    client, sid = box
    p = start(box, {"cmd": "head -c 100000 /dev/zero | tr '\\0' a", "output_buffer_bytes": 4096})
    wait(box, p["pid"])
    r = client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}/output?offset=0")
    ev = events(r)
    assert ev[0]["type"] == "gap" and ev[0]["offset"] == 0 and ev[0]["length"] > 90000
    kept = "".join(e["data"] for e in ev if e["type"] == "stdout")
    assert 0 < len(kept) <= 100000 - ev[0]["length"] and set(kept) == {"a"}
    info = client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}").json
    assert info["output"]["end_offset"] == 100000 and info["output"]["buffer_bytes"] == 4096


def test_background_never_blocks_on_the_daemon(box):
    """Background output goes to the ring: 50 MB with no reader finishes."""
    p = start(box, {"cmd": "head -c 50000000 /dev/zero; echo end >&2"})
    done = wait(box, p["pid"], timeout=60)
    assert done["state"] == "exited" and done["exit_code"] == 0


def test_signal_kills_the_process_group(box):
    client, sid = box
    p = start(box, {"cmd": "sleep 300 & sleep 300 & wait"})
    pid = p["pid"]
    r = client.post(f"/v1/sandboxes/{sid}/processes/{pid}/signal", json={"signal": "SIGTERM"})
    assert r.status == 200
    done = wait(box, pid)
    assert done["state"] == "exited" and done["signal"] == "SIGTERM" and done["exit_code"] == 128 + 15
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "ps -eo comm | grep -c '^sleep' || true"})
    assert r.json["stdout"].strip() == "0", "children of the group survived"


def test_wait_times_out_while_running_then_list_and_get(box):
    client, sid = box
    p = start(box, {"argv": ["sleep", "30"]})
    t0 = time.monotonic()
    w = wait(box, p["pid"], timeout=0.5)
    assert w["state"] == "running" and 0.4 < time.monotonic() - t0 < 5
    listed = client.get(f"/v1/sandboxes/{sid}/processes?state=running").json["processes"]
    assert p["pid"] in [x["pid"] for x in listed]
    got = client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}")
    assert got.status == 200 and got.json["argv"] == ["sleep", "30"]
    client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/signal", json={"signal": "SIGKILL"})
    assert wait(box, p["pid"])["signal"] == "SIGKILL"


def test_process_timeout(box):
    p = start(box, {"argv": ["sleep", "30"], "timeout": 0.5})
    done = wait(box, p["pid"])
    assert done["reason"] == "timeout" and done["exit_code"] == 124


def test_failed_to_start(box):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/processes", json={"argv": ["/no/such/binary"]})
    assert r.status == 201
    assert r.json["state"] == "exited" and r.json["reason"] == "failed_to_start" and r.json["exit_code"] == 127


def test_pty_process_resize_and_output(box):
    client, sid = box
    p = start(box, {"cmd": "stty size; read x; stty size; echo got $x", "pty": {"cols": 100, "rows": 30}})
    assert p["pty"] == {"cols": 100, "rows": 30} and p["stdin_open"]
    time.sleep(0.3)
    r = client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/resize", json={"cols": 120, "rows": 40})
    assert r.status == 200
    client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/stdin", json={"data": "yes\n"})
    wait(box, p["pid"])
    out = "".join(e["data"] for e in events(client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}/output"))
                  if e["type"] == "stdout")
    assert "30 100" in out and "40 120" in out and "got yes" in out
    # resize of a process without a terminal
    q = start(box, {"argv": ["true"]})
    wait(box, q["pid"])
    r = client.post(f"/v1/sandboxes/{sid}/processes/{q['pid']}/resize", json={"cols": 1, "rows": 1})
    assert r.status == 409


def test_bad_requests(box):
    client, sid = box
    assert client.get(f"/v1/sandboxes/{sid}/processes/999999").status == 404
    assert client.get(f"/v1/sandboxes/{sid}/processes/abc").status == 404
    assert client.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": "x", "pty": {"cols": 0, "rows": 1}}).status == 400
    assert client.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": "x", "bogus": 1}).status == 400
    p = start(box, {"argv": ["sleep", "5"]})
    r = client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/signal", json={"signal": "SIGNOPE"})
    assert r.status == 400 and r.json["error"]["field"] == "signal"
    assert client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}/wait?timeout=301").status == 400
    r = client.get(f"/v1/sandboxes/{sid}/processes/{p['pid']}/attach")
    assert r.status == 426
    client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/signal", json={"signal": "SIGKILL"})


# --- WebSocket attach ---------------------------------------------------------------------------------

def WebSocket(daemon, path):
    return ws_client.WebSocket(socket.create_connection(("127.0.0.1", daemon.port), timeout=15), path, daemon.admin_key)


def test_attach_pty_shell_over_websocket(daemon, box):
    client, sid = box
    p = start(box, {"cmd": "/bin/sh", "pty": {"cols": 80, "rows": 24}})
    ws = WebSocket(daemon, f"/v1/sandboxes/{sid}/processes/{p['pid']}/attach")
    assert ws.status == 101 and "airlock.attach.v1" in ws.headers
    op, data = ws.recv()
    assert op == 1 and json.loads(data) == {"type": "attached", "pid": p["pid"], "offset": 0}
    ws.send(json.dumps({"type": "resize", "cols": 132, "rows": 43}).encode(), 1)
    ws.send(b"\x00stty size; echo $((6*7)); exit 5\n", 2)
    out, exit_event = b"", None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and exit_event is None:
        op, data = ws.recv()
        if op == 2:
            assert data[0] == 1
            out += data[1:]
        elif op == 1:
            msg = json.loads(data)
            if msg["type"] == "exit":
                exit_event = msg
        elif op == 8:
            break
    assert b"43 132" in out and b"42" in out
    assert exit_event and exit_event["exit_code"] == 5


def test_attach_rejects_bad_frames(daemon, box):
    client, sid = box
    p = start(box, {"argv": ["sleep", "30"]})
    ws = WebSocket(daemon, f"/v1/sandboxes/{sid}/processes/{p['pid']}/attach")
    assert ws.status == 101
    ws.recv()  # attached
    ws.send(b"not json", 1)
    kinds = []
    for _ in range(3):
        try:
            op, data = ws.recv()
        except (EOFError, OSError):
            break
        kinds.append(op)
        if op == 1:
            assert json.loads(data)["type"] == "error"
        if op == 8:
            assert struct.unpack(">H", data[:2])[0] == 1008
            break
    assert 8 in kinds
    client.post(f"/v1/sandboxes/{sid}/processes/{p['pid']}/signal", json={"signal": "SIGKILL"})


# --- restart --------------------------------------------------------------------------------------------

def test_background_process_survives_daemon_sigkill(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    r = client.post(f"/v1/sandboxes/{sid}/processes", json={"cmd": "while true; do echo tick; sleep 0.2; done"})
    pid = r.json["pid"]
    client.post(f"/v1/sandboxes/{sid}/files/write?path=/root/keep.txt", body=b"kept",
                headers={"Content-Type": "application/octet-stream"})
    d.kill()
    d.start()
    client = d.admin()
    listed = client.get(f"/v1/sandboxes/{sid}/processes").json["processes"]
    assert [x for x in listed if x["pid"] == pid and x["state"] == "running"], listed
    assert client.get(f"/v1/sandboxes/{sid}/files/read?path=/root/keep.txt").body == b"kept"
    # new output of the process after the restart is reachable
    time.sleep(0.6)
    r = client.get(f"/v1/sandboxes/{sid}/processes/{pid}/output?follow=false")
    assert "tick" in "".join(e.get("data", "") for e in events(r))
    client.post(f"/v1/sandboxes/{sid}/processes/{pid}/signal", json={"signal": "SIGKILL"})
    assert wait((client, sid), pid)["signal"] == "SIGKILL"
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)
