#!/usr/bin/env python3
"""hops.py — the per-hop medians of tools/bench/hops.sh, from `perf script` of raw_syscalls
(sys_enter/exit). usage: hops.py perf.txt CLIENT_PID BROKER_PID[,...] WORKER_PID[,...]
A call is matched when the data-carrying syscalls (sendto entered, recvfrom returning bytes)
follow client send -> broker recv -> broker send -> worker recv -> worker send -> broker recv
-> broker send -> client recv with nothing in between (calls crossed by a ping are skipped).
Never part of the tests."""
import bisect, sys, statistics as st
from collections import defaultdict
from perf_syscalls import events, SENDTO, RECVFROM, WRITE, POLL, EPOLL_WAIT, PPOLL, READ, SENDMSG, RECVMSG
client_pid = int(sys.argv[2]); brokers = {int(x) for x in sys.argv[3].split(',')}; workers = {int(x) for x in sys.argv[4].split(',')}
per_tid = defaultdict(list)
for t, pid, tid, _comm, kind, nr, fd, ret in events(sys.argv[1], {client_pid} | brokers | workers):
    per_tid[tid].append((t, 'enter', nr, fd, pid) if kind == 'enter' else (t, 'exit', nr, fd, pid, ret))
data = []  # (t, role, dir, pid, tid, fd)
def role(pid):
    return 'C' if pid == client_pid else 'B' if pid in brokers else 'W'
for tid, evs in per_tid.items():
    for e in evs:
        if e[1] == 'enter' and e[2] in (SENDTO, SENDMSG):
            data.append((e[0], role(e[4]), 'S', e[4], tid, e[3]))
        elif e[1] == 'exit' and e[2] in (RECVFROM, RECVMSG) and e[5] > 0:
            data.append((e[0], role(e[4]), 'R', e[4], tid, e[3]))
data.sort()
pattern = ['CS', 'BR', 'BS', 'WR', 'WS', 'BR', 'BS', 'CR']
calls = defaultdict(list)
i = 0
while i + len(pattern) <= len(data):
    seq = data[i:i + len(pattern)]
    if [s[1] + s[2] for s in seq] == pattern and seq[1][3] == seq[2][3] == seq[5][3] == seq[6][3] and seq[3][3] == seq[4][3]:
        calls[seq[1][3]].append(seq); i += len(pattern)
    else:
        i += 1
def count_between(tid, t0, t1):
    evs = per_tid[tid]; k = bisect.bisect_right(idx[tid], t0); n = 0
    while k < len(evs) and evs[k][0] < t1:
        n += evs[k][1] == 'enter'; k += 1
    return n
idx = {tid: [e[0] for e in evs] for tid, evs in per_tid.items()}
def first_after(tid, t, pred, limit):
    evs = per_tid[tid]; k = bisect.bisect_right(idx[tid], t)
    while k < len(evs) and evs[k][0] < limit:
        if pred(evs[k]): return evs[k]
        k += 1
    return None
def split(p, recv, send):
    """inside process p between its recv (I/O thread) and its send (I/O thread): the I/O thread's
    eventfd write, the other thread's wake, that thread's write (hand-off back), syscalls."""
    io = recv[4]; t0, t1 = recv[0], send[0]
    w1 = first_after(io, t0, lambda e: e[1] == 'enter' and e[2] == WRITE, t1)
    # the app thread: any other tid of p with a wait exit after w1
    best = None
    for tid in per_tid:
        if tid == io or per_tid[tid][0][4] != p: continue
        wk = first_after(tid, w1[0] if w1 else t0, lambda e: e[1] == 'exit' and e[2] in (POLL, PPOLL, EPOLL_WAIT, READ, 202), t1)
        if wk and (best is None or wk[0] < best[1][0]): best = (tid, wk)
    if not (w1 and best): return None
    app, wk = best
    w2 = first_after(app, wk[0], lambda e: e[1] == 'enter' and e[2] == WRITE, t1)
    if not w2: return None
    n_app = count_between(app, wk[0], w2[0])
    return (w1[0] - t0, wk[0] - w1[0], w2[0] - wk[0], t1 - w2[0], n_app, count_between(io, t0, t1))
us = lambda x: x * 1e6
for b, cs in calls.items():
    print(f'== broker pid {b}: {len(cs)} calls matched')
    names = ['client send -> broker recv', 'broker dwell (request)', 'broker send -> worker recv', 'worker dwell',
             'worker send -> broker recv', 'broker dwell (result)', 'broker send -> client recv', 'client recv -> next client send']
    hops = defaultdict(list)
    for k, c in enumerate(cs):
        for j in range(7): hops[names[j]].append(us(c[j + 1][0] - c[j][0]))
        hops['round trip (client send -> client recv)'].append(us(c[7][0] - c[0][0]))
    for n in names[:7] + ['round trip (client send -> client recv)']:
        v = hops[n]; print(f'  {n:40s} p50 {st.median(v):7.1f} us   p25 {st.quantiles(v, n=4)[0]:7.1f}  p75 {st.quantiles(v, n=4)[2]:7.1f}')
    for label, (r, s, p) in {'broker request': (1, 2, b), 'worker': (3, 4, None), 'broker result': (5, 6, b)}.items():
        parts = [split(c[r][3], c[r], c[s]) for c in cs]
        parts = [x for x in parts if x]
        if not parts: print(f'  {label}: no split'); continue
        cols = list(zip(*parts))
        print(f'  {label:16s} split ({len(parts)}): io recv->eventfd write {st.median(cols[0]) * 1e6:6.1f} | wake of app thread {st.median(cols[1]) * 1e6:6.1f} | '
              f'app wake->its write {st.median(cols[2]) * 1e6:6.1f} ({st.median(cols[4]):.0f} syscalls) | write->io send {st.median(cols[3]) * 1e6:6.1f} | io syscalls {st.median(cols[5]):.0f}')
