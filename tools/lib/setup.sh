# tools/lib/setup.sh — sourced by tools/demo and tools/test: installs what is missing and
# builds. Owns: the list of system packages, the Python virtualenv, the npm install, the
# CMake configure+build. Must never: download anything but Debian, PyPI and npm packages.

MUSTER_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
MUSTER_BUILD="${MUSTER_BUILD_DIR:-$MUSTER_ROOT/build}"
MUSTER_VENV="$MUSTER_ROOT/.venv"
# PyPI packages of the virtualenv (websockets: the gateway's tests speak WebSocket; mypy: the
# Python SDK's typing check; build: its wheel and sdist, tests/integration/test_python_package.py;
# selenium: the dashboard's browser test drives Debian's chromium through chromedriver).
MUSTER_PIP_PACKAGES=(pytest pyzmq flatbuffers websockets mypy build selenium)

# Debian packages: compilers and C++ libraries, plus what the tests use (clang and its
# libFuzzer/sanitizer runtimes for the short fuzz runs, tests/fuzz/run; dpkg-dev for cpack's
# dpkg-shlibdeps, lintian, systemd for systemd-analyze and adduser for tests/packaging/run.sh;
# help2man for the programs' man pages, packaging/CMakeLists.txt; systemd-container and
# debootstrap for tests/packaging/systemd_boot.sh (a Debian 12 container booting systemd);
# prometheus for promtool and the Prometheus server the observability tests start on a port of
# their own; libpq-dev for musterd's PostgreSQL journal, and postgresql for the server the journal
# and failover tests start in a temp dir of their own, tests/integration/postgres_server.py —
# like prometheus, its packaged service is not started).
MUSTER_APT_PACKAGES=(
  g++ cmake ninja-build pkg-config git
  libzmq3-dev cppzmq-dev libsodium-dev flatbuffers-compiler libflatbuffers-dev
  libspdlog-dev libfmt-dev doctest-dev libcli11-dev libboost-dev libssl-dev nlohmann-json3-dev
  libjwt-dev libtomlplusplus-dev libsqlite3-dev libpq-dev
  python3-requests python3-websockets
  iproute2 tcpdump openssl
  nodejs npm
  clang libclang-rt-14-dev
  chromium chromium-driver
  dpkg-dev lintian systemd adduser help2man systemd-container debootstrap
  zsh fish   # test_cli loads `muster completion zsh|fish` in them
  prometheus
  postgresql
)

# Objects compiled in one checkout are reused by another (git worktrees side by side).
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$MUSTER_ROOT")}" CCACHE_NOHASHDIR=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

install_system_packages() {
  local missing=()
  for p in "${MUSTER_APT_PACKAGES[@]}"; do
    # nodejs/npm may come from elsewhere (e.g. a preinstalled Node): a working binary is enough.
    case "$p" in
      nodejs) command -v node >/dev/null 2>&1 && continue ;;
      npm) command -v npm >/dev/null 2>&1 && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    # Packages with a service (prometheus, postgresql) must not start it: the tests start their
    # own Prometheus on a free port and their own PostgreSQL on a private socket, and system ones
    # would sit on 9090 and 5432. policy-rc.d (exit 101:
    # "action forbidden") is honoured by invoke-rc.d and deb-systemd-invoke; ours is removed after.
    local policy=/usr/sbin/policy-rc.d made_policy=""
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && made_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" || {
      [ -n "$made_policy" ] && $sudo rm -f "$policy"
      return 1
    }
    [ -n "$made_policy" ] && $sudo rm -f "$policy"
    local service
    for service in prometheus postgresql; do
      if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled "$service" >/dev/null 2>&1; then
        $sudo systemctl disable --now "$service" >/dev/null 2>&1 || true
      fi
    done
  fi
}

# A Python virtualenv with pytest, pyzmq, flatbuffers, mypy, build and the muster Python SDK
# (distribution muster-sdk, import name muster), installed editable.
setup_python() {
  local py="${MUSTER_PYTHON:-python3}"
  if [ ! -x "$MUSTER_VENV/bin/python" ]; then
    log "creating the Python virtualenv in .venv"
    "$py" -m venv "$MUSTER_VENV"
  fi
  # Reinstall only when the SDK's declared dependencies or the package list change (the SDK is
  # installed editable).
  local stamp="$MUSTER_VENV/.muster-stamp" want
  want="$({ cat "$MUSTER_ROOT/worker/python/pyproject.toml" 2>/dev/null; echo "${MUSTER_PIP_PACKAGES[*]}"; } | sha256sum)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages (${MUSTER_PIP_PACKAGES[*]}, the muster SDK)"
    "$MUSTER_VENV/bin/pip" install -q --disable-pip-version-check "${MUSTER_PIP_PACKAGES[@]}"
    if [ -f "$MUSTER_ROOT/worker/python/pyproject.toml" ]; then
      # The SDK's distribution is "muster-sdk" (it was "muster", an unrelated project's name on
      # PyPI): drop an old install of ours so the two do not share the files of `muster`.
      "$MUSTER_VENV/bin/pip" uninstall -q -y --disable-pip-version-check muster >/dev/null 2>&1 || true
      "$MUSTER_VENV/bin/pip" install -q --disable-pip-version-check -e "$MUSTER_ROOT/worker/python"
    fi
    printf '%s' "$want" > "$stamp"
  fi
}

# The TypeScript SDK's npm dependencies and build.
setup_typescript() {
  local dir="$MUSTER_ROOT/worker/typescript"
  [ -f "$dir/package.json" ] || return 0
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing the TypeScript SDK's npm packages"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  log "building the TypeScript SDK"
  (cd "$dir" && npm run --silent build)
}

# The dashboard's npm packages (gateway/web: esbuild bundles it at build time, uPlot draws its
# charts). Run before the CMake configure, which adds the bundle target only once they are there.
setup_web() {
  local dir="$MUSTER_ROOT/gateway/web"
  [ -f "$dir/package.json" ] || return 0
  if [ ! -d "$dir/node_modules" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    log "installing the dashboard's npm packages (gateway/web)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Configures (once) and builds. Extra arguments are build targets.
build_cpp() {
  if [ ! -f "$MUSTER_BUILD/build.ninja" ]; then
    log "configuring (Release) in ${MUSTER_BUILD#$MUSTER_ROOT/}"
    # ccache, where a developer installed it, shares compiled objects between checkouts.
    local launcher=()
    command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
    cmake -S "$MUSTER_ROOT" -B "$MUSTER_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DMUSTER_VENV="$MUSTER_VENV" "${launcher[@]}" >/dev/null
  fi
  log "building ${*:-everything} (-j2)"
  if (($#)); then
    cmake --build "$MUSTER_BUILD" -j2 --target "$@"
  else
    cmake --build "$MUSTER_BUILD" -j2
  fi
}
