"""Sandboxes over the API: create, get, list (filters, pages), set timeout, terminate (idempotent), the
deadline timer, tenant isolation and request validation. Every sandbox made here is terminated by the
`sandboxes` fixture, whatever the test asserts."""
import base64
import threading
import time

import pytest


def test_create_get_delete_lifecycle(admin, sandboxes, daemon, engine_names):
    r = sandboxes.create(admin, {"cpu": 0.5, "memory_mb": 256, "disk_mb": 128, "pids": 64, "timeout": 120,
                                 "env": {"GREETING": "hello"}, "workdir": "/root",
                                 "metadata": {"user": "alice", "run": "e2e-1"}, "network": {"mode": "none"}})
    sb = r.json
    sid = sb["sandbox_id"]
    assert r.headers["location"] == f"/v1/sandboxes/{sid}"
    assert sb["state"] == "running" and sb["stop_reason"] is None
    assert (sb["cpu"], sb["memory_mb"], sb["disk_mb"], sb["pids"], sb["timeout"]) == (0.5, 256, 128, 64, 120)
    assert sb["metadata"] == {"user": "alice", "run": "e2e-1"}
    assert "env" not in sb  # never echoed back

    got = admin.get(f"/v1/sandboxes/{sid}")
    assert got.status == 200 and got.json["sandbox_id"] == sid and got.json["state"] == "running"

    engine, leftovers = engine_names
    name = engine(daemon, sid)
    assert name, "the daemon logs the engine name of each sandbox"
    assert leftovers(name), "a running sandbox has a cgroup"

    gone = admin.delete(f"/v1/sandboxes/{sid}")
    assert gone.status == 200 and gone.json["state"] == "terminated"
    assert gone.json["ended_at"] is not None and gone.json["expires_at"] is None
    assert leftovers(name) == []
    again = admin.delete(f"/v1/sandboxes/{sid}")  # idempotent
    assert again.status == 200 and again.json["state"] == "terminated"
    assert admin.get(f"/v1/sandboxes/{sid}").json["state"] == "terminated"


def test_defaults(admin, sandboxes):
    sb = sandboxes.create(admin).json
    assert (sb["template"], sb["cpu"], sb["memory_mb"], sb["disk_mb"], sb["pids"], sb["timeout"]) == \
        ("host", 1, 512, 1024, 256, 300)
    assert sb["workdir"] == "/root" and sb["network"] == {"mode": "none", "allow_out": [], "deny_out": [], "bandwidth_mbps": None, "ipv4": None, "ipv6": None} and sb["metadata"] == {}


def test_workdir_is_created_and_used(admin, sandboxes):
    sid = sandboxes.create(admin, {"workdir": "/work/app"}).json["sandbox_id"]
    r = admin.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "pwd"})
    assert r.status == 200 and r.json["stdout"] == "/work/app\n"


def test_another_tenants_sandbox_is_not_found(admin, sandboxes, daemon, new_key):
    sid = sandboxes.create(admin).json["sandbox_id"]
    other = daemon.client(new_key(tenant="team-other")["secret"])
    for method, path, body in [("GET", f"/v1/sandboxes/{sid}", None),
                               ("DELETE", f"/v1/sandboxes/{sid}", None),
                               ("POST", f"/v1/sandboxes/{sid}/timeout", {"timeout": 60}),
                               ("POST", f"/v1/sandboxes/{sid}/commands/run", {"cmd": "true"})]:
        kw = {"json": body} if body is not None else {}
        r = other.request(method, path, **kw)
        assert r.status == 404 and r.error_code == "sandbox_not_found", (method, path, r)
    listed = other.get("/v1/sandboxes").json["sandboxes"]
    assert sid not in [s["sandbox_id"] for s in listed]
    assert admin.get(f"/v1/sandboxes/{sid}").json["state"] == "running"  # untouched


@pytest.mark.parametrize("sid", ["sb-0000000000000000", "nope", "sb-UPPERCASE000000", "x" * 64])
def test_unknown_or_malformed_id_is_404(admin, sid):
    for method in ("GET", "DELETE"):
        r = admin.request(method, f"/v1/sandboxes/{sid}")
        assert r.status == 404 and r.error_code == "sandbox_not_found", r


