"""Resource limits of `airlock run`: --pids, --memory, --disk, --timeout, --cpus.

No test depends on a tight timing threshold: deadlines are generous and only turn a hang into a failure,
and the --cpus check is a loose ratio.
"""
import json
import os
import subprocess
import time

import pytest

from host_processes import ID_RANGE, live_processes_in_range

ID_BASE = 0x40000000


def json_line(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"expected one JSON line on stderr: {stderr[-2000:]!r}"
    return json.loads(lines[0])


def airlock_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("airlock:")]


def host_base(printed):
    """The sandbox's host uid base, from what a command printed inside: a whole /proc/self/uid_map
    line ("0 BASE 65536") or just its second column."""
    fields = printed.split()
    base = int(fields[1] if len(fields) == 3 else fields[0])
    assert base >= ID_BASE, printed
    return base


def wait_no_processes(base, deadline=10):
    end = time.monotonic() + deadline
    while True:
        left = live_processes_in_range(base)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.05)


def v1_controller_dir(controller):
    """Our own cgroup in the v1 hierarchy of `controller` (where airlock makes airlock-N)."""
    own = None
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                own = path
    if own is None:
        return None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup" and controller in fields[sep + 3].split(","):
                root, mount_point = fields[3], fields[4]
                rel = own[len(root):] if root != "/" and own.startswith(root) else own
                return mount_point + rel.rstrip("/")
    return None


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    try:
        proc.communicate(timeout=30)
    except (subprocess.TimeoutExpired, ValueError):
        pass


# --- --pids ------------------------------------------------------------------------------------------


