#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what is needed, build, and run
# code in a sandbox.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
echo "+ build/airlock run -- python3 -c \"print('hello from a sandbox')\"" >&2
build/airlock run -- python3 -c "print('hello from a sandbox')"
echo "+ build/airlock run --memory 64M --json -- python3 -c 'x = bytearray(256 << 20)'" >&2
build/airlock run --memory 64M --json -- python3 -c 'x = bytearray(256 << 20)' || echo "(exit status $?: the sandbox was OOM-killed, the host is fine)" >&2