@pytest.mark.parametrize("body,field", [
    ({"memory_mb": 2}, "memory_mb"),
    ({"memory_mb": "big"}, "memory_mb"),
    ({"cpu": 0}, "cpu"),
    ({"cpu": "one"}, "cpu"),
    ({"pids": 1}, "pids"),
    ({"disk_mb": 0}, "disk_mb"),
    ({"timeout": 0}, "timeout"),
    ({"timeout": 2592001}, "timeout"),
    ({"timeout": 1.5}, "timeout"),
    ({"idle_timeout": 0}, "idle_timeout"),
    ({"env": {"1BAD": "x"}}, "env.1BAD"),
    ({"env": {"OK": 1}}, "env.OK"),
    ({"env": []}, "env"),
    ({"workdir": "relative"}, "workdir"),
    ({"metadata": {"-bad": "x"}}, "metadata.-bad"),
    ({"metadata": {"k": "v" * 257}}, "metadata.k"),
    ({"network": {"mode": "host"}}, "network.mode"),
    ({"network": {"ports": [1]}}, "network.ports"),
    ({"network": {"allow_out": "github.com"}}, "network.allow_out"),
    ({"network": {"allow_out": ["10.0.0.0/33"]}}, "network.allow_out[0]"),
    ({"network": {"deny_out": ["ok.test", "bad name"]}}, "network.deny_out[1]"),
    ({"network": {"allow_out": ["1.2.3.4:0"]}}, "network.allow_out[0]"),
    ({"template": "Not Valid"}, "template"),
    ({"surprise": 1}, "surprise"),
])
def test_create_rejects_bad_fields(admin, sandboxes, body, field):
    r = sandboxes.create(admin, body, expect=400)
    assert r.error_code == "invalid_field" and r.json["error"]["field"] == field, r


