"""How the agent spawns a command (src/agent/agent_mode.cc: clone(CLONE_VM | CLONE_VFORK) on a stack
of its own, errors reported through shared memory): what the command inherits, seen from inside it,
and the failures reported before its exec."""
import pytest


@pytest.fixture(scope="module")
def box(daemon):
    client = daemon.admin()
    r = client.post("/v1/sandboxes", json={"metadata": {"suite": "exec-spawn"}}, timeout=60)
    assert r.status == 201, r
    sid = r.json["sandbox_id"]
    yield client, sid
    client.delete(f"/v1/sandboxes/{sid}", timeout=60)


def run(box, body):
    client, sid = box
    r = client.post(f"/v1/sandboxes/{sid}/commands/run", json=body, timeout=60)
    assert r.status == 200, r
    return r.json


def status_fields(text):
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def test_fd_leak_into_command_only_stdio(box):
    # init's listening socket, its agent connection, its signalfd and other commands' pipes must not
    # reach the command: ls of its own fd table shows 0, 1, 2 and ls's own directory fd only.
    r = run(box, {"cmd": "exec /bin/ls /proc/self/fd"})
    assert r["exit_code"] == 0, r
    fds = sorted(int(x) for x in r["stdout"].split())
    assert fds[:3] == [0, 1, 2] and len(fds) == 4, fds


def test_seccomp_and_no_new_privs_reach_command(box):
    r = run(box, {"argv": ["/bin/cat", "/proc/self/status"]})
    s = status_fields(r["stdout"])
    assert s["Seccomp"].strip() == "2", s.get("Seccomp")
    assert s["NoNewPrivs"].strip() == "1", s.get("NoNewPrivs")


def test_signal_disposition_escape_clean_mask_and_handlers(box):
    # init blocks every signal and handles all of them; the command must start with nothing blocked,
    # ignored or caught (a blocked SIGTERM would make it unkillable by the API's signal).
    r = run(box, {"argv": ["/bin/cat", "/proc/self/status"]})
    s = status_fields(r["stdout"])
    for field in ("SigBlk", "SigIgn", "SigCgt"):
        assert int(s[field].strip(), 16) == 0, (field, s[field])


def test_command_leads_its_own_session(box):
    # Own session and process group (setsid in the child), so a group signal reaches its children.
    r = run(box, {"cmd": "read -r _ _ _ _ pgid sid _ < /proc/self/stat; echo $$ $pgid $sid"})
    pid, pgid, sid = r["stdout"].split()
    assert pid == pgid == sid, r["stdout"]


def test_user_switch_and_credentials_in_child(box):
    r = run(box, {"argv": ["/usr/bin/id", "-u"], "user": "1000:1000"})
    assert r["exit_code"] == 0 and r["stdout"].strip() == "1000", r
    r = run(box, {"argv": ["/bin/cat", "/proc/self/status"], "user": "1000:1000"})
    s = status_fields(r["stdout"])
    assert int(s["CapEff"].strip(), 16) == 0 and int(s["CapBnd"].strip(), 16) == 0, s


def test_exec_failure_reported_from_vfork_child(box):
    # The child's errno travels back through memory shared with init, not a pipe.
    r = run(box, {"argv": ["/no/such/program"]})
    assert r["exit_code"] == 127, r
    r = run(box, {"argv": ["/etc/hostname"]})  # not executable
    assert r["exit_code"] == 126, r
    r = run(box, {"argv": ["/bin/true"], "cwd": "/proc/self/fd/0"})  # chdir fails before exec
    assert r["exit_code"] == 126, r


def test_many_spawns_leave_no_fds_in_init(box):
    # Every spawn closes the child's ends in init; a leak would grow init's fd table each time.
    client, sid = box
    for _ in range(50):
        assert run(box, {"argv": ["/bin/true"]})["exit_code"] == 0
    r = run(box, {"cmd": "ls /proc/1/fd | wc -l"})
    before = int(r["stdout"])
    for _ in range(50):
        assert run(box, {"argv": ["/bin/true"]})["exit_code"] == 0
    r = run(box, {"cmd": "ls /proc/1/fd | wc -l"})
    assert before >= 3 and int(r["stdout"]) == before, (before, r["stdout"])
