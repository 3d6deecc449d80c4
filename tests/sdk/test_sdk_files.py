"""sandbox.files: read/write (binary-exact, streamed both ways, ranges), write_files, list (depth), stat,
exists, make_dir, remove, rename, watch_dir, and the errors mapped from errno."""
import hashlib
import io
import os
import tempfile

import pytest

import airlock
from airlock import errors
from sdk_helpers import wait_until

MiB = 1024 * 1024


def test_binary_round_trip_of_every_byte_value(sandbox):
    data = bytes(range(256)) * 4
    entry = sandbox.files.write("/tmp/bytes.bin", data)
    assert isinstance(entry, airlock.EntryInfo)
    assert entry.path == "/tmp/bytes.bin" and entry.name == "bytes.bin" and entry.type == "file"
    assert entry.size == 1024 and entry.is_file and not entry.is_dir
    assert sandbox.files.read("/tmp/bytes.bin", format="bytes") == data
    # the bytes inside the sandbox are the same, not just the round trip
    r = sandbox.commands.run(["sha256sum", "/tmp/bytes.bin"])
    assert r.stdout.split()[0] == hashlib.sha256(data).hexdigest()
    # and bytes written inside read back exactly
    sandbox.commands.run(["python3", "-c", "import sys; open('/tmp/made.bin','wb').write(bytes(range(256)))"])
    assert sandbox.files.read("/tmp/made.bin", "bytes") == bytes(range(256))


def test_text_round_trip(sandbox):
    text = "héllo\nwörld ✓ 🚀\n"
    sandbox.files.write("/tmp/t.txt", text)
    assert sandbox.files.read("/tmp/t.txt") == text
    assert sandbox.files.read("/tmp/t.txt", format="text") == text
    assert sandbox.files.read("/tmp/t.txt", "bytes") == text.encode()
    sandbox.files.write("/tmp/empty", b"")
    assert sandbox.files.read("/tmp/empty", "bytes") == b""
    sandbox.files.write("/tmp/t.txt", "replaced")  # a full replace
    assert sandbox.files.read("/tmp/t.txt") == "replaced"


def test_20_mib_streamed_both_ways(sandbox):
    with tempfile.TemporaryFile() as f:
        digest = hashlib.sha256()
        for _ in range(20):
            block = os.urandom(MiB)
            digest.update(block)
            f.write(block)
        f.seek(0)
        entry = sandbox.files.write("/root/big.bin", f)  # a file object: streamed, never loaded whole
    assert entry.size == 20 * MiB
    r = sandbox.commands.run(["sha256sum", "/root/big.bin"])
    assert r.stdout.split()[0] == digest.hexdigest()

    back = hashlib.sha256()
    total = 0
    with sandbox.files.read("/root/big.bin", format="stream") as stream:
        for chunk in stream.iter_chunks():
            assert len(chunk) <= 1 * MiB  # arrives in pieces
            back.update(chunk)
            total += len(chunk)
    assert total == 20 * MiB and back.hexdigest() == digest.hexdigest()
    # a stream is a binary file object too
    with sandbox.files.read("/root/big.bin", format="stream") as stream:
        assert stream.read(10) == sandbox.files.read("/root/big.bin", "bytes", length=10)
    # the connection of a stream closed before its end is dropped, not reused mid-body
    assert sandbox.files.exists("/root/big.bin") and sandbox.files.read("/tmp/../root/big.bin", "bytes", length=3)


def test_write_from_a_generator_and_a_text_file(sandbox):
    chunks = [os.urandom(100_000) for _ in range(30)]
    entry = sandbox.files.write("/tmp/gen.bin", (c for c in chunks))  # length unknown: sent chunked
    assert entry.size == 3_000_000
    assert sandbox.files.read("/tmp/gen.bin", "bytes") == b"".join(chunks)
    sandbox.files.write("/tmp/from-text", io.StringIO("text ✓\n"))
    assert sandbox.files.read("/tmp/from-text") == "text ✓\n"
    sandbox.files.write("/tmp/from-bytesio", io.BytesIO(b"\x00\x01"))
    assert sandbox.files.read("/tmp/from-bytesio", "bytes") == b"\x00\x01"


