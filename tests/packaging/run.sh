#!/usr/bin/env bash
# tests/packaging/run.sh BUILD_DIR — the .deb packages on this machine, end to end (run by
# tools/test after ctest; needs root):
#  1. cpack builds muster, muster-bridge, muster-gateway and libmuster-dev from BUILD_DIR;
#     lintian runs on them (an error tag fails the test; warnings are printed: docs/INSTALL.md
#     explains the ones left);
#  2. apt-get installs the four .deb files (dpkg underneath, Depends checked);
#  3. `systemd-analyze verify` checks the installed units, `systemd-analyze security` scores
#     musterd.service;
#  4. musterd starts the way musterd.service starts it: through systemd where systemd is PID 1,
#     else as the unit's User with its ExecStart, Environment, RuntimeDirectory and
#     StateDirectory; the installed example worker (muster-worker@example's ExecStart) attaches
#     and the installed CLI calls a node; a Python worker installed from the wheel and a
#     TypeScript client installed from the npm tarball call each other through it, both ways
#     (tests/integration/test_packages_cross_language.py);
#  5. the packages are purged and nothing of them is left (also when a step fails: trap).
# It refuses to run when a muster package is installed already (it would not be its to purge).
set -euo pipefail
build="$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/tests/packaging/debs.sh"
packages=("${MUSTER_DEB_PACKAGES[@]}")
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (dpkg)" >&2; exit 77; }
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
    echo "FAIL: $p is installed already; this test installs and purges its own packages" >&2
    exit 1
  fi
done
# One run at a time on this machine (the packages and /run/muster are machine-wide).
mkdir -p /run/lock
exec 9>/run/lock/muster-packaging-test.lock
flock -w 600 9

tmp="$(mktemp -d /tmp/mst-debs-XXXXXX)"
user_existed=0
getent passwd muster >/dev/null && user_existed=1
pids=()
via_systemd=0
[ "$(ps -p 1 -o comm=)" = systemd ] && via_systemd=1

