"""A sandbox, its files and its background processes survive a daemon killed with SIGKILL: after a
restart on the same data dir, Sandbox.connect(id) finds it, the file reads back, the process is still
listed and alive, and killing and waiting for it work. Clients built before the restart keep working."""
import airlock


def test_sandbox_process_and_file_survive_sigkill_of_the_daemon(make_daemon):
    d = make_daemon()
    api = {"api_url": d.url, "api_key": d.admin_key}
    sb = airlock.Sandbox.create(timeout=600, metadata={"suite": "sdk-restart"}, **api)
    try:
        handle = sb.commands.run("echo before; while :; do sleep 0.1; done", background=True)
        sb.files.write("/root/keep.bin", bytes(range(256)))
        assert sb.files.read("/root/keep.bin", "bytes") == bytes(range(256))

        d.kill()
        d.start()  # same data dir; a new port
        api = {"api_url": d.url, "api_key": d.admin_key}

        again = airlock.Sandbox.connect(sb.sandbox_id, **api)
        assert again.get_info().state == "running" and again.is_running()
        assert again.files.read("/root/keep.bin", "bytes") == bytes(range(256))
        listed = {p.pid: p for p in again.commands.list()}
        assert handle.pid in listed, f"pid {handle.pid} not listed after the restart: {list(listed)}"
        assert listed[handle.pid].is_running and listed[handle.pid].kind == "background"
        proc = again.commands.connect(handle.pid)
        assert proc.info.state == "running"
        assert again.commands.run(["kill", "-0", str(handle.pid)]).exit_code == 0  # really alive
        assert proc.kill() is True
        result = proc.wait(timeout=30)
        assert result.reason == "signaled" and result.signal == "SIGKILL" and result.exit_code == 137
        assert again.commands.get(handle.pid).state == "exited"
        assert again.commands.run("echo after").stdout == "after\n"
    finally:
        if d.alive():
            airlock.Sandbox.kill(sb.sandbox_id, **api)
    assert airlock.Sandbox.connect(sb.sandbox_id, **api).get_info().state == "terminated"


def test_a_client_retries_idempotent_requests_across_a_restart_on_a_unix_socket(make_daemon):
    """The unix socket path stays the same across a restart, so a Sandbox object made before it keeps
    working: its pooled keep-alive connections are dead, and the SDK notices and reconnects."""
    d = make_daemon()
    sb = airlock.Sandbox.create(timeout=600, api_url=d.unix_url, api_key=d.admin_key)
    try:
        assert sb.commands.run("echo one").stdout == "one\n"
        assert sb._http._idle, "the connection should be pooled"
        d.kill()
        d.start()
        assert sb.get_info().state == "running"  # the stale pooled connection is not used
        assert sb.commands.run("echo two").stdout == "two\n"
    finally:
        if d.alive():
            sb.kill()
