// panel.js — one node in detail, beside the lists: its spec (inputs, outputs, parameters), the
// workers serving it, its statistics, and "try it": a form generated from its typed inputs and
// parameters, the call's live progress bar, cancel, and the result (JSON, bytes as downloads).
// A read-only user sees the node but no call button and no upload (the gateway refuses both
// anyway: docs/GATEWAY.md, PERMISSION_DENIED).
import { bytesLinks, isTerminal, pretty } from "./calls.js";
import { fmtMs, fmtNum, h } from "./dom.js";
import { portField } from "./form.js";
import { badge } from "./lists.js";

export class NodePanel {
  constructor(store, { calls, uploads, canCall, close }) {
    this.store = store;
    this.calls = calls;
    this.uploads = uploads;
    this.canCall = canCall;
    this.name = null;
    this.el = h("aside", { id: "panel", class: "panel-box", hidden: true });
    this.live = h("div", { class: "live" });
    this.close = close;
    this.rec = null;
  }

  open(name) {
    this.name = name;
    this.rec = null;
    const n = this.store.services.get(name);
    this.el.hidden = false;
    this.el.dataset.node = name;
    const cfg = n?.config ?? {};
    this.busy = 0;
    const ctx = { canUpload: this.canCall(), uploads: this.uploads, onBusy: (d) => { this.busy += d; this.updateButtons(); } };
    this.inputs = (cfg.inputs ?? []).map((p) => portField(p, "inputs", ctx));
    this.params = (cfg.parameters ?? []).map((p) => portField(p, "parameters", ctx));
    this.timeout = h("input", { id: "call-timeout", type: "number", min: 0, step: 1, placeholder: cfg.default_timeout_ms ? `${cfg.default_timeout_ms}` : "node default" });
    this.formError = h("div", { class: "form-error", id: "call-form-error" });
    this.callButton = h("button", { type: "submit", id: "call-button" }, "Call");
    this.cancelButton = h("button", { type: "button", id: "cancel-button", class: "secondary", disabled: true, onclick: () => this.rec && this.calls.cancel(this.rec) }, "Cancel");
    this.status = h("span", { id: "call-status", class: "badge" }, "idle");
    this.progress = h("progress", { id: "call-progress", max: 1, value: 0 });
    this.progressText = h("span", { id: "call-progress-text", class: "muted" });
    this.result = h("pre", { id: "call-result" });
    this.downloads = h("div", { id: "call-downloads" });
    const form = h("form", { id: "try-form", onsubmit: (e) => { e.preventDefault(); this.submit(); } },
      h("h3", null, "Inputs"), this.inputs.length ? this.inputs.map((f) => f.el) : h("p", { class: "muted" }, "this node declares no inputs"),
      this.params.length ? [h("h3", null, "Parameters"), this.params.map((f) => f.el)] : null,
      h("div", { class: "field" }, h("label", { for: "call-timeout" }, h("span", { class: "port-name" }, "timeout"), h("span", { class: "port-type" }, "ms")), this.timeout),
      this.formError,
      this.canCall()
        ? h("div", { class: "actions" }, this.callButton, this.cancelButton)
        : h("p", { class: "read-only-note", id: "read-only-note" }, "Your role is read: you can watch this node, not call it. Calls and uploads need role call or admin."));
    const spec = (title, ports) => h("div", null, h("h4", null, title), ports?.length
      ? h("table", { class: "grid spec" }, h("thead", null, h("tr", null, ["name", "type", "required", "default", "description"].map((c) => h("th", null, c)))),
        h("tbody", null, ports.map((p) => h("tr", null, h("td", null, p.name), h("td", null, p.type || "any"), h("td", null, p.required ? "yes" : ""),
          h("td", null, p.default_value !== undefined && p.default_value !== null ? JSON.stringify(p.default_value) : ""), h("td", null, p.description ?? "")))))
      : h("p", { class: "muted" }, "none"));
    this.el.replaceChildren(
      h("div", { class: "panel-head" }, h("h2", null, name), h("button", { type: "button", class: "secondary small", id: "panel-close", onclick: () => this.close() }, "Close")),
      h("p", { class: "description" }, n?.description ?? ""),
      h("p", { class: "muted small" }, `category ${n?.service_type || "–"} · version ${cfg.version || "–"} · ${cfg.idempotent ? "idempotent" : "not idempotent"}`),
      this.live,
      h("div", { class: "try" }, h("h3", null, "Try it"), form,
        h("div", { class: "execution" }, h("div", null, this.status, " ", this.progressText), this.progress, this.result, this.downloads)),
      h("details", { open: true }, h("summary", null, "Spec"), spec("Inputs", cfg.inputs), spec("Outputs", cfg.outputs), spec("Parameters", cfg.parameters)));
    this.render();
    this.updateButtons();
  }

