"""Exposed ports (issue 4): the port proxy (path- and host-based), access tokens, readiness, raw TCP
over WebSocket, cleanup when the sandbox ends, restart survival. The servers inside the sandboxes are
tests/e2e/port_backend.py; every sandbox here has network mode `none` (loopback only): the daemon
reaches its ports through a socket made inside the sandbox's network namespace."""
import base64
import http.client
import json
import os
import socket
import struct
import time
from pathlib import Path

import pytest

BACKEND = (Path(__file__).parent / "port_backend.py").read_text()
DOMAIN = "sbx.test"


def start_backend(client, sid, mode, port):
    r = client.post(f"/v1/sandboxes/{sid}/processes",
                    json={"argv": ["/usr/bin/python3", "-c", BACKEND, mode, str(port)]}, timeout=30)
    assert r.status == 201, r
    r = client.get(f"/v1/sandboxes/{sid}/ports/{port}/wait?timeout=20", timeout=40)
    assert r.status == 200 and r.json == {"port": port, "ready": True}, r


def connections(client, sid, port):
    """How many connections the backend on `port` has accepted."""
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": f"cat /tmp/conns-{port} 2>/dev/null | wc -l"})
    assert r.status == 200, r
    return int(r.json["stdout"].strip())


def proxied(daemon, method, target, headers=None, body=None, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.port, timeout=15)
    try:
        hdrs = dict(headers or {})
        if host:
            hdrs["Host"] = host
        conn.request(method, target, body=body, headers=hdrs)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def new_token(client, sid, port, **body):
    r = client.post(f"/v1/sandboxes/{sid}/ports/{port}/tokens", json=body)
    assert r.status == 201, r
    assert r.json["token"].startswith("apt_")
    return r.json


@pytest.fixture
def world(make_daemon, sandboxes):
    """A daemon with a proxy domain, a sandbox exposing 8080 (private) and 3000 (public) with HTTP
    servers on both, and a token for 8080."""
    d = make_daemon("--proxy-domain", DOMAIN)
    client = d.admin()
    r = sandboxes.create(client, {"ports": [8080, {"port": 3000, "public": True}]})
    sid = r.json["sandbox_id"]
    assert r.json["ports"] == [{"port": 3000, "public": True}, {"port": 8080, "public": False}]
    start_backend(client, sid, "http", 8080)
    start_backend(client, sid, "http", 3000)
    token = new_token(client, sid, 8080, name="t1")
    return d, client, sid, token


def test_port_listing_has_urls(world):
    d, client, sid, _ = world
    r = client.get(f"/v1/sandboxes/{sid}/ports")
    assert r.status == 200
    by_port = {p["port"]: p for p in r.json["ports"]}
    assert by_port[8080]["url"] == f"http://127.0.0.1:{d.port}/p/{sid}/8080/"
    assert by_port[8080]["host_url"] == f"http://8080-{sid}.{DOMAIN}:{d.port}/"
    assert by_port[3000]["public"] is True


def test_path_based_with_header_token_strips_prefix_and_credentials(world):
    d, client, sid, token = world
    status, headers, body = proxied(d, "POST", f"/p/{sid}/8080/hello/x?a=1", body=b"payload",
                                    headers={"X-Airlock-Port-Token": token["token"],
                                             "Authorization": f"Bearer {d.admin_key}",
                                             "Cookie": "app=1; airlock_port_token=zzz",
                                             "X-Forwarded-For": "6.6.6.6"})
    assert status == 200, body
    seen = json.loads(body)
    assert seen["method"] == "POST" and seen["path"] == "/hello/x?a=1" and seen["body"] == "payload"
    names = {k.lower(): v for k, v in seen["headers"]}
    assert "x-airlock-port-token" not in names
    assert "authorization" not in names  # the daemon's API key never reaches the sandbox
    assert names["cookie"] == "app=1"
    assert names["x-forwarded-for"] == "127.0.0.1"
    assert names["x-forwarded-proto"] == "http"
    assert names["connection"] == "close"
    assert d.admin_key not in body.decode()


