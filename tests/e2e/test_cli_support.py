"""Shared pieces of the `airlock` CLI end-to-end tests (test_cli_*.py): the binary, a runner that
points it at the session's daemon through the environment, and a sandbox made and removed through
the CLI itself. Fixtures defined here are imported by the test modules; this module has no tests.
"""
import os
import re
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AIRLOCK_BUILD_DIR", ROOT / "build"))
SANDBOX_ID = re.compile(r"^sb-[0-9a-z]{16}$")


class Cli:
    """Runs the real `airlock` binary against one daemon. Output is bytes (exactness matters)."""

    def __init__(self, binary, daemon, key, home):
        self.binary = binary
        self.daemon = daemon
        self.key = key
        self.home = home  # a private HOME: no user config file leaks into the tests

    @property
    def url(self):
        return f"http://127.0.0.1:{self.daemon.port}"

    def env(self, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRLOCK_")}
        env.update(HOME=self.home, AIRLOCK_URL=self.url, AIRLOCK_API_KEY=self.key)
        env.pop("XDG_CONFIG_HOME", None)
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
        return env

    def run(self, *args, input=None, timeout=60, env=None, stdin=None):
        kwargs = {"stdin": stdin} if stdin is not None else {"input": input if input is not None else b""}
        return subprocess.run([self.binary, *args], capture_output=True, timeout=timeout, env=env or self.env(),
                              **kwargs)

    def ok(self, *args, **kw):
        r = self.run(*args, **kw)
        assert r.returncode == 0, f"airlock {' '.join(args)} -> {r.returncode}\nstdout: {r.stdout[:2000]!r}\nstderr: {r.stderr[:2000]!r}"
        return r

    def create(self, *options):
        r = self.ok("sandbox", "create", *options)
        sandbox_id = r.stdout.decode().strip()
        assert SANDBOX_ID.match(sandbox_id), r
        return sandbox_id


@pytest.fixture(scope="session")
def airlock_cli_bin():
    path = BUILD / "airlock"
    if not path.exists():
        pytest.exit(f"{path} is missing: build first (ninja -C {BUILD} airlock)", returncode=2)
    return str(path)


@pytest.fixture(scope="module")
def cli(airlock_cli_bin, daemon):
    home = tempfile.mkdtemp(prefix="airlock-cli-home-")
    yield Cli(airlock_cli_bin, daemon, daemon.admin_key, home)
    subprocess.run(["rm", "-rf", home], check=False)


@pytest.fixture(scope="module")
def box(cli):
    """One running sandbox for the module, created and removed through the CLI."""
    sandbox_id = cli.create("--timeout", "900", "--label", "suite=cli")
    yield sandbox_id
    cli.run("sandbox", "rm", sandbox_id)
