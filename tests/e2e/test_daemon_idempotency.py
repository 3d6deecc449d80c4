"""Idempotency-Key on createSandbox and startProcess against a real airlockd: a retry with the same key
and body replays the first response (one sandbox, one process; `Idempotent-Replayed: true`), another
body is 422, concurrent duplicates create one sandbox (the others replay or get 409), keys are per
tenant, a process key ends with its sandbox, and replays survive a daemon killed with SIGKILL."""
import threading
import uuid


def _key():
    return f"e2e-{uuid.uuid4().hex}"


def _create(client, body, key, timeout=60):
    return client.post("/v1/sandboxes", json=body, headers={"Idempotency-Key": key}, timeout=timeout)


def _listed(client, label):
    r = client.get(f"/v1/sandboxes?metadata=run={label}")
    assert r.status == 200, r
    return [s["sandbox_id"] for s in r.json["sandboxes"]]


def test_same_key_and_body_creates_one_sandbox(admin, sandboxes):
    label, key = uuid.uuid4().hex, _key()
    body = {"metadata": {"run": label}}
    first = _create(admin, body, key)
    assert first.status == 201, first
    sandboxes.made.append((admin, first.json["sandbox_id"]))
    assert "idempotent-replayed" not in first.headers

    again = _create(admin, body, key)
    assert again.status == 201, again
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json["sandbox_id"] == first.json["sandbox_id"]
    assert again.headers["location"] == first.headers["location"]
    assert again.body == first.body  # the first response exactly, not a fresh view of the sandbox
    assert _listed(admin, label) == [first.json["sandbox_id"]]


def test_same_key_with_another_body_is_422(admin, sandboxes):
    label, key = uuid.uuid4().hex, _key()
    first = _create(admin, {"metadata": {"run": label}}, key)
    assert first.status == 201, first
    sandboxes.made.append((admin, first.json["sandbox_id"]))
    other = _create(admin, {"metadata": {"run": label}, "cpu": 0.5}, key)
    assert other.status == 422 and other.error_code == "idempotency_key_reused", other
    assert _listed(admin, label) == [first.json["sandbox_id"]]


def test_a_malformed_key_is_400_and_creates_nothing(admin):
    label = uuid.uuid4().hex
    r = _create(admin, {"metadata": {"run": label}}, "has space")
    assert r.status == 400 and r.error_code == "invalid_parameter", r
    assert r.json["error"]["field"] == "Idempotency-Key"
    assert _listed(admin, label) == []


def test_a_failed_create_is_not_stored_and_its_retry_runs(admin, sandboxes):
    key = _key()
    bad = _create(admin, {"template": "no-such-template"}, key)
    assert bad.status == 422 and bad.error_code == "unknown_template", bad
    again = _create(admin, {"template": "no-such-template"}, key)
    assert again.status == 422 and again.error_code == "unknown_template", again
    assert "idempotent-replayed" not in again.headers


def test_concurrent_duplicates_create_one_sandbox(admin, sandboxes):
    label, key = uuid.uuid4().hex, _key()
    body = {"metadata": {"run": label}}
    results = [None] * 6

    def send(i):
        results[i] = _create(admin, body, key)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(results))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if r.status == 201 and "idempotent-replayed" not in r.headers]
    replayed = [r for r in results if r.status == 201 and r.headers.get("idempotent-replayed") == "true"]
    in_use = [r for r in results if r.status == 409]
    assert len(created) == 1, results
    sid = created[0].json["sandbox_id"]
    sandboxes.made.append((admin, sid))
    assert len(created) + len(replayed) + len(in_use) == len(results), results
    assert all(r.json["sandbox_id"] == sid for r in replayed)
    assert all(r.error_code == "idempotency_key_in_use" for r in in_use)
    assert _listed(admin, label) == [sid]
    # Once the first has finished, a duplicate is always a replay.
    assert _create(admin, body, key).headers.get("idempotent-replayed") == "true"