def test_refused_requests_never_reach_the_sandbox(world):
    d, client, sid, token = world
    before = connections(client, sid, 8080)
    other = new_token(client, sid, 3000)  # a token of another port
    revoked = new_token(client, sid, 8080)
    assert client.delete(f"/v1/sandboxes/{sid}/ports/8080/tokens/{revoked['token_id']}").status == 204
    expiring = new_token(client, sid, 8080, expires_in=1)
    assert proxied(d, "GET", f"/p/{sid}/8080/", headers={"X-Airlock-Port-Token": expiring["token"]})[0] == 200
    before = connections(client, sid, 8080)
    time.sleep(1.2)  # let the token expire (an expiry, not a timing assertion)
    wrong = "apt_" + "A" * 43
    cases = [{}, {"X-Airlock-Port-Token": wrong}, {"X-Airlock-Port-Token": other["token"]},
             {"X-Airlock-Port-Token": revoked["token"]}, {"X-Airlock-Port-Token": expiring["token"]},
             {"Authorization": f"Bearer {d.admin_key}"}, {"X-Airlock-Port-Token": d.admin_key},
             {"Cookie": f"airlock_port_token={wrong}"}]
    for headers in cases:
        status, got, body = proxied(d, "GET", f"/p/{sid}/8080/", headers=headers)
        assert status == 401, (headers, body)
        d.contract.check_error(status, got, body)
        assert json.loads(body)["error"]["code"] == "port_token_required"
    status, _, _ = proxied(d, "GET", f"/p/{sid}/8080/?airlock_token={wrong}")
    assert status == 401
    status, _, _ = proxied(d, "GET", "/", host=f"8080-{sid}.{DOMAIN}")
    assert status == 401
    assert connections(client, sid, 8080) == before


def test_unknown_sandbox_port_and_nothing_listening(world):
    d, client, sid, token = world
    assert proxied(d, "GET", f"/p/{sid}/9999/")[0] == 404
    assert proxied(d, "GET", "/p/sb-0000000000000000/8080/")[0] == 404
    for bad in ["/p/../8080/", f"/p/{sid}/0/", f"/p/{sid}/65536/", f"/p/{sid}/08080/", f"/p/{sid}/-1/", f"/p/{sid}"]:
        status, _, body = proxied(d, "GET", bad)
        assert status == 404, bad
        assert json.loads(body)["error"]["code"] == "port_not_found"
    r = client.post(f"/v1/sandboxes/{sid}/ports", json={"port": 5000})
    assert r.status == 201 and r.json["public"] is False
    t = new_token(client, sid, 5000)
    status, _, body = proxied(d, "GET", f"/p/{sid}/5000/", headers={"X-Airlock-Port-Token": t["token"]})
    assert status == 502 and json.loads(body)["error"]["code"] == "port_unreachable"


def test_public_port_needs_no_token(world):
    d, client, sid, _ = world
    status, _, body = proxied(d, "GET", f"/p/{sid}/3000")
    assert status == 200 and json.loads(body)["path"] == "/"


def test_query_token_is_stripped_and_becomes_a_cookie(world):
    d, client, sid, token = world
    status, headers, body = proxied(d, "GET", f"/p/{sid}/8080/page?x=1&airlock_token={token['token']}&y=2")
    assert status == 200
    assert json.loads(body)["path"] == "/page?x=1&y=2"
    cookie = headers["set-cookie"]
    assert cookie.startswith(f"airlock_port_token={token['token']};") and f"Path=/p/{sid}/8080/" in cookie
    assert "HttpOnly" in cookie
    status, _, body = proxied(d, "GET", f"/p/{sid}/8080/next", headers={"Cookie": cookie.split(";")[0]})
    assert status == 200
    assert "airlock_port_token" not in body.decode()


def test_host_based_rewrites_every_request(world):
    d, client, sid, token = world
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)  # reconnects after each close
    try:
        for i in range(3):
            conn.request("GET", f"/n{i}", headers={"Host": f"8080-{sid}.{DOMAIN}:{d.port}",
                                                   "X-Airlock-Port-Token": token["token"]})
            r = conn.getresponse()
            seen = json.loads(r.read())
            assert r.status == 200 and seen["path"] == f"/n{i}"
            names = {k.lower(): v for k, v in seen["headers"]}
            assert names["x-forwarded-host"] == f"8080-{sid}.{DOMAIN}:{d.port}"
            assert "x-airlock-port-token" not in names and names["connection"] == "close"
    finally:
        conn.close()
    assert proxied(d, "GET", "/", host=f"3000-{sid}.{DOMAIN.upper()}")[0] == 200  # public, any case
    # The API is still served on other hosts.
    assert client.get("/healthz").status == 200


