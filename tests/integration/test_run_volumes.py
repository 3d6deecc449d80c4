"""`airlock run -v HOST:DEST[:ro]`: host paths bound into the sandbox.

Root inside a sandbox is an unprivileged host uid (no host privilege), so a rw volume is writable from
inside only where the host's permissions let that uid write: the tests use world-writable directories.
"""
import os
import subprocess

import pytest


@pytest.fixture
def shared_dir(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    d.chmod(0o777)
    (d / "from-host.txt").write_text("hello from the host\n")
    (d / "from-host.txt").chmod(0o666)
    return d


def airlock_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("airlock:")]


def test_rw_volume_reads_and_writes(run, shared_dir):
    r = run("-v", f"{shared_dir}:/data",
            cmd=["sh", "-c", "cat /data/from-host.txt; echo written-inside > /data/new.txt; "
                             "echo appended >> /data/from-host.txt; echo ok"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the host\nok\n"
    assert (shared_dir / "new.txt").read_text() == "written-inside\n"
    assert (shared_dir / "from-host.txt").read_text() == "hello from the host\nappended\n"


def test_rw_volume_explicit_rw_suffix(run, shared_dir):
    r = run("-v", f"{shared_dir}:/data:rw", cmd=["sh", "-c", "echo x > /data/rw.txt"], input="")
    assert r.returncode == 0, r.stderr
    assert (shared_dir / "rw.txt").read_text() == "x\n"


def test_files_written_through_a_volume_are_not_host_root_owned(run, shared_dir):
    r = run("-v", f"{shared_dir}:/data", cmd=["sh", "-c", "echo x > /data/owned.txt"], input="")
    assert r.returncode == 0, r.stderr
    st = os.stat(shared_dir / "owned.txt")
    assert st.st_uid != 0 and st.st_gid != 0, "root inside must not be root on the host"


def test_ro_volume_is_read_only(run, shared_dir):
    r = run("-v", f"{shared_dir}:/data:ro",
            cmd=["sh", "-c", "cat /data/from-host.txt; "
                             "if echo x > /data/new.txt; then echo WROTE; else echo refused; fi; "
                             "if echo x >> /data/from-host.txt; then echo WROTE; else echo refused; fi; "
                             "grep ' /data ' /proc/self/mounts"], input="")
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[:3] == ["hello from the host", "refused", "refused"], r.stdout
    assert "ro" in out[3].split()[3].split(","), out[3]
    assert "Read-only file system" in r.stderr
    assert not (shared_dir / "new.txt").exists()
    assert (shared_dir / "from-host.txt").read_text() == "hello from the host\n"


def test_host_changes_are_visible_inside_while_running(airlock_bin, shared_dir):
    # A bind, not a copy: a file the host creates after the start shows up inside.
    script = "echo started; i=0; while [ ! -e /data/late.txt ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; cat /data/late.txt"
    p = subprocess.Popen([airlock_bin, "run", "-v", f"{shared_dir}:/data:ro", "--", "sh", "-c", script],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "started\n"
        (shared_dir / "late.txt").write_text("late\n")
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert (p.returncode, out) == (0, "late\n"), err


def test_file_volume(run, tmp_path):
    f = tmp_path / "app.conf"
    f.write_text("key=value\n")
    r = run("-v", f"{f}:/etc/app.conf:ro", "-v", f"{f}:/srv/deep/dir/copy.conf",
            cmd=["sh", "-c", "cat /etc/app.conf; cat /srv/deep/dir/copy.conf; "
                             "test -f /etc/app.conf && echo is-file"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "key=value\nkey=value\nis-file\n"


def test_ro_file_volume_is_read_only(run, tmp_path):
    f = tmp_path / "app.conf"
    f.write_text("key=value\n")
    f.chmod(0o666)
    r = run("-v", f"{f}:/etc/app.conf:ro",
            cmd=["sh", "-c", "if echo changed > /etc/app.conf; then echo WROTE; else echo refused; fi"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "refused\n"
    assert f.read_text() == "key=value\n"


def test_several_volumes(run, shared_dir, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "b.txt").write_text("b\n")
    r = run("-v", f"{shared_dir}:/a", "--volume", f"{other}:/b:ro",
            cmd=["sh", "-c", "cat /a/from-host.txt /b/b.txt"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hello from the host\nb\n"


def test_volume_source_outside_is_not_visible_beyond_the_bind(run, tmp_path):
    inner = tmp_path / "inner"
    inner.mkdir()
    (tmp_path / "sibling-secret.txt").write_text("secret\n")
    r = run("-v", f"{inner}:/data", cmd=["sh", "-c", "ls -A /data; cat /data/../sibling-secret.txt 2>/dev/null; echo end"],
            input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "end\n"


@pytest.mark.parametrize("spec", [
    "{missing}:/data",          # nonexistent source
    "{dir}:data",               # relative destination
    "{dir}:data/sub",
    "{dir}:/a/../b",            # ".." in the destination
    "{dir}:/data/..",
    "{dir}:/..",
    "{dir}:../etc",
    "{dir}:/",                  # over the root
    "{dir}",                    # no destination at all
    "{dir}:",
    ":/data",
    "{dir}:/data:rx",           # unknown mode
])
def test_bad_volume_is_an_airlock_error(run, tmp_path, spec):
    volume = spec.format(missing=tmp_path / "does-not-exist", dir=tmp_path)
    r = run("-v", volume, cmd=["sh", "-c", "echo RAN"], input="")
    assert r.returncode == 125, (r.returncode, r.stdout, r.stderr)
    assert "RAN" not in r.stdout
    assert airlock_lines(r.stderr), r.stderr
    assert "Traceback" not in r.stderr and "terminate called" not in r.stderr


def test_nonexistent_source_message_names_the_path(run, tmp_path):
    missing = tmp_path / "does-not-exist"
    r = run("-v", f"{missing}:/data", cmd=["true"], input="")
    assert r.returncode == 125
    assert any(str(missing) in line for line in airlock_lines(r.stderr)), r.stderr
