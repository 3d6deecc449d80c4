#!/usr/bin/python3
"""Network benchmark of airlockd (issue 4): create latency with a network vs without, and bulk throughput
through a sandbox's NAT vs a direct connection, in one run, on a fake internet of two network namespaces
(tests/e2e/net_world.py: no packet leaves the machine).

Writes a Markdown section (for docs/PERFORMANCE.md between <!-- bench-net:start --> and <!-- bench-net:end -->).
Run as root: bench/run.sh net [options], or /usr/bin/python3 bench/net_bench.py --airlockd build/airlockd.
"""
import argparse
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from net_world import World  # noqa: E402

PY = "/usr/bin/python3"
SOURCE_PORT = 9100

# Serves `size` bytes from a file through sendfile(2) to each connection (zero-copy: the sender is
# never the bottleneck of either path).
SENDER = r'''
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(16)
open(sys.argv[3], "w").write("ready")
def serve(c):
    with c, open(path, "rb") as f:
        c.sendfile(f)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''

# Reads everything from ADDR:PORT; prints bytes and seconds.
RECEIVER = r'''
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
buf = bytearray(1 << 20); view = memoryview(buf); n = 0
t0 = time.perf_counter()
while True:
    k = s.recv_into(view)
    if not k: break
    n += k
print(n, time.perf_counter() - t0)
'''


def log(msg):
    print(f"net_bench: {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


class Daemon:
    def __init__(self, binary, world):
        self.dir = Path(tempfile.mkdtemp(prefix="airlock-netbench-"))
        self.log_file = open(self.dir / "airlockd.log", "wb")
        self.proc = subprocess.Popen(["nsenter", f"--net=/run/netns/{world.dns}", binary, "--data-dir",
                                      str(self.dir / "data"), "--listen", "none", "--log-level", "warn",
                                      "--net-dns-upstream", "203.0.113.53"],
                                     stdout=self.log_file, stderr=self.log_file)
        sock = self.dir / "data" / "airlockd.sock"
        deadline = time.monotonic() + 15
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.dir / "airlockd.log").read_text())
            time.sleep(0.02)
        self.key = (self.dir / "data" / "admin-key").read_text().strip()
        self.conn = Unix(str(sock))

    def call(self, method, path, body=None):
        headers = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        r = self.conn.getresponse()
        payload = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {payload[:300]!r}")
        return json.loads(payload) if payload else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log_file.close()


def bench_create(d, runs):
    kinds = [("none", None), ("allow", {"mode": "allow"}),
             ("allow-list with domains", {"mode": "none", "allow_out": ["pypi.test", "*.pypi.test", "10.99.0.0/24"]})]
    times = {k: {"create": [], "delete": []} for k, _ in kinds}
    for i in range(runs):
        order = kinds[i % len(kinds):] + kinds[:i % len(kinds)]
        for name, network in order:
            body = {"timeout": 600, "memory_mb": 64}
            if network:
                body["network"] = network
            t0 = time.perf_counter()
            sb = d.call("POST", "/v1/sandboxes", body)
            t1 = time.perf_counter()
            d.call("DELETE", f"/v1/sandboxes/{sb['sandbox_id']}")
            t2 = time.perf_counter()
            times[name]["create"].append((t1 - t0) * 1000)
            times[name]["delete"].append((t2 - t1) * 1000)
    return times


def bench_throughput(d, world, size_mb, rounds):
    tmp = Path(tempfile.mkdtemp(prefix="airlock-netbench-src-", dir="/dev/shm"))
    blob = tmp / "blob"
    with open(blob, "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(size_mb):
            f.write(chunk)
    ready = tmp / "ready"
    sender = subprocess.Popen(["nsenter", f"--net=/run/netns/{world.wns}", PY, "-c", SENDER, str(blob),
                               str(SOURCE_PORT), str(ready)])
    try:
        while not ready.exists():
            assert sender.poll() is None, "sender died"
            time.sleep(0.02)
        sb = d.call("POST", "/v1/sandboxes", {"timeout": 600, "network": {"mode": "allow"}})
        sid = sb["sandbox_id"]
        nat, direct = [], []
        for r in range(rounds):
            for where in (("sandbox", "direct") if r % 2 == 0 else ("direct", "sandbox")):
                if where == "sandbox":
                    res = d.call("POST", f"/v1/sandboxes/{sid}/commands/run",
                                 {"argv": [PY, "-c", RECEIVER, "203.0.113.10", str(SOURCE_PORT)], "timeout": 300})
                    assert res["exit_code"] == 0, res
                    n, secs = res["stdout"].split()
                else:
                    out = subprocess.run(["nsenter", f"--net=/run/netns/{world.dns}", PY, "-c", RECEIVER,
                                          "203.0.113.10", str(SOURCE_PORT)], capture_output=True, text=True, check=True)
                    n, secs = out.stdout.split()
                assert int(n) == size_mb << 20, (where, n)
                mbps = int(n) / float(secs) / (1 << 20)
                (nat if where == "sandbox" else direct).append(mbps)
        d.call("DELETE", f"/v1/sandboxes/{sid}")
        return nat, direct
    finally:
        sender.kill()
        sender.wait()
        blob.unlink()
        ready.unlink(missing_ok=True)
        tmp.rmdir()


# --- the port proxy (issue 4, "Exposed ports") ----------------------------------------------------------
PROXY_PORT = 9200

# Inside the sandbox: an HTTP server on 127.0.0.1:PORT. GET /blob: the file, through sendfile(2);
# anything else: 2 bytes. One request per connection (the proxy forwards with Connection: close).
HTTP_SENDER = r"""
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port)); s.listen(64)
def serve(c):
    with c:
        req = b""
        while b"\r\n\r\n" not in req:
            k = c.recv(4096)
            if not k: return
            req += k
        if req.startswith(b"GET /blob"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % size)
            with open(path, "rb") as f:
                c.sendfile(f)
        else:
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# GET TARGET over a fresh connection (TCP to 127.0.0.1:PORT, or the daemon's unix socket) and read to
# the end; `bulk`: prints bytes and seconds, else N requests' latencies in ms (one per line).
HTTP_CLIENT = r"""
import socket, sys, time
where, target, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
def conn():
    if where.startswith("unix:"):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.connect(where[5:]); return s
    return socket.create_connection(("127.0.0.1", int(where)))
def get():
    s = conn()
    s.sendall(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
    buf = bytearray(1 << 20); view = memoryview(buf); total = 0
    while True:
        k = s.recv_into(view)
        if not k: break
        total += k
    s.close()
    return total
if mode == "bulk":
    t0 = time.perf_counter(); total = get(); print(total, time.perf_counter() - t0)
else:
    for _ in range(n):
        t0 = time.perf_counter(); get(); print((time.perf_counter() - t0) * 1000)
"""


def bench_proxy(d, size_mb, rounds, small):
    """Bulk transfer and small-request latency through the port proxy (daemon's unix socket, path-based,
    public port) vs the same server reached directly (a client inside the sandbox on 127.0.0.1)."""
    # The writable layer is a tmpfs charged to the sandbox's memory: room for the blob and the server.
    sb = d.call("POST", "/v1/sandboxes", {"timeout": 600, "disk_mb": size_mb + 256, "memory_mb": size_mb + 512,
                                           "ports": [{"port": PROXY_PORT, "public": True}]})
    sid = sb["sandbox_id"]
    try:
        res = d.call("POST", f"/v1/sandboxes/{sid}/commands/run",
                     {"cmd": f"head -c {size_mb << 20} /dev/urandom > /tmp/blob", "timeout": 300})
        assert res["exit_code"] == 0, res
        d.call("POST", f"/v1/sandboxes/{sid}/processes",
               {"argv": [PY, "-c", HTTP_SENDER, "/tmp/blob", str(PROXY_PORT)]})
        w = d.call("GET", f"/v1/sandboxes/{sid}/ports/{PROXY_PORT}/wait?timeout=30")
        assert w["ready"], w
        sock = str(d.dir / "data" / "airlockd.sock")
        prefix = f"/p/{sid}/{PROXY_PORT}"

        def inside(target, mode, n):
            r = d.call("POST", f"/v1/sandboxes/{sid}/commands/run",
                       {"argv": [PY, "-c", HTTP_CLIENT, str(PROXY_PORT), target, mode, str(n)], "timeout": 300})
            assert r["exit_code"] == 0, r
            return r["stdout"].split()

        def outside(target, mode, n):
            out = subprocess.run([PY, "-c", HTTP_CLIENT, "unix:" + sock, prefix + target, mode, str(n)],
                                 capture_output=True, text=True, check=True)
            return out.stdout.split()

        proxied, direct = [], []
        for r in range(rounds):
            for where in (("proxy", "direct") if r % 2 == 0 else ("direct", "proxy")):
                n, secs = (outside if where == "proxy" else inside)("/blob", "bulk", 1)
                assert int(n) >= size_mb << 20, (where, n)
                (proxied if where == "proxy" else direct).append(int(n) / float(secs) / (1 << 20))
        lat_proxy, lat_direct = [], []
        for r in range(4):
            for where in (("proxy", "direct") if r % 2 == 0 else ("direct", "proxy")):
                values = [float(v) for v in (outside if where == "proxy" else inside)("/small", "small", small // 4)]
                (lat_proxy if where == "proxy" else lat_direct).extend(values)
        return proxied, direct, lat_proxy, lat_direct
    finally:
        d.call("DELETE", f"/v1/sandboxes/{sid}")


def proxy_table(a, proxied, direct, lat_proxy, lat_direct):
    L = ["", "### Through the port proxy vs direct", "",
         f"A public exposed port served by a Python sendfile(2) HTTP server inside a sandbox with `network: none`. "
         f"Proxied: a client in the benchmark's namespace sends `GET /p/{{id}}/{PROXY_PORT}/...` to the daemon's unix "
         "socket (the daemon connects inside the sandbox's namespace and relays bytes). Direct: the same client, run "
         "inside the sandbox, connects to 127.0.0.1 itself. A fresh connection per request in both. Alternating order.",
         "", "| path | bulk median MiB/s | min | max | n | ÷ direct |", "|---|---:|---:|---:|---:|---:|"]
    md = statistics.median(direct)
    for name, v in (("through the port proxy", proxied), ("direct (in-sandbox loopback)", direct)):
        L.append(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} | {len(v)} | "
                 f"{statistics.median(v) / md * 100:.0f}% |")
    ratio = statistics.median(proxied) / md
    L += ["", "| small GET (2 bytes) | p50 ms | p90 ms | p99 ms | n |", "|---|---:|---:|---:|---:|"]
    for name, v in (("through the port proxy", lat_proxy), ("direct", lat_direct)):
        L.append(f"| {name} | {pct(v, .5):.3f} | {pct(v, .9):.3f} | {pct(v, .99):.3f} | {len(v)} |")
    L += ["", f"Target ≥ 80% of direct for bulk transfer through the port proxy: "
              f"**{'met' if ratio >= 0.8 else 'not met'}** ({ratio * 100:.0f}%, {a.size_mb} MiB per transfer). "
              f"p50 proxy overhead for a small request: {pct(lat_proxy, .5) - pct(lat_direct, .5):.3f} ms."]
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--airlockd", default=str(ROOT / "build" / "airlockd"))
    ap.add_argument("--runs", type=int, default=30, help="creates of each kind (default 30)")
    ap.add_argument("--size-mb", type=int, default=512, help="bytes per transfer, MiB (default 512)")
    ap.add_argument("--rounds", type=int, default=6, help="transfers of each kind (default 6)")
    ap.add_argument("--small", type=int, default=400, help="small proxied requests of each kind (default 400)")
    ap.add_argument("--output", help="write the Markdown section here (default stdout)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("net_bench: run as root (network namespaces)")
    load0 = os.getloadavg()
    world = World().up()
    try:
        d = Daemon(a.airlockd, world)
        try:
            log(f"create latency: {a.runs} of each kind, interleaved")
            creates = bench_create(d, a.runs)
            log(f"throughput: {a.rounds} transfers of {a.size_mb} MiB each way")
            nat, direct = bench_throughput(d, world, a.size_mb, a.rounds)
            log(f"port proxy: {a.rounds} transfers of {a.size_mb} MiB each way, {a.small} small requests each way")
            proxy_results = bench_proxy(d, a.size_mb, a.rounds, a.small)
        finally:
            d.stop()
    finally:
        world.down()
    load1 = os.getloadavg()

    L = []
    L.append(f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs, kernel "
             f"{platform.release()}; load average at start {load0[0]:.2f}, at end {load1[0]:.2f}. One airlockd in a "
             "network namespace of the benchmark whose only link leads to a second namespace acting as the internet "
             "(tests/e2e/net_world.py); requests over the daemon's unix socket, `POST /v1/sandboxes "
             "{\"timeout\": 600, \"memory_mb\": 64, \"network\": ...}` then `DELETE`, kinds interleaved.")
    L.append("")
    L.append("### Create with a network vs without")
    L.append("")
    L.append("| network | create p50 ms | p90 ms | p99 ms | p50 ÷ none | DELETE p50 ms | n |")
    L.append("|---|---:|---:|---:|---:|---:|---:|")
    base = pct(creates["none"]["create"], .5)
    for name, t in creates.items():
        c = t["create"]
        L.append(f"| {name} | {pct(c, .5):.2f} | {pct(c, .9):.2f} | {pct(c, .99):.2f} | {pct(c, .5) / base:.2f}× | "
                 f"{pct(t['delete'], .5):.2f} | {len(c)} |")
    L.append("")
    L.append("### Bulk transfer through the sandbox's NAT vs direct")
    L.append("")
    L.append(f"{a.size_mb} MiB per transfer from a sendfile(2) server in the world namespace; the receiver reads it with "
             "1 MiB `recv_into` (Python) either inside a sandbox with `mode: allow` (veth, bridge, nftables "
             "rules, NAT) or directly in the daemon's namespace (one veth hop, no rules). Alternating order.")
    L.append("")
    L.append("| path | median MiB/s | min | max | n | ÷ direct |")
    L.append("|---|---:|---:|---:|---:|---:|")
    md = statistics.median(direct)
    for name, v in (("sandbox (NAT + rules)", nat), ("direct", direct)):
        L.append(f"| {name} | {statistics.median(v):.0f} | {min(v):.0f} | {max(v):.0f} | {len(v)} | "
                 f"{statistics.median(v) / md * 100:.0f}% |")
    ratio = statistics.median(nat) / md
    L.append("")
    L.append(f"Target ≥ 80% of direct for bulk transfer through the NAT: **{'met' if ratio >= 0.8 else 'not met'}** "
             f"({ratio * 100:.0f}%).")
    L += proxy_table(a, *proxy_results)
    text = "\n".join(L) + "\n"
    if a.output:
        Path(a.output).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
