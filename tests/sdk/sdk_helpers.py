"""Helpers shared by the SDK test modules (imported by name; conftest modules cannot be)."""
import time

import pytest


def wait_until(predicate, timeout=10.0, interval=0.05, message="condition"):
    """Polls predicate() until it returns a truthy value; fails the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)
