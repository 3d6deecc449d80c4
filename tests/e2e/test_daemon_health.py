"""Health and version: /healthz is the only open operation; both listeners (TCP and unix) serve the API."""
import json


def test_healthz_needs_no_key(anon):
    r = anon.get("/healthz")
    assert r.status == 200
    assert r.json["status"] == "ok"
    assert r.json["uptime_seconds"] >= 0
    assert r.headers["content-type"] == "application/json"


def test_healthz_ignores_a_key_and_query(daemon):
    assert daemon.client("alk_not-even-valid").get("/healthz?probe=1").status == 200


def test_version_needs_a_key(anon, admin, new_key):
    r = anon.get("/v1/version")
    assert r.status == 401 and r.error_code == "unauthenticated"
    r = admin.get("/v1/version")
    assert r.status == 200
    assert r.json["api_version"] == "v1"
    assert r.json["version"] == anon.get("/healthz").json["version"]
    tenant = new_key(tenant="health-tenant")
    assert admin.get("/v1/version", key=tenant["secret"]).status == 200


def test_unix_socket_serves_the_same_api(daemon):
    conn = daemon.connection(unix=True)
    try:
        conn.request("GET", "/v1/version", headers={"Authorization": f"Bearer {daemon.admin_key}"})
        r = conn.getresponse()
        body = r.read()
        value = daemon.record("GET", "/v1/version", r.status, r.getheaders(), body)
    finally:
        conn.close()
    assert value.status == 200 and value.json["api_version"] == "v1"


def test_keep_alive_serves_many_requests_on_one_connection(daemon):
    conn = daemon.connection()
    try:
        for _ in range(20):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            body = r.read()
            daemon.record("GET", "/healthz", r.status, r.getheaders(), body)
            assert r.status == 200 and json.loads(body)["status"] == "ok"
            assert r.getheader("connection", "").lower() != "close"
    finally:
        conn.close()


def test_every_response_so_far_was_validated(daemon, contract):
    # The contract checker is not vacuous: it saw and validated the responses of this module.
    assert contract.checked >= 5
