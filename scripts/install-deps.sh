#!/usr/bin/env bash
# Installs what building and testing Airlock needs on Debian 12 (run as root).
# Runs `apt-get update` only when something is missing, so repeated runs cost nothing.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config          # toolchain (C++20, CMake + Ninja)
  libc6-dev                                 # libc.a: airlock-init and the probe are static
  libseccomp-dev                            # seccomp policy compiler (build time)
  nlohmann-json3-dev libcli11-dev           # JSON output, CLI parsing
  libgtest-dev libgmock-dev                 # unit tests
  python3 python3-pytest python3-yaml       # integration, security and API-contract suites
  util-linux procps iproute2 curl           # unshare/nsenter, ps, ip, curl (used by tests, inside sandboxes too)
  libboost-dev libsqlite3-dev libssl-dev    # airlockd: Beast/Asio HTTP, SQLite store, OpenSSL
  libnftables-dev nftables                  # airlockd: sandbox network rules (nft: inspection in tests)
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
