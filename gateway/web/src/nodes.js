// nodes.js — the node list: one page of rows at a time (50), each with its spec summary, workers,
// queue depth, in flight, and musterd's per-node rate, errors and p50/p99 when the gateway passes
// them on; the search form (service.search.request by name/description, category, active only).
import { Pager, fmtMs, fmtNum, h } from "./dom.js";

export class NodeList {
  constructor(store, { search, clearSearch, open, rerender }) {
    this.store = store;
    this.pager = new Pager(50, rerender);
    this.query = h("input", { id: "search-query", type: "search", placeholder: "name or description", autocomplete: "off" });
    this.category = h("select", { id: "search-category" }, h("option", { value: "" }, "any category"));
    this.active = h("input", { id: "search-active", type: "checkbox" });
    this.note = h("span", { class: "muted small", id: "search-note" });
    const form = h("form", { class: "search", id: "search-form", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      this.query, this.category, h("label", { class: "inline" }, this.active, " active only"),
      h("button", { type: "submit", id: "search-submit" }, "Search"),
      h("button", { type: "button", id: "search-clear", class: "secondary", onclick: () => { this.query.value = ""; this.category.value = ""; this.active.checked = false; clearSearch(); } }, "Clear"),
      this.note);
    let debounce = null;
    this.query.addEventListener("input", () => {
      clearTimeout(debounce);
      debounce = setTimeout(() => this.submit(), 300);
    });
    this.category.addEventListener("change", () => this.submit());
    this.active.addEventListener("change", () => this.submit());
    this.search = search;
    this.open = open;
    this.body = h("tbody");
    this.footer = h("div", { class: "table-foot" });
    this.el = h("section", { id: "nodes", class: "panel-box" },
      h("h2", null, "Nodes"), form,
      h("div", { class: "table-wrap" }, h("table", { class: "grid" },
        h("thead", null, h("tr", null, ["node", "category", "status", "inputs → outputs", "workers", "queue", "in flight", "rate/s", "ok", "errors", "p50", "p99"].map((c) => h("th", null, c)))),
        this.body)),
      this.footer);
    this.categories = "";
  }

  submit() {
    const q = { query: this.query.value.trim(), service_type: this.category.value, active_only: this.active.checked };
    if (!q.query && !q.service_type && !q.active_only) return this.search(null);
    this.search(q);
  }

  render() {
    const s = this.store;
    const cats = s.categories.join("\n");
    if (cats !== this.categories) {
      this.categories = cats;
      const keep = this.category.value;
      this.category.replaceChildren(h("option", { value: "" }, "any category"), ...s.categories.map((c) => h("option", { value: c }, c)));
      this.category.value = keep;
    }
    const items = s.visibleServices();
    this.note.textContent = s.search ? (s.search.error ? `search failed: ${s.search.error}` : `${items.length} match(es)`) : "";
    this.body.replaceChildren(...this.pager.slice(items).map((n) => this.row(n)));
    if (!items.length) this.body.append(h("tr", null, h("td", { colspan: 12, class: "muted" }, s.search ? "no node matches" : "no nodes yet")));
    this.footer.replaceChildren(this.pager.controls(items.length, "nodes"));
  }

  row(n) {
    const st = n.stats;
    const ports = (list) => (list ?? []).map((p) => `${p.name}:${p.type || "any"}`).join(", ") || "–";
    return h("tr", { dataset: { node: n.name }, class: n.status === "ACTIVE" ? "" : "inactive", onclick: () => this.open(n.name) },
      h("td", null, h("button", { type: "button", class: "link open-node", title: n.description }, n.name)),
      h("td", null, n.service_type || "–"),
      h("td", null, h("span", { class: `badge ${n.status === "ACTIVE" ? "ok" : "off"}` }, n.status)),
      h("td", { class: "ports" }, `${ports(n.config?.inputs)} → ${ports(n.config?.outputs)}`),
      h("td", { class: "num" }, fmtNum(n.workers)),
      h("td", { class: "num" }, fmtNum(n.queue_depth)),
      h("td", { class: "num" }, fmtNum(n.in_flight)),
      h("td", { class: "num", dataset: { stat: "rate" } }, st ? fmtNum(st.rate_per_s, 1) : "–"),
      h("td", { class: "num", dataset: { stat: "completed" } }, st ? fmtNum(st.completed) : "–"),
      h("td", { class: `num ${st?.failed ? "bad" : ""}`, dataset: { stat: "errors" } }, st ? fmtNum(st.failed) : "–"),
      h("td", { class: "num", dataset: { stat: "p50" } }, st ? fmtMs(st.p50_ms) : "–"),
      h("td", { class: "num", dataset: { stat: "p99" } }, st ? fmtMs(st.p99_ms) : "–"));
  }
}
