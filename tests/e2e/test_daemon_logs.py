"""Sandbox logs: GET /v1/sandboxes/{id}/logs (pages, cursors, filters) and .../logs/stream (NDJSON and SSE,
with and without follow). The log holds the lifecycle (created, started, stopped/terminated, reattached
after a restart) and process output; it stays readable after the sandbox ends and survives a daemon
restart with its cursors. Stream events are checked against LogStreamEvent one by one; the stream tests
use daemons of their own."""
import json
import threading
import time

import pytest


def events(entries):
    return [e.get("event", e["type"]) for e in entries]


def all_entries(client, sid, query=""):
    r = client.get(f"/v1/sandboxes/{sid}/logs?limit=1000{query}")
    assert r.status == 200, r
    return r.json["entries"]


def run(client, sid, cmd):
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": cmd})
    assert r.status == 200, r
    return r.json


def test_lifecycle_and_output_are_logged_and_readable_after_the_end(admin, sandboxes):
    sid = sandboxes.create(admin).json["sandbox_id"]
    result = run(admin, sid, "echo hello; echo oops >&2; exit 3")
    assert admin.post(f"/v1/sandboxes/{sid}/timeout", json={"timeout": 120}).status == 200
    assert admin.delete(f"/v1/sandboxes/{sid}", timeout=60).status == 200

    entries = all_entries(admin, sid)
    assert events(entries) == ["created", "started", "process_started", "stdout", "stderr", "process_exited",
                               "timeout_changed", "terminated"]
    assert [int(e["cursor"]) for e in entries] == list(range(1, 9))
    pid = result["pid"]
    out, err, exited = entries[3], entries[4], entries[5]
    assert (out["pid"], out["data"], out["encoding"]) == (pid, "hello\n", "utf-8")
    assert (err["pid"], err["data"]) == (pid, "oops\n")
    assert (exited["pid"], exited["exit_code"]) == (pid, 3)
    assert entries[1]["state"] == "running"
    assert entries[-1]["state"] == "terminated"


