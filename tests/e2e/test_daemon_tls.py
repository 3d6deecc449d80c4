"""airlockd --tls-cert/--tls-key: the TCP listener speaks HTTPS only (the unix socket stays plain HTTP).
Everything that works over plain HTTP works over TLS: plain and keep-alive responses, a sandbox and a
command, a chunked streamed response, a deferred response (a process wait) and a WebSocket attach. A plain
HTTP client on the TLS port is dropped without harm; bad TLS files stop the daemon at start with a clear
message. The certificate is self-signed, made with the openssl CLI into tmp_path."""
import http.client
import json
import socket
import ssl
import subprocess
import time

import pytest
import ws_client


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_cert(directory, name):
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    return cert, key


@pytest.fixture
def tls_files(tmp_path):
    return make_cert(tmp_path, "airlockd")


@pytest.fixture
def tls_daemon(make_daemon, tls_files):
    cert, key = tls_files
    return make_daemon("--tls-cert", str(cert), "--tls-key", str(key))


class HttpsClient:
    """HTTPS to a daemon that trusts only its own certificate; responses are checked against the contract."""

    def __init__(self, daemon, cafile, key=None):
        self.daemon = daemon
        self.key = key
        self.context = ssl.create_default_context(cafile=str(cafile))

    def connection(self, timeout=30):
        return http.client.HTTPSConnection("127.0.0.1", self.daemon.port, timeout=timeout, context=self.context)

    def request(self, method, path, json_body=None, conn=None, timeout=30):
        headers = {}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        own = conn is None
        conn = conn or self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return self.daemon.record(method, path, r.status, r.getheaders(), data)
        finally:
            if own:
                conn.close()


@pytest.fixture
def https(tls_daemon, tls_files):
    return HttpsClient(tls_daemon, tls_files[0], key=tls_daemon.admin_key)


@pytest.fixture
def tls_box(https):
    r = https.request("POST", "/v1/sandboxes", {"metadata": {"suite": "tls"}}, timeout=60)
    assert r.status == 201, r
    sid = r.json["sandbox_id"]
    yield sid
    try:
        https.request("DELETE", f"/v1/sandboxes/{sid}", timeout=60)
    except OSError:
        pass


def test_healthz_and_keep_alive_over_https(tls_daemon, https):
    assert f"listening on https://127.0.0.1:{tls_daemon.port}" in tls_daemon.log()
    conn = https.connection()
    try:
        for _ in range(3):  # one TLS connection, several requests
            r = https.request("GET", "/healthz", conn=conn)
            assert r.status == 200 and r.json["status"] == "ok"
        assert conn.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        conn.close()
    # The unix socket is local and 0600: it stays plain HTTP.
    unix = tls_daemon.connection(unix=True)
    try:
        unix.request("GET", "/healthz")
        assert unix.getresponse().status == 200
    finally:
        unix.close()
    assert tls_daemon.stop() == 0


def test_client_that_does_not_trust_the_certificate_is_refused(tls_daemon, https):
    conn = http.client.HTTPSConnection("127.0.0.1", tls_daemon.port, timeout=10,
                                       context=ssl.create_default_context())  # system CAs only
    with pytest.raises(ssl.SSLError):
        conn.request("GET", "/healthz")
    conn.close()
    assert https.request("GET", "/healthz").status == 200


def test_sandbox_and_command_over_https(https, tls_box):
    r = https.request("POST", f"/v1/sandboxes/{tls_box}/commands/run", {"cmd": "echo over-tls; exit 3"})
    assert r.status == 200, r
    assert r.json["stdout"] == "over-tls\n" and r.json["exit_code"] == 3


def test_streamed_command_over_https(https, tls_box):
    # Big enough for many chunks and TLS records.
    r = https.request("POST", f"/v1/sandboxes/{tls_box}/commands/stream",
                      {"cmd": "echo one; sleep 0.2; head -c 300000 /dev/zero | tr '\\0' x; echo; echo two >&2; exit 4"})
    assert r.status == 200 and r.headers["content-type"].startswith("application/x-ndjson"), r
    events = [json.loads(line) for line in r.body.decode().splitlines() if line.strip()]
    assert events[0]["type"] == "start" and events[-1]["type"] == "exit" and events[-1]["exit_code"] == 4
    out = "".join(e["data"] for e in events if e["type"] == "stdout")
    assert out == "one\n" + "x" * 300000 + "\n"
    assert "".join(e["data"] for e in events if e["type"] == "stderr") == "two\n"


