"""Tenant quotas: GET /v1/quota, GET/PUT /v1/tenants/{tenant}/quota (admin), and POST /v1/sandboxes
answering 429 `quota_exceeded` at the limit, then succeeding again once a sandbox is gone. Concurrent
creates never pass the last slot, one tenant's usage never includes another's, and the daemon-wide
default comes from `airlockd --default-max-sandboxes/--default-max-memory-mb`.

Each test uses tenants of its own (the session's daemon is shared)."""
import itertools
import threading

import pytest

_names = itertools.count()


@pytest.fixture
def tenant(new_key, daemon):
    """A fresh tenant with a key: (name, client)."""
    name = f"quota-{next(_names)}-{id(daemon) % 10000}"
    return name, daemon.client(new_key(tenant=name)["secret"])


def test_own_quota_shows_the_defaults_and_zero_usage(tenant):
    name, client = tenant
    r = client.get("/v1/quota")
    assert r.status == 200
    assert r.json == {"tenant": name, "max_sandboxes": 100, "max_memory_mb": 65536, "sandboxes": 0, "memory_mb": 0}


def test_tenant_routes_are_admin_only(tenant, daemon):
    name, client = tenant
    for method, kw in (("GET", {}), ("PUT", {"json": {"max_sandboxes": 1, "max_memory_mb": 1}})):
        r = client.request(method, f"/v1/tenants/{name}/quota", **kw)
        assert r.status == 403 and r.error_code == "forbidden", r
        r = daemon.client(None).request(method, f"/v1/tenants/{name}/quota", **kw)
        assert r.status == 401 and r.error_code == "unauthenticated", r
    r = daemon.client(None).get("/v1/quota")
    assert r.status == 401


@pytest.mark.parametrize("path_tenant", ["never-named", "Upper_Case", "a" * 64])
def test_a_tenant_no_key_ever_named_is_404(admin, path_tenant):
    r = admin.get(f"/v1/tenants/{path_tenant}/quota")
    assert r.status == 404 and r.error_code == "tenant_not_found", r
    r = admin.request("PUT", f"/v1/tenants/{path_tenant}/quota", json={"max_sandboxes": 1, "max_memory_mb": 1})
    assert r.status == 404 and r.error_code == "tenant_not_found", r


def test_a_too_long_tenant_is_400(admin):
    r = admin.get(f"/v1/tenants/{'a' * 65}/quota")
    assert r.status == 400 and r.error_code == "invalid_parameter" and r.json["error"]["field"] == "tenant", r


def test_a_revoked_keys_tenant_is_still_known(admin, new_key):
    key = new_key(tenant="quota-revoked")
    assert admin.delete(f"/v1/keys/{key['key_id']}").status == 200
    r = admin.get("/v1/tenants/quota-revoked/quota")
    assert r.status == 200 and r.json["tenant"] == "quota-revoked"


def test_put_replaces_both_limits_and_null_is_unlimited(admin, tenant):
    name, client = tenant
    r = admin.request("PUT", f"/v1/tenants/{name}/quota", json={"max_sandboxes": 3, "max_memory_mb": None})
    assert r.status == 200
    assert r.json == {"tenant": name, "max_sandboxes": 3, "max_memory_mb": None, "sandboxes": 0, "memory_mb": 0}
    assert admin.get(f"/v1/tenants/{name}/quota").json == r.json
    assert client.get("/v1/quota").json == r.json
    r = admin.request("PUT", f"/v1/tenants/{name}/quota", json={"max_sandboxes": None, "max_memory_mb": 0})
    assert (r.json["max_sandboxes"], r.json["max_memory_mb"]) == (None, 0)


@pytest.mark.parametrize("body,field", [
    ({"max_sandboxes": 1}, "max_memory_mb"),
    ({"max_memory_mb": 1}, "max_sandboxes"),
    ({"max_sandboxes": 1, "max_memory_mb": 1, "extra": 1}, "extra"),
    ({"max_sandboxes": -1, "max_memory_mb": 1}, "max_sandboxes"),
    ({"max_sandboxes": 1000001, "max_memory_mb": 1}, "max_sandboxes"),
    ({"max_sandboxes": 1, "max_memory_mb": 1073741825}, "max_memory_mb"),
    ({"max_sandboxes": "1", "max_memory_mb": 1}, "max_sandboxes"),
    ({"max_sandboxes": 1.5, "max_memory_mb": 1}, "max_sandboxes"),
    ({"max_sandboxes": True, "max_memory_mb": 1}, "max_sandboxes"),
])
def test_put_validates_the_body(admin, tenant, body, field):
    name, _ = tenant
    r = admin.request("PUT", f"/v1/tenants/{name}/quota", json=body)
    assert r.status == 400 and r.error_code == "invalid_field" and r.json["error"]["field"] == field, r
    assert admin.get(f"/v1/tenants/{name}/quota").json["max_sandboxes"] == 100  # unchanged