cleanup() {
  local rc=$?
  set +e
  ((via_systemd)) && systemctl stop muster-worker@example.service musterd.service 2>/dev/null
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  # What systemd does when the unit stops (RuntimeDirectory=): the runtime dir goes.
  ((via_systemd)) || { [ -n "${runtime_dir:-}" ] && rm -rf "$runtime_dir"; }
  local installed=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed\|config-files' && installed+=("$p")
  done
  if ((${#installed[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 purge -y -q "${installed[@]}" >"$tmp/purge.log" 2>&1 \
      || { cat "$tmp/purge.log" >&2; rc=1; }
  fi
  # The packages keep the system user (Debian's rule); the test removes the one it made.
  if ((!user_existed)) && getent passwd muster >/dev/null; then
    deluser --system muster >/dev/null 2>&1 || userdel muster
    getent group muster >/dev/null && delgroup --system muster >/dev/null 2>&1
  fi
  for left in /etc/muster /var/lib/muster /var/lib/muster-gateway /var/lib/muster-bridge /usr/lib/muster \
              /run/muster /usr/bin/musterd /usr/lib/systemd/system/musterd.service \
              /etc/systemd/system/multi-user.target.wants/musterd.service; do
    if [ -e "$left" ] || [ -L "$left" ]; then
      echo "FAIL: $left is left after the purge" >&2
      rm -rf "$left"
      rc=1
    fi
  done
  rm -rf "$tmp"
  ((rc == 0)) && echo "PASS: built, linted, installed, started as the unit does, called, purged"
  exit "$rc"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$tmp"/*.log; do [ -f "$log" ] && sed "s|^|$(basename "$log"): |" "$log" >&2; done
  exit 1
}
log() { printf '== %s\n' "$*"; }

log "building the packages (cpack -G DEB)"
mapfile -t debs < <(build_debs "$build" "$tmp/out") && ((${#debs[@]} == ${#packages[@]})) || fail "cpack"

log "lintian"
lintian --tag-display-limit 0 "${debs[@]}" >"$tmp/lintian.out" 2>&1 || true
grep -v '^running with root privileges' "$tmp/lintian.out" || true
if grep -q '^E:' "$tmp/lintian.out"; then fail "lintian reports errors"; fi
# Every program has its man page (muster's from `muster man`, the others from help2man).
if grep -q 'no-manual-page' "$tmp/lintian.out"; then fail "a program has no man page"; fi

log "installing with apt-get (dpkg underneath)"
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
  "${debs[@]}" >"$tmp/install.log" 2>&1 || fail "apt-get install"
getent passwd muster >/dev/null || fail "postinst made no user muster"
dpkg-query -W -f='${Conffiles}\n' muster | grep -q '/etc/muster/musterd.toml' || fail "musterd.toml is no conffile"
unit_dir=/usr/lib/systemd/system
for u in musterd.service muster-worker@.service muster-gateway.service muster-bridge@.service; do
  [ -f "$unit_dir/$u" ] || fail "no unit $u"
done

log "systemd-analyze verify"
# An instance of each template: verify resolves %i and checks its ExecStart is executable.
cp "$unit_dir/muster-worker@.service" "$tmp/muster-worker@example.service"
cp "$unit_dir/muster-bridge@.service" "$tmp/muster-bridge@host.service"
systemd-analyze verify "$unit_dir/musterd.service" "$unit_dir/muster-gateway.service" \
  "$tmp/muster-worker@example.service" "$tmp/muster-bridge@host.service" >"$tmp/verify.log" 2>&1 \
  || fail "systemd-analyze verify"
if [ -s "$tmp/verify.log" ]; then fail "systemd-analyze verify warns"; fi

log "systemd-analyze security musterd.service"
systemd-analyze security --offline=true "$unit_dir/musterd.service" >"$tmp/security.out" 2>&1 || true
grep -i 'overall exposure' "$tmp/security.out" || fail "no security score"

# What the unit says, read from the installed file: this is how systemd would start musterd.
unit_value() { sed -n "s/^$1=//p" "$2" | tail -1; }
daemon_unit="$unit_dir/musterd.service"
user="$(unit_value User "$daemon_unit")"
exec_start="$(unit_value ExecStart "$daemon_unit")"
runtime_dir="/run/$(unit_value RuntimeDirectory "$daemon_unit")"
state_dir="/var/lib/$(unit_value StateDirectory "$daemon_unit")"
[ "$(unit_value Environment "$daemon_unit")" = "MUSTER_RUNTIME_DIR=%t/muster" ] || fail "musterd.service's Environment changed"
# A command line run as the unit's user with the unit's environment (an array, not a function,
# so that `"${as_user[@]}" CMD &` gives CMD's own pid: setpriv and env exec it).
as_user=(setpriv --reuid="$user" --regid="$user" --init-groups -- env -i PATH=/usr/bin:/bin
         HOME="$state_dir" MUSTER_RUNTIME_DIR="$runtime_dir")

log "musterd reads the packaged config file"
"${as_user[@]}" /usr/bin/musterd --config /etc/muster/musterd.toml --print-config >"$tmp/print-config.out" \
  || fail "musterd --print-config on /etc/muster/musterd.toml"
grep -qx "data-dir = '$state_dir'" "$tmp/print-config.out" || fail "the packaged config does not set data-dir $state_dir"

if ((via_systemd)); then
  log "starting musterd.service and muster-worker@example.service with systemctl"
  systemctl start musterd.service muster-worker@example.service || fail "systemctl start"
else
  log "starting musterd as musterd.service does (user $user: $exec_start)"
  # What RuntimeDirectory= and StateDirectory= (mode 0700) do before ExecStart.
  install -d -m 0700 -o "$user" -g "$user" "$runtime_dir" "$state_dir"
  # shellcheck disable=SC2086  # ExecStart is a command line
  "${as_user[@]}" $exec_start >"$tmp/musterd.log" 2>&1 &
  pids+=($!)
  worker_unit="$tmp/muster-worker@example.service"
  worker_exec="$(unit_value ExecStart "$worker_unit" | sed 's/%i/example/; s/ \$WORKER_ARGS//')"
  for _ in $(seq 100); do [ -S "$runtime_dir/client.sock" ] && break; sleep 0.1; done
  [ -S "$runtime_dir/client.sock" ] || fail "musterd did not make $runtime_dir/client.sock"
  "${as_user[@]}" "$worker_exec" >"$tmp/worker.log" 2>&1 &
  pids+=($!)
fi

log "calling a node with the installed CLI"
called=""
for _ in $(seq 100); do
  if called="$("${as_user[@]}" /usr/bin/muster call hello '{"name":"deb"}' 2>"$tmp/cli.log")"; then break; fi
  called=""
  sleep 0.1
done
echo "$called"
case "$called" in *'"greeting":"Hello deb"'*) ;; *) fail "muster call hello through the installed packages" ;; esac
# root reaches it too, as docs/INSTALL.md tells (sudo MUSTER_RUNTIME_DIR=/run/muster muster ...).
env -i PATH=/usr/bin:/bin HOME=/root MUSTER_RUNTIME_DIR="$runtime_dir" /usr/bin/muster call hello '{"name":"root"}' \
  | grep -q '"greeting":"Hello root"' || fail "muster call as root"

log "a Python worker from the wheel and a TypeScript client from the npm tarball, and the reverse"
# tests/integration/test_packages_cross_language.py, against this installed musterd (root
# reaches its ipc:// sockets); it builds the wheel and the tarball with the package tests' helpers.
[ -x "$repo/.venv/bin/python" ] || fail "no virtualenv $repo/.venv (tools/lib/setup.sh setup_python makes it)"
MUSTER_BUILD_DIR="$build" MUSTER_INSTALLED_RUNTIME_DIR="$runtime_dir" MUSTER_INSTALLED_BIN=/usr/bin \
  "$repo/.venv/bin/python" -m pytest -q -rs -p no:cacheprovider "$repo/tests/integration/test_packages_cross_language.py" \
  >"$tmp/cross-language.log" 2>&1 || fail "the cross-language package test"
grep -q '^2 passed' "$tmp/cross-language.log" || fail "the cross-language package test did not run both directions"
tail -1 "$tmp/cross-language.log"
# ipc:// only: musterd creates nothing in its state directory (no CURVE keys, no tokens).
[ -z "$(ls -A "$state_dir")" ] || fail "an ipc-only musterd wrote into $state_dir: $(ls -A "$state_dir")"

log "purging the packages"
trap - EXIT
cleanup
