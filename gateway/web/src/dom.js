// dom.js — the DOM helpers every view uses: h() builds elements, Frame batches every render
// into one requestAnimationFrame (and measures it), Pager cuts a long list into pages.
// Must never: touch the DOM outside a Frame flush for data pushed by the gateway.

// h("tr", {class: "x", dataset: {node: "hello"}, onclick: f}, child, "text", [more])
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "value" || k === "checked" || k === "max" || k === "disabled" || k === "hidden") el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// Views register a render function by name; mark(name) asks for it at the next animation
// frame. However many pushes arrive in between, each view renders at most once per frame.
export class Frame {
  constructor() {
    this.views = new Map();
    this.dirty = new Set();
    this.pending = false;
    this.after = [];
    // What the browser test reads (docs/DASHBOARD.md "Large brokers").
    this.stats = { frames: 0, last_ms: 0, max_ms: 0, total_ms: 0, by_view: {} };
  }

  on(name, render) {
    this.views.set(name, render);
    this.mark(name);
  }

  mark(...names) {
    for (const n of names) this.dirty.add(n);
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  // Resolves after the next flush has rendered (for measurements).
  rendered() {
    return new Promise((resolve) => {
      this.after.push(resolve);
      if (!this.pending) this.mark();
    });
  }

  flush() {
    this.pending = false;
    const t0 = performance.now();
    const names = [...this.dirty];
    this.dirty.clear();
    for (const n of names) {
      const render = this.views.get(n);
      if (!render) continue;
      const v0 = performance.now();
      try {
        render();
      } catch (e) {
        console.warn(`dashboard: view ${n} failed to render`, e);
      }
      const s = (this.stats.by_view[n] ??= { count: 0, last_ms: 0, max_ms: 0 });
      s.count += 1;
      s.last_ms = performance.now() - v0;
      s.max_ms = Math.max(s.max_ms, s.last_ms);
    }
    const ms = performance.now() - t0;
    this.stats.frames += 1;
    this.stats.last_ms = ms;
    this.stats.max_ms = Math.max(this.stats.max_ms, ms);
    this.stats.total_ms += ms;
    for (const resolve of this.after.splice(0)) resolve();
  }
}

// One page of a list at a time: slice(items) gives the rows, controls(total) the buttons.
export class Pager {
  constructor(size, onChange) {
    this.size = size;
    this.page = 0;
    this.onChange = onChange;
  }

  slice(items) {
    const pages = Math.max(1, Math.ceil(items.length / this.size));
    this.page = Math.min(this.page, pages - 1);
    return items.slice(this.page * this.size, (this.page + 1) * this.size);
  }

  controls(total, noun) {
    const pages = Math.max(1, Math.ceil(total / this.size));
    const first = total ? this.page * this.size + 1 : 0;
    const last = Math.min(total, (this.page + 1) * this.size);
    const go = (p) => () => {
      this.page = Math.max(0, Math.min(pages - 1, p));
      this.onChange();
    };
    return h("div", { class: "pager" },
      h("button", { type: "button", class: "small", disabled: this.page === 0, onclick: go(this.page - 1), "aria-label": "previous page" }, "‹"),
      h("span", { class: "range", dataset: { total: String(total) } }, `${first}–${last} of ${total} ${noun}`),
      h("button", { type: "button", class: "small", disabled: this.page >= pages - 1, onclick: go(this.page + 1), "aria-label": "next page" }, "›"));
  }
}

export function fmtDuration(ms) {
  if (ms === undefined || ms === null || Number.isNaN(ms)) return "–";
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s %= 86400;
  const hh = Math.floor(s / 3600);
  s %= 3600;
  const mm = Math.floor(s / 60);
  s %= 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${mm}m`;
  if (mm) return `${mm}m ${s}s`;
  return `${s}s`;
}

export function fmtNum(x, digits = 0) {
  if (x === undefined || x === null || Number.isNaN(x)) return "–";
  return Number(x).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function fmtMs(x) {
  if (x === undefined || x === null) return "–";
  return x < 10 ? `${Number(x).toFixed(2)} ms` : `${fmtNum(x, 1)} ms`;
}

export function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString("en-GB", { hour12: false });
}