def test_read_ranges(sandbox):
    sandbox.files.write("/tmp/r", b"0123456789")
    assert sandbox.files.read("/tmp/r", "bytes", offset=3) == b"3456789"
    assert sandbox.files.read("/tmp/r", "bytes", offset=2, length=4) == b"2345"
    assert sandbox.files.read("/tmp/r", "bytes", offset=10) == b""
    with pytest.raises(errors.InvalidArgumentError) as exc:
        sandbox.files.read("/tmp/r", "bytes", offset=11)
    assert exc.value.status == 416 and exc.value.code == "range_not_satisfiable"


def test_write_options_and_relative_paths(new_sandbox):
    sb = new_sandbox(workdir="/root/proj")
    entry = sb.files.write("bin/run.sh", "#!/bin/sh\necho ran\n", mode=0o755)
    assert entry.path == "/root/proj/bin/run.sh" and entry.mode == "0755" and entry.permissions == 0o755
    assert sb.commands.run("./bin/run.sh").stdout == "ran\n"
    assert sb.files.write("/root/proj/other", "x", mode="0600").mode == "0600"
    with pytest.raises(errors.PathNotFoundError):
        sb.files.write("/root/proj/missing/dir/f", "x", make_parents=False)


def test_write_as_another_user(sandbox):
    owned = sandbox.files.write("/tmp/owned/f", "x", user="1000")
    assert owned.uid == 1000 and owned.gid == 1000
    assert sandbox.files.get_info("/tmp/owned").uid == 1000  # created parents too
    assert sandbox.commands.run("echo more >> /tmp/owned/f", user="1000").exit_code == 0


def test_write_files(sandbox):
    entries = sandbox.files.write_files([
        airlock.WriteEntry("/root/app/main.py", "print('hi')\n"),
        {"path": "/root/app/data.bin", "data": bytes(range(256)), "mode": "0600"},
        ("/root/app/sub/readme.md", "# readme\n"),
    ])
    assert [e.path for e in entries] == ["/root/app/main.py", "/root/app/data.bin", "/root/app/sub/readme.md"]
    assert entries[1].mode == "0600" and entries[1].size == 256
    assert sandbox.commands.run("python3 /root/app/main.py").stdout == "hi\n"
    assert sandbox.files.read("/root/app/data.bin", "bytes") == bytes(range(256))
    assert sandbox.files.read("/root/app/sub/readme.md") == "# readme\n"
    many = sandbox.files.write_files([(f"/tmp/many/{i:04d}", str(i)) for i in range(1200)])  # > one batch
    assert len(many) == 1200 and sandbox.files.read("/tmp/many/1199") == "1199"
    assert sandbox.files.write_files([]) == []


def test_list_with_depth(sandbox):
    sandbox.files.write_files([("/tmp/tree/a.txt", "a"), ("/tmp/tree/d/b.txt", "bb"), ("/tmp/tree/d/e/c.txt", "ccc")])
    top = sandbox.files.list("/tmp/tree")
    assert isinstance(top, airlock.EntryList) and not top.truncated
    assert [(e.path, e.type) for e in top] == [("/tmp/tree/a.txt", "file"), ("/tmp/tree/d", "dir")]
    assert top[0].size == 1 and top[0].name == "a.txt" and top[1].is_dir
    two = sandbox.files.list("/tmp/tree", depth=2)
    assert [e.path for e in two] == ["/tmp/tree/a.txt", "/tmp/tree/d", "/tmp/tree/d/b.txt", "/tmp/tree/d/e"]
    deep = sandbox.files.list("/tmp/tree", depth=5)
    assert "/tmp/tree/d/e/c.txt" in [e.path for e in deep] and len(deep) == 5
    limited = sandbox.files.list("/tmp/tree", depth=5, limit=2)
    assert len(limited) == 2 and limited.truncated
    with pytest.raises(errors.PathNotFoundError):
        sandbox.files.list("/tmp/no-such-dir")
    with pytest.raises(errors.ConflictError) as exc:
        sandbox.files.list("/tmp/tree/a.txt")
    assert exc.value.code == "not_a_directory"


