"""End-to-end fixtures: a real airlockd on a free loopback port with a temporary data dir, and HTTP
clients whose every response is validated against api/openapi.yaml (see openapi_validate.py).

The binary is ROOT/build/airlockd, or $AIRLOCK_BUILD_DIR/airlockd (the convention of tests/conftest.py).
Standard library only, plus PyYAML for the spec.
"""
import http.client
import json as jsonlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from openapi_validate import ContractChecker  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AIRLOCK_BUILD_DIR", ROOT / "build"))
LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)")  # https: --tls-cert
_UNSET = object()


class Response:
    def __init__(self, status, headers, body, json):
        self.status = status
        self.headers = headers  # lower-case names; repeated headers joined with ", "
        self.body = body
        self.json = json

    @property
    def error_code(self):
        return (self.json or {}).get("error", {}).get("code")

    def __repr__(self):
        return f"<Response {self.status} {self.body[:300]!r}>"


class ApiClient:
    """HTTP/1.1 client for one daemon; validates every response against the contract."""

    def __init__(self, daemon, key=None):
        self.daemon = daemon
        self.key = key

    def request(self, method, path, json=_UNSET, body=None, headers=None, key=_UNSET, timeout=15):
        key = self.key if key is _UNSET else key
        hdrs = {}
        if key is not None:
            hdrs["Authorization"] = f"Bearer {key}"
        if json is not _UNSET:
            body = jsonlib.dumps(json).encode()
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn = self.daemon.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            status, raw_headers = r.status, r.getheaders()
        finally:
            conn.close()
        return self.daemon.record(method, path, status, raw_headers, data)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, json=_UNSET, **kw):
        return self.request("POST", path, json=json, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class Daemon:
    """One airlockd process (restartable on the same data dir)."""

    def __init__(self, binary, contract, data_dir):
        self.binary = binary
        self.contract = contract
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.proc = None
        self.port = None
        self.statuses = []  # every status seen through this daemon's clients, for the no-500 checks

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self, *extra, wait=True):
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        argv = [self.binary, "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0",
                "--log-level", "debug", *extra]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        if wait:
            self._wait_listening(offset)
        return self

    def _wait_listening(self, offset, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            m = LISTENING.search(text)
            if m:
                self.port = int(m.group(1))
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"airlockd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        raise RuntimeError(f"airlockd did not start listening:\n{self.log()}")

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig and waits; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self):
        return self.stop(signal.SIGKILL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # --- access ---------------------------------------------------------------------------------------
    @property
    def admin_key(self):
        return (self.data_dir / "admin-key").read_text().strip()

    @property
    def socket_path(self):
        return str(self.data_dir / "airlockd.sock")

    def connection(self, timeout=15, unix=False):
        if unix:
            return UnixHTTPConnection(self.socket_path, timeout)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def client(self, key=None):
        return ApiClient(self, key)

    def admin(self):
        return ApiClient(self, self.admin_key)

    def record(self, method, path, status, raw_headers, body):
        """Validates a response against the contract and keeps its status."""
        headers = {}
        for name, value in raw_headers:
            name = name.lower()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.statuses.append(status)
        value = self.contract.check(method, path, status, headers, body)
        return Response(status, headers, body, value)

    def healthy(self):
        r = self.client().get("/healthz", timeout=5)
        return r.status == 200 and r.json["status"] == "ok"

    # Socket-level access, for requests no HTTP library would send (test modules use these methods
    # rather than importing conftest, whose module name other suites' conftest files share).
    def exchange(self, data, timeout=5.0, responses=1):
        return raw_exchange(self.port, data, timeout=timeout, responses=responses)

    @staticmethod
    def parse(raw):
        return parse_responses(raw)

    def keys_cli(self, *args):
        """Runs `airlockd keys ...` on this daemon's data dir."""
        return subprocess.run([self.binary, "keys", *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=30)


def _complete_responses(raw):
    """How many complete responses (by Content-Length) raw holds."""
    count = 0
    while True:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            return count
        m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        length = int(m.group(1)) if m else 0
        if len(rest) < length:
            return count
        count += 1
        raw = rest[length:]


def raw_exchange(port, data, timeout=5.0, responses=1, read_limit=1 << 20):
    """Sends raw bytes; returns what the daemon sends back once `responses` complete responses are in,
    or when it closes, or at the timeout.

    Sending may fail half-way when the daemon answers early and closes; that is fine, its answer is what
    matters."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        raw = b""
        deadline = time.monotonic() + timeout
        while len(raw) < read_limit and time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            raw += chunk
            if _complete_responses(raw) >= responses:
                break
        return raw
    finally:
        s.close()


def parse_responses(raw):
    """Splits raw bytes into [(status, headers, body)] using Content-Length."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            raise AssertionError(f"truncated response: {raw[:300]!r}")
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
        if not m:
            raise AssertionError(f"not an HTTP response: {raw[:300]!r}")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        out.append((int(m.group(1)), headers, rest[:length]))
        raw = rest[length:]
    return out


@pytest.fixture(scope="session")
def airlockd_bin():
    path = BUILD / "airlockd"
    if not path.exists():
        pytest.exit(f"{path} is missing: build first (ninja -C {BUILD} airlockd)", returncode=2)
    return str(path)


@pytest.fixture(scope="session")
def contract():
    return ContractChecker()


@pytest.fixture
def make_daemon(airlockd_bin, contract):
    """Factory for daemons of one test, each with its own data dir; all are stopped afterwards."""
    made = []
    roots = []

    def _make(*extra, start=True):
        root = tempfile.mkdtemp(prefix="airlock-e2e-")  # short: the unix socket path has a 107-byte limit
        roots.append(root)
        d = Daemon(airlockd_bin, contract, Path(root) / "data")
        made.append(d)
        return d.start(*extra) if start else d

    yield _make
    for d in made:
        if d.alive():
            d.kill()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon(airlockd_bin, contract):
    """The shared daemon of the session (tests that stop or restart one use make_daemon)."""
    root = tempfile.mkdtemp(prefix="airlock-e2e-")
    d = Daemon(airlockd_bin, contract, Path(root) / "data").start()
    yield d
    try:
        assert d.alive(), f"the shared daemon died during the session:\n{d.log()[-4000:]}"
        status = d.stop()
        assert status == 0, f"airlockd exited with {status} on SIGTERM:\n{d.log()[-4000:]}"
        assert 500 not in d.statuses, "a 500 was returned during the session"
    finally:
        if d.alive():
            d.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def admin(daemon):
    return daemon.admin()


@pytest.fixture
def anon(daemon):
    return daemon.client()


@pytest.fixture
def new_key(admin):
    """new_key(tenant=..., admin=False, name=...) -> the created key's JSON (with its secret)."""

    def _new(tenant="team-a", admin_key=False, name="e2e"):
        r = admin.post("/v1/keys", json={"name": name, "tenant": tenant, "admin": admin_key})
        assert r.status == 201, r
        return r.json

    return _new


# --- sandboxes -----------------------------------------------------------------------------------------

class SandboxTracker:
    """Creates sandboxes through one client and terminates every one of them at teardown, so that no
    test leaves a sandbox (process, cgroup, socket) behind whatever it asserts."""

    def __init__(self):
        self.made = []  # (client, sandbox_id)

    def create(self, client, body=None, expect=201):
        r = client.post("/v1/sandboxes", json={} if body is None else body, timeout=60)
        assert r.status == expect, r
        if r.status == 201:
            self.made.append((client, r.json["sandbox_id"]))
        return r

    def cleanup(self):
        for client, sandbox_id in self.made:
            try:
                client.delete(f"/v1/sandboxes/{sandbox_id}", timeout=60)
            except OSError:
                pass  # its daemon is gone; the test that killed it cleans up itself
        self.made.clear()


@pytest.fixture
def sandboxes():
    tracker = SandboxTracker()
    yield tracker
    tracker.cleanup()


def sandbox_engine_name(daemon, sandbox_id):
    """The engine's name (cgroup and socket directory) of a sandbox, from the daemon's log."""
    m = re.search(rf"sandbox {sandbox_id} created \(tenant [^,]+, (airlock-\d+)\)", daemon.log())
    return m.group(1) if m else None


def sandbox_leftovers(engine_name, run_dir="/run/airlock"):
    """Cgroup directories and the socket directory still present for an engine name."""
    found = []
    for root in Path("/sys/fs/cgroup").iterdir():
        if (root / engine_name).exists():
            found.append(str(root / engine_name))
    if (Path("/sys/fs/cgroup") / engine_name).exists():
        found.append(f"/sys/fs/cgroup/{engine_name}")
    sock_dir = Path(run_dir) / "sandboxes" / engine_name
    if sock_dir.exists():
        found.append(str(sock_dir))
    return found


@pytest.fixture
def engine_names():
    """Helpers for tests that check what a sandbox leaves on the host."""
    return sandbox_engine_name, sandbox_leftovers
