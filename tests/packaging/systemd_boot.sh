#!/usr/bin/env bash
# tests/packaging/systemd_boot.sh BUILD_DIR — the packages under a real systemd (PID 1 of this
# machine may be something else): boots a Debian 12 container with systemd-nspawn, installs
# muster, muster-bridge and muster-gateway in it with dpkg (their postinst starts musterd.service
# through systemd), then checks, inside:
#  - musterd.service is active, with its sandbox applied (no capabilities, NoNewPrivs, seccomp,
#    a read-only /usr in its mount namespace), and `systemd-analyze security` scores it live;
#  - muster-worker@example.service starts and `muster call hello` answers through it;
#  - `systemctl stop musterd` stops it cleanly and purging removes /var/lib/muster.
# The container's root is debootstrapped once from Debian's mirror (with the packages' runtime
# Depends, read from the .debs) into /var/cache/muster-test/ and reused; each run boots it on a
# throwaway overlay (--volatile=overlay) with no network but loopback (--private-network), so the
# cached root stays pristine and nothing is installed on this machine. Slow the first time (the
# debootstrap, ~2 min), ~30 s after; not part of tools/test (MUSTER_SYSTEMD_BOOT=1 tools/test
# runs it after tests/packaging/run.sh). Needs root, systemd-container and debootstrap.
# MUSTER_KEEP_TMP=1 keeps its temp dir (the container's log: out/inside.log, boot.log).
set -euo pipefail
build="$(cd "${1:?usage: systemd_boot.sh BUILD_DIR}" && pwd)"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$repo/tests/packaging/debs.sh"
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (systemd-nspawn)" >&2; exit 77; }
for tool in systemd-nspawn debootstrap; do
  command -v "$tool" >/dev/null || { echo "SKIP: no $tool (apt-get install systemd-container debootstrap)" >&2; exit 77; }
done

tmp="$(mktemp -d /var/tmp/mst-boot-XXXXXX)"
trap '[ -n "${MUSTER_KEEP_TMP:-}" ] || rm -rf "$tmp"' EXIT
fail() {
  echo "FAIL: $*" >&2
  [ -f "$tmp/out/inside.log" ] && sed 's/^/inside: /' "$tmp/out/inside.log" >&2
  [ -f "$tmp/boot.log" ] && tail -40 "$tmp/boot.log" | sed 's/^/boot: /' >&2
  exit 1
}

