#!/usr/bin/env bash
# Cold-start and density benchmark of `airlock run` against its peers, in one run; the tables go into
# docs/PERFORMANCE.md between <!-- bench:start --> and <!-- bench:end -->.
#
#   sudo bench/run.sh [start_bench.py options]    e.g. --runs 20 --no-density --airlock build/airlock
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

missing=()
for pair in bwrap:bubblewrap crun:crun runc:runc runsc:runsc unshare:util-linux; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench/run.sh: installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" \
    || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}"; }
fi

results=$(mktemp /tmp/airlock-bench-results.XXXXXX.md)
trap 'rm -f "$results"' EXIT
"$py" "$here/start_bench.py" --output "$results" "$@"

mkdir -p "$(dirname "$doc")"
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

"$py" - "$doc" "$results" <<'EOF'
import sys
doc, results = sys.argv[1], sys.argv[2]
text = open(doc).read()
new = open(results).read()
a, b = "<!-- bench:start -->", "<!-- bench:end -->"
i, j = text.index(a) + len(a), text.index(b)
open(doc, "w").write(text[:i] + "\n" + new.rstrip("\n") + "\n" + text[j:])
EOF
echo "bench/run.sh: results written to $doc" >&2
