#!/usr/bin/env python3
"""timeline.py — the tables of tools/bench/timeline.sh for one system's directory (pids.txt,
sched.txt from `perf sched timehist`, sys.txt from `perf script` of raw_syscalls, bench.txt).
usage: timeline.py DIR SYSTEM [GANTT_MS]

Per process (client = the bench process, broker, workers averaged per process) and thread kind
(loop = the main thread, io = libzmq's I/O thread, pool = any other thread): % of the window
running, runnable but not running (woken or preempted, waiting for a CPU), sleeping; wake-ups
per call. Per CPU: % idle. Per thread kind: syscalls per call, reads/writes of a socket per
call, calls per socket write and read (bytes per syscall / bytes per call: the batch each
hop carries), and calls per loop wake. With 2 CPUs: the idle stretches and what the other CPU runs
meanwhile; with GANTT_MS (> 0), a picture of that many ms of the window. Never part of the tests."""
import re, sys, statistics as st
from collections import defaultdict
from perf_syscalls import events, SENDTO, RECVFROM, WRITE, POLL, PPOLL, EPOLL_WAIT, SENDMSG, RECVMSG

d, system = sys.argv[1], sys.argv[2]
roles = {}
for line in open(f'{d}/pids.txt'):
    pid, cmd = line.split(' ', 1)
    pid = int(pid)
    roles[pid] = ('broker' if ('musterd' in cmd or 'forwarder' in cmd) else
                  'worker' if 'worker' in cmd else 'client' if 'muster-bench ' in cmd + ' ' else 'other')
nproc = {r: sum(1 for v in roles.values() if v == r) for r in set(roles.values())}
calls_s = None
for line in open(f'{d}/bench.txt'):  # "[ipc] muster  64 B throughput p50 … 188666 calls/s …"
    m = re.search(r'throughput p50.*?(\d+)\s+calls/s', line)
    if m: calls_s = float(m.group(1))


def kind(pid, tid, comm):
    if comm.startswith('ZMQbg/IO'): return 'io'
    if comm.startswith('ZMQbg/Reaper'): return 'reaper'
    return 'loop' if tid == pid else 'pool'


# --- scheduler: perf sched timehist (time cpu task[tid/pid] wait delay run, ms) ---
task_re = re.compile(r'^\s*([\d.]+)\s+\[(\d+)\]\s+(<idle>|.*?\[(\d+)(?:/(\d+))?\])\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)')
run = defaultdict(float); delay = defaultdict(float); wakes = defaultdict(int); idle = defaultdict(float)
others = defaultdict(float)  # run time of every task outside the stack (perf itself, other work)
spans = defaultdict(list)  # cpu -> (start, end, who): who ran on each CPU when ('idle', 'other', 'broker loop', ...)
idle_len = []  # µs of each idle stretch
t0 = t1 = None
for line in open(f'{d}/sched.txt'):
    m = task_re.match(line)
    if not m: continue
    t, cpu, comm, a, b, _wait, dly, rn = m.groups()
    t = float(t); t0 = t if t0 is None else t0; t1 = t
    start = t - float(rn) / 1000
    if comm == '<idle>':
        idle[int(cpu)] += float(rn); idle_len.append(float(rn) * 1000)
        spans[int(cpu)].append((start, t, 'idle')); continue
    comm = comm[:comm.rindex('[')]
    tid = int(a); pid = int(b) if b else tid
    if pid not in roles:
        others[comm.split('/')[0].split(':')[0]] += float(rn)
        spans[int(cpu)].append((start, t, 'other')); continue
    key = (roles[pid], kind(pid, tid, comm), pid, tid)
    spans[int(cpu)].append((start, t, f'{roles[pid]} {key[1]}'))
    run[key] += float(rn); delay[key] += float(dly); wakes[key] += 1
window_ms = (t1 - t0) * 1000 if t0 is not None else 0
calls_sched = calls_s * window_ms / 1000 if calls_s else float('nan')

print(f'== {system}: {calls_s:,.0f} calls/s (bench), sched window {window_ms:.0f} ms' if calls_s else f'== {system}')
print('CPU idle: ' + ', '.join(f'cpu{c} {100 * v / window_ms:.1f} %' for c, v in sorted(idle.items()))
      + '; outside the stack (% of a CPU): ' + ', '.join(f'{k} {100 * v / window_ms:.1f}' for k, v in
                                                       sorted(others.items(), key=lambda kv: -kv[1])[:4]))
groups = defaultdict(lambda: [0.0, 0.0, 0, set()])
for key in run:
    g = groups[key[:2]]
    g[0] += run[key]; g[1] += delay[key]; g[2] += wakes[key]; g[3].add(key[3])
print(f'{"process / thread":<18} {"threads":>7} {"running %":>9} {"runnable %":>10} {"sleeping %":>10} {"wake-ups/call":>13}')
for (role, k), (r, dl, w, tids) in sorted(groups.items()):
    n = nproc.get(role, 1)
    threads = len(tids) / n
    r_pct, d_pct = 100 * r / window_ms / n, 100 * dl / window_ms / n
    sl = 100 * threads - r_pct - d_pct
    print(f'{role + " " + k:<18} {threads:>7.0f} {r_pct:>9.1f} {d_pct:>10.1f} {sl:>10.1f} {w / calls_sched:>13.3f}')

