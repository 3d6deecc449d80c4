"""Sandbox lifecycle through the SDK: create (every option), connect, list (all pages, filters), get_info,
set/extend timeout, kill, the context manager, URLs (env defaults, unix socket) and typed errors."""
import datetime
import uuid

import pytest

import airlock
from airlock import errors
from sdk_helpers import wait_until


def test_create_runs_and_round_trips_every_option(new_sandbox):
    label = uuid.uuid4().hex[:12]
    sb = new_sandbox(template="host", timeout=600, cpu=0.5, memory="256M", disk=300, pids=64,
                     env={"GREETING": "hello", "EMPTY": ""}, metadata={"suite": "sdk", "run": label},
                     idle_timeout=120, workdir="/tmp/work")
    assert sb.sandbox_id.startswith("sb-") and len(sb.sandbox_id) == 19
    info = sb.get_info()
    assert isinstance(info, airlock.SandboxInfo)
    assert info.sandbox_id == sb.sandbox_id and info.state == "running" and info.is_running
    assert info.template == "host" and info.timeout == 600 and info.idle_timeout == 120
    assert info.cpu == 0.5 and info.memory_mb == 256 and info.disk_mb == 300 and info.pids == 64
    assert info.workdir == "/tmp/work"
    assert info.metadata == {"suite": "sdk", "run": label}
    assert info.network == {"mode": "none", "allow_out": [], "deny_out": [], "bandwidth_mbps": None, "ipv4": None, "ipv6": None}
    assert "env" not in info.raw  # never echoed back
    assert isinstance(info.created_at, datetime.datetime) and info.created_at.tzinfo is not None
    assert info.expires_at > info.created_at
    assert isinstance(info.usage, airlock.Usage)
    # env reaches commands; workdir is the default cwd
    result = sb.commands.run('printf "%s|%s|" "$GREETING" "${EMPTY-unset}"; pwd')
    assert result.stdout == "hello||/tmp/work\n", result
    assert sb.is_running()


def test_memory_and_disk_accept_sizes(new_sandbox):
    sb = new_sandbox(memory="1G", disk="0.5GiB")
    info = sb.get_info()
    assert info.memory_mb == 1024 and info.disk_mb == 512


def test_create_reads_url_and_key_from_the_environment(sdk_env):
    with airlock.Sandbox.create(timeout=60) as sb:
        assert sb.api_url == sdk_env.url
        assert sb.commands.run("echo env-default").stdout == "env-default\n"
    assert airlock.Sandbox.get_info(sb.sandbox_id).state == "terminated"


def test_unix_socket_url(daemon):
    with airlock.Sandbox.create(timeout=60, api_url=daemon.unix_url, api_key=daemon.admin_key) as sb:
        assert sb.api_url == daemon.unix_url
        assert sb.commands.run(["echo", "over a unix socket"]).stdout == "over a unix socket\n"
        other = airlock.Sandbox.connect(sb.sandbox_id, api_url=daemon.url, api_key=daemon.admin_key)
        assert other.get_info().state == "running"


def test_url_with_v1_suffix_is_accepted(daemon):
    with airlock.Sandbox.create(timeout=60, api_url=daemon.url + "/v1/", api_key=daemon.admin_key) as sb:
        assert sb.get_info().state == "running"


def test_connect_by_id_shares_the_sandbox(new_sandbox, api):
    sb = new_sandbox()
    sb.commands.run("echo shared > /tmp/marker")
    again = airlock.Sandbox.connect(sb.sandbox_id, **api)
    assert again.sandbox_id == sb.sandbox_id
    assert again.info is not None and again.info.state == "running"
    assert again.commands.run("cat /tmp/marker").stdout == "shared\n"


def test_context_manager_kills_on_exit_even_on_error(api):
    with pytest.raises(RuntimeError):
        with airlock.Sandbox.create(timeout=60, **api) as sb:
            assert sb.is_running()
            raise RuntimeError("boom")
    info = airlock.Sandbox.connect(sb.sandbox_id, **api).get_info()
    assert info.state == "terminated" and not info.is_running
    assert not sb.is_running()


def test_kill_is_idempotent_and_works_on_the_class(api):
    sb = airlock.Sandbox.create(timeout=60, **api)
    assert sb.kill() is True
    assert sb.info.state == "terminated"
    assert sb.kill() is True  # terminating a terminated sandbox returns its record again
    other = airlock.Sandbox.create(timeout=60, **api)
    assert airlock.Sandbox.kill(other.sandbox_id, **api) is True
    assert not other.is_running()
    assert airlock.Sandbox.kill("sb-0000000000000000", **api) is False


