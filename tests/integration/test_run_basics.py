"""`airlock run` basics: exit codes, stdio, environment, working directory, identity, /etc, --json.

Every test drives the real binary through the `run` fixture (tests/conftest.py). Stdin is always given
explicitly (input=...) so that no test ever reads the terminal pytest was started from.
"""
import hashlib
import json
import os
import subprocess
import uuid

import pytest

DEFAULT_ENV_KEYS = {"PATH", "HOME", "LANG"}


def env_of(stdout):
    """`env` output -> dict (values may contain '=')."""
    out = {}
    for line in stdout.splitlines():
        line = line.rstrip("\r")
        if "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out


def json_line(stderr):
    """The one JSON line --json prints to stderr (after any "airlock:" messages)."""
    lines = [line for line in stderr.splitlines() if line.startswith("{")]
    assert len(lines) == 1, f"expected exactly one JSON line on stderr, got {len(lines)}:\n{stderr}"
    return json.loads(lines[0])


def field(report, *words):
    """The value of the one key whose name contains all `words` (e.g. "wall", "time")."""
    keys = [k for k in report if all(w in k for w in words)]
    assert keys, f"no field with {words} in its name: {sorted(report)}"
    return report[keys[0]]


# --- exit codes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_exit_code_is_the_commands_own(run, code):
    r = run(cmd=["sh", "-c", f"exit {code}"], input="")
    assert r.returncode == code, r.stderr
    assert "Traceback" not in r.stderr


def test_command_killed_by_a_signal_exits_128_plus_signal(run):
    r = run(cmd=["sh", "-c", "kill -TERM $$"], input="")
    assert r.returncode == 128 + 15, r.stderr


def test_command_killed_by_sigkill_exits_137_with_a_message(run):
    r = run("--json", cmd=["sh", "-c", "kill -KILL $$"], input="")
    assert r.returncode == 137, r.stderr
    assert any(line.startswith("airlock:") and "kill" in line for line in r.stderr.splitlines()), r.stderr
    report = json_line(r.stderr)
    assert report["exit_code"] == 137
    assert report["reason"] == "killed"
    assert report["signal"] not in (None, 0, "")


def test_true_and_false(run):
    assert run(cmd=["true"], input="").returncode == 0
    assert run(cmd=["false"], input="").returncode == 1


# --- stdout / stderr ---------------------------------------------------------------------------------


def test_stdout_and_stderr_stay_separate(run):
    r = run(cmd=["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"], input="")
    assert r.returncode == 0
    assert r.stdout == "to-out\nmore-out\n"
    assert "to-err\n" in r.stderr
    assert "to-out" not in r.stderr
    assert "to-err" not in r.stdout


def test_large_stdout_and_stderr_arrive_intact(run):
    # 2 MB on each stream, interleaved: both relays must keep draining or the command blocks.
    script = (
        "import sys\n"
        "for i in range(2000):\n"
        "    sys.stdout.write('o%04d' % i + 'x' * 995 + '\\n')\n"
        "    sys.stderr.write('e%04d' % i + 'y' * 995 + '\\n')\n"
    )
    r = run(cmd=["python3", "-c", script], input="")
    assert r.returncode == 0, r.stderr[-500:]
    out_lines = r.stdout.splitlines()
    err_lines = [l for l in r.stderr.splitlines() if l.startswith("e")]
    assert out_lines == ["o%04d" % i + "x" * 995 for i in range(2000)]
    assert err_lines == ["e%04d" % i + "y" * 995 for i in range(2000)]


# --- stdin -------------------------------------------------------------------------------------------


