#!/usr/bin/env bash
# regen.sh — regenerates the committed FlatBuffers bindings (src/muster/wire/) from schema/*.fbs.
#
#   worker/python/regen.sh            rewrite src/muster/wire/ in place
#   worker/python/regen.sh OUT_DIR    write the generated package to OUT_DIR/muster/wire/ instead
#                                     (used by tests/test_regen.py to compare with the committed copy)
#
# The bindings must come from flatc 2.0.8 (Debian 12's flatbuffers-compiler), the same compiler
# the C++ build uses. FLATC=/path/to/flatc overrides the compiler.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
schema="$(cd "$here/../../schema" && pwd)"
flatc="${FLATC:-flatc}"
want_version="2.0.8"

if ! command -v "$flatc" >/dev/null 2>&1; then
  echo "regen.sh: flatc not found (apt-get install flatbuffers-compiler)" >&2
  exit 2
fi
have_version="$("$flatc" --version | awk '{print $NF}')"
if [[ "$have_version" != "$want_version" ]]; then
  echo "regen.sh: flatc $have_version found, the committed bindings come from flatc $want_version" >&2
  exit 2
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Every .fbs in a fixed order; flatc writes one module per table/enum/union under muster/wire/.
files=(value common worker daemon client reply enroll enrolled)
for f in "${files[@]}"; do
  "$flatc" --python -o "$tmp" -I "$schema" "$schema/$f.fbs"
done

if [[ $# -ge 1 ]]; then
  out="$1/muster/wire"
else
  out="$here/src/muster/wire"
fi
rm -rf "$out"
mkdir -p "$out"
# Only the namespace package: flatc also writes an empty muster/__init__.py, which is ours.
cp "$tmp"/muster/wire/*.py "$out/"
echo "regen.sh: wrote $(ls "$out" | wc -l) files to $out"
