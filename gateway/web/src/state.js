// state.js — what the page knows about the broker, built only from the gateway's pushes:
// node.status, services.updated, peers.updated, service.search.response, execution.updated.
// Derives what the gateway does not send: calls/s and error rate over time, worker joins and
// leaves, the failures this page saw. Owns no DOM: views read it when a Frame flush asks.

const HISTORY = 360;   // chart points kept (30 min at the default 5 s node.status)
const EVENTS = 200;    // joins/leaves and failures kept
const byName = new Intl.Collator("en", { numeric: true }).compare;  // node.9 before node.10

export class Store {
  constructor() {
    this.reset();
  }

  reset() {
    this.status = null;            // last node.status payload
    this.statusAt = 0;
    this.services = new Map();     // name -> service entry (services.updated)
    this.servicesList = [];        // sorted by name
    this.categories = [];
    this.peers = new Map();        // id -> peer entry (peers.updated)
    this.peersList = [];
    this.seen = new Map();         // id -> ms this page last saw the worker listed
    this.activity = [];            // {time, kind: joined|left, id, detail}, newest first
    this.failures = [];            // {time, node, code, message, source}, newest first
    this.failureKeys = new Set();
    this.history = [];             // {t (s), rate, errorPct}
    this.lastTotals = null;        // {t, total, failed}
    this.search = null;            // {names: Set, query} while a search result is shown
    this.firstPeers = true;
  }

  // ---- pushes ----

  onStatus(p) {
    this.status = p;
    this.statusAt = Date.now();
    for (const f of p?.recent_failures ?? []) {
      this.addFailure({ time: toMs(f.time), node: f.node, code: f.code, message: f.message, source: "musterd" });
    }
    this.sample();
  }

  onServices(p) {
    const list = Array.isArray(p?.services) ? p.services : [];
    this.services = new Map(list.map((s) => [s.name, s]));
    this.servicesList = list.slice().sort((a, b) => byName(a.name, b.name));
    this.categories = [...new Set(list.map((s) => s.service_type).filter(Boolean))].sort();
  }

  onPeers(p) {
    const list = Array.isArray(p?.peers) ? p.peers : [];
    const now = Date.now();
    const next = new Map(list.map((w) => [w.id, w]));
    if (!this.firstPeers) {
      for (const [id, w] of next) {
        if (!this.peers.has(id)) this.addActivity({ time: now, kind: "joined", id, detail: `${w.hostname} · ${w.sdk} · ${(w.nodes ?? []).length} node(s)` });
      }
      for (const [id, w] of this.peers) {
        if (!next.has(id)) this.addActivity({ time: now, kind: "left", id, detail: `${w.hostname} · ${w.sdk}` });
      }
    }
    this.firstPeers = false;
    for (const id of next.keys()) this.seen.set(id, now);
    this.peers = next;
    this.peersList = list.slice().sort((a, b) => byName(a.id, b.id));
  }

  onExecution(p) {
    if (p?.status === "failed" || p?.status === "cancelled") {
      this.addFailure({
        time: toMs(p.completed_at) || Date.now(),
        node: p.node,
        code: p.error?.code ?? p.status.toUpperCase(),
        message: p.error?.message ?? "",
        source: "this page",
        execution_id: p.execution_id,
      });
    }
  }

  onSearch(p, query) {
    this.search = { names: new Set((p?.services ?? []).map((s) => s.name)), query, error: p?.error || "" };
  }

  clearSearch() {
    this.search = null;
  }

  // ---- derived ----

  addActivity(e) {
    this.activity.unshift(e);
    if (this.activity.length > EVENTS) this.activity.length = EVENTS;
  }

  addFailure(f) {
    const key = f.execution_id !== undefined ? `x${f.execution_id}` : `${f.time}|${f.node}|${f.code}|${f.message}`;
    if (this.failureKeys.has(key)) return;
    this.failureKeys.add(key);
    this.failures.unshift(f);
    this.failures.sort((a, b) => b.time - a.time);
    if (this.failures.length > EVENTS) this.failures.length = EVENTS;
  }

