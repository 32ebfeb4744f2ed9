"""A private PostgreSQL server for one test run (docs/DURABILITY.md §12), used two ways:

- imported by the integration tests: ``PostgresServer(base_dir).start()``, ``.conninfo(db)``,
  ``.uri(db)``, ``.psql(sql)``, ``.stop()``;
- run as a program by the C++ unit tests (tests/unit/postgres_for_test.hpp):
  ``python3 postgres_server.py BASE_DIR`` prints one line, ``ready CONNINFO`` or ``absent WHY``
  (no PostgreSQL binaries: the caller skips, saying why), then keeps the server until its stdin
  closes (the test ended, or died) and stops it.

initdb runs in a temp dir as a user that is not root (PostgreSQL refuses root): the current
user, or ``postgres`` (Debian's package makes it), else ``nobody``. The server listens on a unix
socket in that dir only (no TCP) — unless given ``tcp=(netns, address, trusted_cidr)``: then it
runs inside that network namespace (root only: tools/fault's failover run) and listens on that
address too, trusting peers of that network —, with fsync off (what is tested is the protocol, not the disk;
MUSTER_PG_FSYNC=1 turns it on, for the commit-cost benchmark).
It gets SIGQUIT (immediate shutdown) if this process dies first, so it never outlives the test.
Binaries: $MUSTER_PG_BINDIR, else the newest /usr/lib/postgresql/*/bin.
"""
from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PORT = 5432  # private: the socket lives in the server's own directory
USER = "muster"  # the database superuser initdb makes


def bindir() -> Path | None:
    if os.environ.get("MUSTER_PG_BINDIR"):
        return Path(os.environ["MUSTER_PG_BINDIR"])
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(found[-1]).parent if found else None


def absent_reason() -> str | None:
    b = bindir()
    if b is None or not (b / "initdb").exists() or not (b / "postgres").exists():
        return ("no PostgreSQL server binaries (initdb, postgres) under /usr/lib/postgresql/*/bin "
                "or $MUSTER_PG_BINDIR: apt-get install postgresql (tools/lib/setup.sh does)")
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The user the server runs as when we are root; None: ourselves."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither the postgres nor the nobody user exists")


def _child_setup(user: pwd.struct_passwd | None, netns: str | None = None):
    def setup():
        if netns is not None:  # before giving up root: entering a namespace needs it
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                raise OSError(ctypes.get_errno(), f"setns {netns}")
            os.close(fd)
        if user is not None:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
        # After the uid change (which clears it): SIGQUIT when the parent dies.
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGQUIT)  # PR_SET_PDEATHSIG
    return setup


class PostgresServer:
    def __init__(self, base: Path | None = None, tcp: tuple[str, str, str] | None = None):
        self._own_base = base is None
        self.tcp = tcp  # (network namespace, listen address, trusted CIDR)
        self.base = Path(base or tempfile.mkdtemp(prefix="mst-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.log_path = self.base / "postgres.log"
        self.proc: subprocess.Popen | None = None
        self.user = _run_as()

    def _env(self):
        return {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "TZ": "UTC"}

    def start(self, timeout: float = 60.0) -> "PostgresServer":
        why = absent_reason()
        if why:
            raise RuntimeError(why)
        b = bindir()
        self.base.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self.user is not None:
            for p in (self.base, self.socket_dir):
                os.chown(p, self.user.pw_uid, self.user.pw_gid)
        subprocess.run([str(b / "initdb"), "-D", str(self.data), "-U", USER, "-A", "trust",
                        "-E", "UTF8", "--no-sync", "--no-instructions"],
                       env=self._env(), cwd=self.base, check=True, capture_output=True,
                       preexec_fn=_child_setup(self.user), timeout=timeout)
        listen = ""
        if self.tcp is not None:
            listen = self.tcp[1]
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.tcp[2]} trust\n")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(b / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir), "-p", str(PORT),
             "-c", f"listen_addresses={listen}",
             *(() if os.environ.get("MUSTER_PG_FSYNC") == "1" else ("-c", "fsync=off", "-c", "full_page_writes=off")),
             "-c", "max_connections=50", "-c", "shared_buffers=16MB"],
            env=self._env(), cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_child_setup(self.user, self.tcp[0] if self.tcp else None))
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.proc.returncode}):\n{self.log()}")
            r = subprocess.run([str(b / "pg_isready"), "-q", "-h", str(self.socket_dir),
                                "-p", str(PORT), "-U", USER, "-d", "postgres"],
                               env=self._env(), capture_output=True)
            if r.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready after {timeout} s:\n{self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def conninfo(self, db: str = "postgres") -> str:
        return f"host={self.socket_dir} port={PORT} user={USER} dbname={db}"

    def uri(self, db: str = "postgres") -> str:
        """A postgresql:// URI (the socket dir as the host, percent-encoded)."""
        host = str(self.socket_dir).replace("/", "%2F")
        return f"postgresql://{USER}@{host}:{PORT}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Runs SQL with psql; returns its unaligned, tuples-only output."""
        r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                            "-h", str(self.socket_dir), "-p", str(PORT), "-U", USER, "-d", db,
                            "-c", sql], env=self._env(), capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return r.stdout.strip()

    def stop(self, timeout: float = 30.0):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)


def main(argv: list[str]) -> int:
    why = absent_reason()
    if why:
        print(f"absent {why}", flush=True)
        return 0
    server = PostgresServer(Path(argv[1]) if len(argv) > 1 else None)
    # Our own death (the C++ test SIGKILLed) takes the server with it (PR_SET_PDEATHSIG), and
    # SIGTERM/SIGINT stop it cleanly like stdin's end.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.start()
        print(f"ready {server.conninfo()}", flush=True)
        sys.stdin.read()  # until the test closes it (or dies)
    except Exception as e:  # noqa: BLE001 - the reason goes to the test
        print(f"error {e!s}".replace("\n", " | "), flush=True)
        return 1
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
