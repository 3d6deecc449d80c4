"""`airlock cp` both ways: binary files byte for byte, directories with -r, cp-like naming of
destinations, permission bits, and the errors (a directory without -r, a missing path)."""
import hashlib
import json
import os
import stat

import pytest

from test_cli_support import airlock_cli_bin, box, cli  # noqa: F401 (fixtures)


def test_binary_file_round_trip(cli, box, tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 17) + bytes(range(256))
    src = tmp_path / "blob.bin"
    src.write_bytes(data)
    cli.ok("cp", str(src), f"{box}:/tmp/cp-blob.bin")
    r = cli.ok("exec", box, "--", "sha256sum", "/tmp/cp-blob.bin")
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    out = tmp_path / "back.bin"
    cli.ok("cp", f"{box}:/tmp/cp-blob.bin", str(out))
    assert out.read_bytes() == data
    # to stdout
    assert cli.ok("cp", f"{box}:/tmp/cp-blob.bin", "-").stdout == data


def test_file_into_directories_and_modes(cli, box, tmp_path):
    script = tmp_path / "run.sh"
    script.write_bytes(b"#!/bin/sh\necho ran\n")
    script.chmod(0o755)
    cli.ok("exec", box, "--", "mkdir", "-p", "/tmp/cp-into")
    cli.ok("cp", str(script), f"{box}:/tmp/cp-into")          # an existing directory: keeps the name
    assert cli.ok("exec", box, "--", "/tmp/cp-into/run.sh").stdout == b"ran\n"  # still executable
    cli.ok("cp", str(script), f"{box}:/tmp/cp-into/renamed.sh")
    cli.ok("exec", box, "--", "test", "-x", "/tmp/cp-into/renamed.sh")
    local_dir = tmp_path / "down"
    local_dir.mkdir()
    cli.ok("cp", f"{box}:/tmp/cp-into/run.sh", str(local_dir))
    assert (local_dir / "run.sh").read_bytes() == script.read_bytes()
    assert os.stat(local_dir / "run.sh").st_mode & stat.S_IXUSR
    # relative sandbox paths are relative to the workdir
    cli.ok("cp", str(script), f"{box}:rel.sh")
    assert cli.ok("exec", box, "--", "sh", "-c", "cat $PWD/rel.sh").stdout == script.read_bytes()


def make_tree(root):
    (root / "a" / "b").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "top.txt").write_text("top\n")
    (root / "a" / "mid.bin").write_bytes(os.urandom(70000))
    (root / "a" / "b" / "deep.txt").write_text("deep\n")
    (root / "a" / "b" / "x.sh").write_text("#!/bin/sh\n")
    (root / "a" / "b" / "x.sh").chmod(0o750)


def tree_of(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d))] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.normpath(os.path.join(rel, f))] = (open(p, "rb").read(), os.stat(p).st_mode & 0o777)
    return out


def test_directory_round_trip(cli, box, tmp_path):
    src = tmp_path / "proj"
    make_tree(src)
    cli.ok("exec", box, "--", "mkdir", "-p", "/tmp/cp-dir")
    cli.ok("cp", "-r", str(src), f"{box}:/tmp/cp-dir")           # existing directory: /tmp/cp-dir/proj
    listing = cli.ok("exec", box, "--", "sh", "-c", "cd /tmp/cp-dir && find . | sort").stdout.decode().split()
    assert listing == [".", "./proj", "./proj/a", "./proj/a/b", "./proj/a/b/deep.txt", "./proj/a/b/x.sh",
                       "./proj/a/mid.bin", "./proj/empty", "./proj/top.txt"]
    out = tmp_path / "out"
    cli.ok("cp", "-r", f"{box}:/tmp/cp-dir/proj", str(out))        # missing destination: becomes the copy
    assert tree_of(out) == tree_of(src)
    cli.ok("cp", "-r", f"{box}:/tmp/cp-dir/proj", str(out))        # now it exists: out/proj
    assert tree_of(out / "proj") == tree_of(src)
    contents = tmp_path / "contents"
    contents.mkdir()
    cli.ok("cp", "-r", f"{box}:/tmp/cp-dir/proj/.", str(contents))  # "dir/.": the contents
    assert tree_of(contents) == tree_of(src)


def test_symlinks(cli, box, tmp_path):
    cli.ok("exec", box, "--", "sh", "-c", "rm -rf /tmp/cp-links && mkdir -p /tmp/cp-links && cd /tmp/cp-links && "
           "echo data > f && ln -s f link && ln -s /etc/passwd abs && ln -s ../../../../outside esc")
    out = tmp_path / "links"
    r = cli.ok("cp", "-r", f"{box}:/tmp/cp-links", str(out))
    assert (out / "f").read_text() == "data\n"
    assert not (tmp_path.parent / "outside").exists()
    # local symlinks are skipped on upload (the API cannot create them), with a warning
    src = tmp_path / "up"
    src.mkdir()
    (src / "real").write_text("r")
    os.symlink("real", src / "alias")
    up = cli.ok("cp", "-r", str(src), f"{box}:/tmp/cp-up-links")
    assert b"skipping symlink" in up.stderr
    assert cli.ok("exec", box, "--", "ls", "/tmp/cp-up-links").stdout == b"real\n"
    # Links are recreated from EntryInfo.symlink_target, which the daemon may not fill in yet.
    if b"did not report its target" in r.stderr:
        pytest.xfail("the daemon's files/list leaves symlink_target null for symlinks")
    assert os.readlink(out / "link") == "f"
    assert os.readlink(out / "abs") == "/etc/passwd"
    assert os.readlink(out / "esc") == "../../../../outside"  # made as a link, never written through