echo "== building the packages (cpack -G DEB)"
mapfile -t all_debs < <(build_debs "$build" "$tmp/debs") && ((${#all_debs[@]} == ${#MUSTER_DEB_PACKAGES[@]})) || fail "cpack"
debs=()
for deb in "${all_debs[@]}"; do
  case "$(basename "$deb")" in libmuster-dev_*) ;; *) debs+=("$deb") ;; esac  # the SDK needs -dev packages
done

# The runtime Depends of the packages (versions dropped, ours left out): what the root must hold.
# A virtual package (libspdlog1.10-fmt9) is replaced by the package providing it: debootstrap
# takes real packages only.
real_package() {
  local policy
  policy="$(apt-cache policy "$1" 2>/dev/null)"  # whole, not piped to grep -q (SIGPIPE + pipefail)
  if [[ "$policy" == *'Candidate: (none)'* ]]; then
    apt-cache showpkg "$1" | awk '/^Reverse Provides:/ {rp = 1; next} rp && NF && !done {print $1; done = 1}'
  else
    echo "$1"
  fi
}
deps="$(for deb in "${debs[@]}"; do dpkg-deb -f "$deb" Depends | tr ',' '\n'; done \
        | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^muster$' | grep -v '^$' | sort -u \
        | while read -r d; do real_package "$d"; done | sort -u | paste -sd, -)"
cache=/var/cache/muster-test
root="$cache/bookworm-$(printf '%s' "$deps" | sha256sum | cut -c1-12)"
if [ ! -x "$root/lib/systemd/systemd" ]; then
  echo "== debootstrap of Debian 12 into $root (once; Depends: $deps)"
  mkdir -p "$cache"
  rm -rf "$root.part" "$cache"/bookworm-*  # roots of other Depends lists are stale
  debootstrap --variant=minbase --include="systemd,systemd-sysv,dbus,$deps" bookworm "$root.part" \
    "${MUSTER_DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; rm -rf "$root.part"; fail "debootstrap"; }
  mv "$root.part" "$root"
fi

mkdir -p "$tmp/out"
# What runs inside, as a oneshot unit once the container reached multi-user.target; the
# container powers off when it ends (SuccessAction/FailureAction).
cat >"$tmp/inside.sh" <<'INSIDE'
#!/bin/bash
exec >/mst/out/inside.log 2>&1
set -euxo pipefail
# On a failure: the units' state and the journal (a process that dies at once may be logged
# without its unit: the whole tail, not only -u).
trap 'set +x; systemctl status --no-pager musterd.service muster-worker@example.service; journalctl --no-pager -o cat -n 40' ERR
dpkg -i /mst/debs/*.deb
systemctl is-active musterd.service
# Ready once its sockets exist: before that, MainPID may still be systemd's child setting up
# the sandbox (root, capabilities not yet dropped).
for _ in $(seq 100); do [ -S /run/muster/client.sock ] && break; sleep 0.1; done
pid="$(systemctl show -p MainPID --value musterd.service)"
[ "$(readlink "/proc/$pid/exe")" = /usr/bin/musterd ]
grep -E '^(NoNewPrivs|Seccomp|CapEff):' "/proc/$pid/status"
grep -q '^NoNewPrivs:[[:space:]]*1$' "/proc/$pid/status"
grep -q '^Seccomp:[[:space:]]*2$' "/proc/$pid/status"
grep -q '^CapEff:[[:space:]]*0000000000000000$' "/proc/$pid/status"
# ProtectSystem=strict: /usr is read-only in musterd's mount namespace.
nsenter -t "$pid" -m -- sh -c 'touch /usr/mst-probe' && exit 1 || true
stat -c '%U %a %n' /run/muster /run/muster/client.sock
systemd-analyze security musterd.service | tail -1
systemctl start muster-worker@example.service
for _ in $(seq 100); do
  out="$(MUSTER_RUNTIME_DIR=/run/muster muster call hello '{"name":"systemd"}')" && break
  sleep 0.2
done
echo "$out"
[[ "$out" == *'"greeting":"Hello systemd"'* ]]
as_muster="$(setpriv --reuid=muster --regid=muster --init-groups env MUSTER_RUNTIME_DIR=/run/muster muster status)"
echo "$as_muster"
systemctl stop muster-worker@example.service musterd.service
systemctl is-failed musterd.service && exit 1
dpkg --purge muster-gateway muster-bridge muster
[ ! -e /var/lib/muster ] && [ ! -e /etc/muster ]
echo PASS >/mst/out/status
INSIDE
cat >"$tmp/mst-test.service" <<'UNIT'
[Unit]
Description=muster packages under systemd (tests/packaging/systemd_boot.sh)
After=multi-user.target
SuccessAction=poweroff-force
FailureAction=poweroff-force
[Service]
Type=oneshot
ExecStart=/bin/bash /mst/inside.sh
TimeoutStartSec=240
UNIT
mkdir -p "$tmp/in"
cp "${debs[@]}" "$tmp/in/"

echo "== booting the container (systemd-nspawn -b, $(basename "$root"))"
# --register=no --keep-unit: no machined or host systemd needed (PID 1 may not be systemd).
timeout -k 10 300 systemd-nspawn -q -D "$root" --register=no --keep-unit --volatile=overlay --private-network \
  --machine="mst-boot-$$" --bind-ro="$tmp/in:/mst/debs" --bind-ro="$tmp/inside.sh:/mst/inside.sh" \
  --bind="$tmp/out:/mst/out" --bind-ro="$tmp/mst-test.service:/etc/systemd/system/mst-test.service" \
  -b -- systemd.wants=mst-test.service >"$tmp/boot.log" 2>&1 || fail "systemd-nspawn"
[ "$(cat "$tmp/out/status" 2>/dev/null)" = PASS ] || fail "inside the container"
sed 's/^/inside: /' "$tmp/out/inside.log" | grep -v '^inside: + ' || true
echo "PASS: under systemd, musterd.service ran sandboxed, muster-worker@example answered a call, purge left nothing"
