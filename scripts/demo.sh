#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine (as root): install what is needed, build, start airlockd on a
# free loopback port with a temporary data dir, and use it from the Python SDK
# (sdk/python/examples/quickstart.py). The daemon is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh

demo_dir=$(mktemp -d /tmp/airlock-demo.XXXXXX)  # short: the daemon's unix socket path is limited to 107 bytes
daemon_pid=""

stop_daemon() {
  local status=$?
  if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid" 2>/dev/null || true
    for _ in $(seq 100); do  # up to 10 s to finish cleanly
      kill -0 "$daemon_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$daemon_pid" 2>/dev/null; then
      echo "airlockd ($daemon_pid) did not stop on SIGTERM; killing it" >&2
      kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$demo_dir"
  exit "$status"
}
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log="$demo_dir/airlockd.log"
echo "+ build/airlockd --data-dir $demo_dir/data --listen 127.0.0.1:0 &" >&2
build/airlockd --data-dir "$demo_dir/data" --listen 127.0.0.1:0 >"$log" 2>&1 &
daemon_pid=$!

# Port 0: the kernel picks a free port, which the daemon logs ("listening on http://127.0.0.1:PORT").
port=""
for _ in $(seq 300); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)
  [[ -n $port ]] && break
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    echo "airlockd exited before listening:" >&2
    cat "$log" >&2
    exit 1
  fi
  sleep 0.05
done
if [[ -z $port ]]; then
  echo "airlockd did not start listening within 15 s:" >&2
  cat "$log" >&2
  exit 1
fi

export AIRLOCK_URL="http://127.0.0.1:$port"
AIRLOCK_API_KEY=$(cat "$demo_dir/data/admin-key")
export AIRLOCK_API_KEY
# Ready once /healthz answers 200.
/usr/bin/python3 - <<'PY'
import os, sys, time, urllib.request
deadline = time.monotonic() + 15
while True:
    try:
        with urllib.request.urlopen(os.environ["AIRLOCK_URL"] + "/healthz", timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("airlockd did not become healthy")
    time.sleep(0.05)
PY
echo "airlockd ($daemon_pid) is listening on $AIRLOCK_URL" >&2

echo "+ python3 sdk/python/examples/quickstart.py" >&2
PYTHONPATH="$PWD/sdk/python${PYTHONPATH:+:$PYTHONPATH}" /usr/bin/python3 sdk/python/examples/quickstart.py
