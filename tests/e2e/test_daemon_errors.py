"""The one error shape with the right status: bad bodies (400 with `field`), media type (415), size
(413), routing (404/405), and the daemon's code table matching the spec's."""
import re
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[2]
LIMIT = 1 << 20  # the contract's JSON body limit


@pytest.mark.parametrize("body", [b"", b"{", b"nope", b"[1,2]", b"42", b"null", b'{"name": "x",}',
                                  b"{'name': 'x'}", b'{"name": "\xff\xfe"}', b'{"name": "x"} trailing',
                                  b"\xef\xbb\xbf\xff"])
def test_malformed_json_is_400_invalid_json(admin, body):
    r = admin.post("/v1/keys", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 400, r
    assert r.error_code == "invalid_json"
    assert r.json["error"]["message"]


@pytest.mark.parametrize("doc,field", [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": 7}, "name"),
    ({"name": None}, "name"),
    ({"name": "tab\tinside"}, "name"),
    ({"name": "ok", "tenant": "UPPER"}, "tenant"),
    ({"name": "ok", "tenant": "-lead"}, "tenant"),
    ({"name": "ok", "tenant": "t" * 64}, "tenant"),
    ({"name": "ok", "tenant": None}, "tenant"),
    ({"name": "ok", "admin": "true"}, "admin"),
    ({"name": "ok", "admin": 1}, "admin"),
    ({"name": "ok", "role": "root"}, "role"),
    ({"name": "ok", "secret": "alk_" + "a" * 43}, "secret"),
])
def test_invalid_fields_are_400_with_the_field(admin, doc, field):
    r = admin.post("/v1/keys", json=doc)
    assert r.status == 400, r
    assert r.error_code == "invalid_field"
    assert r.json["error"]["field"] == field


def test_name_length_counts_characters_not_bytes(admin):
    r = admin.post("/v1/keys", json={"name": "é" * 64, "tenant": "team-utf8"})
    assert r.status == 201 and r.json["name"] == "é" * 64


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "application/json; charset=latin1", "application/jsonp"])
def test_json_operations_need_the_json_media_type(admin, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    r = admin.post("/v1/keys", body=b'{"name":"x"}', headers=headers)
    assert r.status == 415 and r.error_code == "unsupported_media_type", r


def test_media_type_parameters_are_accepted(admin):
    r = admin.post("/v1/keys", body=b'{"name":"x","tenant":"team-mt"}',
                   headers={"Content-Type": "Application/JSON; charset=UTF-8"})
    assert r.status == 201


def test_body_at_the_limit_is_accepted(admin):
    doc = b'{"name":"edge","tenant":"team-edge"'
    body = doc + b" " * (LIMIT - len(doc) - 1) + b"}"
    assert len(body) == LIMIT
    r = admin.post("/v1/keys", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 201, r


def test_body_over_the_limit_is_413(admin):
    body = b'{"name":"' + b"x" * LIMIT + b'"}'
    r = admin.post("/v1/keys", body=body, headers={"Content-Type": "application/json"})
    assert r.status == 413 and r.error_code == "payload_too_large"
    assert r.json["error"]["details"]["limit_bytes"] == LIMIT


def test_chunked_body_over_the_limit_is_413(daemon):
    chunk = b"x" * 65536
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk) + 2)) + b"0\r\n\r\n"
    raw = (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + daemon.admin_key.encode() +
           b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    [(status, headers, payload)] = daemon.parse(daemon.exchange(raw))
    value = daemon.record("POST", "/v1/keys", status, headers.items(), payload).json
    assert status == 413 and value["error"]["code"] == "payload_too_large"


def test_large_body_from_an_unauthenticated_client_is_not_read(daemon):
    # 401 comes from the headers alone; the daemon answers without reading 8 MiB.
    raw = (b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
           b"Content-Length: 8388608\r\n\r\n" + b"x" * 65536)
    [(status, headers, payload)] = daemon.parse(daemon.exchange(raw))
    assert status == 401
    daemon.record("POST", "/v1/keys", status, headers.items(), payload)


@pytest.mark.parametrize("method,path,allow", [
    ("PUT", "/v1/keys", "GET, POST"),
    ("PATCH", "/v1/keys", "GET, POST"),
    ("GET", "/v1/keys/key-0000000000000000", "DELETE"),
    ("POST", "/healthz", "GET"),
    ("DELETE", "/v1/version", "GET"),
    ("HEAD", "/v1/version", "GET"),
])
def test_wrong_method_is_405_with_allow(daemon, method, path, allow):
    conn = daemon.connection()
    try:
        conn.request(method, path)
        r = conn.getresponse()
        data = r.read()
        resp = daemon.record(method, path, r.status, r.getheaders(), data)
    finally:
        conn.close()
    assert resp.status == 405
    assert resp.headers["allow"] == allow
    if method != "HEAD":
        assert resp.error_code == "method_not_allowed"


# /metrics and the quota routes are served now (test_daemon_metrics.py, test_daemon_quota.py). [obs]
@pytest.mark.parametrize("path", ["/", "/v2/keys", "/v1/keys/", "/v1/keys/a/b", "/healthz/", "/metrics/",
                                  "/v1/quota/", "/v1/tenants/team-a", "/%ff%fe", "/v1/../healthz"])
def test_unknown_or_unserved_paths_are_404(admin, path):
    r = admin.get(path)
    assert r.status == 404 and r.error_code == "route_not_found", r


# Streams, processes and files are served: without a key 401; an unknown sandbox is 404 sandbox_not_found.
@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/sandboxes/sb-4f3k9q2m7x1c8v5b/commands/stream"),
    ("GET", "/v1/sandboxes/sb-4f3k9q2m7x1c8v5b/processes"),
    ("GET", "/v1/sandboxes/sb-4f3k9q2m7x1c8v5b/files/read?path=/etc/passwd"),
])
def test_sandbox_subroutes_need_a_key_and_a_sandbox(daemon, method, path):
    kw = {"json": {"cmd": "true"}} if method == "POST" else {}
    r = daemon.client(None).request(method, path, **kw)
    assert r.status == 401 and r.error_code == "unauthenticated", r
    r = daemon.client(daemon.admin_key).request(method, path, **kw)
    assert r.status == 404 and r.error_code == "sandbox_not_found", r


def test_daemon_error_table_matches_the_spec(contract):
    source = (ROOT / "src" / "daemon" / "errors.cc").read_text()
    ours = {code: int(status) for code, status in
            re.findall(r'CodeInfo\{ErrorCode::k\w+, "([a-z_]+)", (\d{3})\}', source)}
    assert ours == contract.error_status
    enum = contract.spec["components"]["schemas"]["ErrorCode"]["enum"]
    assert sorted(ours) == sorted(enum)


def test_no_response_was_a_500(daemon):
    assert daemon.statuses and 500 not in daemon.statuses