def test_get_info_and_symlinks(sandbox):
    sandbox.files.write("/tmp/target", "12345")
    sandbox.commands.run("ln -s /tmp/target /tmp/link")
    info = sandbox.files.get_info("/tmp/target")
    assert info.type == "file" and info.size == 5 and info.mode == "0644" and info.uid == 0
    assert info.modified_at is not None
    link = sandbox.files.get_info("/tmp/link")
    assert link.type == "symlink" and link.symlink_target == "/tmp/target"
    assert sandbox.files.get_info("/tmp/link", follow_symlinks=True).type == "file"
    assert sandbox.files.get_info("/tmp").is_dir
    with pytest.raises(errors.PathNotFoundError) as exc:
        sandbox.files.get_info("/tmp/nothing-here")
    assert exc.value.status == 404 and exc.value.code == "path_not_found"


def test_exists(sandbox):
    sandbox.files.write("/tmp/here", "x")
    assert sandbox.files.exists("/tmp/here") is True
    assert sandbox.files.exists("/tmp") is True
    assert sandbox.files.exists("/tmp/not-here") is False
    assert sandbox.files.exists("/tmp/not-here/deeper") is False


def test_make_dir(sandbox):
    assert sandbox.files.make_dir("/tmp/x/y/z") is True  # parents by default
    assert sandbox.files.get_info("/tmp/x/y/z").is_dir
    assert sandbox.files.make_dir("/tmp/x/y/z") is False  # already there
    assert sandbox.files.make_dir("/tmp/m", mode=0o700) is True
    assert sandbox.files.get_info("/tmp/m").mode == "0700"
    with pytest.raises(errors.PathNotFoundError):
        sandbox.files.make_dir("/tmp/p/q", parents=False)
    with pytest.raises(errors.ConflictError):
        sandbox.files.make_dir("/tmp/x", parents=False)
    sandbox.files.write("/tmp/afile", "x")
    with pytest.raises(errors.ConflictError):
        sandbox.files.make_dir("/tmp/afile")


def test_remove(sandbox):
    sandbox.files.write_files([("/tmp/rm/a", "a"), ("/tmp/rm/sub/b", "b")])
    assert sandbox.files.remove("/tmp/rm/a") is True
    assert not sandbox.files.exists("/tmp/rm/a")
    with pytest.raises(errors.ConflictError) as exc:
        sandbox.files.remove("/tmp/rm")
    assert exc.value.code == "directory_not_empty"
    assert sandbox.files.remove("/tmp/rm", recursive=True) is True
    assert not sandbox.files.exists("/tmp/rm")
    with pytest.raises(errors.PathNotFoundError):
        sandbox.files.remove("/tmp/rm")
    assert sandbox.files.remove("/tmp/rm", force=True) is False


def test_rename(sandbox):
    sandbox.files.write("/tmp/old.txt", "content")
    entry = sandbox.files.rename("/tmp/old.txt", "/tmp/new.txt")
    assert entry.path == "/tmp/new.txt" and entry.size == 7
    assert not sandbox.files.exists("/tmp/old.txt") and sandbox.files.read("/tmp/new.txt") == "content"
    sandbox.files.write("/tmp/other.txt", "other")
    with pytest.raises(errors.PathExistsError) as exc:
        sandbox.files.rename("/tmp/other.txt", "/tmp/new.txt")
    assert exc.value.status == 409 and exc.value.code == "path_exists"
    assert sandbox.files.read("/tmp/new.txt") == "content"
    sandbox.files.rename("/tmp/other.txt", "/tmp/new.txt", overwrite=True)
    assert sandbox.files.read("/tmp/new.txt") == "other"
    sandbox.files.make_dir("/tmp/dir1")
    sandbox.files.rename("/tmp/dir1", "/tmp/dir2")
    assert sandbox.files.get_info("/tmp/dir2").is_dir
    with pytest.raises(errors.PathNotFoundError):
        sandbox.files.rename("/tmp/nope", "/tmp/nope2")