def ws_handshake(sock, target, headers):
    key = base64.b64encode(os.urandom(16)).decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock.sendall((f"GET {target} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = sock.recv(1)
        assert b, head
        head += b
    return int(head.split(b" ")[1])


def ws_send(sock, data, opcode=2):
    mask = os.urandom(4)
    n = len(data)
    hdr = bytes([0x80 | opcode]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
    sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))


def recv_exact(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(out)
        out += chunk
    return out


def ws_recv(sock):
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(sock, 8))[0]
    return b0 & 0x0F, recv_exact(sock, n)


def test_websocket_through_the_proxy(world):
    d, client, sid, token = world
    with socket.create_connection(("127.0.0.1", d.port), timeout=15) as s:
        assert ws_handshake(s, f"/p/{sid}/8080/ws", {"X-Airlock-Port-Token": token["token"]}) == 101
        for msg in (b"hello", b"x" * 3000):
            ws_send(s, msg, opcode=1)
            assert ws_recv(s) == (1, msg)


def test_streaming_response_arrives_incrementally(world):
    d, client, sid, token = world
    client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "rm -f /tmp/go"})
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=15)
    try:
        conn.request("GET", f"/p/{sid}/8080/stream", headers={"X-Airlock-Port-Token": token["token"]})
        r = conn.getresponse()
        assert r.status == 200
        # The second chunk is only written once /tmp/go exists, which happens after the first arrived.
        assert r.readline() == b"first\n"
        assert client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "touch /tmp/go"}).status == 200
        assert r.read() == b"second\n"
    finally:
        conn.close()


def test_unexpose_closes_and_forgets(world):
    d, client, sid, token = world
    assert client.delete(f"/v1/sandboxes/{sid}/ports/8080").status == 204
    assert proxied(d, "GET", f"/p/{sid}/8080/", headers={"X-Airlock-Port-Token": token["token"]})[0] == 404
    # Exposed again: the old token is gone with the old exposure.
    assert client.post(f"/v1/sandboxes/{sid}/ports", json={"port": 8080}).status == 201
    assert proxied(d, "GET", f"/p/{sid}/8080/", headers={"X-Airlock-Port-Token": token["token"]})[0] == 401
    assert client.get(f"/v1/sandboxes/{sid}/ports/8080/tokens").json == {"tokens": []}


def test_token_listing_has_no_secrets(world):
    d, client, sid, token = world
    r = client.get(f"/v1/sandboxes/{sid}/ports/8080/tokens")
    assert r.status == 200 and [t["token_id"] for t in r.json["tokens"]] == [token["token_id"]]
    assert "token" not in r.json["tokens"][0] and token["token"] not in r.body.decode()
    assert token["token"] not in d.log()


def test_wait_for_port_before_and_after_start(make_daemon, sandboxes):
    d = make_daemon()
    client = d.admin()
    sid = sandboxes.create(client, {}).json["sandbox_id"]
    r = client.get(f"/v1/sandboxes/{sid}/ports/7000/wait?timeout=0")
    assert r.status == 200 and r.json == {"port": 7000, "ready": False}
    r = client.get(f"/v1/sandboxes/{sid}/ports/7000/wait?timeout=0.3")
    assert r.json == {"port": 7000, "ready": False}
    # Started after the wait began: the long poll answers once the server listens.
    r = client.post(f"/v1/sandboxes/{sid}/processes",
                    json={"cmd": f"sleep 0.5; exec /usr/bin/python3 -c '{BACKEND.replace(chr(39), chr(34))}' echo 7000"})
    assert r.status == 201, r
    r = client.get(f"/v1/sandboxes/{sid}/ports/7000/wait?timeout=30", timeout=40)
    assert r.status == 200 and r.json == {"port": 7000, "ready": True}


