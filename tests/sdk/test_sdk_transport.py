"""The SDK's transport against small fake servers (no daemon): URL forms, keep-alive and stale pooled
connections, which requests are retried, Retry-After, error bodies that are not JSON, timeouts, NDJSON
split at arbitrary bytes, base64 output with UTF-8 split across events, error events mid-stream, and the
WebSocket client's framing (handshake, masking, fragmentation, ping/pong, close)."""
import base64
import hashlib
import json
import os
import socket
import struct
import tempfile
import threading
import time

import pytest

import airlock
from airlock import errors
from airlock._http import Endpoint

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SANDBOX = {
    "sandbox_id": "sb-0123456789abcdef", "template": "host", "state": "running", "stop_reason": None,
    "stop_message": None, "exit_code": None, "created_at": "2026-11-21T10:00:00.000Z",
    "started_at": "2026-11-21T10:00:00.004Z", "ended_at": None, "expires_at": "2026-11-21T11:00:00.004Z",
    "last_activity_at": "2026-11-21T10:00:01.004Z", "timeout": 3600, "idle_timeout": None, "cpu": 1,
    "memory_mb": 512, "disk_mb": 1024, "pids": 256, "workdir": "/root", "command": None, "metadata": {},
    "network": {"mode": "none"},
    "usage": {"cpu_seconds": 0, "memory_bytes": 0, "memory_peak_bytes": 0, "disk_bytes": 0, "pids": 1,
              "oom_kills": 0, "sampled_at": "2026-11-21T10:00:01.010Z"},
    "future_field": "clients ignore what they do not know",
}
PROCESS = {
    "pid": 7, "kind": "background", "argv": ["/bin/sh", "-c", "x"], "cwd": "/root", "user": "root", "pty": None,
    "state": "running", "stdin_open": True, "timeout": None, "started_at": "2026-11-21T10:00:02.000Z",
    "ended_at": None, "exit_code": None, "signal": None, "reason": None, "error": None,
    "output": {"start_offset": 0, "end_offset": 0, "buffer_bytes": 1048576},
}
SID = SANDBOX["sandbox_id"]


class Request:
    def __init__(self, method, target, headers, body):
        self.method, self.target, self.headers, self.body = method, target, headers, body
        self.path, _, self.query = target.partition("?")

    def json(self):
        return json.loads(self.body)


def read_request(reader):
    line = reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers = {}
    while True:
        h = reader.readline().decode("latin-1").rstrip("\r\n")
        if not h:
            break
        name, _, value = h.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int(reader.readline().split(b";")[0].strip(), 16)
            if size == 0:
                reader.readline()
                break
            body += reader.read(size)
            reader.readline()
    elif "content-length" in headers:
        body = reader.read(int(headers["content-length"]))
    return Request(method, target, headers, body)


def response(status, body=b"", headers=None, close=False):
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def chunked_head(status=200, content_type="application/x-ndjson"):
    return (f"HTTP/1.1 {status} OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
            "Connection: close\r\n\r\n").encode()


def chunk(data):
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


class FakeServer:
    """A threaded raw HTTP/1.1 server; handler(req, conn, reader) answers and returns True to keep the
    connection open for another request."""

    def __init__(self, handler, unix_path=None):
        self.handler = handler
        self.requests = []
        self.connections = 0
        if unix_path:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.url = f"unix:{unix_path}"
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.sock.listen(16)
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        reader = conn.makefile("rb")
        try:
            while True:
                req = read_request(reader)
                if req is None:
                    return
                self.requests.append(req)
                if not self.handler(req, conn, reader):
                    return
        except Exception as e:  # noqa: BLE001 - surfaced by the tests
            self.errors.append(e)
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.sock.close()


@pytest.fixture
def serve():
    made = []

    def _serve(handler, **kw):
        s = FakeServer(handler, **kw)
        made.append(s)
        return s

    yield _serve
    for s in made:
        s.close()
        assert not s.errors, s.errors


