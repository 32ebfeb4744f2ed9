"""netem.py — a network namespace behind packet loss, delay and partitions, for the fault
driver: `tc netem` on a veth pair where the kernel has netem, else the same in user space
over a pair of TUN devices (some kernels, e.g. minimal VM kernels, ship without sch_netem).

    link = make_link(tag, delay_ms=50, loss_pct=5)   # raises LinkUnavailable with the reason
    link.prefix()            # ["ip", "netns", "exec", name]: run a command inside
    link.host_ip, link.ns_ip # the two ends (10.213.<tag % 250>.1 / .2)
    link.set(delay_ms, loss_pct)   # loss 100 = partition
    link.delete()

Owns: the namespace, the link and the forwarder process; nothing else on the host is touched
(the only addresses used are the link's own /30).
Must never: leave a namespace or device behind (delete() is idempotent and runs at exit).
"""
from __future__ import annotations

import collections
import fcntl
import multiprocessing as mp
import os
import random
import select
import struct
import subprocess
import time
from typing import List


class LinkUnavailable(Exception):
    pass


def _run(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=20)


def _err(e: Exception) -> str:
    if isinstance(e, subprocess.CalledProcessError):
        return (e.stderr or e.stdout or str(e)).strip()
    return str(e)


class _Base:
    kind = "?"

    def __init__(self, tag: int):
        self.name = f"mfault{tag}"
        sub = tag % 250
        self.host_ip = f"10.213.{sub}.1"
        self.ns_ip = f"10.213.{sub}.2"
        self.created = False
        self.delay_ms = 0
        self.loss_pct = 0.0

    def exec(self, *args, check=True):
        return _run("ip", "netns", "exec", self.name, *args, check=check)

    def prefix(self) -> List[str]:
        return ["ip", "netns", "exec", self.name]

    def _check_free(self):
        r = _run("ip", "-br", "addr", check=False)
        if self.host_ip in r.stdout:
            raise LinkUnavailable(f"{self.host_ip} is already in use on this host")
        r = _run("ip", "netns", "list", check=False)
        if self.name in r.stdout.split():
            raise LinkUnavailable(f"network namespace {self.name} already exists")

    def describe(self) -> str:
        return f"{self.kind}: {self.delay_ms} ms delay, {self.loss_pct} % loss each way"


