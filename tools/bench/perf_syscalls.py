"""perf_syscalls.py — reads the `perf script --ns -F comm,pid,tid,time,event,trace` text of a
`perf record -e raw_syscalls:sys_enter,raw_syscalls:sys_exit` for the bench tools that trace
syscalls (hops.py, timeline.py): one parser, the syscall numbers they look for, and each exit
paired with its thread's enter. Owns only the reading; never decides what a line means for a
call (that is each tool's). Never part of the tests."""
import re

LINE_RE = re.compile(r'^\s*(\S.*?)\s+(\d+)/(\d+)\s+(?:\[\d+\]\s+)?([\d.]+):\s+raw_syscalls:sys_(enter|exit):\s+NR (\d+)\s*(.*)$')
# x86-64 syscall numbers
READ, WRITE, POLL, SENDTO, RECVFROM, SENDMSG, RECVMSG, EPOLL_WAIT, PPOLL = 0, 1, 7, 44, 45, 46, 47, 232, 271


def events(path, pids):
    """Yields (t, pid, tid, comm, kind, nr, fd, ret) for each syscall enter and exit of `pids`,
    in the file's order. kind: 'enter' or 'exit'; fd: the first argument of the enter (an exit's
    is its enter's, -1 when the thread's last enter seen was another syscall); ret: the exit's
    return value (None for an enter)."""
    pending = {}  # tid -> (nr, fd) of its last enter
    for line in open(path):
        m = LINE_RE.match(line)
        if not m: continue
        comm, pid, tid, t, kind, nr, rest = m.groups()
        pid, tid, t, nr = int(pid), int(tid), float(t), int(nr)
        if pid not in pids: continue
        if kind == 'enter':
            a = re.match(r'\(([0-9a-fx]+)', rest)
            fd = int(a.group(1), 16) if a else -1
            pending[tid] = (nr, fd)
            yield t, pid, tid, comm.strip(), kind, nr, fd, None
        else:
            r = re.match(r'=\s*(-?\d+)', rest)
            entered = pending.pop(tid, None)
            fd = entered[1] if entered and entered[0] == nr else -1
            yield t, pid, tid, comm.strip(), kind, nr, fd, int(r.group(1)) if r else 0
