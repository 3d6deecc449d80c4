#!/usr/bin/env python3
"""Quickstart for the Airlock Python SDK: create a sandbox, run Python in it, write and read a file,
and kill it.

    export AIRLOCK_URL=http://127.0.0.1:7070
    export AIRLOCK_API_KEY=$(cat /var/lib/airlock/admin-key)
    PYTHONPATH=sdk/python python3 sdk/python/examples/quickstart.py

(`bash scripts/demo.sh` starts a daemon and runs this for you.)
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

import airlock  # noqa: E402

CODE = """
import platform, sys
print(f"hello from Python {platform.python_version()} in a sandbox")
print("sum of the first million integers:", sum(range(1_000_000)))
print("this goes to stderr", file=sys.stderr)
"""


def main() -> int:
    # URL and key come from AIRLOCK_URL and AIRLOCK_API_KEY; the sandbox is killed when the block ends.
    with airlock.Sandbox.create(timeout=120, memory="256M", metadata={"example": "quickstart"}) as sb:
        print(f"created sandbox {sb.sandbox_id} ({sb.info.cpu:g} CPU, {sb.info.memory_mb} MiB)")

        result = sb.commands.run(["python3", "-c", CODE])
        print(f"exit code {result.exit_code} in {result.duration_ms:.1f} ms")
        print("stdout:", result.stdout, end="")
        print("stderr:", result.stderr, end="")

        failed = sb.commands.run("python3 -c 'import sys; sys.exit(3)'")
        print(f"a failing command is a result, not an exception: exit code {failed.exit_code}")

        sb.files.write("/root/notes/hello.txt", "written through the SDK\n")
        print("files in /root/notes:", [entry.name for entry in sb.files.list("/root/notes")])
        print("read back:", sb.files.read("/root/notes/hello.txt"), end="")
        print("seen from inside:", sb.commands.run("wc -c < /root/notes/hello.txt").stdout, end="")

    print(f"sandbox {sb.sandbox_id} is now {sb.info.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