def test_symlink_source_is_followed(cli, box, tmp_path):
    # Like cp: a link named as the source copies what it points to. (Known daemon bug at the time of
    # writing: files/read of a symlink stops after the link's own length, so this fails until fixed.)
    cli.ok("exec", box, "--", "sh", "-c", "mkdir -p /tmp/cp-follow && cd /tmp/cp-follow && echo data > f && "
           "ln -sf f link")
    cli.ok("cp", f"{box}:/tmp/cp-follow/link", str(tmp_path / "via-link"))
    assert (tmp_path / "via-link").read_text() == "data\n"


def test_cp_errors(cli, box, tmp_path):
    (tmp_path / "d").mkdir()
    r = cli.run("cp", str(tmp_path / "d"), f"{box}:/tmp/x")
    assert r.returncode == 125 and b"use cp -r" in r.stderr
    cli.ok("exec", box, "--", "mkdir", "-p", "/tmp/cp-err-dir")
    r = cli.run("cp", f"{box}:/tmp/cp-err-dir", str(tmp_path / "y"))
    assert r.returncode == 125 and b"use cp -r" in r.stderr
    r = cli.run("cp", f"{box}:/no/such/file", str(tmp_path / "z"))
    assert r.returncode == 125 and b"no such file" in r.stderr
    assert not (tmp_path / "z").exists()
    r = cli.run("cp", str(tmp_path / "missing"), f"{box}:/tmp/x")
    assert r.returncode == 125
    r = cli.run("cp", "a", "b")
    assert r.returncode == 125 and b"ID:PATH" in r.stderr
    r = cli.run("cp", f"{box}:/etc/hostname", "sb-0000000000000000:/tmp/x")
    assert r.returncode == 125
    r = cli.run("cp", str(tmp_path / "d"), "sb-0000000000000000:/tmp/x", "-r")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
    r = cli.run("cp", f"{box}:/tmp/cp-err-dir", f"{tmp_path}/nodir/")
    assert r.returncode == 125


class HostileDaemon:
    """A fake daemon whose sandbox lists a directory with the given entries and serves "pwned" for
    every file: what a compromised agent or daemon could send to `airlock cp -r`."""

    def __init__(self, entries):
        import http.server
        import threading
        import urllib.parse

        entries_json = json.dumps({"entries": entries, "truncated": False}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def reply(self, status, body, content_type="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                path = urllib.parse.parse_qs(url.query).get("path", [""])[0]
                if url.path.endswith("/files/stat"):
                    self.reply(200, json.dumps(entry(path.rsplit("/", 1)[-1], path, "dir")).encode())
                elif url.path.endswith("/files/list") and path == "/d":
                    self.reply(200, entries_json)
                elif url.path.endswith("/files/list"):
                    self.reply(200, b'{"entries": [], "truncated": false}')
                elif url.path.endswith("/files/read"):
                    self.reply(200, b"pwned", "application/octet-stream")
                else:
                    self.reply(404, b'{"error": {"code": "route_not_found", "message": "no"}}')

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def entry(name, path, type_, target=None):
    return {"name": name, "path": path, "type": type_, "size": 5, "mode": "0644", "uid": 0, "gid": 0,
            "modified_at": "2026-11-21T10:00:00.000Z", "symlink_target": target}


@pytest.mark.parametrize("name", ["../escaped", "..", ".", "", "sub/../../escaped", "/tmp/escaped-abs"])
def test_hostile_names_never_leave_the_destination(cli, tmp_path, name):
    fake = HostileDaemon([entry(name, "/d/" + name, "file")])
    try:
        dest = tmp_path / "a" / "dest"
        dest.parent.mkdir()
        r = cli.run("--url", fake.url, "cp", "-r", "sb-fake000000000000:/d", str(dest))
        assert r.returncode == 125 and b"the daemon sent" in r.stderr, r
        assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "dest"]
        assert not os.path.exists("/tmp/escaped-abs")
    finally:
        fake.close()


def test_hostile_symlink_then_directory(cli, tmp_path):
    # "x" -> the outside, then "x" again as a directory with a file in it: never written through
    outside = tmp_path / "outside"
    outside.mkdir()
    fake = HostileDaemon([entry("x", "/d/x", "symlink", str(outside)), entry("x", "/d/x", "dir")])
    try:
        r = cli.run("--url", fake.url, "cp", "-r", "sb-fake000000000000:/d", str(tmp_path / "dest"))
        assert r.returncode == 125, r
        assert list(outside.iterdir()) == []
    finally:
        fake.close()
