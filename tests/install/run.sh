#!/usr/bin/env bash
# tests/install/run.sh BUILD_DIR — the installed C++ SDK, as another project sees it:
# `cmake --install` the build into a temp prefix, build tests/install/consumer out of tree
# once with find_package(muster CONFIG) and once with pkg-config (muster-worker,
# muster-client), then run both against the installed musterd: each serves a node and calls it.
# Also checks that the install holds the programs, headers and schema files it must.
# Everything lives in one temp dir, removed on exit (also on failure); musterd is stopped.
set -euo pipefail
build="$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d /tmp/mst-install-XXXXXX)"
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
    kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/musterd.log" ] && sed 's/^/musterd: /' "$tmp/musterd.log" >&2; exit 1; }

prefix="$tmp/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir="lib/$(gcc -print-multiarch)"  # packaging/CMakeLists.txt: lib/<multiarch>
for f in bin/musterd bin/muster bin/muster-example-worker bin/muster-bridge bin/muster-gateway \
         include/muster/worker.hpp include/muster/client.hpp include/muster/wire/common_generated.h \
         share/muster/schema/value.fbs "$libdir/cmake/muster/musterConfig.cmake" \
         "$libdir/cmake/muster/musterConfigVersion.cmake" "$libdir/pkgconfig/muster-worker.pc" \
         "$libdir/pkgconfig/muster-client.pc" "$libdir/libmuster_worker.a" "$libdir/libmuster_client.a" \
         etc/muster/musterd.toml lib/systemd/system/musterd.service share/man/man1/muster.1.gz \
         share/man/man1/musterd.1.gz share/man/man1/muster-example-worker.1.gz \
         share/man/man1/muster-bridge.1.gz share/man/man1/muster-gateway.1.gz \
         share/bash-completion/completions/muster share/zsh/vendor-completions/_muster \
         share/fish/vendor_completions.d/muster.fish; do
  [ -e "$prefix/$f" ] || fail "the install lacks $f"
done
# Each man page is a page of its program (help2man: NAME section and the program's options).
for p in musterd muster-example-worker muster-bridge muster-gateway; do
  page="$(zcat "$prefix/share/man/man1/$p.1.gz")"
  grep -q "^$p \\\\- " <<<"$page" || fail "$p.1 has no NAME line for $p"
  grep -qF -- '\-\-version' <<<"$page" || fail "$p.1 does not list $p's options"
done
# The dashboard bundle, when this build made one (gateway/CMakeLists.txt: npm ci in gateway/web),
# is installed where an installed muster-gateway looks for it.
if [ -f "$build/gateway/web/index.html" ]; then
  [ -f "$prefix/share/muster/gateway/web/index.html" ] || fail "the install lacks the dashboard (share/muster/gateway/web)"
fi
# Nothing of the build tree leaks into what is installed.
if grep -rl "$build" "$prefix/$libdir" "$prefix/include" 2>/dev/null; then
  fail "installed files name the build tree $build"
fi

echo "== building the consumer with find_package(muster CONFIG)"
cmake -S "$here/consumer" -B "$tmp/consumer-cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$tmp/cmake.log" 2>&1 || { cat "$tmp/cmake.log" >&2; fail "configure"; }
cmake --build "$tmp/consumer-cmake" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "build (find_package)"; }

echo "== building the consumer with pkg-config"
flags="$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs muster-worker muster-client)" \
  || fail "pkg-config muster-worker muster-client"
# shellcheck disable=SC2086  # the flags are words
g++ -std=c++20 -O1 -o "$tmp/consumer-pkgconfig" "$here/consumer/main.cpp" $flags || fail "build (pkg-config)"

echo "== running both against the installed musterd"
export MUSTER_RUNTIME_DIR="$tmp/run" HOME="$tmp/home"
mkdir -p "$HOME"
"$prefix/bin/musterd" --data-dir "$tmp/data" --log-level info >"$tmp/musterd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 200); do
  grep -q ' ready ' "$tmp/musterd.log" && break
  kill -0 "$daemon_pid" 2>/dev/null || fail "musterd exited"
  sleep 0.05
done
grep -q ' ready ' "$tmp/musterd.log" || fail "musterd did not start"
timeout 60 "$tmp/consumer-cmake/consumer" install.cmake.square || fail "the find_package consumer"
timeout 60 "$tmp/consumer-pkgconfig" install.pkgconfig.square || fail "the pkg-config consumer"
echo "PASS: the installed SDK builds with find_package and with pkg-config, and serves and calls a node"
