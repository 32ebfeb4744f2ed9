"""The processes the integration tests start (conftest.spawn/popen: musterd, workers, gateways)
die with the test process even when it is killed outright and runs no teardown (SIGKILL, a
`timeout`): no musterd is left behind as an orphan of pid 1. Also: one started from a thread
other than the main one lives on after that thread ended (the kernel's parent-death signal
follows the thread that forked, conftest starts them all on one thread that lasts).

Owns: that one guarantee, checked on real musterd processes, and that the tests start every
process through conftest (none with a plain subprocess.Popen). Must never: leave a process of its
own behind (what survives a failing run is killed by pid here)."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import popen, wait_for

HERE = Path(__file__).resolve().parent

# A stand-in for a pytest process: starts a musterd through conftest from its main thread and
# one from a thread that then ends, proves both still answer after that thread is gone (a
# process with a SIGKILL pending runs no more code), prints their pids, and waits to be killed.
HOLDER = r"""
import os, sys, threading, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import conftest

base = Path(sys.argv[2])
daemons = [conftest.make_daemon(base / "main")]
t = threading.Thread(target=lambda: daemons.append(conftest.make_daemon(base / "thread")))
t.start()
t.join()
tid = t.native_id  # join returns a little before the kernel thread is gone: wait for that
conftest.wait_for(lambda: not os.path.exists(f"/proc/self/task/{tid}"), 10, "the thread to end")
assert len(daemons) == 2, "the thread's musterd did not start"
for d in daemons:
    out = conftest.muster_cli(d, "workers", "--json", timeout=30)
    assert out.returncode == 0, f"musterd {d.proc.pid} does not answer: {out.stderr}"
print("PIDS", *(d.proc.pid for d in daemons), flush=True)
time.sleep(120)
"""


def start_time(pid: int) -> str | None:
    """The process's start time (field 22 of /proc/<pid>/stat), None once it is gone or a zombie
    (dead, waiting for pid 1 to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return None if fields[0] in ("Z", "X") else fields[19]


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            return proc.stdout.readline()
    return ""


def test_spawned_processes_die_with_a_test_process_killed_outright(build_dir, tmp_base):
    holder = popen([sys.executable, "-c", HOLDER, str(HERE), str(tmp_base)],
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    started: dict[int, str | None] = {}
    try:
        line = read_line(holder, 60)
        assert line.startswith("PIDS "), f"the holder failed: {line!r}\n{holder.stderr.read() if holder.poll() is not None else ''}"
        started = {int(p): start_time(int(p)) for p in line.split()[1:]}
        assert len(started) == 2 and all(started.values()), started
        holder.send_signal(signal.SIGKILL)  # no teardown, no atexit: only the kernel acts
        assert holder.wait(10) == -signal.SIGKILL
        wait_for(lambda: all(start_time(pid) != t for pid, t in started.items()), 10,
                 "the musterd processes to die with the process that started them")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
        for pid, t in started.items():  # a failing run leaves nothing behind
            if t is not None and start_time(pid) == t:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_every_process_a_test_starts_goes_through_conftest():
    """A process started with a plain subprocess.Popen gets no parent-death signal: a test
    process killed outright leaves it behind (a worker, a watcher, a caller waiting for a
    minute). Tests start theirs with conftest.popen (a drop-in for subprocess.Popen) or spawn.
    Exempt: conftest.py itself, and postgres_server.py, a program of its own too, whose server
    gets its own parent-death signal (SIGQUIT, after it dropped root)."""
    exempt = {"conftest.py", "postgres_server.py"}
    plain = [f"{path.name}:{n}" for path in sorted(HERE.glob("*.py")) if path.name not in exempt
             for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(r"\bPopen\(", line)]
    assert plain == [], "start these with conftest.popen or spawn"