def test_endpoint_forms():
    assert Endpoint.parse("http://127.0.0.1:7070").port == 7070
    assert str(Endpoint.parse("http://127.0.0.1:7070/v1/")) == "http://127.0.0.1:7070"
    assert Endpoint.parse("https://airlock.example.com").scheme == "https"
    assert Endpoint.parse("https://h.example/prefix/v1").prefix == "/prefix"
    u = Endpoint.parse("unix:/run/airlock/airlockd.sock")
    assert u.scheme == "unix" and u.unix_path == "/run/airlock/airlockd.sock"
    assert Endpoint.parse("unix:///run/a.sock").unix_path == "/run/a.sock"
    assert Endpoint.parse("http+unix://%2Frun%2Fa.sock").unix_path == "/run/a.sock"
    with pytest.raises(errors.InvalidArgumentError):
        Endpoint.parse("ftp://x")
    with pytest.raises(errors.InvalidArgumentError):
        Endpoint.parse("unix:")


def test_env_defaults_and_headers(serve, monkeypatch):
    server = serve(lambda req, conn, r: conn.sendall(response(200, SANDBOX)) or True)
    monkeypatch.setenv("AIRLOCK_URL", server.url)
    monkeypatch.setenv("AIRLOCK_API_KEY", "alk_from_env")
    info = airlock.Sandbox.get_info(SID)
    assert info.sandbox_id == SID and info.raw["future_field"]
    req = server.requests[0]
    assert req.method == "GET" and req.path == f"/v1/sandboxes/{SID}"
    assert req.headers["authorization"] == "Bearer alk_from_env"
    assert req.headers["user-agent"].startswith("airlock-python/")


def test_keep_alive_reuses_one_connection(serve):
    server = serve(lambda req, conn, r: conn.sendall(response(200, SANDBOX)) or True)
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
    for _ in range(5):
        sb.get_info()
    assert server.connections == 1 and len(server.requests) == 5


def test_a_pooled_connection_closed_by_the_server_is_not_reused(serve):
    # The server closes after each answer without saying so: the SDK must notice before sending.
    server = serve(lambda req, conn, r: conn.sendall(response(200, {"pid": 1, "exit_code": 0, "stdout": "ok"})) and False)
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
    for _ in range(3):
        assert sb.commands.run("true").stdout == "ok"  # a POST, never retried: it must get a live connection
        time.sleep(0.05)
    assert server.connections == 3


def test_idempotent_requests_are_retried_after_a_broken_connection(serve):
    state = {"n": 0}

    def handler(req, conn, reader):
        state["n"] += 1
        if state["n"] == 1:
            return False  # drop the connection without an answer
        conn.sendall(response(200, SANDBOX))
        return True

    server = serve(handler)
    assert airlock.Sandbox(SID, api_url=server.url, api_key="k").get_info().state == "running"
    assert len(server.requests) == 2


def test_non_idempotent_requests_are_not_retried(serve):
    server = serve(lambda req, conn, r: False)  # never answers
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
    with pytest.raises(errors.APIConnectionError) as exc:
        sb.commands.run("touch /tmp/once")
    assert exc.value.code == "connection_error"
    time.sleep(0.1)
    assert len(server.requests) == 1


def test_503_with_retry_after_is_retried_for_idempotent_requests(serve):
    state = {"n": 0}

    def handler(req, conn, reader):
        state["n"] += 1
        if state["n"] == 1 or req.method == "POST":
            conn.sendall(response(503, {"error": {"code": "unavailable", "message": "reconciling"}},
                                  {"Retry-After": "1"}))
        else:
            conn.sendall(response(200, SANDBOX))
        return True

    server = serve(handler)
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
    assert sb.get_info().sandbox_id == SID and state["n"] == 2
    with pytest.raises(errors.ServiceUnavailableError) as exc:
        sb.set_timeout(10)
    assert exc.value.status == 503 and exc.value.code == "unavailable" and exc.value.retry_after == 1