def test_keys_of_one_tenant_do_not_replay_for_another(admin, new_key, daemon, sandboxes):
    a = daemon.client(new_key(tenant="idem-a")["secret"])
    b = daemon.client(new_key(tenant="idem-b")["secret"])
    label, key = uuid.uuid4().hex, _key()
    body = {"metadata": {"run": label}}
    ra = _create(a, body, key)
    assert ra.status == 201, ra
    sandboxes.made.append((a, ra.json["sandbox_id"]))
    rb = _create(b, body, key)
    assert rb.status == 201, rb
    sandboxes.made.append((b, rb.json["sandbox_id"]))
    assert "idempotent-replayed" not in rb.headers
    assert rb.json["sandbox_id"] != ra.json["sandbox_id"]
    assert _listed(a, label) == [ra.json["sandbox_id"]]
    assert _listed(b, label) == [rb.json["sandbox_id"]]


def _start(client, sid, body, key):
    return client.post(f"/v1/sandboxes/{sid}/processes", json=body, headers={"Idempotency-Key": key}, timeout=30)


def _processes_with(client, sid, marker):
    r = client.get(f"/v1/sandboxes/{sid}/processes")
    assert r.status == 200, r
    return [p["pid"] for p in r.json["processes"] if marker in " ".join(p["argv"])]


def test_start_process_twice_with_one_key_starts_one_process(admin, sandboxes):
    sid = sandboxes.create(admin).json["sandbox_id"]
    marker, key = uuid.uuid4().hex, _key()
    body = {"argv": ["sh", "-c", f"sleep 300 # {marker}"]}
    first = _start(admin, sid, body, key)
    assert first.status == 201, first
    again = _start(admin, sid, body, key)
    assert again.status == 201, again
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json["pid"] == first.json["pid"]
    assert again.headers["location"] == first.headers["location"]
    assert _processes_with(admin, sid, marker) == [first.json["pid"]]

    other = _start(admin, sid, {"argv": ["sh", "-c", f"sleep 301 # {marker}"]}, key)
    assert other.status == 422 and other.error_code == "idempotency_key_reused", other

    # The key is scoped to the sandbox: in another sandbox it starts another process.
    sid2 = sandboxes.create(admin).json["sandbox_id"]
    elsewhere = _start(admin, sid2, body, key)
    assert elsewhere.status == 201 and "idempotent-replayed" not in elsewhere.headers, elsewhere
    assert _processes_with(admin, sid, marker) == [first.json["pid"]]

    # A process key lasts as long as its sandbox: after terminate, the retry is refused like any start.
    assert admin.delete(f"/v1/sandboxes/{sid}", timeout=60).status == 200
    after = _start(admin, sid, body, key)
    assert after.status == 409 and after.error_code == "sandbox_not_running", after


def test_replays_survive_a_sigkill_of_the_daemon(make_daemon):
    d = make_daemon()
    client = d.admin()
    label, key, pkey = uuid.uuid4().hex, _key(), _key()
    body = {"metadata": {"run": label}, "timeout": 600}
    first = _create(client, body, key)
    assert first.status == 201, first
    sid = first.json["sandbox_id"]
    try:
        pbody = {"argv": ["sleep", "300"]}
        proc = _start(client, sid, pbody, pkey)
        assert proc.status == 201, proc

        d.kill()
        d.start()
        client = d.admin()

        again = _create(client, body, key)
        assert again.status == 201, again
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json["sandbox_id"] == sid
        assert again.body == first.body
        assert _listed(client, label) == [sid]
        assert _create(client, {"metadata": {"run": label}}, key).error_code == "idempotency_key_reused"

        preplay = _start(client, sid, pbody, pkey)
        assert preplay.status == 201 and preplay.headers.get("idempotent-replayed") == "true", preplay
        assert preplay.json["pid"] == proc.json["pid"]
        running = client.get(f"/v1/sandboxes/{sid}/processes?state=running").json["processes"]
        assert [p["pid"] for p in running] == [proc.json["pid"]]
    finally:
        if d.alive():
            client.delete(f"/v1/sandboxes/{sid}", timeout=60)