def test_put_needs_json(admin, tenant):
    name, _ = tenant
    r = admin.request("PUT", f"/v1/tenants/{name}/quota", body=b"max_sandboxes=1",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status == 415 and r.error_code == "unsupported_media_type"


def test_429_at_the_limit_and_recovery_after_a_delete(admin, tenant, sandboxes):
    name, client = tenant
    assert admin.request("PUT", f"/v1/tenants/{name}/quota",
                         json={"max_sandboxes": 2, "max_memory_mb": None}).status == 200
    a = sandboxes.create(client, {"memory_mb": 128}).json["sandbox_id"]
    sandboxes.create(client, {"memory_mb": 256})
    r = sandboxes.create(client, {"memory_mb": 64}, expect=429)
    assert r.error_code == "quota_exceeded"
    assert r.json["error"]["details"] == {"quota": "max_sandboxes", "limit": 2, "used": 2, "requested": 1}
    q = client.get("/v1/quota").json
    assert (q["sandboxes"], q["memory_mb"]) == (2, 384)

    assert client.delete(f"/v1/sandboxes/{a}", timeout=60).status == 200
    assert client.get("/v1/quota").json["sandboxes"] == 1
    sandboxes.create(client, {"memory_mb": 64})  # the freed slot is usable again
    q = admin.get(f"/v1/tenants/{name}/quota").json
    assert (q["sandboxes"], q["memory_mb"]) == (2, 320)


def test_memory_quota(admin, tenant, sandboxes):
    name, client = tenant
    admin.request("PUT", f"/v1/tenants/{name}/quota", json={"max_sandboxes": None, "max_memory_mb": 600})
    sandboxes.create(client, {"memory_mb": 512})
    r = sandboxes.create(client, {"memory_mb": 128}, expect=429)
    assert r.json["error"]["details"] == {"quota": "max_memory_mb", "limit": 600, "used": 512, "requested": 128}
    sandboxes.create(client, {"memory_mb": 88})  # exactly up to the limit is fine


def test_lowering_below_usage_stops_nothing(admin, tenant, sandboxes):
    name, client = tenant
    sid = sandboxes.create(client).json["sandbox_id"]
    r = admin.request("PUT", f"/v1/tenants/{name}/quota", json={"max_sandboxes": 0, "max_memory_mb": 0})
    assert r.status == 200 and r.json["sandboxes"] == 1
    assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "running"
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "true"})
    assert r.status == 200
    sandboxes.create(client, expect=429)


def test_one_tenants_usage_never_includes_anothers(admin, new_key, daemon, sandboxes):
    a_name, b_name = f"quota-iso-a-{next(_names)}", f"quota-iso-b-{next(_names)}"
    a = daemon.client(new_key(tenant=a_name)["secret"])
    b = daemon.client(new_key(tenant=b_name)["secret"])
    sandboxes.create(a, {"memory_mb": 256})
    sandboxes.create(a, {"memory_mb": 256})
    sandboxes.create(b, {"memory_mb": 128})
    assert (a.get("/v1/quota").json["sandboxes"], a.get("/v1/quota").json["memory_mb"]) == (2, 512)
    assert (b.get("/v1/quota").json["sandboxes"], b.get("/v1/quota").json["memory_mb"]) == (1, 128)
    assert admin.get(f"/v1/tenants/{a_name}/quota").json["sandboxes"] == 2
    # The admin's own quota is its own tenant's: none of the above.
    own = admin.get("/v1/quota").json
    assert own["tenant"] == "default"
    # Another tenant's limit does not apply either.
    admin.request("PUT", f"/v1/tenants/{b_name}/quota", json={"max_sandboxes": 1, "max_memory_mb": None})
    sandboxes.create(a, {"memory_mb": 64})
    sandboxes.create(b, expect=429)


def test_concurrent_creates_never_pass_the_last_slot(admin, tenant, sandboxes):
    name, client = tenant
    admin.request("PUT", f"/v1/tenants/{name}/quota", json={"max_sandboxes": 2, "max_memory_mb": None})
    statuses = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def create():
        start.wait()
        r = client.post("/v1/sandboxes", json={"memory_mb": 64}, timeout=60)
        with lock:
            statuses.append(r.status)
            if r.status == 201:
                sandboxes.made.append((client, r.json["sandbox_id"]))

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 201, 429, 429, 429, 429], statuses
    assert client.get("/v1/quota").json["sandboxes"] == 2


def test_default_quota_comes_from_the_flags_and_quotas_survive_a_restart(make_daemon):
    d = make_daemon("--default-max-sandboxes", "1", "--default-max-memory-mb", "unlimited")
    admin = d.admin()
    q = admin.get("/v1/quota").json
    assert (q["max_sandboxes"], q["max_memory_mb"]) == (1, None)
    made = []
    try:
        r = admin.post("/v1/sandboxes", json={}, timeout=60)
        assert r.status == 201
        made.append(r.json["sandbox_id"])
        r = admin.post("/v1/sandboxes", json={}, timeout=60)
        assert r.status == 429 and r.json["error"]["details"]["limit"] == 1

        r = admin.request("PUT", "/v1/tenants/default/quota", json={"max_sandboxes": 5, "max_memory_mb": 4096})
        assert r.status == 200
        assert d.stop() == 0
        d.start()  # same data dir, same flags: the tenant's own row still wins over the default
        admin = d.admin()
        q = admin.get("/v1/quota").json
        assert (q["max_sandboxes"], q["max_memory_mb"], q["sandboxes"]) == (5, 4096, 1)
    finally:
        for sid in made:
            admin.delete(f"/v1/sandboxes/{sid}", timeout=60)


def test_bad_default_flags_are_refused(airlockd_bin, tmp_path):
    import subprocess
    r = subprocess.run([airlockd_bin, "--data-dir", str(tmp_path / "d"), "--default-max-sandboxes", "lots"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
