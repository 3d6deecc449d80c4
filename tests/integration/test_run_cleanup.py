"""Nothing of a sandbox outlives its `airlock run`: no process, mount, cgroup, id-range lock or directory.

Each test learns which sandbox it ran from inside it (the host uid base in /proc/self/uid_map gives the
index N of the id range, which also names the cgroups airlock-N and the lock /run/airlock/ids/N.lock), so
the checks look only at that sandbox and stay right while other airlock runs happen on the machine.
"""
import os
import signal
import subprocess
import time

from host_processes import ID_RANGE, live_processes_in_range

ID_BASE = 0x40000000
RUN_DIR = os.environ.get("AIRLOCK_RUN_DIR", "/run/airlock")

PRINT_BASE = "print(open('/proc/self/uid_map').read().split()[1], flush=True)\n"


def sandbox_index(base):
    assert base >= ID_BASE and (base - ID_BASE) % ID_RANGE == 0, base
    return (base - ID_BASE) // ID_RANGE


def first_base(stdout):
    return int(stdout.split()[0])


def own_cgroup_dirs():
    """Our own cgroup in every mounted hierarchy (v1 controllers and the v2 tree)."""
    own_v1, own_v2 = {}, None
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, controllers, path = line.rstrip("\n").split(":", 2)
            if hid == "0" and not controllers:
                own_v2 = path
            else:
                for c in controllers.split(","):
                    own_v1[c] = path
    dirs = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            fstype, root, mount_point = fields[sep + 1], fields[3], fields[4]
            if fstype == "cgroup2" and own_v2 is not None:
                path = own_v2
            elif fstype == "cgroup":
                ctrls = [c for c in fields[sep + 3].split(",") if c in own_v1]
                if not ctrls:
                    continue
                path = own_v1[ctrls[0]]
            else:
                continue
            if root != "/":
                if not path.startswith(root):
                    continue
                path = path[len(root):]
            dirs.add((mount_point + path).rstrip("/"))
    return sorted(dirs)


def leftover_cgroups(index):
    return [f"{d}/airlock-{index}" for d in own_cgroup_dirs() if os.path.isdir(f"{d}/airlock-{index}")]


def lock_file(index):
    return f"{RUN_DIR}/ids/{index}.lock"


def wait_for(predicate, deadline=10):
    """predicate() -> falsy when done; polls until then or the (generous) deadline; returns the last value."""
    end = time.monotonic() + deadline
    while True:
        value = predicate()
        if not value or time.monotonic() > end:
            return value
        time.sleep(0.05)


def mounts():
    with open("/proc/self/mountinfo") as f:
        return sorted(f.read().splitlines())


def assert_nothing_left(base, mounts_before):
    index = sandbox_index(base)
    assert wait_for(lambda: live_processes_in_range(base), deadline=5) == [], "sandbox processes remain"
    assert leftover_cgroups(index) == [], "sandbox cgroups remain"
    assert not os.path.exists(lock_file(index)), f"{lock_file(index)} remains"
    after = mounts()
    assert sorted(set(after) - set(mounts_before)) == [], "the host's mount table gained mounts"
    assert sorted(set(mounts_before) - set(after)) == [], "the host's mount table lost mounts"
    stage = f"{RUN_DIR}/mnt"
    if os.path.isdir(stage):
        assert os.listdir(stage) == [], f"{stage} is not empty on the host"


def test_normal_exit_leaves_nothing(run):
    before = mounts()
    r = run(cmd=["sh", "-c", "cut -c11-21 /proc/self/uid_map; sleep 1000 & echo bg-started"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1] == "bg-started"
    assert_nothing_left(first_base(r.stdout), before)


def test_background_process_does_not_keep_the_run_alive(run):
    # The command exits while a child it left behind still holds stdout: the run ends anyway.
    r = run(cmd=["sh", "-c", "cut -c11-21 /proc/self/uid_map; (trap '' TERM HUP; sleep 1000) & exit 5"],
            input="", timeout=30)
    assert r.returncode == 5, r.stderr
    assert_nothing_left(first_base(r.stdout), mounts())


def test_error_exit_leaves_nothing(run):
    before = mounts()
    r = run("-v", "/etc/hostname:/data/h:ro", cmd=["sh", "-c", "cut -c11-21 /proc/self/uid_map; exec /etc/passwd"],
            input="")
    assert r.returncode == 126, r.stderr
    assert_nothing_left(first_base(r.stdout), before)


def test_timeout_leaves_nothing(run):
    script = (
        "import os, signal, time\n" + PRINT_BASE +
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        while True: time.sleep(1)\n"
        "    os._exit(0)\n"
        "while True: time.sleep(1)\n"
    )
    before = mounts()
    r = run("--timeout", "500ms", cmd=["python3", "-c", script], input="", timeout=60)
    assert r.returncode == 124, r.stderr
    assert_nothing_left(first_base(r.stdout), before)


def test_oom_leaves_nothing(run):
    script = PRINT_BASE + "hog = []\nwhile True: hog.append(b'\\x01' * (1 << 20))\n"
    before = mounts()
    r = run("--memory", "64M", cmd=["python3", "-c", script], input="", timeout=60)
    assert r.returncode == 137, r.stderr
    assert_nothing_left(first_base(r.stdout), before)


def test_tty_run_leaves_nothing(run):
    before = mounts()
    r = run("-t", cmd=["sh", "-c", "cut -c11-21 /proc/self/uid_map"], input="")
    assert r.returncode == 0, r.stderr
    assert_nothing_left(first_base(r.stdout), before)


def test_sigkilled_airlock_leaves_nothing_once_the_next_run_is_done(airlock_bin, run):
    before = mounts()
    # The command hides a grandchild in its own session that ignores every catchable signal.
    script = (
        "import os, signal, time\n" + PRINT_BASE +
        "for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        print('ready', flush=True)\n"
        "        while True: time.sleep(1)\n"
        "    os._exit(0)\n"
        "while True: time.sleep(1)\n"
    )
    p = subprocess.Popen([airlock_bin, "run", "--", "python3", "-c", script], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        base = int(p.stdout.readline())
        assert p.stdout.readline() == "ready\n"
        index = sandbox_index(base)
        assert len(live_processes_in_range(base)) >= 3, "expected init, the command and its grandchild"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()

    # The sandbox dies with its airlock (parent-death signal), grandchild included.
    left = wait_for(lambda: live_processes_in_range(base), deadline=10)
    assert left == [], f"sandbox processes outlived the SIGKILLed airlock run: {left}"

    # The next run collects the cgroup and id-range lock the killed one could not remove.
    r = run(cmd=["true"], input="")
    assert r.returncode == 0, r.stderr
    assert leftover_cgroups(index) == [], "the next run did not remove the killed run's cgroups"
    assert not os.path.exists(lock_file(index)), "the next run did not remove the killed run's lock file"
    assert sorted(set(mounts()) ^ set(before)) == [], "the host's mount table changed"


def test_concurrent_runs_get_distinct_id_ranges_and_all_clean_up(airlock_bin):
    before = mounts()
    script = "cut -c11-21 /proc/self/uid_map; read go; echo done"
    procs = [subprocess.Popen([airlock_bin, "run", "-i", "--", "sh", "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        # All four are alive at once before any is let go.
        bases = [int(p.stdout.readline()) for p in procs]
        results = [p.communicate(input="go\n", timeout=30) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert len(set(bases)) == 4, f"concurrent sandboxes share a host id range: {bases}"
    for p, (out, err) in zip(procs, results):
        assert (p.returncode, out) == (0, "done\n"), err
    for base in bases:
        assert_nothing_left(base, before)
