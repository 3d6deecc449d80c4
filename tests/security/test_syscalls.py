"""Kernel attack surface: every syscall the policy denies, called with arguments that would succeed
or fail with EBADF/EFAULT/EINVAL if it reached the kernel (security-anchors B.2-B.7, B.11, B.13-B.17).

Pass: EPERM or ENOSYS from the filter (ENOSYS exactly for clone3), or death by SIGSYS for the
foreign ABIs. Any other errno means the call reached the kernel, and the test fails.
"""
import pytest

from test_probe import assert_blocked, probe  # noqa: F401  (probe is a fixture)

NAMESPACES = ["user", "mnt", "net", "pid", "ipc", "uts", "cgroup", "time"]


# --- kernel exploitation primitives (B.3, B.4) ---

def test_attack_io_uring_is_blocked(probe):
    assert_blocked(probe("io_uring"))


def test_attack_userfaultfd_is_blocked(probe):
    assert_blocked(probe("userfaultfd"))


def test_attack_bpf_is_blocked(probe):
    assert_blocked(probe("bpf"))


def test_attack_perf_event_open_is_blocked(probe):
    assert_blocked(probe("perf_event_open"))


# --- keyring (B.2): not namespaced ---

def test_attack_keyctl_is_blocked(probe):
    assert_blocked(probe("keyctl"))


def test_attack_add_key_is_blocked(probe):
    assert_blocked(probe("add_key"))


def test_attack_request_key_is_blocked(probe):
    assert_blocked(probe("request_key"))


def test_attack_proc_keys_is_masked(probe):
    assert_blocked(probe("proc-keys"))


# --- mounting, old and new API (B.6) ---

def test_attack_mount_is_blocked(probe):
    assert_blocked(probe("mount"))


def test_attack_mount_proc_sysfs_cgroup_tmpfs_is_blocked(probe):
    assert_blocked(probe("mount-fs"))


def test_attack_umount2_of_masks_is_blocked(probe):
    assert_blocked(probe("umount2"))


def test_attack_fsopen_is_blocked(probe):
    assert_blocked(probe("fsopen"))


def test_attack_open_tree_is_blocked(probe):
    assert_blocked(probe("open_tree"))


def test_attack_move_mount_is_blocked(probe):
    assert_blocked(probe("move_mount"))


def test_attack_fsmount_fspick_is_blocked(probe):
    assert_blocked(probe("fsmount-fspick"))


def test_attack_mount_setattr_is_blocked(probe):
    assert_blocked(probe("mount_setattr"))


def test_attack_pivot_root_is_blocked(probe):
    assert_blocked(probe("pivot_root"))


def test_attack_chroot_is_blocked(probe):
    assert_blocked(probe("chroot"))


# --- namespaces (B.7) ---

def test_attack_setns_on_init_and_own_namespaces_is_blocked(probe):
    assert_blocked(probe("setns"))


@pytest.mark.parametrize("namespace", NAMESPACES)
def test_attack_unshare_is_blocked(probe, namespace):
    assert_blocked(probe("unshare", namespace))


@pytest.mark.parametrize("namespace", [ns for ns in NAMESPACES if ns != "time"])  # CLONE_NEWTIME is clone's CSIGNAL byte
def test_attack_clone_with_namespace_flags_is_blocked(probe, namespace):
    assert_blocked(probe("clone", namespace))


def test_attack_clone3_gets_enosys(probe):
    assert_blocked(probe("clone3"))


# --- the machine: modules, kexec, reboot, swap, accounting, clocks, kernel log (B.5) ---

def test_attack_kexec_load_is_blocked(probe):
    assert_blocked(probe("kexec"))


def test_attack_kernel_modules_are_blocked(probe):
    assert_blocked(probe("modules"))


def test_attack_reboot_is_blocked(probe):
    assert_blocked(probe("reboot"))


def test_attack_swapon_swapoff_is_blocked(probe):
    assert_blocked(probe("swap"))


def test_attack_acct_is_blocked(probe):
    assert_blocked(probe("acct"))


def test_attack_settimeofday_is_blocked(probe):
    assert_blocked(probe("settimeofday"))


def test_attack_clock_settime_is_blocked(probe):
    assert_blocked(probe("clock_settime"))


def test_attack_adjtimex_is_blocked(probe):
    assert_blocked(probe("adjtimex"))


def test_attack_syslog_is_blocked(probe):
    assert_blocked(probe("syslog"))


def test_attack_ldt_ioports_personality_kcmp_quotactl_are_blocked(probe):
    assert_blocked(probe("misc-denied"))


# --- shocker (B.11) ---

def test_attack_open_by_handle_at_shocker_is_blocked(probe):
    assert_blocked(probe("open_by_handle_at"))


# --- terminal injection (B.16, B.17) ---

def test_attack_tiocsti_on_own_pty_is_blocked(probe):
    assert_blocked(probe("tiocsti"))


def test_attack_tiocsti_with_high_bits_is_blocked(probe):
    assert_blocked(probe("tiocsti-high-bits"))


def test_attack_tioclinux_is_blocked(probe):
    assert_blocked(probe("tioclinux"))


# --- socket families (B.13, B.14) ---

def test_attack_af_packet_socket_is_blocked(probe):
    assert_blocked(probe("socket-packet"))


def test_attack_raw_inet_socket_is_blocked(probe):
    assert_blocked(probe("socket-raw"))


def test_attack_af_vsock_socket_is_blocked(probe):
    assert_blocked(probe("socket-vsock"))


def test_attack_af_alg_socket_is_blocked(probe):
    assert_blocked(probe("socket-alg"))


def test_attack_other_socket_families_are_blocked(probe):
    assert_blocked(probe("socket-other"))


# --- ABI confusion (B.15): the process must die (SIGSYS) or the call must fail ---

COMPAT_CALLS = ["getpid", "unshare", "clone", "socket", "keyctl", "bpf", "io_uring_setup", "userfaultfd",
                "perf_event_open", "mount", "setns", "chroot", "ioctl_tiocsti", "open_by_handle_at"]


@pytest.mark.parametrize("call", COMPAT_CALLS + ["socketcall"])
def test_attack_i386_int80_syscall_is_blocked(probe, call):
    assert_blocked(probe("i386", call))


@pytest.mark.parametrize("call", COMPAT_CALLS)
def test_attack_x32_syscall_is_blocked(probe, call):
    assert_blocked(probe("x32", call))
