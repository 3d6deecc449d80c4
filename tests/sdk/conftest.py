"""Fixtures of the Python SDK suite: a real airlockd on a free loopback port with a temporary data dir
(the same way tests/e2e starts one), and the SDK (sdk/python) on sys.path.

The binary is ROOT/build/airlockd, or $AIRLOCK_BUILD_DIR/airlockd. Standard library and pytest only.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AIRLOCK_BUILD_DIR", ROOT / "build"))
sys.path.insert(0, str(ROOT / "sdk" / "python"))

import airlock  # noqa: E402

LISTENING = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")


class Daemon:
    """One airlockd process, restartable on the same data dir."""

    def __init__(self, binary, data_dir):
        self.binary = binary
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self.proc = None
        self.port = None

    def start(self, *extra):
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "--data-dir", str(self.data_dir), "--listen", "127.0.0.1:0", "--log-level", "debug",
                 *extra], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[offset:].decode(errors="replace")
            m = LISTENING.search(text)
            if m:
                self.port = int(m.group(1))
                self._wait_healthy()
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"airlockd exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        raise RuntimeError(f"airlockd did not start listening:\n{self.log()[-4000:]}")

    def _wait_healthy(self, timeout=20):
        """/healthz answers 200 once the daemon has reconciled its sandboxes (after a restart)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"airlockd never became healthy:\n{self.log()[-4000:]}")

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"airlockd did not exit within {timeout} s of signal {sig}; its log ends with:\n"
                                 f"{self.log()[-6000:]}") from None

    def kill(self):
        return self.stop(signal.SIGKILL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def unix_url(self):
        return f"unix:{self.data_dir / 'airlockd.sock'}"

    @property
    def admin_key(self):
        return (self.data_dir / "admin-key").read_text().strip()

    def keys_cli(self, *args):
        return subprocess.run([self.binary, "keys", *args, "--data-dir", str(self.data_dir)],
                              capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="session")
def airlockd_bin():
    path = BUILD / "airlockd"
    if not path.exists():
        pytest.exit(f"{path} is missing: build first (ninja -C {BUILD} airlockd)", returncode=2)
    return str(path)


@pytest.fixture(scope="session")
def daemon(airlockd_bin):
    """The daemon shared by the session; it must still be alive at the end and exit 0 on SIGTERM."""
    root = tempfile.mkdtemp(prefix="airlock-sdk-")  # short: the unix socket path has a 107-byte limit
    d = Daemon(airlockd_bin, Path(root) / "data").start()
    yield d
    try:
        assert d.alive(), f"the shared daemon died during the session:\n{d.log()[-4000:]}"
        status = d.stop()
        assert status == 0, f"airlockd exited with {status} on SIGTERM:\n{d.log()[-4000:]}"
    finally:
        if d.alive():
            d.kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_daemon(airlockd_bin):
    """Private daemons for tests that kill or restart one; all are killed afterwards."""
    made, roots = [], []

    def _make():
        root = tempfile.mkdtemp(prefix="airlock-sdk-")
        roots.append(root)
        d = Daemon(airlockd_bin, Path(root) / "data")
        made.append(d)
        return d.start()

    yield _make
    for d in made:
        if d.alive():
            d.kill()
    for root in roots:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def api(daemon):
    """Keyword arguments that point the SDK at the shared daemon."""
    return {"api_url": daemon.url, "api_key": daemon.admin_key}


@pytest.fixture
def sdk_env(daemon, monkeypatch):
    """AIRLOCK_URL and AIRLOCK_API_KEY set for the test (the SDK's defaults)."""
    monkeypatch.setenv("AIRLOCK_URL", daemon.url)
    monkeypatch.setenv("AIRLOCK_API_KEY", daemon.admin_key)
    return daemon


class SandboxFactory:
    """Creates sandboxes through the SDK and kills every one at teardown, whatever the test asserts."""

    def __init__(self, api):
        self.api = api
        self.made = []

    def __call__(self, **kwargs):
        params = dict(self.api)
        params.update(kwargs)
        params.setdefault("timeout", 300)
        sb = airlock.Sandbox.create(**params)
        self.made.append(sb)
        return sb

    def cleanup(self):
        for sb in self.made:
            try:
                sb.kill()
            except airlock.AirlockError:
                pass
        self.made.clear()


@pytest.fixture
def new_sandbox(api):
    factory = SandboxFactory(api)
    yield factory
    factory.cleanup()


@pytest.fixture
def sandbox(new_sandbox):
    """A fresh running sandbox, killed after the test."""
    return new_sandbox()

