"""Hostile requests at the socket level: garbage request lines, oversized headers, invalid UTF-8, deep
JSON, bad Content-Length, chunked bombs, floods. None may produce a 500, every answer must have the one
error shape, and the daemon must still answer /healthz afterwards."""
import socket
import threading
import time

import pytest


ANY_CLIENT_ERROR = {400, 401, 404, 405, 413, 415, 431}


def _auth(daemon):
    return b"Authorization: Bearer " + daemon.admin_key.encode() + b"\r\n"


def _post_keys(daemon, body, extra=b""):
    return (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\n" + _auth(daemon) + b"Content-Type: application/json\r\n" + extra +
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def _chunked_keys(daemon, chunks):
    return (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\n" + _auth(daemon) +
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)


# (name, request bytes or a function of the daemon, acceptable statuses). An empty set means the daemon
# may also just close the connection (the client stopped mid-request: there is no one to answer).
CASES = [
    ("garbage request line", b"GARBAGE\r\n\r\n", {400}),
    ("binary junk", b"\x00\x01\x02\xff\xfe" * 200 + b"\r\n\r\n", {400}),
    ("unknown http version", b"GET /healthz HTTP/9.9\r\n\r\n", {400}),
    ("http/0.9", b"GET /healthz\r\n\r\n", {400}),
    ("double space", b"GET  /healthz HTTP/1.1\r\n\r\n", {400}),
    ("bare LF", b"GET /healthz HTTP/1.1\n\n", {400}),
    ("NUL in method", b"G\x00T /healthz HTTP/1.1\r\n\r\n", {400}),
    ("long method", b"A" * 20000 + b" / HTTP/1.1\r\n\r\n", {400, 431}),
    ("long request line", b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {431}),
    ("huge header", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", {431}),
    ("many headers", b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(3000)) + b"\r\n",
     {431}),
    ("1 MiB header", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n", {431}),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nBad Header\r\n\r\n", {400}),
    ("NUL in header value", b"GET /healthz HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("invalid utf-8 path", b"GET /\xff\xfe/\xc0\xaf HTTP/1.1\r\nHost: x\r\n\r\n", {400, 404}),
    ("invalid utf-8 encoded path", b"GET /v1/keys/%ff%fe%c0%af HTTP/1.1\r\nHost: x\r\n\r\n", {405}),
    ("invalid utf-8 in authorization", b"GET /v1/version HTTP/1.1\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
     {401}),
    ("long bearer token", b"GET /v1/version HTTP/1.1\r\nAuthorization: Bearer " + b"a" * 15000 + b"\r\n\r\n", {401}),
    ("absolute-form unknown host", b"GET http://evil.example/nope HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("asterisk target", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", {404}),
    ("negative content-length", b"POST /v1/keys HTTP/1.1\r\nContent-Length: -1\r\n\r\n", {400}),
    ("non-numeric content-length", b"POST /v1/keys HTTP/1.1\r\nContent-Length: abc\r\n\r\n", {400}),
    ("overflowing content-length", b"POST /v1/keys HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
     {400}),
    ("conflicting content-lengths", b"POST /v1/keys HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
     {400}),
    ("content-length and chunked", lambda d: b"POST /v1/keys HTTP/1.1\r\n" + _auth(d) +
     b"Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("unknown transfer-encoding", lambda d: b"POST /v1/keys HTTP/1.1\r\n" + _auth(d) +
     b"Content-Type: application/json\r\nTransfer-Encoding: gzip\r\n\r\nxx", {400}),
    ("gzip then chunked", lambda d: b"POST /v1/keys HTTP/1.1\r\n" + _auth(d) +
     b"Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", {400}),
    ("huge declared content-length", lambda d: b"POST /v1/keys HTTP/1.1\r\nHost: x\r\n" + _auth(d) +
     b"Content-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n", {413}),
    ("invalid utf-8 json", lambda d: _post_keys(d, b'{"name":"\xff\xfe\xfd"}'), {400}),
    ("lone surrogate json", lambda d: _post_keys(d, b'{"name":"\\ud800"}'), {400}),
    ("nul escape in name", lambda d: _post_keys(d, b'{"name":"a\\u0000b"}'), {400}),
    ("number overflow json", lambda d: _post_keys(d, b'{"name":"x","admin":1e400}'), {400}),
    ("deeply nested json", lambda d: _post_keys(d, b'{"name":' + b"[" * 200000 + b"]" * 200000 + b"}"), {400}),
    ("deep object json", lambda d: _post_keys(d, b'{"a":' * 50000 + b"1" + b"}" * 50000), {400}),
    ("many fields json", lambda d: _post_keys(d, b"{" + b",".join(b'"f%d":%d' % (i, i) for i in range(50000))
                                              + b"}"), {400}),
    ("duplicate keys json", lambda d: _post_keys(d, b'{"name":"a","name":7}'), {201, 400}),
    ("chunk size overflow", lambda d: _chunked_keys(d, b"FFFFFFFFFFFFFFFFFFFFFFFF\r\nx\r\n0\r\n\r\n"), {400}),
    ("chunk size over the limit", lambda d: _chunked_keys(d, b"7FFFFFFF\r\n" + b"x" * 1000), {413}),
    ("chunk extension bomb", lambda d: _chunked_keys(d, b"1;" + b"e" * 200000 + b"\r\nx\r\n0\r\n\r\n"), {400}),
    ("bad chunk terminator", lambda d: _chunked_keys(d, b"2\r\n{}XX0\r\n\r\n"), {400}),
    ("tiny chunks", lambda d: _chunked_keys(d, b"1\r\n{\r\n" + b"1\r\n \r\n" * 100000 + b"1\r\n}\r\n0\r\n\r\n"),
     {400}),
    ("non-hex chunk size", lambda d: _chunked_keys(d, b"zz\r\nxx\r\n0\r\n\r\n"), {400}),
    ("truncated body", b"POST /v1/keys HTTP/1.1\r\nContent-Length: 100\r\n\r\n{", set()),
    ("truncated headers", b"GET /healthz HTTP/1.1\r\nHost: x", set()),
]


@pytest.mark.parametrize("name,request_bytes,expected", CASES, ids=[c[0] for c in CASES])
def test_hostile_request(daemon, contract, name, request_bytes, expected):
    data = request_bytes(daemon) if callable(request_bytes) else request_bytes
    if name.startswith("truncated"):
        # Send part of a request and hang up: no answer is owed, the daemon must just carry on.
        s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
        s.sendall(data)
        s.close()
        assert daemon.healthy()
        return
    raw = daemon.exchange(data, timeout=10)
    assert raw, f"{name}: the daemon closed without an answer"
    status, headers, body = daemon.parse(raw)[0]
    daemon.statuses.append(status)
    assert status != 500, body
    assert status in expected, f"{name}: {status} {body[:300]!r}"
    if status >= 400:
        contract.check_error(status, headers, body, what=name)
    assert daemon.healthy(), f"{name}: /healthz failed afterwards"


@pytest.mark.parametrize("coding", [b"gzip", b"gzip, chunked", b"identity"])
def test_only_chunked_transfer_coding_is_accepted(daemon, contract, coding):
    # RFC 9112 6.3: no guessing where such a request ends (request smuggling behind a proxy).
    data = (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\n" + _auth(daemon) + b"Content-Type: application/json\r\n"
            b"Transfer-Encoding: " + coding + b"\r\n\r\n2\r\n{}\r\n0\r\n\r\n")
    status, headers, body = daemon.parse(daemon.exchange(data))[0]
    value = contract.check_error(status, headers, body)
    assert status == 400 and value["error"]["code"] == "invalid_parameter"
    assert value["error"]["field"] == "Transfer-Encoding"
    assert headers.get("connection") == "close"


def test_pipelined_requests_are_all_answered(daemon, contract):
    data = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 50 + b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = daemon.parse(daemon.exchange(data, responses=51))
    assert [r[0] for r in responses] == [200] * 50 + [404]
    contract.check_error(responses[-1][0], responses[-1][1], responses[-1][2])


def test_expect_100_continue(daemon):
    body = b'{"name":"continued","tenant":"team-expect"}'
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    try:
        s.sendall(b"POST /v1/keys HTTP/1.1\r\nHost: x\r\n" + _auth(daemon) + b"Content-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n"), interim
        s.sendall(body)
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    status, headers, payload = daemon.parse(data)[0]
    assert status == 201
    daemon.record("POST", "/v1/keys", status, headers.items(), payload)


def test_expect_100_continue_rejected_without_reading(daemon):
    # No key: 401 at once, no 100 Continue, so the client never sends the body.
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=5)
    try:
        s.sendall(b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Expect: 100-continue\r\nContent-Length: 1000000\r\n\r\n")
        data = s.recv(65536)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.1 401 ")


def test_flood_of_bad_clients_then_healthy(daemon):
    """200 concurrent clients sending garbage, slow partial headers and oversized headers."""
    errors = []

    def bad_client(i):
        try:
            s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
            kind = i % 4
            if kind == 0:
                s.sendall(b"\xff" * 100 + b"\r\n\r\n")
            elif kind == 1:
                s.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")  # then hang up
            elif kind == 2:
                s.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n")
            else:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if kind != 1:
                data = s.recv(4096)
                if b" 500 " in data.split(b"\r\n")[0]:
                    errors.append(data)
            s.close()
        except OSError as e:  # a reset under load is acceptable; a 500 is not
            if not isinstance(e, (ConnectionResetError, BrokenPipeError)):
                errors.append(repr(e))

    threads = [threading.Thread(target=bad_client, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert daemon.healthy()


def test_idle_connections_do_not_block_others(daemon):
    idle = [socket.create_connection(("127.0.0.1", daemon.port), timeout=5) for _ in range(50)]
    try:
        start = time.monotonic()
        assert daemon.healthy()
        assert time.monotonic() - start < 2
    finally:
        for s in idle:
            s.close()


def test_daemon_survived_everything(daemon):
    assert daemon.alive()
    assert daemon.healthy()
    assert 500 not in daemon.statuses
    assert "error: bug:" not in daemon.log()
