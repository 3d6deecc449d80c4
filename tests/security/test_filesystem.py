"""Escapes through the filesystem and the runtime's leftovers (security-anchors B.8-B.12, B.19-B.24):
leaked fds, /proc/<pid>/exe, chroot climbing, device nodes, procfs/sysfs writes, cgroup
release_agent, host files, setuid and file-capability binaries.
"""
import hashlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from test_probe import PROBE, ROOT_CAPS, assert_blocked, probe  # noqa: F401  (probe is a fixture)


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture
def host_marker():
    """A file that exists only on the host, in the host's /tmp; yields its path."""
    fd, path = tempfile.mkstemp(prefix="airlock-sec-marker-", dir="/tmp")
    os.write(fd, b"host secret\n")
    os.close(fd)
    yield path
    os.unlink(path)


@pytest.fixture
def host_dir():
    """A host directory the sandbox's unprivileged ids can traverse (for volumes)."""
    path = tempfile.mkdtemp(prefix="airlock-sec-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# --- leaked fds (B.20, B.21) ---

@pytest.mark.parametrize("mode", ["default", "stdin_pipe", "tty", "with_volume"])
def test_attack_leaked_fds_only_stdio_remains(probe, host_dir, mode):
    options = {"default": (), "stdin_pipe": ("-i",), "tty": ("-t",), "with_volume": ("-v", f"{host_dir}:/vol")}[mode]
    assert_blocked(probe("fds", options=options, input=""))


# --- CVE-2019-5736 (B.19) ---

def test_attack_overwrite_runtime_through_proc_exe_cve_2019_5736(probe, airlock_bin):
    init = Path(airlock_bin).with_name("airlock-init")
    before = {p: sha256(p) for p in (init, airlock_bin)}
    assert_blocked(probe("exe-write"))
    after = {p: sha256(p) for p in (init, airlock_bin)}
    assert before == after, "a host binary of Airlock changed while the sandbox ran"


# --- chroot climbing (B.23) ---

def test_attack_chroot_escape_loop(probe, host_marker):
    assert_blocked(probe("chroot-escape", host_marker.lstrip("/")))


# --- device nodes (B.12) ---

def test_attack_mknod_block_and_char_devices(probe):
    assert_blocked(probe("mknod"))


def test_attack_dev_holds_only_harmless_nodes(probe):
    assert_blocked(probe("dev-nodes"))


def test_attack_device_node_in_volume_cannot_be_opened(probe, host_dir):
    # /dev/zero's numbers: reading it would succeed if the volume were not nodev.
    os.mknod(os.path.join(host_dir, "zero"), stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mknod(os.path.join(host_dir, "loop0"), stat.S_IFBLK | 0o666, os.makedev(7, 0))
    assert_blocked(probe("device-open", "/vol/zero", "/vol/loop0", options=("-v", f"{host_dir}:/vol")))


def test_attack_chmod_chown_of_host_device_nodes_bound_in(run):
    """/dev/null & co. and the /proc masks are the host's own inodes: the sandbox's root must not be
    able to change their mode or owner on the host."""
    nodes = ["/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"]
    masks = ["/proc/keys", "/proc/kallsyms", "/proc/timer_list"]
    before = {n: os.stat(n) for n in nodes}
    script = "; ".join(f"chmod 600 {p}; chmod 4777 {p}; chown 0:0 {p}; chown 1000:1000 {p}" for p in nodes + masks)
    run(cmd=["/bin/sh", "-c", script + "; true"])
    changed = [f"{n}: mode {oct(b.st_mode)} -> {oct(a.st_mode)}, owner {b.st_uid}:{b.st_gid} -> {a.st_uid}:{a.st_gid}"
               for n, b in before.items() for a in [os.stat(n)]
               if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid)]
    assert not changed, "host device nodes changed by the sandbox: " + "; ".join(changed)


def test_attack_core_dump_limit_cannot_be_raised(probe):
    assert_blocked(probe("core-limit"))


# --- procfs and sysfs (B.9, B.10) ---

def test_attack_write_core_pattern(probe):
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    assert_blocked(probe("core-pattern"))
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before, "the host's core_pattern changed"


def test_attack_procfs_masked_and_sysfs_read_only(probe):
    assert_blocked(probe("proc-masks"))


# --- CVE-2022-0492 (B.8) ---

def test_attack_cgroup_release_agent_cve_2022_0492(probe):
    assert_blocked(probe("release-agent"))


# --- host files (B.34) ---

def test_attack_host_paths_are_not_visible(probe, host_marker):
    hidden = ["/work", "/work/main/CMakeLists.txt", "/run/airlock", "/var/lib/airlock", host_marker,
              os.path.dirname(os.path.abspath(__file__))]
    assert_blocked(probe("absent", *hidden))


def test_attack_read_host_root_home(run):
    fd, marker = tempfile.mkstemp(prefix=".airlock-sec-marker-", dir="/root")
    os.close(fd)
    try:
        host_entries = set(os.listdir("/root"))
        completed = run(cmd=["/bin/ls", "-A", "/root"])
        assert completed.returncode == 0, completed.stderr
        leaked = host_entries & set(completed.stdout.split())
        assert not leaked, f"the host's /root entries are visible inside: {sorted(leaked)}"
    finally:
        os.unlink(marker)


def test_attack_read_host_etc_shadow(run):
    host = Path("/etc/shadow").read_text()
    completed = run(cmd=["/bin/cat", "/etc/shadow"])
    inside = completed.stdout
    assert inside != host, "the sandbox's /etc/shadow is the host's"
    host_hashes = [line.split(":")[1] for line in host.splitlines() if line.count(":") >= 2]
    leaked = [h for h in host_hashes if len(h) > 2 and h in inside]
    assert not leaked, "password hashes of the host's /etc/shadow are readable inside"


def test_attack_proc_pid_root_cross_read(probe, host_marker):
    assert_blocked(probe("proc-root", host_marker.lstrip("/")))


# --- setuid and file capabilities (B.24) ---

def test_attack_setuid_and_file_caps_binaries_made_inside_gain_nothing(probe):
    assert_blocked(probe("setuid", f"{ROOT_CAPS:x}"))


def test_attack_setuid_root_binary_in_volume_gains_nothing(probe, probe_bin, host_dir):
    target = os.path.join(host_dir, "suid-probe")
    shutil.copy(probe_bin, target)
    os.chown(target, 0, 0)
    os.chmod(target, 0o4755)
    result = probe("exec-ids", "/vol/suid-probe", options=("--user", "1000", "-v", f"{host_dir}:/vol:ro"))
    assert_blocked(result)


def test_attack_plant_setuid_root_binary_for_the_host_in_rw_volume(run, probe_bin, host_dir):
    """The sandbox's root writes a setuid binary into a writable volume and chowns it to "root":
    on the host it must belong to the sandbox's unprivileged ids, never to host root."""
    script = (f"cp {PROBE} /vol/planted && chown 0:0 /vol/planted && chmod 6755 /vol/planted; "
              "mkdir /vol/dir && chown 0:0 /vol/dir; cat /proc/self/uid_map")
    completed = run("-v", f"{probe_bin}:{PROBE}:ro", "-v", f"{host_dir}:/vol", cmd=["/bin/sh", "-c", script])
    base = int(completed.stdout.split()[1])
    for name in ("planted", "dir"):
        path = os.path.join(host_dir, name)
        if not os.path.exists(path):
            continue
        st = os.stat(path)
        assert st.st_uid != 0 and st.st_gid != 0, f"{path} is owned by host {st.st_uid}:{st.st_gid} (mode {oct(st.st_mode)})"
        assert base <= st.st_uid < base + 65536, f"{path} owner {st.st_uid} is outside the sandbox's range {base}"


def test_attack_setuid_binaries_from_usr_gain_nothing(run):
    """su/passwd in /usr stay setuid-root inside, but / and /usr are nosuid and no_new_privs is set."""
    completed = run("--user", "1000", cmd=["/bin/sh", "-c",
                                           "stat -c '%a %u %n' /usr/bin/su /usr/bin/passwd; "
                                           "grep NoNewPrivs /proc/self/status; cat /proc/self/mountinfo"])
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    modes = [line for line in lines if line.endswith(("/usr/bin/su", "/usr/bin/passwd"))]
    assert modes and all(line.split()[0].startswith("4") for line in modes), f"setuid bits not as expected: {modes}"
    assert "NoNewPrivs:\t1" in lines, "no_new_privs is not set"
    mounts = {}
    for line in lines:
        fields = line.split()
        if len(fields) > 5 and fields[0].isdigit():
            mounts[fields[4]] = fields[5].split(",")
    for mount_point in ("/", "/usr", "/tmp", "/dev/shm"):
        owner = max((m for m in mounts if mount_point == m or mount_point.startswith(m.rstrip("/") + "/")), key=len)
        assert "nosuid" in mounts[owner], f"{mount_point} is on {owner}, mounted without nosuid: {mounts[owner]}"


# --- working directory through /proc (B.21, CVE-2024-21626) ---

@pytest.mark.parametrize("workdir", ["/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/7", "/proc/1/cwd",
                                     "/proc/1/root", "/proc/self/root/.."])
def test_attack_workdir_through_proc_cve_2024_21626(probe, workdir):
    result = probe("cwd", options=("--workdir", workdir))
    if result.returncode in (125, 126) and not result.line:
        return  # refused before the command ran: fine
    assert_blocked(result)


# --- writes never reach the host or the next sandbox (B.22, B.34) ---

def test_attack_writes_to_usr_and_etc_stay_in_the_sandbox(run):
    """/usr is the host's, read-only inside; /etc is the sandbox's own and dies with it."""
    token = f"airlock-sec-{os.getpid()}-{os.urandom(4).hex()}"
    true_before = sha256("/usr/bin/true")
    mode_before = os.stat("/usr/bin/true").st_mode
    usr_steps = [f"echo {token} > /usr/share/{token}", f"echo {token} >> /usr/bin/true",
                 "chmod 4777 /usr/bin/true", "rm /usr/bin/false", f"mkdir /usr/{token}"]
    script = "".join(f"sh -c '{step}' 2>/dev/null && echo 'WROTE {step}'; " for step in usr_steps)
    script += f"echo '{token}:x:0:0::/:/bin/sh' >> /etc/passwd && echo etc-written"
    completed = run(cmd=["/bin/sh", "-c", script])
    assert "WROTE" not in completed.stdout, f"writes to the read-only /usr succeeded:\n{completed.stdout}"
    assert completed.stdout.strip().endswith("etc-written"), f"the sandbox's own /etc is not writable: {completed.stderr}"
    assert not os.path.exists(f"/usr/share/{token}"), "a file created in the sandbox's /usr appeared on the host"
    assert sha256("/usr/bin/true") == true_before, "the host's /usr/bin/true changed"
    assert os.stat("/usr/bin/true").st_mode == mode_before, "the host's /usr/bin/true mode changed"
    assert os.path.exists("/usr/bin/false"), "the host's /usr/bin/false was removed"
    after = run(cmd=["/bin/sh", "-c", f"cat /etc/passwd /usr/bin/true /usr/share/{token} 2>/dev/null | "
                                      f"grep -c {token}; test -x /usr/bin/false && echo false-present"])
    assert after.stdout.split() == ["0", "false-present"], \
        f"the next sandbox sees the previous one's writes:\n{after.stdout}{after.stderr}"


def test_attack_read_only_volume_cannot_be_written(run, host_dir):
    Path(host_dir, "existing").write_text("original\n")
    script = ("for step in 'echo x > /vol/new' 'echo x >> /vol/existing' 'rm /vol/existing' "
              "'chmod 777 /vol/existing' 'mkdir /vol/dir' 'mv /vol/existing /vol/moved'; do "
              "sh -c \"$step\" 2>/dev/null && echo \"WROTE $step\"; done; echo done")
    completed = run("-v", f"{host_dir}:/vol:ro", cmd=["/bin/sh", "-c", script])
    assert completed.stdout.strip().endswith("done"), completed.stderr
    assert "WROTE" not in completed.stdout, f"writes through a read-only volume succeeded:\n{completed.stdout}"
    assert sorted(os.listdir(host_dir)) == ["existing"], f"the host directory changed: {os.listdir(host_dir)}"
    assert Path(host_dir, "existing").read_text() == "original\n"
