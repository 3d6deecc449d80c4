"""Files through the API: read (ranges, streaming), write (atomic, binary), write-many, list, stat, exists,
mkdir, remove, rename, watch, and escape attempts that must stay inside the sandbox."""
import base64
import json
import os
import socket
import threading
import time
import uuid

import pytest


@pytest.fixture(scope="module")
def box(daemon):
    client = daemon.admin()
    r = client.post("/v1/sandboxes", json={"metadata": {"suite": "files"}}, timeout=60)
    assert r.status == 201, r
    sid = r.json["sandbox_id"]
    yield client, sid
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)


def url(sid, op, **q):
    from urllib.parse import urlencode
    return f"/v1/sandboxes/{sid}/files/{op}" + ("?" + urlencode(q) if q else "")


def write(box, path, data, **q):
    client, sid = box
    return client.post(url(sid, "write", path=path, **q), body=data,
                       headers={"Content-Type": "application/octet-stream"}, timeout=60)


def read(box, path, **kw):
    client, sid = box
    return client.get(url(sid, "read", path=path, **{k: v for k, v in kw.items() if k != "headers"}),
                      headers=kw.get("headers"), timeout=60)


def sh(box, cmd):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": cmd})
    assert r.status == 200, r
    return r.json


def test_binary_round_trip_every_byte_value(box):
    data = bytes(range(256)) * 4
    r = write(box, "/root/bin.dat", data)
    assert r.status == 200 and r.json["size"] == 1024 and r.json["type"] == "file" and r.json["path"] == "/root/bin.dat"
    assert read(box, "/root/bin.dat").body == data
    # the command side sees the same bytes
    assert sh(box, "sha256sum /root/bin.dat")["stdout"].split()[0] == __import__("hashlib").sha256(data).hexdigest()


def test_large_file_streams_both_ways(box):
    data = os.urandom(20 << 20)
    assert write(box, "/tmp/big.bin", data).status == 200
    r = read(box, "/tmp/big.bin")
    assert r.status == 200 and len(r.body) == len(data) and r.body == data


def test_ranges_offsets_and_416(box):
    write(box, "/root/r.txt", b"0123456789")
    r = read(box, "/root/r.txt", headers={"Range": "bytes=2-5"})
    assert r.status == 206 and r.body == b"2345" and r.headers["content-range"] == "bytes 2-5/10"
    assert read(box, "/root/r.txt", headers={"Range": "bytes=-3"}).body == b"789"
    assert read(box, "/root/r.txt", offset=7).body == b"789"
    assert read(box, "/root/r.txt", offset=1, length=2).body == b"12"
    assert read(box, "/root/r.txt", offset=10).body == b""
    assert read(box, "/root/r.txt", offset=11).status == 416


def test_write_is_atomic_and_keeps_mode(box):
    write(box, "/root/m.sh", b"#!/bin/sh\necho v1\n", mode="0750")
    client, sid = box
    assert client.get(url(sid, "stat", path="/root/m.sh")).json["mode"] == "0750"
    write(box, "/root/m.sh", b"#!/bin/sh\necho v2\n")
    st = client.get(url(sid, "stat", path="/root/m.sh")).json
    assert st["mode"] == "0750" and read(box, "/root/m.sh").body.endswith(b"v2\n")
    # no temporary files left beside it
    names = [e["name"] for e in client.get(url(sid, "list", path="/root")).json["entries"]]
    assert not [n for n in names if "airlock" in n and n.endswith(".tmp")]


def test_write_creates_parents_unless_told_not_to(box):
    client, sid = box
    assert write(box, "/root/a/b/c.txt", b"x").status == 200
    r = write(box, "/root/nope/c.txt", b"x", make_parents="false")
    assert r.status == 404 and r.json["error"]["code"] == "path_not_found"


def test_write_many_and_validation(box):
    client, sid = box
    r = client.post(url(sid, "write-many"), json={"files": [
        {"path": "/root/wm/one.txt", "data": "one"},
        {"path": "wm/two.bin", "data": base64.b64encode(b"\x00\x01").decode(), "encoding": "base64", "mode": "0600"}]})
    assert r.status == 200 and [f["path"] for f in r.json["files"]] == ["/root/wm/one.txt", "/root/wm/two.bin"]
    assert read(box, "/root/wm/two.bin").body == b"\x00\x01"
    r = client.post(url(sid, "write-many"), json={"files": [{"path": "/root/x", "data": "a"}, {"path": 3, "data": "b"}]})
    assert r.status == 400 and r.json["error"]["field"] == "files[1].path"
    assert client.get(url(sid, "exists", path="/root/x")).json["exists"] is False  # nothing written


def test_list_depth_and_types(box):
    client, sid = box
    sh(box, "mkdir -p /root/tree/d1/d2 && echo hi > /root/tree/f && echo deep > /root/tree/d1/d2/g && ln -s /etc /root/tree/link")
    one = client.get(url(sid, "list", path="/root/tree")).json
    assert {(e["name"], e["type"]) for e in one["entries"]} == {("d1", "dir"), ("f", "file"), ("link", "symlink")}
    assert one["truncated"] is False
    deep = client.get(url(sid, "list", path="/root/tree", depth=5)).json["entries"]
    paths = [e["path"] for e in deep]
    assert "/root/tree/d1/d2/g" in paths and paths == sorted(paths)
    assert not [p for p in paths if p.startswith("/root/tree/link/")], "followed a symlink"
    lim = client.get(url(sid, "list", path="/root/tree", depth=5, limit=2)).json
    assert len(lim["entries"]) == 2 and lim["truncated"] is True