  // Per-node statistics (musterd's, when the gateway passes them on) summed; else the calls
  // made through this gateway (node.status stats.calls).
  totals() {
    let completed = 0, failed = 0, rate = 0, withStats = 0;
    for (const s of this.servicesList) {
      if (!s.stats) continue;
      withStats += 1;
      completed += s.stats.completed ?? 0;
      failed += s.stats.failed ?? 0;
      rate += s.stats.rate_per_s ?? 0;
    }
    if (withStats) return { total: completed + failed, failed, rate, source: "musterd per-node statistics" };
    const c = this.status?.stats?.calls ?? {};
    const f = (c.failed ?? 0) + (c.cancelled ?? 0);
    return { total: (c.completed ?? 0) + f, failed: f, rate: null, source: "calls through this gateway" };
  }

  // Latency percentiles of the whole workspace (ms): from musterd's per-node statistics when the
  // gateway passes them on (service time, every caller's calls, estimated from each node's
  // p50/p90/p99 weighted by its calls), else the calls made through this gateway.
  latency() {
    const nodes = [];
    for (const s of this.servicesList) {
      const st = s.stats;
      const weight = (st?.completed ?? 0) + (st?.failed ?? 0);
      if (weight > 0 && st.p99_ms > 0) nodes.push({ weight, p50: st.p50_ms, p90: st.p90_ms, p99: st.p99_ms });
    }
    if (nodes.length) {
      return { ...mergePercentiles(nodes), count: nodes.reduce((n, x) => n + x.weight, 0), source: "musterd" };
    }
    const c = this.status?.stats?.calls ?? {};
    if (!c.count) return { count: 0, source: "gateway" };
    const ms = (us) => (us === undefined || us === null ? undefined : us / 1000);
    return { p50: ms(c.p50_us), p90: ms(c.p90_us), p99: ms(c.p99_us), count: c.count, source: "gateway" };
  }

  sample() {
    const t = Date.now() / 1000;
    const now = this.totals();
    const last = this.lastTotals;
    if (last && t - last.t < 0.5) return; // too close to the last sample: counted in the next one
    this.lastTotals = { t, total: now.total, failed: now.failed };
    if (!last) return;
    const dt = t - last.t;
    const dTotal = Math.max(0, now.total - last.total);
    const dFailed = Math.max(0, now.failed - last.failed);
    const rate = now.rate ?? dTotal / dt;
    this.history.push({ t, rate, errorPct: dTotal ? (100 * dFailed) / dTotal : 0 });
    if (this.history.length > HISTORY) this.history.shift();
  }

  // The node rows to show: the search result while one is shown, else every node.
  visibleServices() {
    if (!this.search) return this.servicesList;
    return this.servicesList.filter((s) => this.search.names.has(s.name));
  }
}

// The p50, p90 and p99 of several nodes' calls taken together, from each node's own p50/p90/p99
// and its number of calls: each node's distribution is taken as linear between its percentiles
// (0 at 0, up to 100 % at twice its p99), the mixture weighted by calls, and each percentile
// found by bisection. Exact for one node; an estimate for several (musterd sends no buckets).
export function mergePercentiles(nodes) {
  const cdf = (n, x) => {
    const pts = [[0, 0], [n.p50, 0.5], [n.p90, 0.9], [n.p99, 0.99], [2 * n.p99, 1]];
    if (x >= pts[4][0]) return 1;
    for (let i = 1; i < pts.length; i++) {
      const [x1, y1] = pts[i];
      if (x <= x1) {
        const [x0, y0] = pts[i - 1];
        return x1 > x0 ? y0 + ((y1 - y0) * (x - x0)) / (x1 - x0) : y1;
      }
    }
    return 1;
  };
  const total = nodes.reduce((n, x) => n + x.weight, 0);
  const mixed = (x) => nodes.reduce((sum, n) => sum + n.weight * cdf(n, x), 0) / total;
  const quantile = (q) => {
    let lo = 0, hi = 2 * Math.max(...nodes.map((n) => n.p99));
    for (let i = 0; i < 60; i++) {
      const mid = (lo + hi) / 2;
      if (mixed(mid) < q) lo = mid; else hi = mid;
    }
    return hi;
  };
  return { p50: quantile(0.5), p90: quantile(0.9), p99: quantile(0.99) };
}

function toMs(t) {
  if (t === undefined || t === null) return 0;
  if (typeof t === "string") return Date.parse(t) || 0;
  return t < 1e12 ? t * 1000 : t; // unix seconds or ms
}