def test_raw_tcp_connect_over_websocket(make_daemon, sandboxes):
    d = make_daemon()
    client = d.admin()
    sid = sandboxes.create(client, {}).json["sandbox_id"]
    start_backend(client, sid, "echo", 5432)
    with socket.create_connection(("127.0.0.1", d.port), timeout=15) as s:
        status = ws_handshake(s, f"/v1/sandboxes/{sid}/ports/5432/connect", {"Authorization": f"Bearer {d.admin_key}"})
        assert status == 101
        ws_send(s, b"\x00\x01binary\xff")
        got = b""
        while len(got) < 9:
            op, data = ws_recv(s)
            assert op == 2
            got += data
        assert got == b"\x00\x01binary\xff"
    r = client.get(f"/v1/sandboxes/{sid}/ports/5433/connect",
                   headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                            "Sec-WebSocket-Version": "13"})
    assert r.status == 502 and r.error_code == "port_unreachable"


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_delete_closes_tunnels_and_leaves_nothing(make_daemon, sandboxes):
    d = make_daemon()
    client = d.admin()
    r = sandboxes.create(client, {"ports": [{"port": 8080, "public": True}]})
    sid = r.json["sandbox_id"]
    start_backend(client, sid, "http", 8080)
    # Warm up (the first proxied request caches the sandbox's pidfd).
    assert proxied(d, "GET", f"/p/{sid}/8080/")[0] == 200
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "readlink /proc/self/ns/net"})
    netns = r.json["stdout"].strip()
    baseline = fd_count(d.proc.pid)
    open_socks = []
    for _ in range(3):  # WebSockets through the proxy stay open until the sandbox goes
        s = socket.create_connection(("127.0.0.1", d.port), timeout=15)
        assert ws_handshake(s, f"/p/{sid}/8080/ws", {}) == 101
        ws_send(s, b"x", opcode=1)
        assert ws_recv(s) == (1, b"x")
        open_socks.append(s)
    assert fd_count(d.proc.pid) > baseline
    assert client.delete(f"/v1/sandboxes/{sid}", timeout=60).status == 200
    for s in open_socks:
        s.settimeout(15)
        assert s.recv(100) == b""  # closed by the daemon
        s.close()
    deadline = time.monotonic() + 10
    while fd_count(d.proc.pid) > baseline - 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    # The pidfd the proxy held for the sandbox is gone too (baseline counted it).
    assert fd_count(d.proc.pid) <= baseline - 1
    assert proxied(d, "GET", f"/p/{sid}/8080/")[0] == 404
    # No process (and so no socket of ours) keeps the sandbox's network namespace.
    users = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink(f"/proc/{pid}/ns/net") == netns:
                    users.append(pid)
            except OSError:
                pass
    assert users == []


def test_ports_and_tokens_survive_a_daemon_kill(make_daemon):
    d = make_daemon()
    client = d.admin()
    r = client.post("/v1/sandboxes", json={"ports": [8080]}, timeout=60)
    sid = r.json["sandbox_id"]
    try:
        start_backend(client, sid, "http", 8080)
        token = new_token(client, sid, 8080)
        d.kill()
        d.start()
        client = d.admin()
        status, _, body = proxied(d, "GET", f"/p/{sid}/8080/again", headers={"X-Airlock-Port-Token": token["token"]})
        assert status == 200 and json.loads(body)["path"] == "/again"
        assert [p["port"] for p in client.get(f"/v1/sandboxes/{sid}/ports").json["ports"]] == [8080]
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert client.get(f"/v1/sandboxes/{sid}/ports").json == {"ports": []}


def test_create_validates_ports(daemon, admin, sandboxes):
    for bad in ["8080", [0], [65536], [8080, 8080], [{"port": 1, "x": 1}], [{"public": True}], list(range(1, 34)),
                [{"port": 80, "public": "yes"}]]:
        r = admin.post("/v1/sandboxes", json={"ports": bad})
        assert r.status == 400 and r.error_code == "invalid_field", (bad, r)


def test_cli_port_forward_relays_a_non_http_protocol(make_daemon, sandboxes):
    import subprocess
    binary = Path(os.environ.get("AIRLOCK_BUILD_DIR", Path(__file__).resolve().parents[2] / "build")) / "airlock"
    if not binary.exists():
        pytest.skip(f"{binary} is missing")
    d = make_daemon()
    client = d.admin()
    sid = sandboxes.create(client, {}).json["sandbox_id"]
    start_backend(client, sid, "echo", 6543)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
    env.update(AIRLOCK_URL=f"http://127.0.0.1:{d.port}", AIRLOCK_API_KEY=d.admin_key, HOME=str(d.data_dir))
    proc = subprocess.Popen([str(binary), "port-forward", sid, "0:6543"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Forwarding from 127.0.0.1:"), (line, proc.stderr.read() if proc.poll() is not None else "")
        local = int(line.split()[2].rsplit(":", 1)[1])
        for payload in (b"\x00\xffraw bytes, not HTTP\r\n\r\n", os.urandom(200000)):
            with socket.create_connection(("127.0.0.1", local), timeout=15) as s:
                s.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    chunk = s.recv(65536)
                    assert chunk, "closed early"
                    got += chunk
                assert got == payload
    finally:
        proc.send_signal(2)  # Ctrl-C
        assert proc.wait(15) == 0
