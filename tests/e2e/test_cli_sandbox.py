"""`airlock sandbox create|ls|get|rm|timeout` against a real daemon, and how the CLI finds the daemon
(flags, environment, config file, unix socket) and reports its errors."""
import json
import os
import socket

from test_cli_support import SANDBOX_ID, airlock_cli_bin, box, cli  # noqa: F401 (fixtures)


def test_create_get_rm(cli):
    sid = cli.create("--cpu", "0.5", "--memory", "256m", "--disk", "512m", "--pids", "64", "--timeout", "10m",
                     "--idle-timeout", "600", "-e", "A=1", "--label", "owner=e2e", "-w", "/tmp/work")
    try:
        got = json.loads(cli.ok("sandbox", "get", sid, "--json").stdout)
        assert got["sandbox_id"] == sid and got["state"] == "running"
        assert got["cpu"] == 0.5 and got["memory_mb"] == 256 and got["disk_mb"] == 512 and got["pids"] == 64
        assert got["timeout"] == 600 and got["idle_timeout"] == 600 and got["workdir"] == "/tmp/work"
        assert got["metadata"] == {"owner": "e2e"}
        human = cli.ok("sandbox", "get", sid).stdout.decode()
        assert sid in human and "running" in human and "256 MiB" in human and "owner=e2e" in human
        # the env reached the sandbox (and is never echoed back by the API)
        assert cli.ok("exec", sid, "--", "sh", "-c", "echo $A; pwd").stdout == b"1\n/tmp/work\n"
    finally:
        r = cli.ok("sandbox", "rm", sid)
        assert r.stdout.decode().split() == [sid]
    assert json.loads(cli.ok("sandbox", "get", sid, "--json").stdout)["state"] == "terminated"


def test_create_json(cli):
    r = cli.ok("sandbox", "create", "--json", "--label", "kind=json")
    sandbox = json.loads(r.stdout)
    try:
        assert SANDBOX_ID.match(sandbox["sandbox_id"]) and sandbox["state"] == "running"
    finally:
        cli.ok("sandbox", "rm", sandbox["sandbox_id"])


def test_rm_is_idempotent(cli):
    sid = cli.create()
    assert cli.ok("sandbox", "rm", sid).returncode == 0
    assert cli.ok("sandbox", "rm", sid).returncode == 0              # already terminated
    assert cli.ok("sandbox", "rm", "sb-0000000000000000").returncode == 0  # never existed: gone all the same


def test_ls_filters_and_follows_pages(cli):
    ids = [cli.create("--label", "batch=ls-pages", "--label", f"n={i}") for i in range(3)]
    try:
        listed = json.loads(cli.ok("sandbox", "ls", "--label", "batch=ls-pages", "--page-size", "2", "--json").stdout)
        assert sorted(s["sandbox_id"] for s in listed) == sorted(ids)
        one = json.loads(cli.ok("sandbox", "ls", "--label", "batch=ls-pages", "--label", "n=1", "--json").stdout)
        assert [s["sandbox_id"] for s in one] == [ids[1]]
        table = cli.ok("sandbox", "ls", "--label", "batch=ls-pages", "--page-size", "1").stdout.decode().splitlines()
        assert table[0].split()[:3] == ["SANDBOX", "ID", "STATE"]
        assert sorted(line.split()[0] for line in table[1:]) == sorted(ids)
        assert all("running" in line and "batch=ls-pages" in line for line in table[1:])
        cli.ok("sandbox", "rm", ids[0])
        running = json.loads(cli.ok("sandbox", "ls", "--label", "batch=ls-pages", "--json").stdout)
        assert ids[0] not in [s["sandbox_id"] for s in running]  # terminated ones are hidden by default
        ended = json.loads(cli.ok("sandbox", "ls", "--label", "batch=ls-pages", "--state", "terminated", "--json").stdout)
        assert [s["sandbox_id"] for s in ended] == [ids[0]]
    finally:
        cli.run("sandbox", "rm", *ids)


def test_timeout_set_and_extend(cli, box):
    r = cli.ok("sandbox", "timeout", box, "600")
    assert box in r.stdout.decode() and "expires at" in r.stdout.decode()
    before = json.loads(cli.ok("sandbox", "get", box, "--json").stdout)["expires_at"]
    cli.ok("sandbox", "timeout", box, "+60")
    after = json.loads(cli.ok("sandbox", "get", box, "--json").stdout)["expires_at"]
    assert after > before


