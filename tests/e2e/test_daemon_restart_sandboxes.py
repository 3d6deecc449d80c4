"""Sandboxes survive a daemon killed with SIGKILL: the restarted daemon re-takes each one's id-range lock,
reconnects to its agent and re-arms its deadline; files written before are still there. A sandbox that
died meanwhile is marked stopped with reason error. Afterwards nothing is left on the host."""
import os
import signal
import time


def _create(client, body=None):
    r = client.post("/v1/sandboxes", json=body or {}, timeout=60)
    assert r.status == 201, r
    return r.json["sandbox_id"]


def _init_pid(engine_name):
    """init's pid, from the sandbox's pids cgroup (v1) or unified cgroup."""
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        procs = os.path.join(root, engine_name, "cgroup.procs")
        if os.path.exists(procs):
            pids = [int(p) for p in open(procs).read().split()]
            if pids:
                return min(pids)
    return None


def test_sandbox_survives_sigkill_of_the_daemon(make_daemon, engine_names):
    engine, leftovers = engine_names
    d = make_daemon()
    client = d.admin()
    sid = _create(client, {"timeout": 600})
    dead = _create(client)
    name, dead_name = engine(d, sid), engine(d, dead)
    try:
        r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "echo hi > /tmp/f"})
        assert r.status == 200 and r.json["exit_code"] == 0
        expires = client.get(f"/v1/sandboxes/{sid}").json["expires_at"]

        d.kill()
        # While the daemon is down, one sandbox dies.
        pid = _init_pid(dead_name)
        assert pid
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        d.start()
        client = d.admin()

        sb = client.get(f"/v1/sandboxes/{sid}").json
        assert sb["state"] == "running" and sb["expires_at"] == expires
        r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"argv": ["cat", "/tmp/f"]})
        assert r.status == 200 and r.json["stdout"] == "hi\n", r

        gone = client.get(f"/v1/sandboxes/{dead}").json
        assert gone["state"] == "stopped" and gone["stop_reason"] == "error", gone
        assert leftovers(dead_name) == []
    finally:
        for s in (sid, dead):
            if d.alive():
                client.delete(f"/v1/sandboxes/{s}", timeout=60)
    assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "terminated"
    assert leftovers(name) == []
    assert d.stop() == 0


def test_deadline_is_rearmed_after_restart(make_daemon, engine_names):
    engine, leftovers = engine_names
    d = make_daemon()
    client = d.admin()
    sid = _create(client, {"timeout": 3})
    name = engine(d, sid)
    try:
        d.kill()
        d.start()
        client = d.admin()
        assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "running"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            sb = client.get(f"/v1/sandboxes/{sid}").json
            if sb["state"] != "running":
                break
            time.sleep(0.1)
        assert sb["state"] == "stopped" and sb["stop_reason"] == "timeout", sb
        assert leftovers(name) == []
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.stop() == 0


def test_sigterm_does_not_wait_for_long_commands(make_daemon):
    """A graceful stop kills blocking commands still running after the grace period (they would
    otherwise hold the daemon until their own timeout); the sandbox itself lives on."""
    import threading
    d = make_daemon()
    client = d.admin()
    sid = _create(client)
    try:
        results = []

        def long_command():
            try:
                results.append(client.post(f"/v1/sandboxes/{sid}/commands/run",
                                           json={"cmd": "sleep 600", "timeout": 900}, timeout=60))
            except OSError as e:  # the daemon may close the connection once its grace period is over
                results.append(e)

        t = threading.Thread(target=long_command)
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert d.stop(timeout=30) == 0
        assert time.monotonic() - t0 < 20
        t.join(30)
        assert len(results) == 1
        if not isinstance(results[0], OSError):
            assert results[0].status == 503 and results[0].error_code == "unavailable", results[0]
        d.start()
        client = d.admin()
        assert client.get(f"/v1/sandboxes/{sid}").json["state"] == "running"
        r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "echo still here"})
        assert r.status == 200 and r.json["stdout"] == "still here\n"
    finally:
        if d.alive():
            client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.stop() == 0


def test_command_in_flight_at_sigkill_does_not_break_the_next_daemon(make_daemon):
    """The agent keeps the killed daemon's process (and its id) and sends its late events to the next
    connection: the restarted daemon must use fresh process ids and accept those events."""
    import threading
    d = make_daemon()
    client = d.admin()
    sid = _create(client)
    try:
        for _ in range(3):  # some ids in use before
            assert client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "true"}).status == 200

        def in_flight():
            try:
                client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": "sleep 1; echo late"}, timeout=30)
            except OSError:
                pass

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.3)
        d.kill()
        t.join(30)
        d.start()
        client = d.admin()
        for i in range(4):  # across the orphan's exit (its Exited arrives on this connection)
            r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": f"sleep 0.4; echo {i}"})
            assert r.status == 200 and r.json["stdout"] == f"{i}\n", r
    finally:
        if d.alive():
            client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.stop() == 0
