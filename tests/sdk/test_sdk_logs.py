"""sandbox.logs: pages of the persisted log, iteration over every page, and a followed stream that ends
with the sandbox."""
import threading

import airlock
from sdk_helpers import wait_until


def test_logs_pages_and_process_output(sandbox):
    handle = sandbox.commands.run("echo to-the-log; echo err-log >&2", background=True)
    handle.wait(timeout=30)
    def logged():
        entries = list(sandbox.logs.iter())
        return entries if any(e.type == "stdout" and e.pid == handle.pid for e in entries) else None

    entries = wait_until(logged, message="the process output in the log")
    assert all(isinstance(e, airlock.LogEntry) for e in entries)
    assert any(e.type == "lifecycle" and e.event == "created" for e in entries)
    out = [e for e in entries if e.type == "stdout" and e.pid == handle.pid]
    assert "".join(e.data for e in out) == "to-the-log\n"
    assert "".join(e.data for e in entries if e.type == "stderr" and e.pid == handle.pid) == "err-log\n"
    only_out = list(sandbox.logs.iter(types="stdout", pid=handle.pid))
    assert only_out and all(e.type == "stdout" for e in only_out)
    page = sandbox.logs.fetch(limit=1)
    assert len(page.entries) == 1 and page.has_more and page.next_cursor
    rest = sandbox.logs.fetch(page.next_cursor, limit=1000)
    assert [e.cursor for e in rest.entries] == [e.cursor for e in entries[1:len(rest.entries) + 1]]


def test_log_stream_follows_until_the_sandbox_ends(new_sandbox):
    sb = new_sandbox()
    seen = []
    done = threading.Event()

    def follow():
        for entry in sb.logs.stream(follow=True):
            seen.append(entry)
        done.set()

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    sb.commands.run("echo live-entry", background=True).wait(timeout=30)
    wait_until(lambda: any(e.type == "stdout" and "live-entry" in (e.data or "") for e in seen),
               message="the live entry")
    sb.kill()
    assert done.wait(20), "the log stream did not end with the sandbox"
    assert seen[-1].type == "lifecycle" and seen[-1].event == "terminated"