def test_error_bodies_map_to_classes(serve):
    answers = {
        "/v1/sandboxes/sb-a": response(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
        "/v1/sandboxes/sb-b": response(429, {"error": {"code": "quota_exceeded", "message": "tenant full",
                                                       "details": {"quota": "sandboxes", "limit": 2}}},
                                       {"Retry-After": "30"}),
        "/v1/sandboxes/sb-c": response(400, {"error": {"code": "invalid_parameter", "message": "bad cursor",
                                                       "field": "cursor"}}),
        "/v1/sandboxes/sb-d": response(507, {"error": {"code": "disk_full", "message": "full"}}),
        "/v1/sandboxes/sb-e": response(418, {"error": {"code": "some_future_code", "message": "new"}}),
    }
    server = serve(lambda req, conn, r: conn.sendall(answers[req.path]) or True)
    get = lambda sid: airlock.Sandbox(sid, api_url=server.url, api_key="k").get_info()  # noqa: E731
    with pytest.raises(errors.InternalServerError) as exc:
        get("sb-a")
    assert exc.value.status == 502 and "bad gateway" in exc.value.message
    with pytest.raises(errors.QuotaExceededError) as exc:
        get("sb-b")
    assert isinstance(exc.value, errors.RateLimitError) and exc.value.retry_after == 30
    assert exc.value.details == {"quota": "sandboxes", "limit": 2}
    with pytest.raises(errors.InvalidArgumentError) as exc:
        get("sb-c")
    assert exc.value.field == "cursor" and "cursor" in str(exc.value)
    with pytest.raises(errors.InsufficientStorageError):
        get("sb-d")
    with pytest.raises(errors.AirlockError) as exc:
        get("sb-e")
    assert exc.value.code == "some_future_code" and exc.value.status == 418


def test_request_timeout(serve):
    server = serve(lambda req, conn, r: time.sleep(2) or False)
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k", request_timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(errors.TimeoutError) as exc:
        sb.get_info()
    assert exc.value.code == "request_timeout" and time.monotonic() - t0 < 1.5


def test_unix_socket_transport(serve):
    with tempfile.TemporaryDirectory() as d:
        server = serve(lambda req, conn, r: conn.sendall(response(200, SANDBOX)) or True,
                       unix_path=os.path.join(d, "a.sock"))
        sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
        assert sb.get_info().state == "running" and sb.get_info().state == "running"
        assert server.connections == 1
        assert server.requests[0].headers["host"] == "localhost"


def test_ndjson_split_at_arbitrary_bytes(serve):
    events = [
        {"type": "start", "pid": 9, "started_at": "2026-11-21T10:00:02.000Z"},
        {"type": "stdout", "offset": 0, "data": "héllo ✓\n", "encoding": "utf-8"},
        {"type": "keepalive"},
        {"type": "some_future_event", "x": 1},
        {"type": "stderr", "offset": 12, "data": "warn\n", "encoding": "utf-8"},
        {"type": "exit", "pid": 9, "exit_code": 2, "signal": None, "reason": "exited", "error": None,
         "ended_at": "2026-11-21T10:00:03.000Z", "duration_ms": 1000.5, "cpu_time_ms": 3.5},
    ]
    payload = b"".join(json.dumps(e, ensure_ascii=False).encode() + b"\n" for e in events)

    def handler(req, conn, reader):
        assert req.path == f"/v1/sandboxes/{SID}/commands/stream" and req.json()["cmd"] == "x"
        conn.sendall(chunked_head())
        for i in range(0, len(payload), 7):  # every 7 bytes, through lines and characters
            conn.sendall(chunk(payload[i:i + 7]))
            time.sleep(0.001)
        conn.sendall(b"0\r\n\r\n")
        return False

    server = serve(handler)
    out, err = [], []
    r = airlock.Sandbox(SID, api_url=server.url, api_key="k").commands.run("x", on_stdout=out.append,
                                                                            on_stderr=err.append)
    assert "".join(out) == "héllo ✓\n" and "".join(err) == "warn\n"
    assert r.pid == 9 and r.exit_code == 2 and r.stdout == "héllo ✓\n" and r.stderr == "warn\n"
    assert r.duration_ms == 1000.5 and r.cpu_time_ms == 3.5 and r.started_at.second == 2


def test_error_event_mid_stream_raises_the_mapped_error(serve):
    def handler(req, conn, reader):
        conn.sendall(chunked_head())
        for e in ({"type": "start", "pid": 9, "started_at": "2026-11-21T10:00:02.000Z"},
                  {"type": "stdout", "offset": 0, "data": "a", "encoding": "utf-8"},
                  {"type": "error", "error": {"code": "sandbox_not_running", "message": "stopped",
                                              "details": {"state": "stopped"}}}):
            conn.sendall(chunk(json.dumps(e).encode() + b"\n"))
        conn.sendall(b"0\r\n\r\n")
        return False

    server = serve(handler)
    with pytest.raises(errors.SandboxNotRunningError) as exc:
        airlock.Sandbox(SID, api_url=server.url, api_key="k").commands.run("x", on_stdout=lambda s: None)
    assert exc.value.status == 409 and exc.value.details == {"state": "stopped"}


def test_stream_cut_before_exit_is_a_connection_error(serve):
    def handler(req, conn, reader):
        conn.sendall(chunked_head() + chunk(b'{"type":"start","pid":3,"started_at":"2026-11-21T10:00:02.000Z"}\n'))
        return False  # closes mid-body

    server = serve(handler)
    with pytest.raises(errors.APIConnectionError):
        airlock.Sandbox(SID, api_url=server.url, api_key="k").commands.run("x", on_stdout=lambda s: None)


def test_process_output_base64_with_utf8_split_across_events(serve):
    """wait() follows the output to the exit event; when that stream breaks it long-polls /wait and then
    reads the ring buffer."""
    text = "ünïcode ✓ output\n".encode()
    pieces = [text[:2], text[2:3], text[3:11], text[11:]]  # splits inside multi-byte characters
    exited = dict(PROCESS, state="exited", exit_code=0, reason="exited", ended_at="2026-11-21T10:00:03.000Z",
                  stdin_open=False)

    def handler(req, conn, reader):
        if req.path.endswith("/processes/7"):
            conn.sendall(response(200, PROCESS))
        elif req.path.endswith("/processes/7/wait"):
            assert "timeout=" in req.query
            conn.sendall(response(200, exited))
        elif req.path.endswith("/processes/7/output"):
            assert "encoding=base64" in req.query and "offset=0" in req.query
            if "follow=true" in req.query and state["cut"]:
                state["cut"] = False
                conn.sendall(chunked_head())  # the followed stream breaks at once (a daemon restart, say)
                return False
            conn.sendall(chunked_head())
            offset = 0
            for p in pieces:
                conn.sendall(chunk(json.dumps({"type": "stdout", "offset": offset, "encoding": "base64",
                                               "data": base64.b64encode(p).decode()}).encode() + b"\n"))
                offset += len(p)
            conn.sendall(chunk(json.dumps({"type": "exit", "pid": 7, "exit_code": 0, "signal": None,
                                           "reason": "exited", "error": None,
                                           "ended_at": "2026-11-21T10:00:03.000Z", "duration_ms": 1000,
                                           "cpu_time_ms": 1}).encode() + b"\n") + b"0\r\n\r\n")
            return False
        else:
            conn.sendall(response(404, {"error": {"code": "route_not_found", "message": req.path}}))
        return True

    for cut in (False, True):
        state = {"cut": cut}
        server = serve(handler)
        handle = airlock.Sandbox(SID, api_url=server.url, api_key="k").commands.connect(7, offset=0)
        result = handle.wait()
        assert result.stdout == text.decode() and result.exit_code == 0 and result.stdout_bytes == len(text)
        assert not result.stdout_truncated
        paths = [(r.path.rsplit("/", 1)[-1], "follow=true" in r.query) for r in server.requests]
        if cut:  # followed, broke, then long-polled /wait and read what the buffer holds
            assert paths == [("7", False), ("output", True), ("wait", False), ("output", False)]
        else:
            assert paths == [("7", False), ("output", True)]


def _ws_read_frame(reader):
    b0, b1 = reader.read(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", reader.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", reader.read(8))[0]
    assert b1 & 0x80, "client frames must be masked"
    key = reader.read(4)
    data = bytes(b ^ key[i % 4] for i, b in enumerate(reader.read(n)))
    return b0 & 0x0F, bool(b0 & 0x80), data


def _ws_frame(opcode, data, fin=True):
    n = len(data)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + data


def test_websocket_attach_framing(serve):
    seen = {}

    def handler(req, conn, reader):
        assert req.path == f"/v1/sandboxes/{SID}/processes/7/attach" and "offset=0" in req.query
        assert req.headers["upgrade"].lower() == "websocket" and req.headers["authorization"] == "Bearer k"
        assert "airlock.attach.v1" in req.headers["sec-websocket-protocol"]
        accept = base64.b64encode(hashlib.sha1(req.headers["sec-websocket-key"].encode() + GUID).digest()).decode()
        conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Accept: {accept}\r\nSec-WebSocket-Protocol: airlock.attach.v1\r\n\r\n").encode())
        conn.sendall(_ws_frame(0x1, json.dumps({"type": "attached", "pid": 7, "offset": 0}).encode()))
        conn.sendall(_ws_frame(0x2, b"\x01hel", fin=False) + _ws_frame(0x0, b"lo ", fin=False))
        conn.sendall(_ws_frame(0x9, b"ping!"))  # a ping between fragments
        conn.sendall(_ws_frame(0x0, b"world\n"))
        opcode, _, data = _ws_read_frame(reader)
        assert opcode == 0xA and data == b"ping!"  # pong with the same payload
        opcode, _, data = _ws_read_frame(reader)
        seen["stdin"] = (opcode, data)
        opcode, _, data = _ws_read_frame(reader)
        seen["resize"] = (opcode, json.loads(data))
        big = b"\x02" + b"e" * 70000  # a 64-bit length frame
        conn.sendall(_ws_frame(0x2, big))
        conn.sendall(_ws_frame(0x1, json.dumps({"type": "exit", "pid": 7, "exit_code": 0, "signal": None,
                                                "reason": "exited", "error": None,
                                                "ended_at": "2026-11-21T10:00:03.000Z", "duration_ms": 5,
                                                "cpu_time_ms": 1}).encode()))
        conn.sendall(_ws_frame(0x8, struct.pack("!H", 1000)))
        opcode, _, data = _ws_read_frame(reader)
        seen["close"] = (opcode, data)
        return False

    server = serve(handler)
    stderr = []
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k")
    from airlock.pty import AttachSession
    ws = sb.pty._attach(7, 0, 10)
    session = AttachSession(sb, 7, ws, on_stderr=stderr.append)
    assert session.attached.wait(5) and session.offset is not None
    time.sleep(0.1)
    session.send_stdin("typed")
    session.resize(100, 30)
    result = session.wait(timeout=10)
    assert result.exit_code == 0 and result.stdout.startswith("hello world\n")
    assert b"".join(stderr) == b"e" * 70000
    assert seen["stdin"] == (0x2, b"\x00typed")
    assert seen["resize"] == (0x1, {"type": "resize", "cols": 100, "rows": 30})
    assert seen["close"][0] == 0x8 and seen["close"][1][:2] == struct.pack("!H", 1000)


def test_websocket_refused_upgrade_maps_the_error(serve):
    server = serve(lambda req, conn, r: conn.sendall(response(
        404, {"error": {"code": "process_not_found", "message": "no process 7"}})) and False)
    with pytest.raises(errors.ProcessNotFoundError):
        airlock.Sandbox(SID, api_url=server.url, api_key="k").pty.connect(7)


ENTRY = {"name": "f", "path": "/root/f", "type": "file", "size": 0, "mode": "0644", "uid": 0, "gid": 0,
         "modified_at": "2026-11-21T10:00:03.000Z", "symlink_target": None}


def test_file_uploads_are_streamed_with_the_right_framing(serve):
    def handler(req, conn, reader):
        conn.sendall(response(200, dict(ENTRY, size=len(req.body))))
        return True

    server = serve(handler)
    files = airlock.Sandbox(SID, api_url=server.url, api_key="k").files
    assert files.write("/root/f", (c for c in [b"ab", b"", "cd", b"e"])).size == 5  # the empty chunk is skipped
    gen_req = server.requests[-1]
    assert gen_req.headers.get("transfer-encoding") == "chunked" and gen_req.body == b"abcde"
    assert gen_req.headers["content-type"] == "application/octet-stream"
    assert "path=%2Froot%2Ff" in gen_req.query and "make_parents=true" in gen_req.query
    with tempfile.TemporaryFile() as f:
        f.write(b"skip" + b"x" * 100_000)
        f.seek(4)
        files.write("/root/f", f, mode=0o640)
    file_req = server.requests[-1]
    assert file_req.headers["content-length"] == "100000" and file_req.body == b"x" * 100_000
    assert "mode=0640" in file_req.query
    import io
    files.write("/root/f", io.StringIO("tëxt"))
    assert server.requests[-1].body == "tëxt".encode()


def test_file_write_is_retried_from_the_start_of_its_body(serve):
    state = {"n": 0}

    def handler(req, conn, reader):
        state["n"] += 1
        if state["n"] == 1:
            return False  # the upload is lost
        conn.sendall(response(200, dict(ENTRY, size=len(req.body))))
        return True

    server = serve(handler)
    with tempfile.TemporaryFile() as f:
        f.write(b"0123456789")
        f.seek(0)
        entry = airlock.Sandbox(SID, api_url=server.url, api_key="k").files.write("/root/f", f)
    assert entry.size == 10 and [r.body for r in server.requests] == [b"0123456789", b"0123456789"]


def test_watch_stop_unblocks_a_quiet_stream(serve):
    """A followed stream (close-delimited, no events for a long time) must end promptly on stop(), and it
    must not time out by itself while quiet."""
    release = threading.Event()

    def handler(req, conn, reader):
        assert req.path == f"/v1/sandboxes/{SID}/files/watch" and "recursive=true" in req.query
        conn.sendall(chunked_head() + chunk(b'{"type":"ready","path":"/root"}\n'))
        time.sleep(0.2)
        conn.sendall(chunk(b'{"type":"create","path":"/root/a","is_dir":false,'
                           b'"timestamp":"2026-11-21T10:00:03.120Z"}\n'))
        release.wait(10)  # then silence
        return False

    server = serve(handler)
    sb = airlock.Sandbox(SID, api_url=server.url, api_key="k", request_timeout=0.5)
    ended = []
    handle = sb.files.watch_dir("/root", recursive=True, on_exit=ended.append)
    event = handle.get_event(timeout=5)
    assert event is not None and event.type == "create" and event.path == "/root/a" and event.name == "a"
    time.sleep(1.0)  # longer than request_timeout: a watch waits for events for ever
    assert handle.running and ended == []
    t0 = time.monotonic()
    handle.stop()
    assert time.monotonic() - t0 < 2 and not handle.running and ended == [None]
    release.set()


def test_disconnect_stops_following_output(serve):
    release = threading.Event()

    def handler(req, conn, reader):
        if req.path.endswith("/processes"):
            conn.sendall(response(201, PROCESS))
            return True
        assert req.path.endswith("/processes/7/output") and "follow=true" in req.query
        conn.sendall(chunked_head())
        offset = 0
        while not release.is_set():
            try:
                conn.sendall(chunk(json.dumps({"type": "stdout", "offset": offset, "encoding": "base64",
                                               "data": base64.b64encode(b"tick\n").decode()}).encode() + b"\n"))
            except OSError:
                return False
            offset += 5
            time.sleep(0.02)
        return False

    server = serve(handler)
    seen = []
    handle = airlock.Sandbox(SID, api_url=server.url, api_key="k").commands.run("x", background=True,
                                                                                 on_stdout=seen.append)
    assert server.requests[0].json()["open_stdin"] is True
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    handle.disconnect()
    count = len(seen)
    time.sleep(0.3)
    assert seen and len(seen) == count
    release.set()
