// workers.js — the worker list (50 a page, filtered by id, host or SDK): host, SDK, capacity,
// in flight, state, direct (one connection to musterd), nodes served, and when this page last
// saw it listed.
import { Pager, fmtNum, fmtTime, h } from "./dom.js";

export class WorkerList {
  constructor(store, rerender) {
    this.store = store;
    this.pager = new Pager(50, rerender);
    this.filter = h("input", { id: "worker-filter", type: "search", placeholder: "filter: id, host or SDK", autocomplete: "off" });
    this.filter.addEventListener("input", () => { this.pager.page = 0; rerender(); });
    this.body = h("tbody");
    this.footer = h("div", { class: "table-foot" });
    this.el = h("section", { id: "workers", class: "panel-box" },
      h("h2", null, "Workers"), this.filter,
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", null, h("tr", null, ["worker", "host", "SDK", "capacity", "in flight", "state", "direct", "nodes", "last seen"].map((c) => h("th", null, c)))),
        this.body)),
      this.footer);
  }

  render() {
    const f = this.filter.value.trim().toLowerCase();
    let items = this.store.peersList;
    if (f) items = items.filter((w) => `${w.id} ${w.hostname} ${w.sdk}`.toLowerCase().includes(f));
    this.body.replaceChildren(...this.pager.slice(items).map((w) => this.row(w)));
    if (!items.length) this.body.append(h("tr", null, h("td", { colspan: 9, class: "muted" }, f ? "no worker matches" : "no workers attached")));
    this.footer.replaceChildren(this.pager.controls(items.length, "workers"));
  }

  row(w) {
    const seen = w.last_seen_ms ? Date.now() - w.last_seen_ms : null;
    const nodes = w.nodes ?? [];
    return h("tr", { dataset: { worker: w.id } },
      h("td", null, w.id),
      h("td", null, w.hostname || "–"),
      h("td", null, w.sdk || "–"),
      h("td", { class: "num" }, fmtNum(w.capacity)),
      h("td", { class: "num" }, fmtNum(w.in_flight)),
      h("td", null, h("span", { class: `badge ${w.state === "ready" ? "ok" : "warn"}` }, w.state)),
      h("td", { dataset: { stat: "direct" }, title: w.direct ? "one connection to musterd" : "a SUB and a DEALER" }, w.direct ? "yes" : "no"),
      h("td", { class: "ports", title: nodes.join(", ") }, nodes.length > 3 ? `${nodes.slice(0, 3).join(", ")} +${nodes.length - 3}` : nodes.join(", ")),
      h("td", null, seen !== null ? `${Math.round(seen / 1000)} s ago` : fmtTime(this.store.seen.get(w.id) ?? Date.now())));
  }
}
