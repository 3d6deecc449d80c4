"""Baseline posture of a sandboxed process (security-anchors B.1): capabilities, no_new_privs,
seccomp mode, and the user-namespace mapping, read from /proc/self inside the sandbox.
"""
import pytest

from test_probe import ROOT_CAPS

# Capabilities that must never be in any set, even the bounding set (what they would unlock).
FORBIDDEN_CAPS = {
    "dac_read_search": 2,    # open_by_handle_at (shocker)
    "linux_immutable": 9,
    "net_admin": 12,         # interfaces, routes, nftables
    "net_raw": 13,           # raw and packet sockets
    "ipc_lock": 14,
    "sys_module": 16,
    "sys_rawio": 17,
    "sys_chroot": 18,
    "sys_ptrace": 19,
    "sys_pacct": 20,
    "sys_admin": 21,         # mount, namespaces, most of the kernel
    "sys_boot": 22,
    "sys_nice": 23,
    "sys_resource": 24,
    "sys_time": 25,
    "sys_tty_config": 26,
    "mknod": 27,
    "lease": 28,
    "audit_control": 30,
    "mac_override": 32,
    "mac_admin": 33,
    "syslog": 34,
    "wake_alarm": 35,
    "block_suspend": 36,
    "audit_read": 37,
    "perfmon": 38,
    "bpf": 39,
    "checkpoint_restore": 40,
}

CONFIGS = {
    "root": ((), ROOT_CAPS),
    "user_1000": (("--user", "1000"), 0),
    "cap_drop_all": (("--cap-drop", "ALL"), 0),
}


def sandbox_status(run, *options):
    completed = run(*options, cmd=["/bin/cat", "/proc/self/status", "/proc/self/uid_map"])
    assert completed.returncode == 0, completed.stderr
    fields, uid_map = {}, None
    for line in completed.stdout.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key] = value.strip()
        elif line.split():
            uid_map = [int(x) for x in line.split()]
    return fields, uid_map


def describe_caps(mask):
    names = {bit: name for name, bit in FORBIDDEN_CAPS.items()}
    return ", ".join(names.get(bit, f"cap{bit}") for bit in range(64) if mask & (1 << bit)) or "none"


@pytest.mark.parametrize("config", CONFIGS)
def test_posture_effective_and_permitted_caps_are_exactly_the_allowed_set(run, config):
    options, allowed = CONFIGS[config]
    status, _ = sandbox_status(run, *options)
    for field in ("CapEff", "CapPrm"):
        value = int(status[field], 16)
        assert value == allowed, f"{field} = {value:#x} ({describe_caps(value)}), expected {allowed:#x}"
    for field in ("CapInh", "CapAmb"):
        assert int(status[field], 16) == 0, f"{field} = {status[field]}, expected 0"


@pytest.mark.parametrize("config", CONFIGS)
def test_posture_bounding_set_has_no_dangerous_capability(run, config):
    options, allowed = CONFIGS[config]
    status, _ = sandbox_status(run, *options)
    bounding = int(status["CapBnd"], 16)
    forbidden = sum(1 << bit for bit in FORBIDDEN_CAPS.values())
    assert bounding & forbidden == 0, f"CapBnd holds {describe_caps(bounding & forbidden)}"
    assert bounding & ~ROOT_CAPS == 0, f"CapBnd {bounding:#x} exceeds the allowed set {ROOT_CAPS:#x}"
    if allowed == 0:
        assert bounding == 0, f"CapBnd = {bounding:#x} for a process that keeps no capability"


@pytest.mark.parametrize("config", CONFIGS)
def test_posture_no_new_privs_and_seccomp_filter_mode(run, config):
    options, _ = CONFIGS[config]
    status, _ = sandbox_status(run, *options)
    assert status.get("NoNewPrivs") == "1", f"NoNewPrivs = {status.get('NoNewPrivs')}"
    assert status.get("Seccomp") == "2", f"Seccomp = {status.get('Seccomp')} (2 = filter mode)"


def test_posture_uid_map_is_an_unprivileged_host_range(run):
    _, uid_map = sandbox_status(run)
    assert uid_map is not None and len(uid_map) == 3, f"uid_map: {uid_map}"
    inside, host, count = uid_map
    assert (inside, count) == (0, 65536), f"uid_map {uid_map}: expected 65536 ids from 0"
    assert host >= 65536, f"uid_map {uid_map}: the host range reaches login/system uids (host root is 0)"