def test_list_iterates_every_page_and_filters(new_sandbox, api):
    run = uuid.uuid4().hex[:12]
    made = [new_sandbox(metadata={"run": run, "i": str(i), "parity": "even" if i % 2 == 0 else "odd"})
            for i in range(5)]
    found = airlock.Sandbox.list(metadata={"run": run}, page_size=2, **api)
    assert [s.sandbox_id for s in found] == [s.sandbox_id for s in reversed(made)]  # newest first, 3 pages
    assert all(isinstance(s, airlock.SandboxInfo) for s in found)
    evens = airlock.Sandbox.list(metadata={"run": run, "parity": "even"}, **api)
    assert sorted(s.metadata["i"] for s in evens) == ["0", "2", "4"]
    assert len(list(airlock.Sandbox.iter(metadata={"run": run}, page_size=1, **api))) == 5

    made[0].kill()
    running = airlock.Sandbox.list(metadata={"run": run}, state="running", **api)
    assert made[0].sandbox_id not in {s.sandbox_id for s in running} and len(running) == 4
    default = airlock.Sandbox.list(metadata={"run": run}, **api)  # every state but terminated
    assert made[0].sandbox_id not in {s.sandbox_id for s in default}
    terminated = airlock.Sandbox.list(metadata={"run": run}, state=["terminated"], **api)
    assert [s.sandbox_id for s in terminated] == [made[0].sandbox_id]


def test_set_and_extend_timeout(sandbox):
    before = sandbox.get_info().expires_at
    info = sandbox.set_timeout(1200)
    assert isinstance(info, airlock.SandboxInfo)
    assert info.expires_at > before
    assert abs((info.expires_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds() - 1200) < 60
    extended = sandbox.extend_timeout(60)
    assert abs((extended.expires_at - info.expires_at).total_seconds() - 60) < 2
    shorter = sandbox.set_timeout(30)  # may shorten it
    assert shorter.expires_at < info.expires_at


def test_sandbox_stops_at_its_timeout(new_sandbox):
    sb = new_sandbox(timeout=1)
    wait_until(lambda: not sb.is_running(), timeout=20, message="the sandbox to stop at its timeout")
    info = sb.get_info()
    assert info.state == "stopped" and info.stop_reason == "timeout", info
    with pytest.raises(errors.SandboxNotRunningError) as exc:
        sb.commands.run("true")
    assert exc.value.status == 409 and exc.value.details.get("state") == "stopped"


# --- errors -------------------------------------------------------------------------------------------

def test_bad_key_is_authentication_error(daemon):
    with pytest.raises(errors.AuthenticationError) as exc:
        airlock.Sandbox.create(api_url=daemon.url, api_key="alk_" + "A" * 43)
    e = exc.value
    assert isinstance(e, airlock.AirlockError)
    assert e.status == 401 and e.code == "unauthenticated" and e.message
    with pytest.raises(errors.AuthenticationError):
        airlock.Sandbox.list(api_url=daemon.url, api_key="")


def test_unknown_sandbox_is_not_found(api):
    with pytest.raises(errors.NotFoundError) as exc:
        airlock.Sandbox.connect("sb-0000000000000000", **api)
    e = exc.value
    assert isinstance(e, errors.SandboxNotFoundError)
    assert e.status == 404 and e.code == "sandbox_not_found" and "sb-0000000000000000" in e.message
    assert not airlock.Sandbox("sb-0000000000000000", **api).is_running()


def test_another_tenants_sandbox_is_not_found(daemon, sandbox):
    r = daemon.keys_cli("create", "--tenant", "sdk-other", "--name", "sdk")
    assert r.returncode == 0, r.stderr
    secret = next(tok for tok in r.stdout.split() if tok.startswith("alk_") and len(tok) == 47)
    with pytest.raises(errors.SandboxNotFoundError):
        airlock.Sandbox.connect(sandbox.sandbox_id, api_url=daemon.url, api_key=secret)
    assert sandbox.sandbox_id not in {s.sandbox_id for s in airlock.Sandbox.list(api_url=daemon.url, api_key=secret)}


def test_killed_sandbox_refuses_work_with_conflict(api):
    sb = airlock.Sandbox.create(timeout=60, **api)
    sb.kill()
    info = sb.get_info()  # getting works in every state
    assert info.state == "terminated" and info.ended_at is not None
    with pytest.raises(errors.SandboxNotRunningError) as exc:
        sb.commands.run("true")
    e = exc.value
    assert isinstance(e, errors.ConflictError)
    assert e.status == 409 and e.code == "sandbox_not_running" and e.details["state"] == "terminated"
    with pytest.raises(errors.ConflictError):
        sb.set_timeout(60)


def test_invalid_arguments(api):
    with pytest.raises(errors.InvalidArgumentError) as exc:
        airlock.Sandbox.create(memory=1, **api)  # below the schema's minimum: 400 with the field
    assert exc.value.status == 400 and exc.value.code == "invalid_field" and exc.value.field == "memory_mb"
    with pytest.raises(errors.InvalidArgumentError) as exc:
        airlock.Sandbox.create(template="no-such-template", **api)
    assert exc.value.status == 422 and exc.value.code == "unknown_template"
    with pytest.raises(errors.InvalidArgumentError):
        airlock.Sandbox.create(memory="lots", **api)  # refused by the SDK itself


def test_unreachable_daemon_is_connection_error():
    with pytest.raises(errors.APIConnectionError) as exc:
        airlock.Sandbox.create(api_url="http://127.0.0.1:1", api_key="alk_x")
    assert exc.value.status is None and exc.value.code == "connection_error"
    with pytest.raises(errors.APIConnectionError):
        airlock.Sandbox.list(api_url="unix:/nonexistent/airlockd.sock", api_key="alk_x")
