"""idle_timeout: a sandbox with no API requests and no running API-started process stops with reason
`idle`; a running process keeps it alive."""
import time


def test_idle_sandbox_stops_with_reason_idle(daemon):
    client = daemon.admin()
    sid = client.post("/v1/sandboxes", json={"idle_timeout": 1}, timeout=60).json["sandbox_id"]
    time.sleep(3.5)  # the timer checks every second; no request meanwhile
    r = client.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "stopped" and r.json["stop_reason"] == "idle", r.json
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)


def test_running_process_keeps_it_busy_and_requests_count_as_activity(daemon):
    client = daemon.admin()
    sid = client.post("/v1/sandboxes", json={"idle_timeout": 2}, timeout=60).json["sandbox_id"]
    r = client.post(f"/v1/sandboxes/{sid}/processes", json={"argv": ["sleep", "4"]})
    assert r.status == 201
    time.sleep(3)
    assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "running"
    for _ in range(4):  # requests every second keep it alive after the process ended
        time.sleep(1)
        assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "running"
    time.sleep(4)
    r = client.get(f"/v1/sandboxes/{sid}")
    assert r.json["state"] == "stopped" and r.json["stop_reason"] == "idle"
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)
