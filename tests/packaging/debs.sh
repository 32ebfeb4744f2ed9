# tests/packaging/debs.sh — sourced by the package tests (run.sh, systemd_boot.sh): builds the
# .deb packages of a build dir with cpack. Must never: install anything.
MUSTER_DEB_PACKAGES=(muster muster-bridge muster-gateway libmuster-dev)

# build_debs BUILD_DIR OUT_DIR: cpack -G DEB into OUT_DIR (its log: OUT_DIR/cpack.log); prints
# one .deb path a line, in MUSTER_DEB_PACKAGES' order. Fails when one of them was not made.
build_debs() {
  local build="$1" out="$2" p f
  mkdir -p "$out"
  cpack -G DEB --config "$build/CPackConfig.cmake" -B "$out" >"$out/cpack.log" 2>&1 \
    || { cat "$out/cpack.log" >&2; echo "cpack failed" >&2; return 1; }
  for p in "${MUSTER_DEB_PACKAGES[@]}"; do
    f=("$out/${p}"_*.deb)
    [ -f "${f[0]}" ] || { echo "cpack made no package $p" >&2; return 1; }
    echo "${f[0]}"
  done
}