def test_create_rejects_bad_bodies(admin, daemon):
    r = admin.request("POST", "/v1/sandboxes", body=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.error_code == "invalid_json"
    r = admin.request("POST", "/v1/sandboxes", body=b"[]", headers={"Content-Type": "application/json"})
    assert r.status == 400 and r.error_code == "invalid_json"
    r = admin.request("POST", "/v1/sandboxes", body=b"{}", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = daemon.client().post("/v1/sandboxes", json={})
    assert r.status == 401


def test_unknown_template_is_422(admin, sandboxes):
    r = sandboxes.create(admin, {"template": "python:3.12"}, expect=422)
    assert r.error_code == "unknown_template" and r.json["error"]["field"] == "template"


def test_list_filters_and_pages(admin, sandboxes):
    label = f"e2e-list-{time.monotonic_ns()}"
    ids = [sandboxes.create(admin, {"metadata": {"suite": label, "n": str(i)}}).json["sandbox_id"] for i in range(3)]
    r = admin.get(f"/v1/sandboxes?metadata=suite={label}")
    assert r.status == 200
    assert [s["sandbox_id"] for s in r.json["sandboxes"]] == ids[::-1]  # newest first
    assert r.json["next_cursor"] is None

    first = admin.get(f"/v1/sandboxes?metadata=suite={label}&limit=2")
    assert [s["sandbox_id"] for s in first.json["sandboxes"]] == ids[:0:-1]
    cursor = first.json["next_cursor"]
    assert cursor
    second = admin.get(f"/v1/sandboxes?metadata=suite={label}&limit=2&cursor={cursor}")
    assert [s["sandbox_id"] for s in second.json["sandboxes"]] == ids[:1]
    assert second.json["next_cursor"] is None

    both = admin.get(f"/v1/sandboxes?metadata=suite={label}&metadata=n=1")
    assert [s["sandbox_id"] for s in both.json["sandboxes"]] == [ids[1]]

    # A cursor is tied to its filters.
    r = admin.get(f"/v1/sandboxes?limit=2&cursor={cursor}")
    assert r.status == 400 and r.error_code == "invalid_parameter" and r.json["error"]["field"] == "cursor"

    # Terminated sandboxes are listed only when asked for.
    assert admin.delete(f"/v1/sandboxes/{ids[0]}").status == 200
    r = admin.get(f"/v1/sandboxes?metadata=suite={label}")
    assert ids[0] not in [s["sandbox_id"] for s in r.json["sandboxes"]]
    r = admin.get(f"/v1/sandboxes?metadata=suite={label}&state=terminated")
    assert [s["sandbox_id"] for s in r.json["sandboxes"]] == [ids[0]]
    r = admin.get(f"/v1/sandboxes?metadata=suite={label}&state=running&state=terminated")
    assert len(r.json["sandboxes"]) == 3


@pytest.mark.parametrize("query,field", [
    ("state=sleeping", "state"),
    ("state=running&state=running", "state"),
    ("metadata=novalue", "metadata"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("cursor=zz", "cursor"),
    ("colour=red", "colour"),
])
def test_list_rejects_bad_parameters(admin, query, field):
    r = admin.get(f"/v1/sandboxes?{query}")
    assert r.status == 400 and r.error_code == "invalid_parameter" and r.json["error"]["field"] == field, r


def _parse_ts(text):
    return time.mktime(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def test_set_timeout(admin, sandboxes):
    sb = sandboxes.create(admin, {"timeout": 60}).json
    sid = sb["sandbox_id"]
    r = admin.post(f"/v1/sandboxes/{sid}/timeout", json={"timeout": 600})
    assert r.status == 200
    assert 590 <= _parse_ts(r.json["expires_at"]) - _parse_ts(sb["created_at"]) <= 610
    before = _parse_ts(r.json["expires_at"])
    r = admin.post(f"/v1/sandboxes/{sid}/timeout", json={"extend_by": 100})
    assert r.status == 200 and 99 <= _parse_ts(r.json["expires_at"]) - before <= 101

    for body, field in [({}, "timeout"), ({"timeout": 5, "extend_by": 5}, "extend_by"), ({"timeout": 0}, "timeout"),
                        ({"extend_by": "x"}, "extend_by"), ({"other": 1}, "other")]:
        r = admin.post(f"/v1/sandboxes/{sid}/timeout", json=body)
        assert r.status == 400 and r.error_code == "invalid_field" and r.json["error"]["field"] == field, (body, r)

    r = admin.post(f"/v1/sandboxes/{sid}/timeout", json={"extend_by": 2592000})
    assert r.status == 422 and r.error_code == "limit_exceeded" and r.json["error"]["details"]["max"] == 2592000


def test_timeout_stops_the_sandbox(admin, sandboxes, daemon, engine_names):
    sid = sandboxes.create(admin, {"timeout": 1}).json["sandbox_id"]
    engine, leftovers = engine_names
    name = engine(daemon, sid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sb = admin.get(f"/v1/sandboxes/{sid}").json
        if sb["state"] != "running":
            break
        time.sleep(0.1)
    assert sb["state"] == "stopped" and sb["stop_reason"] == "timeout", sb
    assert sb["expires_at"] is None and sb["ended_at"] is not None
    assert leftovers(name) == []

    r = admin.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "true"})
    assert r.status == 409 and r.error_code == "sandbox_not_running"
    assert r.json["error"]["details"] == {"state": "stopped", "stop_reason": "timeout"}
    r = admin.post(f"/v1/sandboxes/{sid}/timeout", json={"timeout": 60})
    assert r.status == 409 and r.error_code == "sandbox_not_running"

    r = admin.delete(f"/v1/sandboxes/{sid}")  # DELETE after stopping: terminated, the reason kept
    assert r.status == 200 and r.json["state"] == "terminated" and r.json["stop_reason"] == "timeout"


def test_quota_counts_memory(admin, sandboxes):
    r = sandboxes.create(admin, {"memory_mb": 4194304}, expect=429)
    assert r.error_code == "quota_exceeded" and r.json["error"]["details"]["quota"] == "max_memory_mb"
