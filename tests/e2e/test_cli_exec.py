"""`airlock exec` against a real daemon: output streamed as produced, stdout and stderr kept apart,
exact bytes, the command's exit status passed through, stdin with -i, a terminal with -t."""
import hashlib
import os
import subprocess
import time

from test_cli_support import airlock_cli_bin, box, cli  # noqa: F401 (fixtures)


def test_stdout_stderr_and_exit_code(cli, box):
    r = cli.run("exec", box, "--", "sh", "-c", "echo out; echo err >&2; echo more; exit 7")
    assert r.returncode == 7
    assert r.stdout == b"out\nmore\n"
    assert r.stderr == b"err\n"


def test_exit_status_passthrough(cli, box):
    assert cli.run("exec", box, "--", "true").returncode == 0
    assert cli.run("exec", box, "--", "sh", "-c", "exit 255").returncode == 255
    assert cli.run("exec", box, "--", "sh", "-c", "kill -TERM $$").returncode == 143  # 128 + SIGTERM
    assert cli.run("exec", box, "--", "sh", "-c", "kill -KILL $$").returncode == 137
    r = cli.run("exec", box, "--", "no-such-command-anywhere")
    assert r.returncode == 127 and r.stderr.startswith(b"airlock: ")
    r = cli.run("exec", box, "--", "/etc/hostname")
    assert r.returncode == 126


def test_timeout_is_124(cli, box):
    t0 = time.monotonic()
    r = cli.run("exec", "--timeout", "0.5", box, "--", "sleep", "30")
    assert r.returncode == 124 and b"timed out" in r.stderr
    assert time.monotonic() - t0 < 15


def test_no_default_timeout(cli, box):
    # commands/stream defaults to 60 s; exec asks for none (the sandbox's lifetime bounds it)
    r = cli.run("exec", box, "--", "sh", "-c", "sleep 1; echo done")
    assert r.returncode == 0 and r.stdout == b"done\n"


def test_binary_output_is_exact(cli, box):
    r = cli.run("exec", box, "--", "sh", "-c", r"printf '\000\377\001\200\n\303'; printf '\376' >&2")
    assert r.returncode == 0
    assert r.stdout == b"\x00\xff\x01\x80\n\xc3" and r.stderr == b"\xfe"


def test_large_output(cli, box):
    r = cli.run("exec", box, "--", "seq", "1", "300000")
    assert r.returncode == 0
    assert r.stdout == "".join(f"{i}\n" for i in range(1, 300001)).encode()


def test_output_streams_before_exit(cli, box):
    p = subprocess.Popen([cli.binary, "exec", box, "--", "sh", "-c", "echo first; sleep 3; echo second"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env())
    try:
        t0 = time.monotonic()
        assert p.stdout.readline() == b"first\n"
        assert time.monotonic() - t0 < 2.5, "the first line waited for the command to end"
        assert p.stdout.readline() == b"second\n"
        assert p.wait(30) == 0
    finally:
        p.kill()
        p.wait()


def test_env_workdir_user(cli, box):
    r = cli.run("exec", "-e", "GREETING=hi there", "-w", "/tmp", "-u", "1000:1001", box, "--",
                "sh", "-c", 'echo "$GREETING"; pwd; id -u; id -g')
    assert r.returncode == 0, r
    assert r.stdout == b"hi there\n/tmp\n1000\n1001\n"
    r = cli.run("exec", "-e", "FROM_HOST", box, "--", "sh", "-c", 'echo "$FROM_HOST"', env=cli.env(FROM_HOST="copied"))
    assert r.stdout == b"copied\n"


def test_stdin_with_i(cli, box):
    data = os.urandom(300_000)
    r = cli.run("exec", "-i", box, "--", "sha256sum", input=data)
    assert r.returncode == 0, r
    assert r.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()
    r = cli.run("exec", "-i", box, "--", "sh", "-c", "read line; echo got:$line; echo e >&2; exit 5", input=b"abc\n")
    assert r.returncode == 5 and r.stdout == b"got:abc\n" and r.stderr == b"e\n"
    # without -i the command's stdin is empty
    r = cli.run("exec", box, "--", "cat", input=b"ignored")
    assert r.returncode == 0 and r.stdout == b""


def test_stdin_from_a_file(cli, box, tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"line1\nline2\n")
    with open(path, "rb") as f:
        r = cli.run("exec", "-i", box, "--", "wc", "-l", stdin=f)
    assert r.returncode == 0 and r.stdout.strip() == b"2"


def test_interactive_exit_status_and_signals(cli, box):
    r = cli.run("exec", "-i", box, "--", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 143
    p = subprocess.Popen([cli.binary, "exec", "-i", box, "--", "sh", "-c", "trap 'echo caught; exit 9' INT; echo ready; "
                          "while :; do sleep 0.1; done"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env())
    try:
        assert p.stdout.readline() == b"ready\n"
        p.send_signal(2)  # SIGINT is forwarded to the command, which decides
        assert p.wait(20) == 9
        assert p.stdout.read() == b"caught\n"
    finally:
        p.kill()
        p.wait()


def test_tty(cli, box):
    r = cli.run("exec", "-t", box, "--", "sh", "-c", "tty; echo err >&2; exit 4")
    assert r.returncode == 4
    # one terminal: both streams arrive on stdout, with the terminal's line endings
    assert r.stdout.startswith(b"/dev/pts/") and b"err\r\n" in r.stdout and r.stderr == b""


def test_closed_stdout_ends_like_a_pipe(cli, box):
    p = subprocess.Popen(f"'{cli.binary}' exec {box} -- yes | head -1", shell=True, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=cli.env(), executable="/bin/bash")
    out, err = p.communicate(timeout=30)
    assert out == b"y\n" and err == b""


def test_exec_errors(cli, box):
    r = cli.run("exec", "sb-0000000000000000", "--", "true")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
    r = cli.run("exec", "-i", "sb-0000000000000000", "--", "true")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
    r = cli.run("exec", box, "true")
    assert r.returncode == 125 and b"missing \"--\"" in r.stderr
    r = cli.run("exec", box, "--")
    assert r.returncode == 125
    r = cli.run("exec", "-u", "nosuchuser", box, "--", "true")
    assert r.returncode == 125 and b"(unknown_user)" in r.stderr
    r = cli.run("exec", "--timeout", "soon", box, "--", "true")
    assert r.returncode == 125 and b"--timeout" in r.stderr
