#!/bin/sh
# Builds every libFuzzer target of fuzz/ with clang++-14, ASan and UBSan into the directory given as
# the argument (created if needed). The main build (CMake, g++) is not involved: the daemon sources
# the targets need are compiled here directly, once, and shared by the daemon targets.
#   fuzz/build.sh /tmp/fuzz-out
# Environment: CXX (default clang++-14), JOBS (parallel compiles, default: nproc).
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
CXX=${CXX:-clang++-14}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
mkdir -p "$out/obj"

flags="-std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -I$root/src"
# As cmake/daemon.cmake: Asio without deprecated interfaces, Beast on std::string_view.
daemon_defs="-DBOOST_ASIO_NO_DEPRECATED -DBOOST_BEAST_USE_STD_STRING_VIEW"

# 1. agent protocol: header-only.
echo "build agent_protocol_fuzz"
$CXX $flags "$here/agent_protocol_fuzz.cc" -o "$out/agent_protocol_fuzz"

# 2. DNS messages: the parser and its error type only (no daemon code).
echo "build dns_message_fuzz"
$CXX $flags "$here/dns_message_fuzz.cc" "$root/src/network/dns_message.cc" "$root/src/common/result.cc" \
  -o "$out/dns_message_fuzz"

# 3. the daemon's sources (without main.cc and the Beast server, which the targets do not drive),
#    compiled as a fuzzer library: -fsanitize=fuzzer-no-link instruments them without a main().
lib_flags="-std=c++20 -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -I$root/src"
srcs=""
for f in "$root"/src/common/*.cc "$root"/src/network/*.cc "$root"/src/daemon/*.cc "$root"/src/daemon/routes/*.cc; do
  case "$(basename "$f")" in
    main.cc | http_server.cc | daemon.cc | key_commands.cc) continue ;;
  esac
  srcs="$srcs $f"
done
# An object is rebuilt when its source, this script or any header under src/ is newer.
newer_header() {
  [ -n "$(find "$root/src" -name '*.h' -newer "$1" -print -quit)" ]
}
# Sources compile in parallel. One that does not compile (work in progress elsewhere in the tree) is
# reported and left out: the link below fails, naming its symbols, only if a target needs it.
compile() {  # SRC OBJ
  if ! $CXX $lib_flags $daemon_defs -c "$1" -o "$2.tmp" 2>"$2.log"; then
    echo "warning: ${1#"$root"/} does not compile, left out (see $2.log)" >&2
    rm -f "$2.tmp"
    return 0
  fi
  mv "$2.tmp" "$2"
}
pids=""
n=0
for f in $srcs; do
  rel=${f#"$root"/src/}
  obj="$out/obj/$(echo "$rel" | tr / _).o"
  rm -f "$obj.log"
  if [ ! -f "$obj" ] || [ "$f" -nt "$obj" ] || [ "$0" -nt "$obj" ] || newer_header "$obj"; then
    rm -f "$obj"
    echo "compile $rel"
    compile "$f" "$obj" &
    pids="$pids $!"
    n=$((n + 1))
    if [ "$n" -ge "$JOBS" ]; then
      for p in $pids; do wait "$p"; done
      pids=""
      n=0
    fi
  fi
done
for p in $pids; do wait "$p"; done
objs=""
for f in $srcs; do
  rel=${f#"$root"/src/}
  obj="$out/obj/$(echo "$rel" | tr / _).o"
  [ -f "$obj" ] && objs="$objs $obj"
done
# An archive, so that each target links only the objects it uses (as the CMake static library does):
# a source of another part of the daemon that needs more (engine, agent client) is not pulled in.
rm -f "$out/libairlock_daemon_fuzz.a"
ar rcs "$out/libairlock_daemon_fuzz.a" $objs

libs="-lsqlite3 -lcrypto -lnftables -lpthread"
for target in daemon_request_fuzz daemon_parsers_fuzz; do
  echo "build $target"
  $CXX $flags $daemon_defs "$here/$target.cc" "$out/libairlock_daemon_fuzz.a" $libs -o "$out/$target"
done
echo "built in $out: agent_protocol_fuzz dns_message_fuzz daemon_request_fuzz daemon_parsers_fuzz"