def test_api_errors_are_printed_with_their_code(cli):
    r = cli.run("sandbox", "get", "sb-0000000000000000")
    assert r.returncode == 125 and r.stdout == b""
    assert r.stderr.decode().startswith("airlock: ") and r.stderr.decode().rstrip().endswith("(sandbox_not_found)")

    r = cli.run("sandbox", "ls", env=cli.env(AIRLOCK_API_KEY="alk_" + "x" * 43))
    assert r.returncode == 125 and "(unauthenticated)" in r.stderr.decode()

    r = cli.run("sandbox", "ls", env=cli.env(AIRLOCK_API_KEY=None))
    assert r.returncode == 125 and "(unauthenticated)" in r.stderr.decode()

    r = cli.run("sandbox", "create", "--template", "no-such-template")
    assert r.returncode == 125 and "(unknown_template)" in r.stderr.decode()

    r = cli.run("sandbox", "timeout", "sb-0000000000000000", "60")
    assert r.returncode == 125 and "(sandbox_not_found)" in r.stderr.decode()


def test_usage_errors(cli):
    for args in (["sandbox"], ["sandbox", "nope"], ["sandbox", "get"], ["sandbox", "create", "--memory", "lots"],
                 ["sandbox", "create", "--label", "novalue"], ["sandbox", "timeout", "sb-x", "soon"], ["frobnicate"]):
        r = cli.run(*args)
        assert r.returncode == 125, (args, r)
        assert r.stderr.startswith(b"airlock: ") or b"usage" in r.stderr, (args, r)
    assert cli.ok("sandbox", "--help").stdout.startswith(b"usage: airlock sandbox")
    assert b"--label" in cli.ok("sandbox", "create", "--help").stdout


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_daemon(cli):
    r = cli.run("sandbox", "ls", env=cli.env(AIRLOCK_URL=f"http://127.0.0.1:{free_port()}"))
    assert r.returncode == 125 and b"cannot reach the daemon" in r.stderr
    r = cli.run("sandbox", "ls", env=cli.env(AIRLOCK_URL="https://127.0.0.1:1"))
    assert r.returncode == 125 and b"invalid daemon url" in r.stderr


def test_address_and_key_from_flags(cli, box):
    bare = cli.env(AIRLOCK_URL=None, AIRLOCK_API_KEY=None)
    # global, before the verb
    r = cli.run("--url", cli.url, "--api-key", cli.key, "sandbox", "get", box, env=bare)
    assert r.returncode == 0 and box.encode() in r.stdout
    # on the verb, overriding the environment
    wrong = cli.env(AIRLOCK_URL=f"http://127.0.0.1:{free_port()}", AIRLOCK_API_KEY="alk_wrong")
    r = cli.run("sandbox", "get", box, f"--url={cli.url}", "--api-key", cli.key, env=wrong)
    assert r.returncode == 0, r
    r = cli.run("exec", "--url", cli.url, "--api-key", cli.key, box, "--", "true", env=wrong)
    assert r.returncode == 0, r


def test_config_file_and_unix_socket(cli, box, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"url": f"unix:{cli.daemon.socket_path}", "api_key": cli.key}))
    env = cli.env(AIRLOCK_URL=None, AIRLOCK_API_KEY=None, AIRLOCK_CONFIG=str(config))
    r = cli.run("exec", box, "--", "echo", "via-unix", env=env)
    assert r.returncode == 0 and r.stdout == b"via-unix\n", r

    # the default location under HOME
    home = tmp_path / "home"
    (home / ".config" / "airlock").mkdir(parents=True)
    (home / ".config" / "airlock" / "config.json").write_text(json.dumps({"url": cli.url, "api_key": cli.key}))
    env = cli.env(AIRLOCK_URL=None, AIRLOCK_API_KEY=None, HOME=str(home))
    assert cli.run("sandbox", "get", box, env=env).returncode == 0

    # an explicitly named file that is missing or broken is an error
    env = cli.env(AIRLOCK_URL=None, AIRLOCK_API_KEY=None, AIRLOCK_CONFIG=str(tmp_path / "missing.json"))
    r = cli.run("sandbox", "ls", env=env)
    assert r.returncode == 125 and b"config file" in r.stderr
    config.write_text("{not json")
    env = cli.env(AIRLOCK_URL=None, AIRLOCK_API_KEY=None, AIRLOCK_CONFIG=str(config))
    assert cli.run("sandbox", "ls", env=env).returncode == 125
