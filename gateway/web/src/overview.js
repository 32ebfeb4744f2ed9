// overview.js — the broker at a glance: uptime, workers, nodes, queued, in flight, capacity,
// calls/s and error rate (now and as charts over time, uPlot), latency percentiles.
import uPlot from "uplot";
import { fmtDuration, fmtMs, fmtNum, h } from "./dom.js";

export class Overview {
  constructor(store) {
    this.store = store;
    this.cards = h("div", { class: "cards" });
    this.rateBox = h("div", { class: "chart", id: "chart-rate" });
    this.errBox = h("div", { class: "chart", id: "chart-errors" });
    this.latency = h("div", { class: "latency" });
    this.source = h("div", { class: "muted small" });
    this.el = h("section", { id: "broker", class: "panel-box" },
      h("h2", null, "Broker"), this.cards,
      h("div", { class: "charts" },
        h("figure", null, h("figcaption", null, "calls / s"), this.rateBox),
        h("figure", null, h("figcaption", null, "error rate %"), this.errBox),
        h("figure", null, h("figcaption", null, "latency"), this.latency)),
      this.source);
    this.plots = null;
  }

  card(key, label, value, title) {
    return h("div", { class: "card", dataset: { stat: key }, title },
      h("div", { class: "value" }, value), h("div", { class: "label" }, label));
  }

  render() {
    const st = this.store.status;
    const s = st?.stats ?? {};
    const d = st?.daemon ?? {};
    const last = this.store.history.at(-1);
    const totals = this.store.totals();
    // musterd's uptime as of its last answer, moved on by the time since.
    const stale = document.getElementById("app")?.classList.contains("stale");
    const uptime = d.uptime_ms !== undefined ? d.uptime_ms + (stale ? 0 : Date.now() - this.store.statusAt) : undefined;
    this.cards.replaceChildren(
      this.card("uptime", "musterd uptime", fmtDuration(uptime), d.version ? `musterd ${d.version} · instance ${d.instance}` : ""),
      this.card("workers", "workers", fmtNum(s.workers)),
      this.card("nodes", "nodes", fmtNum(s.nodes)),
      this.card("queued", "queued", fmtNum(s.queued)),
      this.card("in_flight", "in flight", fmtNum(s.in_flight)),
      this.card("capacity", "capacity", fmtNum(s.capacity)),
      this.card("rate", "calls / s", last ? fmtNum(last.rate, 1) : "–"),
      this.card("errors", "error rate", last ? `${fmtNum(last.errorPct, 1)} %` : "–"),
      this.card("websockets", "dashboards & clients", fmtNum(s.websockets), "WebSockets open on this gateway"));
    const c = s.calls ?? {};
    const lat = this.store.latency();
    const ms = (x) => (x === undefined || x === null || !lat.count ? "–" : fmtMs(x));
    this.latency.dataset.source = lat.source;
    this.latency.replaceChildren(
      h("table", { class: "kv" },
        h("tr", null, h("th", null, "p50"), h("td", { dataset: { stat: "p50" } }, ms(lat.p50))),
        h("tr", null, h("th", null, "p90"), h("td", { dataset: { stat: "p90" } }, ms(lat.p90))),
        h("tr", null, h("th", null, "p99"), h("td", { dataset: { stat: "p99" } }, ms(lat.p99))),
        h("tr", null, h("th", null, "gateway"), h("td", null, `${fmtNum(c.completed)} ok · ${fmtNum(c.failed)} failed · ${fmtNum(c.cancelled)} cancelled`))),
      h("div", { class: "muted small" }, lat.source === "musterd"
        ? `service time, every caller's calls (musterd, ${fmtNum(lat.count)} calls; estimated from the per-node percentiles)`
        : "submit to terminal reply, calls through this gateway (last 4096)"));
    this.source.textContent = `rates from ${totals.source}; workspace ${st?.workspace ?? "–"}; gateway ${st?.peer_id ?? "–"} up ${fmtDuration((st?.uptime_seconds ?? 0) * 1000)}`;
    this.renderCharts();
  }

  renderCharts() {
    const hist = this.store.history;
    const xs = hist.map((p) => p.t);
    const data = [[xs, hist.map((p) => p.rate)], [xs, hist.map((p) => p.errorPct)]];
    const width = Math.max(200, Math.floor(this.rateBox.clientWidth || 300));
    if (!this.plots) {
      const opts = (label, stroke, fill) => ({
        width, height: 140, legend: { show: false }, cursor: { show: true, drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [{ stroke: "#667", grid: { stroke: "#eef" } }, { stroke: "#667", grid: { stroke: "#eef" }, size: 44 }],
        series: [{}, { label, stroke, fill, width: 2 }],
      });
      this.plots = [
        new uPlot(opts("calls/s", "#1f77b4", "rgba(31,119,180,0.12)"), data[0], this.rateBox),
        new uPlot(opts("error %", "#d62728", "rgba(214,39,40,0.12)"), data[1], this.errBox),
      ];
      this.width = width;
      return;
    }
    if (width !== this.width) {
      this.width = width;
      for (const p of this.plots) p.setSize({ width, height: 140 });
    }
    this.plots[0].setData(data[0]);
    this.plots[1].setData(data[1]);
  }
}
