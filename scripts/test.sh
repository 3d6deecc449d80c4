#!/usr/bin/env bash
# Every test: installs what is needed, builds, then runs the unit tests (ctest) and the
# integration and security suites (pytest, driving the real binaries). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure -j2)
/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/api tests/e2e tests/sdk tests/integration tests/security