def test_deferred_wait_over_https(https, tls_box):
    r = https.request("POST", f"/v1/sandboxes/{tls_box}/processes", {"cmd": "sleep 0.5; exit 6"})
    assert r.status == 201, r
    pid = r.json["pid"]
    r = https.request("GET", f"/v1/sandboxes/{tls_box}/processes/{pid}/wait?timeout=20")
    assert r.status == 200 and r.json["exit_code"] == 6, r


def TlsWebSocket(daemon, cafile, path):
    context = ssl.create_default_context(cafile=str(cafile))
    raw = socket.create_connection(("127.0.0.1", daemon.port), timeout=15)
    return ws_client.WebSocket(context.wrap_socket(raw, server_hostname="127.0.0.1"), path, daemon.admin_key)


def test_websocket_attach_over_tls(tls_daemon, tls_files, https, tls_box):
    r = https.request("POST", f"/v1/sandboxes/{tls_box}/processes", {"cmd": "/bin/sh", "pty": {"cols": 80, "rows": 24}})
    assert r.status == 201, r
    pid = r.json["pid"]
    ws = TlsWebSocket(tls_daemon, tls_files[0], f"/v1/sandboxes/{tls_box}/processes/{pid}/attach")
    try:
        assert ws.status == 101 and "airlock.attach.v1" in ws.headers
        op, data = ws.recv()
        assert op == 1 and json.loads(data) == {"type": "attached", "pid": pid, "offset": 0}
        ws.send(b"\x00echo $((6*7)); exit 5\n", 2)
        out, exit_event = b"", None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and exit_event is None:
            op, data = ws.recv()
            if op == 2:
                out += data[1:]
            elif op == 1 and json.loads(data)["type"] == "exit":
                exit_event = json.loads(data)
            elif op == 8:
                break
        assert b"42" in out and exit_event and exit_event["exit_code"] == 5
    finally:
        ws.s.close()
    assert https.request("GET", "/healthz").status == 200


def test_plain_http_to_the_tls_port_is_dropped(tls_daemon, https):
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                answer = s.recv(65536)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/"), answer
        finally:
            s.close()
    # A client that connects and closes without a word, too.
    socket.create_connection(("127.0.0.1", tls_daemon.port), timeout=10).close()
    assert tls_daemon.alive()
    assert https.request("GET", "/healthz").status == 200
    deadline = time.monotonic() + 5
    while "debug: tls handshake with 127.0.0.1:" not in tls_daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "debug: tls handshake with 127.0.0.1:" in tls_daemon.log()
    assert tls_daemon.stop() == 0


def _start_failure(make_daemon, *extra):
    d = make_daemon(start=False)
    d.start(*extra, wait=False)
    assert d.proc.wait(30) != 0
    return d.log()


def test_missing_key_file_stops_the_start(make_daemon, tls_files, tmp_path):
    cert, _ = tls_files
    missing = tmp_path / "nope-key.pem"
    log = _start_failure(make_daemon, "--tls-cert", str(cert), "--tls-key", str(missing))
    assert f"tls key {missing}: No such file or directory" in log
    assert "listening on" not in log


def test_unusable_tls_files_stop_the_start(make_daemon, tls_files, tmp_path):
    cert, key = tls_files
    _, other_key = make_cert(tmp_path, "other")
    log = _start_failure(make_daemon, "--tls-cert", str(cert), "--tls-key", str(other_key))
    assert f"tls key {other_key} does not match certificate {cert}" in log
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    log = _start_failure(make_daemon, "--tls-cert", str(not_pem), "--tls-key", str(key))
    assert f"tls certificate {not_pem}: " in log
    encrypted = tmp_path / "encrypted-key.pem"
    openssl("pkey", "-in", str(key), "-out", str(encrypted), "-aes256", "-passout", "pass:secret")
    log = _start_failure(make_daemon, "--tls-cert", str(cert), "--tls-key", str(encrypted))
    assert f"tls key {encrypted}: " in log and "unencrypted" in log


@pytest.mark.parametrize("given,missing", [("--tls-cert", "--tls-key"), ("--tls-key", "--tls-cert")])
def test_one_tls_flag_without_the_other_is_a_usage_error(airlockd_bin, tls_files, tmp_path, given, missing):
    path = tls_files[0] if given == "--tls-cert" else tls_files[1]
    r = subprocess.run([airlockd_bin, "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                        given, str(path)], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    assert f"{given} requires {missing}" in r.stderr + r.stdout
    assert not (tmp_path / "data").exists()  # refused before touching the data dir