def test_stat_exists_mkdir_remove_rename(box):
    client, sid = box
    assert client.get(url(sid, "exists", path="/root/none")).json == {"exists": False, "type": None}
    assert client.get(url(sid, "stat", path="/root/none")).status == 404
    r = client.post(url(sid, "mkdir"), json={"path": "/root/mk/a/b"})
    assert r.status == 201 and r.json["type"] == "dir"
    assert client.post(url(sid, "mkdir"), json={"path": "/root/mk/a/b"}).status == 200
    r = client.post(url(sid, "mkdir"), json={"path": "/root/mk/a/b", "parents": False})
    assert r.status == 409 and r.json["error"]["code"] == "path_exists"
    assert client.get(url(sid, "exists", path="/root/mk/a")).json == {"exists": True, "type": "dir"}
    write(box, "/root/mk/a/b/f", b"1")
    r = client.post(url(sid, "remove"), json={"path": "/root/mk"})
    assert r.status == 409 and r.json["error"]["code"] == "directory_not_empty"
    write(box, "/root/ren1", b"r")
    write(box, "/root/ren2", b"s")
    r = client.post(url(sid, "rename"), json={"old_path": "/root/ren1", "new_path": "/root/ren2"})
    assert r.status == 409 and r.json["error"]["code"] == "path_exists"
    r = client.post(url(sid, "rename"), json={"old_path": "/root/ren1", "new_path": "/root/ren2", "overwrite": True})
    assert r.status == 200 and r.json["path"] == "/root/ren2" and read(box, "/root/ren2").body == b"r"
    assert client.post(url(sid, "remove"), json={"path": "/root/mk", "recursive": True}).json == {"removed": True}
    assert client.post(url(sid, "remove"), json={"path": "/root/mk", "force": True}).json == {"removed": False}
    assert client.post(url(sid, "remove"), json={"path": "/root/mk"}).status == 404


def test_read_errors(box):
    client, sid = box
    r = read(box, "/root")
    assert r.status == 409 and r.json["error"]["code"] == "is_a_directory"
    r = read(box, "/dev/null")
    assert r.status == 409 and r.json["error"]["code"] == "not_a_regular_file"
    assert client.get(url(sid, "read")).status == 400


# --- escapes: every path resolves inside the sandbox ------------------------------------------------------

@pytest.fixture
def host_secret(tmp_path):
    p = tmp_path / f"host-secret-{uuid.uuid4().hex}"
    p.write_text("HOST-ONLY")
    return p


def test_dotdot_and_symlink_escapes_stay_inside(box, host_secret):
    client, sid = box
    for path in [f"/../../..{host_secret}", f"../../../../..{host_secret}", f"/proc/1/root{host_secret}",
                 f"/proc/self/root{host_secret}"]:
        r = read(box, path)
        # not found inside the sandbox, or refused (magic links: ELOOP -> 422 file_error)
        assert r.status in (404, 422) and r.body != b"HOST-ONLY", (path, r)
    sh(box, f"ln -sf / /root/rootlink && ln -sf /proc/1/root /root/p1 && ln -sf {host_secret} /root/direct")
    for path in [f"/root/rootlink{host_secret}", f"/root/p1{host_secret}", "/root/direct"]:
        r = read(box, path)
        assert r.status in (404, 422) and r.body != b"HOST-ONLY", path
    # writes through a link that points at a host path land inside the sandbox, not on the host
    r = write(box, "/root/direct", b"overwritten")
    assert r.status in (200, 404)
    assert host_secret.read_text() == "HOST-ONLY"
    assert not os.path.exists(str(host_secret) + ".airlock")


def test_shadow_is_the_sandbox_one(box):
    r = read(box, "/../../etc/shadow")
    host = open("/etc/shadow", "rb").read()
    assert r.status != 200 or r.body != host


# --- watch --------------------------------------------------------------------------------------------------

def test_watch_reports_create_write_remove(daemon, box):
    client, sid = box
    sh(box, "mkdir -p /root/w/sub")
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=15)
    s.sendall(f"GET /v1/sandboxes/{sid}/files/watch?path=/root/w&recursive=true HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: Bearer {daemon.admin_key}\r\n\r\n".encode())
    buf = b""
    deadline = time.monotonic() + 10
    while b'"ready"' not in buf and time.monotonic() < deadline:
        buf += s.recv(4096)
    assert b'"ready"' in buf and b"200 OK" in buf
    sh(box, "echo a > /root/w/new.txt; echo b >> /root/w/sub/inner.txt; rm /root/w/new.txt")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (b"inner.txt" in buf and b'"remove"' in buf):
        try:
            buf += s.recv(4096)
        except socket.timeout:
            break
    s.close()
    text = buf.decode(errors="replace")
    lines = [json.loads(l) for l in text.replace("\r\n", "\n").split("\n") if l.startswith("{")]
    kinds = {(e["type"], e.get("path")) for e in lines}
    assert ("create", "/root/w/new.txt") in kinds
    assert ("remove", "/root/w/new.txt") in kinds
    assert any(p == "/root/w/sub/inner.txt" for t, p in kinds)


def test_watch_of_missing_dir_is_404(box):
    client, sid = box
    assert client.get(url(sid, "watch", path="/root/none")).status == 404


def test_read_follows_symlinks_and_streams_unsized_files(box):
    write(box, "/root/target.txt", b"data\n" * 1000)
    sh(box, "ln -sf /root/target.txt /root/link.txt")
    r = read(box, "/root/link.txt")
    assert r.status == 200 and r.body == b"data\n" * 1000
    # /proc files report size 0 but have content
    r = read(box, "/proc/self/status")
    assert r.status == 200 and b"Name:" in r.body
    assert read(box, "/root/link.txt", headers={"Range": "bytes=0-1"}).status == 400