def test_without_i_stdin_is_dev_null(run):
    r = run(cmd=["sh", "-c", "readlink /proc/self/fd/0; cat; echo end"], input="secret input\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/dev/null\nend\n"


def test_with_i_stdin_is_forwarded_until_eof(run):
    r = run("-i", cmd=["sh", "-c", "cat; echo end"], input="line one\nline two\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "line one\nline two\nend\n"


def test_with_i_large_stdin_arrives_intact(run):
    data = "".join(f"{i:08d}\n" for i in range(200_000))  # 1.8 MB
    r = run("-i", cmd=["sh", "-c", "cat | md5sum; echo done"], input=data, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[0] == hashlib.md5(data.encode()).hexdigest()


def test_with_i_command_that_stops_reading_early(run):
    r = run("-i", cmd=["head", "-c", "5"], input="z" * 5_000_000, timeout=60)
    assert (r.returncode, r.stdout) == (0, "zzzzz"), r.stderr


def test_with_i_command_that_writes_before_reading_does_not_deadlock(run):
    # The command writes 1 MB before it reads its 1 MB of stdin. A relay that blocks writing the
    # command's stdin (pipe full, nobody reading yet) stops draining its stdout: both sides wait forever.
    script = (
        "import sys\n"
        "sys.stdout.write('x' * 1000000); sys.stdout.flush()\n"
        "print(len(sys.stdin.read()))\n"
    )
    try:
        # Moving 2 MB takes milliseconds; 10 s is only there to turn a hang into a failure.
        r = run("-i", cmd=["python3", "-c", script], input="y" * 1_000_000, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("airlock run -i deadlocked: the command blocks writing stdout while airlock blocks "
                    "writing the command's stdin")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "x" * 1_000_000 + "1000000\n"


# --- environment -------------------------------------------------------------------------------------


def test_default_environment_is_minimal(run):
    host_env = dict(os.environ, AIRLOCK_TEST_SECRET="must-not-leak", TERM="xterm")
    r = run(cmd=["env"], input="", env=host_env)
    assert r.returncode == 0, r.stderr
    env = env_of(r.stdout)
    assert set(env) == DEFAULT_ENV_KEYS, env
    assert "/usr/bin" in env["PATH"].split(":") and "/bin" in env["PATH"].split(":")
    assert env["HOME"] == "/root"
    assert env["LANG"]


def test_tty_adds_term(run):
    host_env = dict(os.environ, TERM="xterm-airlock-test")
    r = run("-t", cmd=["env"], input="", env=host_env)
    assert r.returncode == 0, r.stderr
    env = env_of(r.stdout)
    assert set(env) == DEFAULT_ENV_KEYS | {"TERM"}, env
    assert env["TERM"] == "xterm-airlock-test"


def test_env_flags_add_and_override(run):
    r = run("-e", "FOO=bar", "--env", "EQ=a=b=c", "-e", "HOME=/tmp", "-e", "EMPTY=", cmd=["env"], input="")
    assert r.returncode == 0, r.stderr
    env = env_of(r.stdout)
    assert env["FOO"] == "bar"
    assert env["EQ"] == "a=b=c"
    assert env["HOME"] == "/tmp"
    assert env["EMPTY"] == ""
    assert "PATH" in env and "LANG" in env


def test_env_later_flag_wins(run):
    r = run("-e", "K=first", "-e", "K=second", cmd=["sh", "-c", 'echo "$K"'], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "second\n"


# --- working directory, hostname, network ------------------------------------------------------------


def test_default_workdir_is_root(run):
    r = run(cmd=["pwd"], input="")
    assert (r.returncode, r.stdout) == (0, "/root\n"), r.stderr


def test_workdir_flag(run):
    r = run("-w", "/tmp", cmd=["pwd"], input="")
    assert (r.returncode, r.stdout) == (0, "/tmp\n"), r.stderr
    r = run("--workdir", "/usr/bin", cmd=["pwd"], input="")
    assert (r.returncode, r.stdout) == (0, "/usr/bin\n"), r.stderr


def test_hostname_is_sandbox(run):
    r = run(cmd=["sh", "-c", "hostname; cat /proc/sys/kernel/hostname"], input="")
    assert (r.returncode, r.stdout) == (0, "sandbox\nsandbox\n"), r.stderr


def test_network_is_loopback_only(run):
    script = (
        "import socket\n"
        "names = [l.split(':')[0].strip() for l in open('/proc/net/dev').read().splitlines()[2:]]\n"
        "print('ifaces', ','.join(sorted(names)))\n"
        "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()\n"
        "c = socket.create_connection(srv.getsockname(), timeout=5); s, _ = srv.accept()\n"
        "c.sendall(b'ping'); print('loopback', s.recv(4).decode())\n"
        "try:\n"
        "    socket.create_connection(('192.0.2.1', 80), timeout=5); print('outside reachable')\n"
        "except OSError as e:\n"
        "    print('outside unreachable')\n"
    )
    r = run(cmd=["python3", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "ifaces lo\nloopback ping\noutside unreachable\n"


# --- the image: /usr from the host, synthetic /etc, empty writable dirs ------------------------------


def test_host_usr_tools_work(run):
    r = run(cmd=["sh", "-c", "command -v python3; ls /usr/bin/env >/dev/null && echo ls-ok; echo a b | wc -w"],
            input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/usr/bin/python3\nls-ok\n2\n"


def test_python3_works(run):
    script = "import sys, json, hashlib, sqlite3; print(sys.executable, json.dumps({'ok': 1}))"
    r = run(cmd=["python3", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout == '/usr/bin/python3 {"ok": 1}\n'


def test_writes_to_usr_never_reach_the_host(run):
    name = f"/usr/airlock-test-{uuid.uuid4().hex}"
    r = run(cmd=["sh", "-c", f"touch {name} 2>/dev/null; echo done"], input="")
    assert r.returncode == 0, r.stderr
    assert not os.path.exists(name)


def test_etc_is_synthetic(run):
    r = run(cmd=["sh", "-c",
                 "for f in passwd group hosts resolv.conf nsswitch.conf; do echo \"== $f\"; cat /etc/$f; done; "
                 "echo '== ls'; ls -A /etc"], input="")
    assert r.returncode == 0, r.stderr
    sections = {}
    for chunk in r.stdout.split("== ")[1:]:
        name, _, body = chunk.partition("\n")
        sections[name] = body

    passwd = [line.split(":") for line in sections["passwd"].splitlines()]
    assert any(p[0] == "root" and p[2] == "0" for p in passwd), sections["passwd"]
    assert any(p[2] == "1000" for p in passwd), sections["passwd"]
    group = [line.split(":") for line in sections["group"].splitlines()]
    assert any(g[0] == "root" and g[2] == "0" for g in group), sections["group"]
    assert "localhost" in sections["hosts"]
    assert "hosts:" in sections["nsswitch.conf"]

    # None of the host's files: the contract files differ from the host's, host-only users are
    # absent, and host-only files are not there at all.
    for name in ("passwd", "group", "hosts", "resolv.conf", "nsswitch.conf"):
        host = f"/etc/{name}"
        if os.path.isfile(host):
            with open(host) as f:
                assert sections[name] != f.read(), f"/etc/{name} inside is the host's"
    inside_users = {p[0] for p in passwd}
    with open("/etc/passwd") as f:
        host_only = {line.split(":")[0] for line in f if line.strip()} - {"root", "nobody", "user"}
    assert not (inside_users & host_only), f"host users leaked: {inside_users & host_only}"
    inside_entries = set(sections["ls"].split())
    for host_only_file in ("debian_version", "fstab", "machine-id", "apt", "ssh", "sudoers", "crontab",
                           "environment", "bash.bashrc", "profile", "gshadow", "subuid"):
        if os.path.exists(f"/etc/{host_only_file}"):
            assert host_only_file not in inside_entries, f"/etc/{host_only_file} is the host's"


def test_root_tmp_home_are_empty_and_writable(run):
    script = (
        "for d in /root /tmp; do echo \"$d:$(ls -A $d | tr '\\n' ' ')\"; done; "
        "echo \"/home:$(ls -A /home | tr '\\n' ' ')\"; "
        "for d in /root /tmp /home; do echo hi > $d/probe && cat $d/probe; done"
    )
    r = run(cmd=["sh", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "/root:", lines
    assert lines[1] == "/tmp:", lines
    # /home holds nothing of the host; at most the home of the image's own user 1000.
    assert lines[2].split(":", 1)[1].split() in ([], ["user"]), lines
    assert lines[3:] == ["hi", "hi", "hi"]


def test_writable_layer_is_private_to_each_run(run):
    r = run(cmd=["sh", "-c", "echo one > /root/f; echo one > /tmp/f"], input="")
    assert r.returncode == 0, r.stderr
    r = run(cmd=["sh", "-c", "ls -A /root /tmp"], input="")
    assert r.returncode == 0, r.stderr
    assert "f" not in r.stdout.split()


# --- identity ----------------------------------------------------------------------------------------


def test_default_user_is_root_of_its_own_namespace_without_host_privilege(run):
    r = run(cmd=["sh", "-c", "id -u; id -g; id -un; cat /proc/self/uid_map /proc/self/gid_map"], input="")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:3] == ["0", "0", "root"]
    for mapping in lines[3:]:
        inside, outside, count = (int(x) for x in mapping.split())
        assert inside == 0 and count >= 1
        assert outside != 0, "host root is mapped into the sandbox"
        assert not (outside <= 0 < outside + count)


def test_user_flag(run):
    r = run("--user", "1000", cmd=["sh", "-c", "id -u; id -g; id -un; touch /root/x 2>/dev/null || echo denied"],
            input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1000", "1000", "user", "denied"]


def test_user_flag_with_group(run):
    r = run("--user", "1000:100", cmd=["sh", "-c", "id -u; id -g"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["1000", "100"]


def test_user_without_passwd_entry(run):
    r = run("--user", "4242", cmd=["sh", "-c", "id -u; id -g; echo hi > /tmp/ok && cat /tmp/ok"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["4242", "4242", "hi"]


def _caps(stdout):
    return {line.split(":")[0]: int(line.split()[1], 16) for line in stdout.splitlines() if line.startswith("Cap")}


def test_non_root_user_has_no_capabilities(run):
    r = run("--user", "1000", cmd=["grep", "^Cap", "/proc/self/status"], input="")
    assert r.returncode == 0, r.stderr
    caps = _caps(r.stdout)
    assert caps["CapEff"] == 0 and caps["CapPrm"] == 0, r.stdout


def test_cap_drop_all(run):
    r = run(cmd=["grep", "^Cap", "/proc/self/status"], input="")
    assert r.returncode == 0, r.stderr
    assert _caps(r.stdout)["CapEff"] != 0, "root inside should keep its default in-namespace capabilities"
    r = run("--cap-drop", "ALL", cmd=["sh", "-c", "id -u; grep ^Cap /proc/self/status"], input="")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "0"
    caps = _caps(r.stdout)
    assert caps["CapEff"] == 0 and caps["CapPrm"] == 0 and caps["CapBnd"] == 0, r.stdout


# --- --json ------------------------------------------------------------------------------------------


def test_json_report_after_normal_exit(run):
    r = run("--json", cmd=["sh", "-c", "echo out; exit 3"], input="")
    assert r.returncode == 3
    assert r.stdout == "out\n", "the JSON line must go to stderr, not stdout"
    assert r.stderr.endswith("\n")
    report = json_line(r.stderr)
    assert r.stderr.splitlines()[-1].startswith("{"), "the JSON line comes after the command's own output"
    assert report["exit_code"] == 3
    assert report["reason"] == "exited"
    assert report["signal"] in (None, 0)
    wall = field(report, "wall")
    cpu = field(report, "cpu")
    peak = field(report, "peak")
    for value in (wall, cpu, peak):
        assert isinstance(value, (int, float)) and value >= 0, report
    assert wall > 0
    assert peak > 0, "a shell uses some memory"


def test_json_cpu_time_counts_the_work(run):
    script = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    r = run("--json", cmd=["python3", "-c", script], input="")
    assert r.returncode == 0, r.stderr
    report = json_line(r.stderr)
    cpu, wall = field(report, "cpu"), field(report, "wall")
    # Units are whatever the field name says (e.g. _ms); 0.3 s of work must show as more than
    # a tenth of the wall time, and never more than both cores for the whole run.
    assert 0.1 * wall < cpu <= 2.5 * wall, report


def test_no_json_without_flag(run):
    r = run(cmd=["sh", "-c", "exit 0"], input="")
    assert r.returncode == 0
    assert "{" not in r.stderr