def test_pids_limit_caps_the_number_of_tasks(run):
    script = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while n < 1000:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(60); os._exit(0)\n"
        "        n += 1\n"
        "    print(n, 0)\n"
        "except OSError as e:\n"
        "    print(n, e.errno)\n"
    )
    r = run("--pids", "20", cmd=["python3", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    forked, errno = (int(x) for x in r.stdout.split())
    assert errno == 11, f"fork should fail with EAGAIN at the limit, got errno {errno}"
    # init and python count too: at most 20 tasks in all.
    assert 0 < forked <= 20 - 2, forked


def test_fork_bomb_is_stopped_and_the_host_is_fine(airlock_bin):
    pids_dir = v1_controller_dir("pids")
    # Every process forks forever and retries when the kernel says no: only the limit holds it.
    bomb = (
        "import os, time\n"
        "print(open('/proc/self/uid_map').read().split()[1], flush=True)\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        time.sleep(0.001)\n"
    )
    p = subprocess.Popen([airlock_bin, "run", "--pids", "64", "--timeout", "3s", "--json", "--", "python3", "-c", bomb],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = host_base(p.stdout.readline())
        index = (base - ID_BASE) // ID_RANGE
        peak = 0
        if pids_dir:
            cg = f"{pids_dir}/airlock-{index}"
            for _ in range(20):
                try:
                    with open(f"{cg}/pids.current") as f:
                        peak = max(peak, int(f.read()))
                except OSError:
                    break
                time.sleep(0.05)
        # While the bomb runs, the host can still start processes.
        assert subprocess.run(["sh", "-c", "echo alive"], capture_output=True, text=True, timeout=30).stdout == "alive\n"
        out, err = p.communicate(timeout=60)
    finally:
        stop(p)
    assert p.returncode == 124, err[-2000:]
    assert json_line(err)["reason"] == "timeout"
    if pids_dir:
        assert peak > 0, f"could not read {pids_dir}/airlock-N/pids.current while the bomb ran"
    assert peak <= 64, f"pids.current reached {peak} with --pids 64"
    assert wait_no_processes(base) == [], "bomb processes survived the sandbox"


# --- --memory ----------------------------------------------------------------------------------------


MEMORY_BOMB = (
    "import sys\n"
    "print(open('/proc/self/uid_map').read().split()[1], flush=True)\n"
    "hog = []\n"
    "while True:\n"
    "    hog.append(b'\\x01' * (1 << 20))  # touched pages, not lazily mapped zeroes\n"
)


def test_memory_bomb_is_oom_killed(run):
    r = run("--memory", "256M", "--json", cmd=["python3", "-c", MEMORY_BOMB], input="", timeout=60)
    assert r.returncode == 137, r.stderr[-2000:]
    assert "airlock: killed: out of memory (limit 256M)" in airlock_lines(r.stderr), r.stderr[-2000:]
    report = json_line(r.stderr)
    assert report["exit_code"] == 137
    assert report["reason"] == "oom"
    peaks = [v for k, v in report.items() if "peak" in k]
    assert peaks and peaks[0] <= 256 * 2**20 + 8 * 2**20, report  # never (much) above the limit
    assert wait_no_processes(host_base(r.stdout.splitlines()[0])) == []


def test_memory_limit_allows_what_fits(run):
    script = "hog = [b'\\x01' * (1 << 20) for _ in range(40)]; print(len(hog))"
    r = run("--memory", "128M", cmd=["python3", "-c", script], input="")
    assert (r.returncode, r.stdout) == (0, "40\n"), r.stderr


# --- --disk ------------------------------------------------------------------------------------------


DISK_FILL = (
    "import errno, sys\n"
    "path = sys.argv[1]\n"
    "written = 0\n"
    "chunk = b'\\x01' * (1 << 20)\n"
    "try:\n"
    "    with open(path, 'wb') as f:\n"
    "        for _ in range(128):\n"
    "            f.write(chunk); f.flush(); written += len(chunk)\n"
    "    print('no error', written)\n"
    "except OSError as e:\n"
    "    print(errno.errorcode.get(e.errno, e.errno), written)\n"
)


@pytest.mark.parametrize("where", ["/root/big", "/tmp/big", "/var/big"])
def test_disk_fill_hits_enospc(run, where):
    r = run("--disk", "32M", cmd=["python3", "-c", DISK_FILL, where], input="")
    assert r.returncode == 0, r.stderr
    result, written = r.stdout.split()
    assert result == "ENOSPC", r.stdout
    assert int(written) <= 32 * 2**20, r.stdout


def test_disk_limit_is_shared_by_all_writable_places(run):
    # Two 20 MB files in different directories cannot both fit in a 32M layer.
    script = "dd if=/dev/zero of=/root/a bs=1M count=20 2>/dev/null; dd if=/dev/zero of=/tmp/b bs=1M count=20 2>&1; echo rc=$?"
    r = run("--disk", "32M", cmd=["sh", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    assert "No space left on device" in r.stdout
    assert "rc=0" not in r.stdout


def test_default_disk_is_larger_than_a_small_one(run):
    r = run(cmd=["sh", "-c", "dd if=/dev/zero of=/root/f bs=1M count=64 2>/dev/null; echo rc=$?"], input="")
    assert r.stdout == "rc=0\n", r.stderr


# --- --timeout ---------------------------------------------------------------------------------------


ESCAPE_ARTIST = (
    "import os, signal, time\n"
    "print(open('/proc/self/uid_map').read().split()[1], flush=True)\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
    "        while True: time.sleep(1)\n"
    "    os._exit(0)\n"
    "while True: time.sleep(1)\n"
)


def test_timeout_kills_everything(run):
    r = run("--timeout", "500ms", "--json", cmd=["python3", "-c", ESCAPE_ARTIST], input="", timeout=60)
    assert r.returncode == 124, r.stderr
    assert any("tim" in line for line in airlock_lines(r.stderr)), r.stderr
    report = json_line(r.stderr)
    assert report["exit_code"] == 124
    assert report["reason"] == "timeout"
    base = host_base(r.stdout.splitlines()[0])
    assert wait_no_processes(base) == [], "processes survived the timeout"


def test_command_finishing_before_the_timeout_keeps_its_code(run):
    r = run("--timeout", "30s", "--json", cmd=["sh", "-c", "exit 7"], input="")
    assert r.returncode == 7
    assert json_line(r.stderr)["reason"] == "exited"


@pytest.mark.parametrize("value", ["1s", "1000ms", "0.5s"])
def test_timeout_units(run, value):
    r = run("--timeout", value, cmd=["sleep", "30"], input="", timeout=60)
    assert r.returncode == 124, (value, r.stderr)


def test_timeout_holds_while_nobody_reads_stdout(airlock_bin):
    # The wall-clock limit must not depend on the consumer of airlock's output: a command that
    # floods stdout into a pipe nobody reads must still be killed after --timeout.
    p = subprocess.Popen([airlock_bin, "run", "--timeout", "1s", "--", "yes"], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            code = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("--timeout 1s not enforced after 10 s while stdout was not being read")
        assert code == 124
    finally:
        stop(p)


def test_timeout_holds_while_the_command_does_not_read_stdin(airlock_bin):
    p = subprocess.Popen([airlock_bin, "run", "-i", "--timeout", "1s", "--", "sleep", "60"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        try:
            # More than a pipe holds; the command never reads it.
            p.communicate(input=b"y" * 4_000_000, timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("--timeout 1s not enforced after 10 s while the command was not reading stdin")
        assert p.returncode == 124
    finally:
        stop(p)


# --- --cpus ------------------------------------------------------------------------------------------


BUSY_LOOP = (
    "import time\n"
    "t0, c0 = time.monotonic(), time.process_time()\n"
    "while time.monotonic() - t0 < 2.0: pass\n"
    "print((time.process_time() - c0) / (time.monotonic() - t0))\n"
)


def test_half_a_cpu_gets_about_half_the_time(run):
    r = run("--cpus", "0.5", "--json", cmd=["python3", "-c", BUSY_LOOP], input="", timeout=60)
    assert r.returncode == 0, r.stderr
    ratio = float(r.stdout)
    # About 0.5; loose on purpose: the bound only tells "throttled" from "not throttled" (about 1.0).
    assert 0.05 < ratio < 0.75, ratio
    report = json_line(r.stderr)
    cpu = [v for k, v in report.items() if "cpu" in k][0]
    wall = [v for k, v in report.items() if "wall" in k][0]
    assert cpu < 0.8 * wall, report