  hide() {
    this.name = null;
    this.el.hidden = true;
  }

  submit() {
    this.formError.textContent = "";
    const collect = (fields) => {
      const out = {};
      for (const f of fields) {
        const r = f.read();
        if (r.set) out[f.port.name] = r.value;
      }
      return out;
    };
    let inputs, parameters;
    try {
      inputs = collect(this.inputs);
      parameters = collect(this.params);
    } catch (e) {
      this.formError.textContent = e.message;
      return;
    }
    const t = this.timeout.value.trim();
    this.rec = this.calls.start(this.name, inputs, parameters, t ? Number(t) : 0);
    this.renderCall();
  }

  updateButtons() {
    const running = this.rec && !isTerminal(this.rec.status);
    this.callButton.disabled = this.busy > 0;
    this.cancelButton.disabled = !running || this.rec.execution_id === null || !!this.rec.cancelling;
  }

  // The call shown here changed (Calls.onChange).
  callChanged(rec) {
    if (rec === this.rec) this.renderCall();
  }

  renderCall() {
    const r = this.rec;
    if (!r) return;
    this.status.className = `badge ${badge(r.status)}`;
    this.status.textContent = r.status;
    this.status.dataset.status = r.status;
    const p = r.progress;
    if (p?.total) {
      this.progress.max = p.total;
      this.progress.value = p.step ?? 0;
    } else if (r.status === "completed") {
      this.progress.max = 1;
      this.progress.value = 1;
    } else if (!isTerminal(r.status)) {
      this.progress.removeAttribute("value"); // indeterminate until the first report
    }
    this.progressText.textContent = [r.execution_id !== null ? `execution ${r.execution_id}` : "", p?.total ? `${p.step}/${p.total}` : "", p?.message ?? ""].filter(Boolean).join(" · ");
    if (r.status === "completed") {
      this.result.className = "ok";
      this.result.textContent = pretty(r.outputs ?? {});
      this.downloads.replaceChildren(...bytesLinks(r.outputs ?? {}));
    } else if (r.error) {
      this.result.className = "bad";
      this.result.textContent = `${r.error.code}: ${r.error.message}`;
      this.downloads.replaceChildren();
    } else {
      this.result.className = "";
      this.result.textContent = "";
      this.downloads.replaceChildren();
    }
    this.updateButtons();
  }

  // The live part: status, workers serving it and its statistics (services.updated).
  render() {
    if (!this.name) return;
    const n = this.store.services.get(this.name);
    if (!n) {
      this.live.replaceChildren(h("p", { class: "bad" }, "this node is no longer listed"));
      return;
    }
    const st = n.stats;
    const workers = (n.peer_ids ?? []).map((id) => {
      const w = this.store.peers.get(id);
      return h("li", { dataset: { worker: id } }, h("strong", null, id), w ? ` ${w.hostname} · ${w.sdk} · ${w.in_flight}/${w.capacity} · ${w.state}` : "");
    });
    this.live.replaceChildren(
      h("div", { class: "cards small-cards" },
        stat("status", n.status), stat("workers", fmtNum(n.workers)), stat("queue", fmtNum(n.queue_depth)), stat("in flight", fmtNum(n.in_flight)),
        st ? [stat("rate/s", fmtNum(st.rate_per_s, 1)), stat("completed", fmtNum(st.completed)), stat("failed", fmtNum(st.failed)),
          stat("p50", fmtMs(st.p50_ms)), stat("p90", fmtMs(st.p90_ms)), stat("p99", fmtMs(st.p99_ms)), stat("queue wait p50", fmtMs(st.queue_wait_p50_ms))] : null),
      h("h4", null, "Workers serving it"), workers.length ? h("ul", { class: "workers-of-node" }, workers) : h("p", { class: "muted" }, "none"));
  }
}

function stat(label, value) {
  return h("div", { class: "card" }, h("div", { class: "value" }, value), h("div", { class: "label" }, label));
}