def test_read_errors(sandbox):
    with pytest.raises(errors.PathNotFoundError) as exc:
        sandbox.files.read("/tmp/missing")
    assert exc.value.status == 404 and exc.value.code == "path_not_found"
    with pytest.raises(errors.ConflictError) as exc:
        sandbox.files.read("/tmp")
    assert exc.value.code == "is_a_directory"
    with pytest.raises(errors.ConflictError) as exc:
        sandbox.files.read("/dev/zero")
    assert exc.value.code == "not_a_regular_file"
    with pytest.raises(errors.InvalidArgumentError):
        sandbox.files.read("/tmp/x", format="yaml")


def test_files_of_a_killed_sandbox(api):
    sb = airlock.Sandbox.create(timeout=60, **api)
    sb.kill()
    with pytest.raises(errors.SandboxNotRunningError):
        sb.files.write("/tmp/x", "x")
    with pytest.raises(errors.SandboxNotRunningError):
        sb.files.read("/tmp/x")


# --- watch ---------------------------------------------------------------------------------------------

def test_watch_dir_reports_changes(sandbox):
    sandbox.files.make_dir("/tmp/w")
    handle = sandbox.files.watch_dir("/tmp/w")
    try:
        assert isinstance(handle, airlock.WatchHandle)
        sandbox.files.write("/tmp/w/new.txt", "hello")  # the watch is armed when watch_dir returns
        sandbox.commands.run("echo more >> /tmp/w/new.txt; mkdir /tmp/w/sub; rm /tmp/w/new.txt")
        events = []
        wait_until(lambda: events.extend(handle.get_new_events()) or
                   any(e.type == "remove" and e.path == "/tmp/w/new.txt" for e in events), timeout=10,
                   message="the remove event")
        assert all(isinstance(e, airlock.FilesystemEvent) for e in events)
        kinds = [(e.type, e.path) for e in events]
        assert ("create", "/tmp/w/new.txt") in kinds or ("rename", "/tmp/w/new.txt") in kinds  # atomic write
        assert ("write", "/tmp/w/new.txt") in kinds
        sub = [e for e in events if e.path == "/tmp/w/sub"]
        assert sub and sub[0].type == "create" and sub[0].is_dir
        assert events[0].timestamp is not None
    finally:
        handle.stop()
    assert not handle.running


def test_watch_dir_with_callback_and_recursion(sandbox):
    sandbox.files.make_dir("/tmp/wr/deep")
    seen = []
    ended = []
    handle = sandbox.files.watch_dir("/tmp/wr", on_event=seen.append, recursive=True, on_exit=ended.append)
    sandbox.files.write("/tmp/wr/deep/f", "x")
    sandbox.files.make_dir("/tmp/wr/later")
    wait_until(lambda: any(e.path == "/tmp/wr/later" for e in seen), message="the new directory's event")
    sandbox.files.write("/tmp/wr/later/g", "y")  # directories created later are watched too
    wait_until(lambda: any(e.path == "/tmp/wr/later/g" for e in seen), message="an event in the new directory")
    assert any(e.path == "/tmp/wr/deep/f" for e in seen)
    handle.stop()
    assert ended == [None]


def test_watch_without_recursion_ignores_subdirectories(sandbox):
    sandbox.files.make_dir("/tmp/wn/sub")
    with sandbox.files.watch_dir("/tmp/wn") as handle:
        sandbox.files.write("/tmp/wn/sub/inner", "x")
        sandbox.files.write("/tmp/wn/top", "x")
        first = handle.get_event(timeout=10)
        events = [first] + handle.get_new_events()
        wait_until(lambda: events.extend(handle.get_new_events()) or any(e.path == "/tmp/wn/top" for e in events),
                   message="the top-level event")
        assert not any(e.path.startswith("/tmp/wn/sub/") for e in events if e)


def test_watch_errors(sandbox):
    with pytest.raises(errors.PathNotFoundError):
        sandbox.files.watch_dir("/tmp/no-such-watch")
    sandbox.files.write("/tmp/plain", "x")
    with pytest.raises(errors.ConflictError):
        sandbox.files.watch_dir("/tmp/plain")
