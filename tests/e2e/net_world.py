"""A fake internet for network tests and benchmarks, built from two network namespaces of our own:
a "daemon ns" (where airlockd runs; its only link leads to the world) and a "world ns" (HTTP on every
address, an echo server, a DNS server for *.test: net_world_server.py). No packet can leave the
machine: the daemon ns has no other link. `World().up()` builds it, `down()` removes it.
"""
import os
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = "/usr/bin/python3"


def sh(*args, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=30)


class World:
    def __init__(self):
        tag = f"{os.getpid() % 100000}"
        self.dns = f"alnet-d{tag}"
        self.wns = f"alnet-w{tag}"
        self.dir = Path(tempfile.mkdtemp(prefix="airlock-net-"))
        self.query_log = self.dir / "queries.log"
        self.server = None

    def up(self):
        for ns in (self.dns, self.wns):
            sh("ip", "netns", "add", ns)
        sh("ip", "link", "add", "up0", "netns", self.dns, "type", "veth", "peer", "name", "wan0", "netns", self.wns)
        d = ["ip", "-n", self.dns]
        w = ["ip", "-n", self.wns]
        sh(*d, "addr", "add", "198.51.100.2/24", "dev", "up0")
        sh(*d, "-6", "addr", "add", "2001:db8:1::2/64", "dev", "up0", "nodad")
        sh(*w, "addr", "add", "198.51.100.1/24", "dev", "wan0")
        sh(*w, "-6", "addr", "add", "2001:db8:1::1/64", "dev", "wan0", "nodad")
        for ns in (d, w):
            sh(*ns, "link", "set", "lo", "up")
        sh(*d, "link", "set", "up0", "up")
        sh(*w, "link", "set", "wan0", "up")
        sh(*d, "route", "add", "default", "via", "198.51.100.1")
        sh(*d, "-6", "route", "add", "default", "via", "2001:db8:1::1")
        for addr in ("203.0.113.10/32", "203.0.113.11/32", "203.0.113.20/32", "203.0.113.53/32",
                     "169.254.169.254/32", "10.99.0.1/32"):
            sh(*w, "addr", "add", addr, "dev", "lo")
        sh(*w, "-6", "addr", "add", "2001:db8:2::10/128", "dev", "lo")
        ready = self.dir / "ready"
        self.server = subprocess.Popen(["nsenter", f"--net=/run/netns/{self.wns}", PY, str(HERE / "net_world_server.py"),
                                        str(self.query_log), str(ready)],
                                       stdout=subprocess.DEVNULL, stderr=open(self.dir / "server.log", "w"))
        deadline = time.monotonic() + 15
        while not ready.exists():
            assert self.server.poll() is None, (self.dir / "server.log").read_text()
            assert time.monotonic() < deadline, "the world's servers did not start"
            time.sleep(0.05)
        return self

    def down(self):
        if self.server:
            self.server.kill()
            self.server.wait()
        for ns in (self.dns, self.wns):
            sh("ip", "netns", "del", ns, check=False)

    def in_daemon_ns(self, *argv):
        return sh("nsenter", f"--net=/run/netns/{self.dns}", *argv, check=False)

    def queries(self):
        return self.query_log.read_text() if self.query_log.exists() else ""
