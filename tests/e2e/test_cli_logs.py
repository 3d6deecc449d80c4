"""`airlock logs [-f]`: process output on stdout and stderr as it was produced, lifecycle events on
stderr, JSON lines with --json, and -f following the log until the sandbox ends."""
import json
import subprocess
import time

from test_cli_support import airlock_cli_bin, cli  # noqa: F401 (fixtures)


def test_logs(cli):
    sid = cli.create("--label", "suite=cli-logs")
    try:
        cli.ok("exec", sid, "--", "sh", "-c", r"echo to-out; echo to-err >&2; printf '\001\377'")
        r = cli.ok("logs", sid)
        assert r.stdout == b"to-out\n\x01\xff"
        assert b"to-err\n" in r.stderr and b"started: " in r.stderr and b"process_exited" in r.stderr
        lines = [json.loads(line) for line in cli.ok("logs", "--json", sid).stdout.splitlines()]
        assert {e["type"] for e in lines} >= {"lifecycle", "stdout", "stderr"}
        only_out = cli.ok("logs", "--type", "stdout", sid)
        assert only_out.stdout == b"to-out\n\x01\xff" and only_out.stderr == b""
    finally:
        cli.ok("sandbox", "rm", sid)


def test_logs_follow(cli):
    sid = cli.create()
    p = subprocess.Popen([cli.binary, "logs", "-f", sid], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=cli.env())
    try:
        time.sleep(0.5)
        cli.ok("exec", sid, "--", "echo", "live-line")
        assert p.stdout.readline() == b"live-line\n"
        cli.ok("sandbox", "rm", sid)  # the final lifecycle entry ends the stream
        assert p.wait(30) == 0
        assert b"terminated" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
        p.wait()
        cli.run("sandbox", "rm", sid)


def test_logs_errors(cli):
    r = cli.run("logs", "sb-0000000000000000")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
    r = cli.run("logs", "-f", "sb-0000000000000000")
    assert r.returncode == 125 and r.stderr.rstrip().endswith(b"(sandbox_not_found)")