class VethNetem(_Base):
    """veth pair, `tc netem` on both ends."""
    kind = "veth + tc netem"

    def __init__(self, tag: int):
        super().__init__(tag)
        self.host_if = f"mfh{tag}"
        self.ns_if = f"mfn{tag}"

    def create(self, delay_ms: int, loss_pct: float):
        self._check_free()
        _run("ip", "netns", "add", self.name)
        self.created = True
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _run("ip", "link", "set", self.ns_if, "netns", self.name)
        _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        self.exec("ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        self.exec("ip", "link", "set", self.ns_if, "up")
        self.exec("ip", "link", "set", "lo", "up")
        self._qdisc("add", delay_ms, loss_pct)

    def _qdisc(self, verb: str, delay_ms: int, loss_pct: float):
        spec = ["netem", "delay", f"{delay_ms}ms", "loss", f"{loss_pct:g}%"]
        _run("tc", "qdisc", verb, "dev", self.host_if, "root", *spec)
        self.exec("tc", "qdisc", verb, "dev", self.ns_if, "root", *spec)
        self.delay_ms, self.loss_pct = delay_ms, loss_pct

    def set(self, delay_ms: int, loss_pct: float):
        self._qdisc("change", delay_ms, loss_pct)

    def delete(self):
        if self.created:
            _run("ip", "netns", "del", self.name, check=False)
            _run("ip", "link", "del", self.host_if, check=False)
            self.created = False


TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _forward(fd_a: int, fd_b: int, delay_ms, loss_pct, stats, seed: int):
    """Moves IP packets between the two TUN devices: each is dropped with probability
    loss_pct/100 and otherwise delivered delay_ms later (order kept per direction)."""
    rnd = random.Random(seed)
    queues = {fd_a: collections.deque(), fd_b: collections.deque()}  # to write on that fd
    other = {fd_a: fd_b, fd_b: fd_a}
    for fd in (fd_a, fd_b):
        os.set_blocking(fd, False)
    while True:
        now = time.monotonic()
        due = min((q[0][0] for q in queues.values() if q), default=now + 0.05)
        timeout = max(0.0, min(0.05, due - now))
        readable, _, _ = select.select([fd_a, fd_b], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            for _ in range(256):
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not pkt:
                    break
                stats[0] += 1
                if rnd.random() * 100.0 < loss_pct.value:
                    stats[1] += 1
                    continue
                queues[other[fd]].append((now + delay_ms.value / 1000.0, pkt))
        for fd, q in queues.items():
            while q and q[0][0] <= now:
                _, pkt = q.popleft()
                try:
                    os.write(fd, pkt)
                except (BlockingIOError, OSError):
                    stats[1] += 1


class TunNetem(_Base):
    """Two TUN devices (one moved into the namespace) joined by a user-space forwarder that
    drops and delays packets: netem without the kernel module."""
    kind = "tun pair + user-space netem"

    def __init__(self, tag: int):
        super().__init__(tag)
        self.host_if = f"mft{tag}h"
        self.ns_if = f"mft{tag}n"
        self.proc = None
        ctx = mp.get_context("fork")
        self._delay = ctx.Value("d", 0.0)
        self._loss = ctx.Value("d", 0.0)
        self._stats = ctx.Array("q", 2)
        self._ctx = ctx

    def create(self, delay_ms: int, loss_pct: float):
        self._check_free()
        _run("ip", "netns", "add", self.name)
        self.created = True
        fd_h = _open_tun(self.host_if)
        fd_n = _open_tun(self.ns_if)
        try:
            _run("ip", "link", "set", self.ns_if, "netns", self.name)
            _run("ip", "addr", "add", self.host_ip, "peer", self.ns_ip, "dev", self.host_if)
            _run("ip", "link", "set", self.host_if, "up")
            self.exec("ip", "addr", "add", self.ns_ip, "peer", self.host_ip, "dev", self.ns_if)
            self.exec("ip", "link", "set", self.ns_if, "up")
            self.exec("ip", "link", "set", "lo", "up")
            self.set(delay_ms, loss_pct)
            self.proc = self._ctx.Process(target=_forward,
                                          args=(fd_h, fd_n, self._delay, self._loss, self._stats,
                                                os.getpid()), daemon=True)
            self.proc.start()
        finally:
            os.close(fd_h)
            os.close(fd_n)

    def set(self, delay_ms: int, loss_pct: float):
        self._delay.value = float(delay_ms)
        self._loss.value = float(loss_pct)
        self.delay_ms, self.loss_pct = delay_ms, loss_pct

    def packets(self):
        return dict(forwarded_or_dropped=self._stats[0], dropped=self._stats[1])

    def delete(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.join(5)
            self.proc = None
        if self.created:
            _run("ip", "netns", "del", self.name, check=False)
            _run("ip", "link", "del", self.host_if, check=False)
            self.created = False


def make_link(tag: int, delay_ms: int, loss_pct: float):
    """The best available link; LinkUnavailable says why there is none."""
    if os.geteuid() != 0:
        raise LinkUnavailable("needs root (network namespaces)")
    for tool in ("ip",):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            raise LinkUnavailable(f"`{tool}` is not installed (Debian: iproute2)")
    reasons = []
    veth = VethNetem(tag)
    try:
        veth.create(delay_ms, loss_pct)
        return veth
    except LinkUnavailable:
        raise
    except Exception as e:
        veth.delete()
        reasons.append(f"tc netem: {_err(e)}")
    tun = TunNetem(tag)
    try:
        tun.create(delay_ms, loss_pct)
        return tun
    except LinkUnavailable:
        raise
    except Exception as e:
        tun.delete()
        reasons.append(f"tun: {_err(e)}")
    raise LinkUnavailable("; ".join(reasons))
