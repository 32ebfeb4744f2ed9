// lists.js — the event lists: workers joining and leaving as this page sees them, recent
// failures (musterd's when the gateway passes them on, and this page's own calls), and the
// calls this page made, each with its progress and a cancel button.
import { fmtTime, h } from "./dom.js";
import { isTerminal } from "./calls.js";

const SHOWN = 30;

export class Activity {
  constructor(store) {
    this.store = store;
    this.list = h("ul", { class: "events", id: "activity-list" });
    this.el = h("section", { id: "activity", class: "panel-box" }, h("h2", null, "Workers joining and leaving"), this.list);
  }

  render() {
    const items = this.store.activity.slice(0, SHOWN);
    this.list.replaceChildren(...items.map((e) =>
      h("li", { class: e.kind, dataset: { worker: e.id, kind: e.kind } },
        h("time", null, fmtTime(e.time)), h("span", { class: `badge ${e.kind === "joined" ? "ok" : "off"}` }, e.kind),
        h("strong", null, e.id), h("span", { class: "muted" }, e.detail))));
    if (!items.length) this.list.append(h("li", { class: "muted" }, "none since this page opened"));
  }
}

export class Failures {
  constructor(store) {
    this.store = store;
    this.list = h("ul", { class: "events", id: "failure-list" });
    this.el = h("section", { id: "failures", class: "panel-box" }, h("h2", null, "Recent failures"), this.list);
  }

  render() {
    const items = this.store.failures.slice(0, SHOWN);
    this.list.replaceChildren(...items.map((f) =>
      h("li", { dataset: { code: f.code, node: f.node, source: f.source === "musterd" ? "musterd" : "page" } },
        h("time", null, fmtTime(f.time)), h("span", { class: "badge bad" }, f.code), h("strong", null, f.node),
        h("span", { class: "message" }, f.message), h("span", { class: "muted small" }, f.source))));
    if (!items.length) this.list.append(h("li", { class: "muted" }, "no failures seen"));
  }
}

export class CallList {
  constructor(calls) {
    this.calls = calls;
    this.body = h("tbody");
    this.el = h("section", { id: "calls", class: "panel-box" }, h("h2", null, "Calls from this page"),
      h("div", { class: "table-wrap" }, h("table", { class: "grid" }, h("thead", null, h("tr", null, ["#", "node", "status", "progress", "started", ""].map((c) => h("th", null, c)))), this.body)));
  }

  render() {
    const items = this.calls.list.slice(0, SHOWN);
    this.body.replaceChildren(...items.map((r) => {
      const p = r.progress;
      return h("tr", { dataset: { execution: r.execution_id ?? "", ref: r.ref, status: r.status } },
        h("td", null, r.execution_id ?? "…"),
        h("td", null, r.node),
        h("td", null, h("span", { class: `badge ${badge(r.status)}` }, r.status), r.error ? h("span", { class: "muted small" }, ` ${r.error.code}`) : null),
        h("td", null, p?.total ? h("progress", { max: p.total, value: p.step ?? 0 }) : null, p?.message ? ` ${p.message}` : ""),
        h("td", null, fmtTime(r.started)),
        h("td", null, !isTerminal(r.status) && r.execution_id !== null
          ? h("button", { type: "button", class: "small secondary cancel-call", disabled: !!r.cancelling, onclick: () => this.calls.cancel(r) }, r.cancelling ? "cancelling…" : "Cancel")
          : null));
    }));
    if (!items.length) this.body.append(h("tr", null, h("td", { colspan: 6, class: "muted" }, "no calls yet: open a node to try it")));
  }
}

export function badge(status) {
  return { completed: "ok", failed: "bad", cancelled: "off", running: "run", pending: "run", sending: "run" }[status] ?? "";
}
