"""How each peer of `bench/start_bench.py` is invoked.

Every peer turns a command (a list of strings) into the argv that runs it in a fresh sandbox, once, in the
foreground, and exits with the command's status. The OCI runtimes (crun, runc, runsc) share one bundle
layout, generated here: a read-only rootfs directory in which the host's /usr is bind-mounted read-only and
/bin, /lib, /lib64, /sbin are symlinks into it; user namespace (container root = host root, one id, like
`unshare --map-root-user` and `bwrap --uid 0`) + pid/mount/network/ipc/uts/cgroup namespaces; cgroup limits
equal to airlock's defaults (512 MiB memory without swap, 1 CPU, 256 tasks), inside the benchmark's own
cgroup so that nothing is created elsewhere and everything is removed at the end.

Standard library only: this module is imported by start_bench.py, run with /usr/bin/python3.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

# The environment every launcher gets (plain command included), so no peer pays for a bigger one.
SANDBOX_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": os.environ.get("HOME", "/root")}

# The cgroup-v2 mount that makes this host "hybrid"; crun 1.8 refuses hybrid hosts, so crun runs in a
# private mount namespace where this mount is gone (see Peer.private_cgroupfs).
UNIFIED_MOUNT = "/sys/fs/cgroup/unified"

# airlock's defaults (src/cli/run_options.cc): --memory 512M (no swap), --cpus 1, --pids 256.
LIMIT_MEMORY = 512 * 1024 * 1024
LIMIT_CPU_QUOTA_US, LIMIT_CPU_PERIOD_US = 100_000, 100_000
LIMIT_PIDS = 256


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        text = (out.stdout or out.stderr).strip()
        return text.splitlines()[0] if text else f"(no output, rc={out.returncode})"
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(unknown: {e})"


class Context:
    """Where a run keeps its files and cgroups. One per benchmark run; the worker rebuilds it from a dict."""

    def __init__(self, tmp: str, cgroup_name: str, airlock: str):
        self.tmp = tmp                  # made by start_bench.py (mkdtemp), removed at the end
        self.cgroup_name = cgroup_name  # top-level cgroup (every v1 hierarchy) holding all our cgroups
        self.airlock = airlock

    def to_dict(self) -> dict:
        return {"tmp": self.tmp, "cgroup_name": self.cgroup_name, "airlock": self.airlock}

    @staticmethod
    def from_dict(d: dict) -> "Context":
        return Context(d["tmp"], d["cgroup_name"], d["airlock"])


class Peer:
    key = ""                 # short id used on the command line (--peers) and in JSON
    label = ""               # row label in the tables
    binary = ""              # program looked up on PATH
    private_cgroupfs = False  # run in `unshare -m` with /sys/fs/cgroup/unified unmounted (crun)
    density_default = True   # part of the density measurement by default

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.path = shutil.which(self.binary, path=SANDBOX_ENV["PATH"]) if self.binary else None
        self.error: str | None = None if self.path else f"{self.binary} not found"
        self._n = 0

    # -- description ---------------------------------------------------------------------------------
    def version(self) -> str:
        return _first_line([self.path, "--version"]) if self.path else "not installed"

    def invocation(self) -> str:
        """The exact command line, with CMD standing for the measured command (for README/report)."""
        return " ".join(self.argv(["CMD"], ident="ID"))

    # -- life cycle ----------------------------------------------------------------------------------
    def prepare(self, workloads: dict[str, list[str]]) -> None:
        """Creates whatever files the peer needs for these workloads (called once, before probing)."""

    def next_ident(self, tag: str) -> str:
        self._n += 1
        return f"ab{os.getpid()}-{self.key}-{tag}-{self._n}"

    def argv(self, cmd: list[str], ident: str, workload: str | None = None) -> list[str]:
        raise NotImplementedError

    # density: `sleep` sandboxes started in the background, one launcher process each
    def density_argv(self, cmd: list[str], index: int, ident: str, cgroup_rel: str) -> list[str]:
        return self.argv(cmd, ident)

    def density_ready(self, ident: str, tree: list[dict]) -> bool:
        """Is this sandbox up? tree: the launcher's process and its descendants (host view)."""
        return any(p["comm"] == "sleep" for p in tree)

    # How to stop a density sandbox: a signal to the launcher, or commands (then the launcher exits by
    # itself). Whatever is left after a few seconds gets SIGKILL, by pid.
    stop_signal = signal.SIGTERM

    def stop_argvs(self, ident: str) -> list[list[str]]:
        return []

    def cleanup_argvs(self, ident: str) -> list[list[str]]:
        """Commands to run after the launcher is gone (deleting runtime state); errors are ignored."""
        return []


