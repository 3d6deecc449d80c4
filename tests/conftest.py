"""Shared fixtures for the integration and security suites: they drive the real binaries."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("AIRLOCK_BUILD_DIR", ROOT / "build"))


def _binary(name):
    path = BUILD / name
    if not path.exists():
        pytest.exit(f"{path} is missing: build first (scripts/test.sh does)", returncode=2)
    return str(path)


@pytest.fixture(scope="session")
def airlock_bin():
    return _binary("airlock")


@pytest.fixture(scope="session")
def probe_bin():
    return _binary("airlock-probe")


@pytest.fixture
def run(airlock_bin):
    """run(*airlock_run_args, cmd=[...], input=None, timeout=60) -> CompletedProcess (text)."""

    def _run(*options, cmd, input=None, timeout=60, env=None):
        argv = [airlock_bin, "run", *options, "--", *cmd]
        return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, env=env)

    return _run