# What the other CPU runs while one idles (2 CPUs): the thread that works alone meanwhile.
if len(spans) == 2 and idle_len:
    alone = defaultdict(float)
    for cpu in spans:
        other = sorted(spans[1 - cpu]); j = 0
        for s0, e0, who in sorted(spans[cpu]):
            if who != 'idle': continue
            while j < len(other) and other[j][1] < s0: j += 1
            k = j
            while k < len(other) and other[k][0] < e0:
                ov = min(e0, other[k][1]) - max(s0, other[k][0])
                if ov > 0: alone[other[k][2]] += ov
                k += 1
    total = sum(alone.values())
    v = sorted(idle_len)
    print(f'idle stretches: {len(v)}, µs p10 {v[len(v) // 10]:.0f} p50 {v[len(v) // 2]:.0f} p90 {v[9 * len(v) // 10]:.0f}; '
          f'{100 * sum(x for x in v if x >= 50) / sum(v):.0f} % of the idle time in stretches of 50 µs or more')
    print('while one CPU idles, the other runs: ' + ', '.join(
        f'{w} {100 * x / total:.0f} %' for w, x in sorted(alone.items(), key=lambda kv: -kv[1]) if x / total >= 0.02))
if len(sys.argv) > 3 and float(sys.argv[3]) > 0:  # a picture of GANTT_MS ms: which CPU each thread ran on
    span_ms = float(sys.argv[3]); cols = 120
    lo = t0 + (t1 - t0) / 3; step = span_ms / 1000 / cols
    rows = defaultdict(lambda: [' '] * cols)
    for cpu, lst in spans.items():
        for s0, e0, who in lst:
            if who == 'idle' or e0 < lo or s0 > lo + span_ms / 1000: continue
            for k in range(max(0, int((s0 - lo) / step)), min(cols, int((e0 - lo) / step) + 1)): rows[who][k] = str(cpu)
    print(f'{span_ms:g} ms from a third into the window, a column = {step * 1e6:.0f} µs, the digit = the CPU it ran on:')
    for who in sorted(rows): print(f'  {who:<13}|' + ''.join(rows[who]) + '|')

# --- syscalls: perf script of raw_syscalls ---
count = defaultdict(int); sends = defaultdict(list); recvs = defaultdict(list); empty_recvs = defaultdict(int)
waits = defaultdict(int); evwrites = defaultdict(int)
s0 = s1 = None
entered = {}  # tid -> the syscall of its last enter
for t, pid, tid, comm, ev, nr, _fd, ret in events(f'{d}/sys.txt', roles):
    s0 = t if s0 is None else s0; s1 = t
    key = (roles[pid], kind(pid, tid, comm))
    if ev == 'enter':
        count[key] += 1; entered[tid] = nr
        if nr in (POLL, PPOLL, EPOLL_WAIT): waits[key] += 1
        continue
    if entered.get(tid) != nr: continue
    if nr in (SENDTO, SENDMSG) and ret > 0: sends[key].append(ret)
    elif nr in (RECVFROM, RECVMSG):
        if ret > 0: recvs[key].append(ret)
        else: empty_recvs[key] += 1
    elif nr == WRITE and ret == 8: evwrites[key] += 1
sys_ms = (s1 - s0) * 1000 if s0 is not None else 0
calls_sys = calls_s * sys_ms / 1000 if calls_s else float('nan')


def q(v, p):
    return sorted(v)[min(len(v) - 1, int(p * len(v)))] if v else 0


print(f'syscalls over {sys_ms:.0f} ms (~{calls_sys:,.0f} calls at the bench\'s rate; tracing slows every stack)')
print(f'{"process / thread":<18} {"sys/call":>8} {"waits/call":>10} {"eventfd w/call":>14} '
      f'{"writes/call":>11} {"calls/write p50 mean p90":>24} {"reads/call":>10} {"calls/read p50 mean p90":>23}')
for key in sorted(count):
    c = count[key] / calls_sys
    w, rd = sends[key], recvs[key]
    # bytes per call on this thread's writes (reads): all the bytes over the calls in the window
    bw = sum(w) / calls_sys if w else 0
    br = sum(rd) / calls_sys if rd else 0
    fw = (f'{q(w, .5) / bw:>6.1f} {st.mean(w) / bw:>6.1f} {q(w, .9) / bw:>6.1f}' if w else f'{"-":>20}')
    fr = (f'{q(rd, .5) / br:>6.1f} {st.mean(rd) / br:>6.1f} {q(rd, .9) / br:>6.1f}' if rd else f'{"-":>20}')
    print(f'{key[0] + " " + key[1]:<18} {c:>8.3f} {waits[key] / calls_sys:>10.3f} {evwrites[key] / calls_sys:>14.3f} '
          f'{len(w) / calls_sys:>11.4f} {fw:>24} {len(rd) / calls_sys:>10.4f} {fr:>23}')
for role in ('client', 'broker', 'worker'):
    k = (role, 'loop')
    if waits.get(k):
        print(f'{role} loop: {calls_sys / waits[k]:.1f} calls per wait (poll) of its loop thread')