class Plain(Peer):
    key, label, binary = "plain", "plain command (no isolation)", ""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.error = None

    def version(self):
        return "-"

    def argv(self, cmd, ident, workload=None):
        return list(cmd)


class Unshare(Peer):
    key, label, binary = "unshare", "unshare (namespaces only)", "unshare"
    # The namespaces airlock uses. No rootfs, no /proc remount, no cgroup: the kernel's floor.
    FLAGS = ["--user", "--map-root-user", "--pid", "--fork", "--mount", "--net", "--ipc", "--uts",
             "--cgroup", "--time"]
    # unshare --fork waits for its child and does not pass SIGTERM on; the child is PID 1 of its pid
    # namespace and ignores SIGTERM anyway.
    stop_signal = signal.SIGKILL

    def argv(self, cmd, ident, workload=None):
        return [self.path, *self.FLAGS, "--", *cmd]


class Bubblewrap(Peer):
    key, label, binary = "bwrap", "bubblewrap", "bwrap"
    FLAGS = ["--unshare-all", "--unshare-user", "--uid", "0", "--gid", "0", "--die-with-parent",
             "--ro-bind", "/usr", "/usr",
             "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
             "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/sbin", "/sbin",
             "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]

    def argv(self, cmd, ident, workload=None):
        return [self.path, *self.FLAGS, *cmd]


class Airlock(Peer):
    key, label, binary = "airlock", "**airlock**", ""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.path = ctx.airlock
        if not (os.path.isfile(self.path) and os.access(self.path, os.X_OK)):
            self.error = f"not available: {self.path} does not exist (yet)"
        else:
            self.error = None

    def version(self):
        if self.error:
            return "not available"
        return _first_line([self.path, "--version"])

    def argv(self, cmd, ident, workload=None):
        return [self.path, "run", "--", *cmd]


class Oci(Peer):
    """crun / runc / runsc: `<rt> --root STATE run --bundle BUNDLE ID`, foreground, deleted on exit."""

    global_flags: list[str] = []

    def state_dir(self) -> str:
        return os.path.join(self.ctx.tmp, self.key, "state")

    def bundle_dir(self, name: str) -> str:
        return os.path.join(self.ctx.tmp, self.key, "bundle-" + name)

    def prepare(self, workloads):
        make_rootfs(rootfs_dir(self.ctx))
        os.makedirs(self.state_dir(), mode=0o700, exist_ok=True)
        for name, cmd in workloads.items():
            write_bundle(self.bundle_dir(name), cmd, rootfs_dir(self.ctx),
                         f"/{self.ctx.cgroup_name}/{self.key}-{name}", hostname=self.key)

    def argv(self, cmd, ident, workload=None):
        bundle = self.bundle_dir(workload) if workload else "BUNDLE"
        return [self.path or self.binary, "--root", self.state_dir() if workload else "STATE",
                *self.global_flags, "run", "--bundle", bundle, ident]

    def density_argv(self, cmd, index, ident, cgroup_rel):
        bundle = os.path.join(self.ctx.tmp, self.key, "density", str(index))
        write_bundle(bundle, cmd, rootfs_dir(self.ctx), f"{cgroup_rel}/{self.key}-{index}",
                     hostname=self.key)
        return [self.path, "--root", self.state_dir(), *self.global_flags, "run", "--bundle", bundle, ident]

    # The container's PID 1 (sleep) ignores SIGTERM, so the foreground runtime would never return: ask the
    # runtime to SIGKILL the container; the foreground `run` then returns and deletes the container.
    stop_signal = None

    def stop_argvs(self, ident):
        return [[self.path, "--root", self.state_dir(), *self.global_flags, "kill", ident, "KILL"]]

    def cleanup_argvs(self, ident):
        return [[self.path, "--root", self.state_dir(), *self.global_flags, "delete", "--force", ident]]

    # -- a long-running container to exec into (bench/api_bench.py) --------------------------------------
    # `run -d` starts the workload's bundle in the background and returns once it runs; the container's
    # process inherits the runtime's stdio (give it a private scratch file, never /dev/null or a terminal:
    # the runtimes fchown their stdio to the container's root).
    def run_detached_argv(self, workload: str, ident: str) -> list[str]:
        return [self.path, "--root", self.state_dir(), *self.global_flags, "run", "-d",
                "--bundle", self.bundle_dir(workload), ident]

    def exec_argv(self, ident: str, cmd: list[str]) -> list[str]:
        """`<rt> exec ID CMD`: a new process in the running container, foreground, its exit status."""
        return [self.path, "--root", self.state_dir(), *self.global_flags, "exec", ident, *cmd]

    def state_argv(self, ident: str) -> list[str]:
        return [self.path, "--root", self.state_dir(), *self.global_flags, "state", ident]


class Crun(Oci):
    key, label, binary = "crun", "crun", "crun"
    private_cgroupfs = True


class Runc(Oci):
    key, label, binary = "runc", "runc", "runc"


class Runsc(Oci):
    key, label, binary = "runsc", "runsc (gVisor, ptrace)", "runsc"
    # This Debian build (release 20221219) has the ptrace and kvm platforms only; kvm spins at 100% CPU
    # inside this VM and never starts, so ptrace it is. --network=none: loopback only, like the others.
    global_flags = ["--network=none", "--platform=ptrace"]

    def density_ready(self, ident, tree):
        try:
            out = subprocess.run([self.path, "--root", self.state_dir(), "state", ident],
                                 capture_output=True, text=True, timeout=10)
            return out.returncode == 0 and json.loads(out.stdout).get("status") == "running"
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return False


ALL_PEERS = [Plain, Unshare, Bubblewrap, Crun, Runc, Runsc, Airlock]


def make_peers(ctx: Context, keys: list[str] | None = None) -> list[Peer]:
    peers = [cls(ctx) for cls in ALL_PEERS]
    if keys:
        peers = [p for p in peers if p.key in keys]
    return peers


# -- OCI bundle ---------------------------------------------------------------------------------------

def rootfs_dir(ctx: Context) -> str:
    return os.path.join(ctx.tmp, "rootfs")


def make_rootfs(root: str) -> None:
    """Empty directories for the mount points and the usual merged-/usr symlinks; /usr is bind-mounted."""
    for d in ("usr", "proc", "dev", "sys", "tmp", "etc", "root", "run"):
        os.makedirs(os.path.join(root, d), mode=0o755, exist_ok=True)
    for link, target in (("bin", "usr/bin"), ("lib", "usr/lib"), ("lib64", "usr/lib64"), ("sbin", "usr/sbin")):
        p = os.path.join(root, link)
        if not os.path.islink(p):
            os.symlink(target, p)


def oci_config(cmd: list[str], rootfs: str, cgroups_path: str, hostname: str) -> dict:
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(cmd),
            "env": [f"PATH={SANDBOX_ENV['PATH']}"],
            "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": hostname,
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]},
            {"destination": "/usr", "type": "bind", "source": "/usr", "options": ["rbind", "ro", "nosuid", "nodev"]},
        ],
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 0, "size": 1}],
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "user", "mount", "cgroup")],
            "cgroupsPath": cgroups_path,
            "resources": {
                "memory": {"limit": LIMIT_MEMORY, "swap": LIMIT_MEMORY},
                "cpu": {"quota": LIMIT_CPU_QUOTA_US, "period": LIMIT_CPU_PERIOD_US},
                "pids": {"limit": LIMIT_PIDS},
                "devices": [{"allow": False, "access": "rwm"}],
            },
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                            "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def write_bundle(bundle: str, cmd: list[str], rootfs: str, cgroups_path: str, hostname: str) -> None:
    os.makedirs(bundle, mode=0o755, exist_ok=True)
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(oci_config(cmd, rootfs, cgroups_path, hostname), f, indent=1)
