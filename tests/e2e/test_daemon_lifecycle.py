"""The daemon's lifecycle: keys survive SIGKILL, one daemon per data dir, SIGTERM drains in-flight
requests and does not wait for idle connections."""
import os
import socket
import time


def test_restart_after_sigkill_keeps_keys(make_daemon):
    d = make_daemon()
    admin_secret = d.admin_key
    key = d.admin().post("/v1/keys", json={"name": "survivor", "tenant": "team-restart"}).json
    revoked = d.admin().post("/v1/keys", json={"name": "revoked", "tenant": "team-restart"}).json
    d.admin().delete(f"/v1/keys/{revoked['key_id']}")
    assert d.kill() == -9
    d.start()
    assert d.admin_key == admin_secret  # no new admin key on a restart
    assert d.client(key["secret"]).get("/v1/version").status == 200
    assert d.client(revoked["secret"]).get("/v1/version").status == 401
    listed = d.admin().get("/v1/keys?tenant=team-restart&include_revoked=true").json["keys"]
    assert {k["key_id"] for k in listed} == {key["key_id"], revoked["key_id"]}
    assert d.log().count("created admin API key") == 1


def test_one_daemon_per_data_dir(make_daemon):
    d = make_daemon()
    second = make_daemon(start=False)
    second.data_dir = d.data_dir
    second.log_path = d.log_path.with_name("second.log")
    second.start(wait=False)
    assert second.proc.wait(15) != 0
    assert "another airlockd" in second.log()
    assert d.healthy()


def test_sigterm_stops_cleanly(make_daemon):
    d = make_daemon()
    assert d.healthy()
    assert d.stop() == 0
    assert not os.path.exists(d.socket_path)
    assert "stopped" in d.log()


def test_sigterm_lets_an_in_flight_request_finish(make_daemon):
    d = make_daemon()
    body = b'{"name":"in-flight","tenant":"team-drain"}'
    s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
    try:
        s.sendall(b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + d.admin_key.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body[:10])
        time.sleep(0.2)  # the daemon has the headers and waits for the body
        d.proc.send_signal(15)
        time.sleep(0.2)
        assert d.alive(), "the daemon did not wait for the request in flight"
        s.sendall(body[10:])
        raw = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            raw += chunk
    finally:
        s.close()
    [(status, headers, payload)] = d.parse(raw)
    assert status == 201 and headers.get("connection") == "close"
    d.record("POST", "/v1/keys", status, headers.items(), payload)
    assert d.proc.wait(10) == 0


def test_sigterm_does_not_wait_for_idle_connections(make_daemon):
    d = make_daemon()
    idle = [socket.create_connection(("127.0.0.1", d.port), timeout=5) for _ in range(10)]
    try:
        time.sleep(0.1)
        start = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - start < 3
    finally:
        for s in idle:
            s.close()