def test_a_deadline_stop_is_logged(admin, sandboxes):
    sid = sandboxes.create(admin, {"timeout": 1}).json["sandbox_id"]
    deadline = time.monotonic() + 15
    while admin.get(f"/v1/sandboxes/{sid}").json["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    last = all_entries(admin, sid)[-1]
    assert (last["event"], last["state"], last["stop_reason"]) == ("stopped", "stopped", "timeout")


def test_pages_and_cursors(admin, sandboxes):
    sid = sandboxes.create(admin).json["sandbox_id"]
    run(admin, sid, "echo a; echo b >&2")  # 2 lifecycle + 4 for the command
    r = admin.get(f"/v1/sandboxes/{sid}/logs?limit=4")
    assert len(r.json["entries"]) == 4 and r.json["has_more"] and r.json["next_cursor"] == "4"
    r = admin.get(f"/v1/sandboxes/{sid}/logs?limit=4&cursor={r.json['next_cursor']}")
    assert [e["cursor"] for e in r.json["entries"]] == ["5", "6"]
    assert not r.json["has_more"] and r.json["next_cursor"] == "6"
    r = admin.get(f"/v1/sandboxes/{sid}/logs?cursor=6")  # caught up: nothing, the same cursor
    assert r.json == {"entries": [], "next_cursor": "6", "has_more": False}
    run(admin, sid, "true")
    r = admin.get(f"/v1/sandboxes/{sid}/logs?cursor=6")
    assert events(r.json["entries"]) == ["process_started", "process_exited"]


def test_filters_by_type_and_pid(admin, sandboxes):
    sid = sandboxes.create(admin).json["sandbox_id"]
    first = run(admin, sid, "echo one; echo one-err >&2")["pid"]
    second = run(admin, sid, "echo two")["pid"]
    assert events(all_entries(admin, sid, "&type=stdout")) == ["stdout", "stdout"]
    assert events(all_entries(admin, sid, "&type=stderr&type=lifecycle")) == [
        "created", "started", "process_started", "stderr", "process_exited", "process_started", "process_exited"]
    by_pid = all_entries(admin, sid, f"&pid={second}")
    assert events(by_pid) == ["created", "started", "process_started", "stdout", "process_exited"]
    assert all(e.get("pid", second) == second for e in by_pid)
    assert first != second
    # The next cursor of a filtered page is past everything examined.
    r = admin.get(f"/v1/sandboxes/{sid}/logs?type=stdout&limit=1000")
    assert r.json["next_cursor"] == all_entries(admin, sid)[-1]["cursor"]


def test_base64_encoding(admin, sandboxes):
    sid = sandboxes.create(admin).json["sandbox_id"]
    run(admin, sid, "printf 'caf\\303\\251 \\377'")
    out = all_entries(admin, sid, "&type=stdout&encoding=base64")[0]
    assert out["encoding"] == "base64"
    import base64
    assert base64.b64decode(out["data"]) == b"caf\xc3\xa9 \xff"
    text = all_entries(admin, sid, "&type=stdout")[0]
    assert text["data"] == "café \ufffd"


@pytest.mark.parametrize("query,field", [
    ("type=stdin", "type"), ("type=stdout&type=stdout", "type"), ("pid=0", "pid"), ("pid=x", "pid"),
    ("limit=0", "limit"), ("limit=1001", "limit"), ("encoding=latin-1", "encoding"), ("cursor=abc", "cursor"),
    ("cursor=-1", "cursor"), ("cursor=999999", "cursor"), ("follow=true", "follow"),
])
def test_bad_parameters_are_400(admin, sandboxes, query, field):
    sid = sandboxes.create(admin).json["sandbox_id"]
    r = admin.get(f"/v1/sandboxes/{sid}/logs?{query}")
    assert r.status == 400 and r.error_code == "invalid_parameter" and r.json["error"]["field"] == field, r


def test_another_tenants_or_unknown_sandbox_is_404(admin, sandboxes, daemon, new_key):
    sid = sandboxes.create(admin).json["sandbox_id"]
    other = daemon.client(new_key(tenant="logs-other")["secret"])
    for path in (f"/v1/sandboxes/{sid}/logs", f"/v1/sandboxes/{sid}/logs/stream",
                 "/v1/sandboxes/sb-0000000000000000/logs", "/v1/sandboxes/nope/logs"):
        client = other if sid in path else admin
        r = client.get(path)
        assert r.status == 404 and r.error_code == "sandbox_not_found", (path, r)


def test_logs_and_cursors_survive_a_daemon_restart(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    try:
        run(client, sid, "echo before")
        before = all_entries(client, sid)
        d.kill()  # SIGKILL: nothing is flushed on the way out
        d.start()
        client = d.admin()
        after = all_entries(client, sid)
        assert after[: len(before)] == before
        assert after[len(before)]["event"] == "reattached"
        assert int(after[len(before)]["cursor"]) == len(before) + 1
        run(client, sid, "echo after")
        assert d.stop() == 0
        d.start()
        client = d.admin()
        r = client.get(f"/v1/sandboxes/{sid}/logs?cursor={len(before)}&type=stdout")
        assert [e["data"] for e in r.json["entries"]] == ["after\n"]
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert all_entries(client, sid)[-1]["event"] == "terminated"


# --- streams -------------------------------------------------------------------------------------------

class LogStreamReader:
    """An open GET .../logs/stream; every event read is validated against LogStreamEvent."""

    def __init__(self, daemon, key, path, headers=None, timeout=15):
        self.daemon = daemon
        self.path = path
        self.conn = daemon.connection(timeout)
        self.conn.request("GET", path, headers={"Authorization": f"Bearer {key}", **(headers or {})})
        self.response = self.conn.getresponse()
        self.headers = {k.lower(): v for k, v in self.response.getheaders()}
        self.raw = b""

    def _check(self, event):
        self.daemon.contract.schemas.validate({"$ref": "#/components/schemas/LogStreamEvent"}, event)
        return event

    def next_ndjson(self):
        """The next event, or None at the end of the stream."""
        line = self.response.readline()
        self.raw += line
        if not line:
            return None
        assert line.endswith(b"\n"), line
        return self._check(json.loads(line))

    def next_sse(self):
        """(id, event name, event) of the next SSE event, or None at the end."""
        fields = {}
        while True:
            line = self.response.readline()
            self.raw += line
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line == "":
                break
            name, _, value = line.partition(": ")
            fields[name] = value
        event = self._check(json.loads(fields["data"]))
        assert fields["event"] == event["type"]
        return fields.get("id"), fields["event"], event

    def rest_ndjson(self):
        out = []
        while (e := self.next_ndjson()) is not None:
            out.append(e)
        return out

    def close(self):
        self.daemon.record("GET", self.path, self.response.status, self.response.getheaders(), b"")
        self.conn.close()


def test_stream_without_follow_sends_what_is_there_and_ends(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    try:
        run(client, sid, "echo streamed")
        s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream?follow=false")
        assert s.response.status == 200
        assert s.headers["content-type"].startswith("application/x-ndjson")
        got = s.rest_ndjson()
        s.close()
        assert events(got) == events(all_entries(client, sid))
        assert got[3]["data"] == "streamed\n"
        # From a cursor, and filtered.
        s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream?follow=false&cursor=2&type=stdout")
        assert [e["data"] for e in s.rest_ndjson()] == ["streamed\n"]
        s.close()
        r = client.get(f"/v1/sandboxes/{sid}/logs/stream?cursor=99")
        assert r.status == 400 and r.json["error"]["field"] == "cursor"
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.alive()


def test_stream_follows_new_entries_and_ends_after_terminated(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    try:
        s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream", timeout=30)
        assert events([s.next_ndjson(), s.next_ndjson()]) == ["created", "started"]

        def later():
            time.sleep(0.5)
            run(client, sid, "echo live")
            time.sleep(0.3)
            client.delete(f"/v1/sandboxes/{sid}", timeout=60)

        t = threading.Thread(target=later)
        t.start()
        rest = s.rest_ndjson()  # blocks until the stream ends by itself
        t.join()
        s.close()
        assert events(rest) == ["process_started", "stdout", "process_exited", "terminated"]
        assert rest[1]["data"] == "live\n"
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.alive()


def test_stream_of_an_ended_sandbox_ends_once_caught_up(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream")  # follow defaults to true
    assert events(s.rest_ndjson()) == ["created", "started", "terminated"]
    s.close()


def test_sse_ids_are_cursors_and_last_event_id_resumes(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    try:
        run(client, sid, "echo sse")
        s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream?follow=false",
                            headers={"Accept": "text/event-stream"})
        assert s.headers["content-type"].startswith("text/event-stream")
        got = []
        while (e := s.next_sse()) is not None:
            got.append(e)
        s.close()
        assert [i for i, _, _ in got] == [e["cursor"] for _, _, e in got] == ["1", "2", "3", "4", "5"]
        s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream?follow=false&cursor=1",
                            headers={"Accept": "text/event-stream", "Last-Event-ID": "3"})
        resumed = []
        while (e := s.next_sse()) is not None:
            resumed.append(e)
        s.close()
        assert [i for i, _, _ in resumed] == ["4", "5"]  # Last-Event-ID wins over cursor
        r = client.get(f"/v1/sandboxes/{sid}/logs/stream", headers={"Last-Event-ID": "x"})
        assert r.status == 400 and r.json["error"]["field"] == "Last-Event-ID"
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.alive()


def test_a_client_that_goes_away_does_not_hurt_the_daemon(make_daemon):
    d = make_daemon()
    client = d.admin()
    sid = client.post("/v1/sandboxes", json={}, timeout=60).json["sandbox_id"]
    try:
        for _ in range(5):
            s = LogStreamReader(d, d.admin_key, f"/v1/sandboxes/{sid}/logs/stream")
            assert s.next_ndjson()["event"] == "created"
            s.conn.close()  # mid-stream, while the daemon follows
        run(client, sid, "echo still fine")
        assert d.healthy()
    finally:
        client.delete(f"/v1/sandboxes/{sid}", timeout=60)
    assert d.alive()
