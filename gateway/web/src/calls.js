// calls.js — the calls this page makes: execution.start with a client_ref of ours, each
// execution.updated folded into one record per call, execution.cancel; and how a result is
// shown (JSON, every bytes value also as a download link).
// Only the socket that started a call hears of it (docs/GATEWAY.md), so this is the page's own list.
import { h } from "./dom.js";
import { fromBase64 } from "./upload.js";

const KEEP = 100;

export class Calls {
  constructor(send, onChange) {
    this.send = send;
    this.onChange = onChange;  // (record) => void
    this.byRef = new Map();
    this.list = [];            // newest first
    this.seq = 0;
  }

  start(node, inputs, parameters, timeoutMs) {
    const ref = `dash-${Date.now().toString(36)}-${++this.seq}`;
    const rec = { ref, node, execution_id: null, status: "sending", progress: null, outputs: null, error: null, started: Date.now() };
    const payload = { node, inputs, parameters, client_ref: ref };
    if (timeoutMs) payload.timeout_ms = timeoutMs;
    this.byRef.set(ref, rec);
    this.list.unshift(rec);
    if (this.list.length > KEEP) this.byRef.delete(this.list.pop().ref);
    try {
      this.send("execution.start", payload);
    } catch (e) {
      rec.status = "failed";
      rec.error = { code: "UNAVAILABLE", message: e.message };
    }
    this.onChange(rec);
    return rec;
  }

  cancel(rec) {
    if (rec.execution_id === null || isTerminal(rec.status)) return;
    this.send("execution.cancel", { execution_id: rec.execution_id });
    rec.cancelling = true;
    this.onChange(rec);
  }

  // execution.updated
  onUpdate(p) {
    const rec = this.byRef.get(p?.client_ref);
    if (!rec) return null;
    rec.execution_id = p.execution_id;
    rec.status = p.status;
    if (p.progress) rec.progress = p.progress;
    if (p.outputs !== undefined && p.outputs !== null) rec.outputs = p.outputs;
    if (p.error) rec.error = p.error;
    this.onChange(rec);
    return rec;
  }

  // An `error` answering one of our execution.start messages (it carries our client_ref).
  onError(p) {
    const rec = this.byRef.get(p?.client_ref);
    if (!rec) return false;
    rec.status = "failed";
    rec.error = { code: p.code, message: p.error };
    this.onChange(rec);
    return true;
  }

  get open() {
    return this.list.filter((r) => !isTerminal(r.status)).length;
  }
}

export function isTerminal(status) {
  return status === "completed" || status === "failed" || status === "cancelled";
}

// JSON for people: bytes values abbreviated (their download links come from bytesLinks).
export function pretty(v, indent = "") {
  const next = indent + "  ";
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.length ? `[\n${v.map((x) => next + pretty(x, next)).join(",\n")}\n${indent}]` : "[]";
  if (v && typeof v === "object") {
    if (isBytes(v)) return `{"$bytes": "…${byteLength(v.$bytes)} bytes…"}`;
    const e = Object.entries(v);
    return e.length ? `{\n${e.map(([k, x]) => `${next}${JSON.stringify(k)}: ${pretty(x, next)}`).join(",\n")}\n${indent}}` : "{}";
  }
  return JSON.stringify(v);
}

// One download link per bytes value in `v` (named after its path).
export function bytesLinks(v, path = "") {
  const out = [];
  const walk = (x, p) => {
    if (isBytes(x)) {
      const blob = new Blob([fromBase64(x.$bytes)], { type: "application/octet-stream" });
      const name = `${p || "output"}.bin`.replace(/[^A-Za-z0-9_.-]/g, "_");
      out.push(h("a", { class: "download", href: URL.createObjectURL(blob), download: name, dataset: { path: p } },
        `⬇ ${p || "output"} (${blob.size} bytes)`));
    } else if (Array.isArray(x)) x.forEach((y, i) => walk(y, `${p}[${i}]`));
    else if (x && typeof x === "object") for (const [k, y] of Object.entries(x)) walk(y, p ? `${p}.${k}` : k);
  };
  walk(v, path);
  return out;
}

function isBytes(v) {
  return v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1 && typeof v.$bytes === "string";
}

function byteLength(b64) {
  const pad = b64.endsWith("==") ? 2 : b64.endsWith("=") ? 1 : 0;
  return (b64.length / 4) * 3 - pad;
}
