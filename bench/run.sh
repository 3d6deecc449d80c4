#!/usr/bin/env bash
# Cold-start and density benchmark of `airlock run` against its peers (start_bench.py), then the API
# benchmark of airlockd (api_bench.py), each in one run; the tables go into docs/PERFORMANCE.md between
# <!-- bench:start --> and <!-- bench:end --> (cold start, density) and between <!-- bench-api:start -->
# and <!-- bench-api:end --> (API).
#
#   sudo bench/run.sh [start_bench.py options]   both; e.g. --runs 20 --no-density --airlock build/airlock
#                                                (api_bench.py then uses the airlockd next to --airlock;
#                                                API_BENCH_ARGS="--density 500" adds api_bench.py options)
#   sudo bench/run.sh start [start_bench.py options]   the cold-start/density benchmark only
#   sudo bench/run.sh api [api_bench.py options]       the API benchmark only, e.g. --airlockd build/airlockd
#   sudo bench/run.sh net [net_bench.py options]       the network benchmark (between <!-- bench-net:start -->
#                                                      and <!-- bench-net:end -->), e.g. --airlockd build/airlockd
#
# Installs missing peers from Debian (bubblewrap crun runc runsc). Needs root. See bench/README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
doc="$root/docs/PERFORMANCE.md"
py=/usr/bin/python3  # not the pyenv shim on PATH: it adds ~100 ms to every python3 start

if [ "$(id -u)" != 0 ]; then
  echo "bench/run.sh: run as root (OCI runtimes, cgroups and the density measurement need it)" >&2
  exit 2
fi
[ -x "$py" ] || { echo "bench/run.sh: $py not found (apt-get install python3)" >&2; exit 2; }

mode=all
case "${1:-}" in
  api) mode=api; shift ;;
  start) mode=start; shift ;;
  net) mode=net; shift ;;
esac

missing=()
for pair in bwrap:bubblewrap crun:crun runc:runc runsc:runsc unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/run.sh: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }
fi

# replace_between DOC RESULTS START_MARKER END_MARKER: the text between the markers becomes RESULTS.
replace_between() {
  "$py" - "$@" <<'PYEOF'
import sys
doc, results, a, b = sys.argv[1:5]
text = open(doc).read()
new = open(results).read()
i, j = text.index(a) + len(a), text.index(b)
open(doc, "w").write(text[:i] + "\n" + new.rstrip("\n") + "\n" + text[j:])
PYEOF
}

results=$(mktemp /tmp/airlock-bench-results.XXXXXX.md)
api_results=$(mktemp /tmp/airlock-bench-api-results.XXXXXX.md)
trap 'rm -f "$results" "$api_results"' EXIT
mkdir -p "$(dirname "$doc")"

if [ "$mode" = all ] || [ "$mode" = start ]; then
  "$py" "$here/start_bench.py" --output "$results" "$@"

  if [ ! -f "$doc" ] || ! grep -q '<!-- bench:start -->' "$doc" || ! grep -q '<!-- bench:end -->' "$doc"; then
    cat >"$doc" <<'EOF'
# Performance

Cold start and density of `airlock run` against its peers, measured by `bench/run.sh` in one run on the same
machine (method, flags and what each column means: `bench/README.md`). Everything between the markers below
is rewritten by `bench/run.sh`.

<!-- bench:start -->
<!-- bench:end -->
EOF
  fi
  replace_between "$doc" "$results" "<!-- bench:start -->" "<!-- bench:end -->"
  echo "bench/run.sh: cold-start/density results written to $doc" >&2
fi
[ "$mode" = start ] && exit 0

# The network benchmark (issue 4): only in `net` mode (it builds network namespaces of its own).
if [ "$mode" = net ]; then
  net_results=$(mktemp /tmp/airlock-bench-net-results.XXXXXX.md)
  "$py" "$here/net_bench.py" --output "$net_results" "$@"
  if ! grep -q '<!-- bench-net:start -->' "$doc" || ! grep -q '<!-- bench-net:end -->' "$doc"; then
    cat >>"$doc" <<'EOF'

## Network: sandbox networks and the port proxy

Create latency with a network against without, and bulk transfer through a sandbox's NAT (and through the
port proxy) against a direct connection, in one run on a fake internet of network namespaces; measured by
`sudo bench/run.sh net` (`bench/net_bench.py`). Everything between the markers below is rewritten by it.

<!-- bench-net:start -->
<!-- bench-net:end -->
EOF
  fi
  replace_between "$doc" "$net_results" "<!-- bench-net:start -->" "<!-- bench-net:end -->"
  rm -f "$net_results"
  echo "bench/run.sh: network results written to $doc" >&2
  exit 0
fi

# The API benchmark: its own options in `api` mode; otherwise the airlockd next to --airlock, if given.
api_args=()
if [ "$mode" = api ]; then
  api_args=("$@")
else
  prev=
  for a in "$@"; do
    case "$a" in
      --airlock=*) api_args=(--airlockd "$(dirname "${a#--airlock=}")/airlockd") ;;
      *) if [ "$prev" = --airlock ]; then api_args=(--airlockd "$(dirname "$a")/airlockd"); fi ;;
    esac
    prev=$a
  done
  # shellcheck disable=SC2206  # splitting the extra options into words is intended
  api_args+=(${API_BENCH_ARGS:-})
fi
api_rc=0
"$py" "$here/api_bench.py" --output "$api_results" ${api_args[@]+"${api_args[@]}"} || api_rc=$?
if [ ! -s "$api_results" ]; then
  echo "bench/run.sh: api_bench.py produced no results (exit $api_rc); $doc left as it was" >&2
  exit "$api_rc"
fi
[ -f "$doc" ] || printf '# Performance\n' >"$doc"
if ! grep -q '<!-- bench-api:start -->' "$doc" || ! grep -q '<!-- bench-api:end -->' "$doc"; then
  cat >>"$doc" <<'EOF'

## API: airlockd over HTTP

Create → first exec, exec round trip (against `runc exec` and `crun exec`), concurrent exec clients and
1,000 idle sandboxes, measured by `sudo bench/run.sh` (or `sudo bench/run.sh api` alone) against an
`airlockd` it starts itself; method: [`bench/README.md`](../bench/README.md). Everything between the markers
below is rewritten by it.

<!-- bench-api:start -->
<!-- bench-api:end -->
EOF
fi
replace_between "$doc" "$api_results" "<!-- bench-api:start -->" "<!-- bench-api:end -->"
if [ "$api_rc" = 0 ]; then
  echo "bench/run.sh: API results written to $doc" >&2
else
  echo "bench/run.sh: API results written to $doc; api_bench.py reported failures (exit $api_rc)" >&2
fi
exit "$api_rc"
