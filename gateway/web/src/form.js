// form.js — a form generated from a node's typed ports (PROTOCOL.md §5: any, null, bool, int,
// float, string, bytes, list, map) and the value each field gives, as muster's JSON (§4): ints
// as exact int64 literals, floats always with a fraction, bytes as {"$file": "sha256:…"} of a
// chunked upload, list/map/any as the JSON typed in.
// Must never: send a field the user left empty (the worker applies the port's default).
import { Literal } from "./api.js";
import { h } from "./dom.js";

const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n;

// One field per port. canUpload: the user may upload (role call/admin). uploads: Uploads.
// Returns {el, read()} where read() gives {set: false} or {set: true, value} or throws Error.
export function portField(port, section, { canUpload, uploads, onBusy }) {
  const type = port.type || "any";
  const id = `f-${section}-${port.name}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const dflt = port.default_value !== undefined && port.default_value !== null ? `default ${JSON.stringify(port.default_value)}` : "";
  const label = h("label", { for: id },
    h("span", { class: "port-name" }, port.name),
    h("span", { class: "port-type" }, type),
    port.required ? h("span", { class: "required", title: "required" }, "required") : null);
  const help = port.description ? h("div", { class: "port-help" }, port.description) : null;
  const common = { id, dataset: { port: port.name, type, section } };
  let input, read, extra = null;

  const text = (v) => v.trim();
  if (type === "string") {
    input = h("input", { ...common, type: "text", placeholder: dflt || "text", autocomplete: "off" });
    read = () => (input.value === "" && !port.required ? { set: false } : { set: true, value: input.value });
  } else if (type === "int") {
    input = h("input", { ...common, type: "text", inputmode: "numeric", placeholder: dflt || "integer", autocomplete: "off" });
    read = () => {
      const t = text(input.value);
      if (t === "") return missing(port);
      if (!/^[+-]?\d+$/.test(t)) throw new Error(`${port.name}: "${t}" is not an integer`);
      const n = BigInt(t);
      if (n < INT64_MIN || n > INT64_MAX) throw new Error(`${port.name}: ${t} is out of the int64 range`);
      return { set: true, value: new Literal(n.toString()) };
    };
  } else if (type === "float") {
    input = h("input", { ...common, type: "text", inputmode: "decimal", placeholder: dflt || "number", autocomplete: "off" });
    read = () => {
      const t = text(input.value);
      if (t === "") return missing(port);
      const x = Number(t);
      if (!Number.isFinite(x)) throw new Error(`${port.name}: "${t}" is not a finite number`);
      let s = String(x);
      if (!/[.eE]/.test(s)) s += ".0";
      return { set: true, value: new Literal(s) };
    };
  } else if (type === "bool") {
    input = h("select", common,
      port.required ? null : h("option", { value: "" }, dflt ? `(${dflt})` : "(not set)"),
      h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
    read = () => (input.value === "" ? missing(port) : { set: true, value: input.value === "true" });
  } else if (type === "null") {
    input = h("input", { ...common, type: "checkbox", checked: !!port.required });
    read = () => (input.checked ? { set: true, value: null } : missing(port));
  } else if (type === "bytes") {
    const f = fileField(common, port, { canUpload, uploads, onBusy });
    input = f.el;
    read = f.read;
  } else {
    // list, map, any: JSON typed in; `any` may also take a file as bytes.
    input = h("textarea", { ...common, rows: 2, spellcheck: false, placeholder: dflt || (type === "list" ? "[1, 2, 3]" : type === "map" ? '{"key": "value"}' : 'JSON: "text", 42, [1, 2], {"a": 1}') });
    let file = null;
    if (type === "any") {
      file = fileField({ dataset: { port: port.name, type: "bytes", section, alt: "file" } }, port, { canUpload, uploads, onBusy, optional: true });
      extra = h("div", { class: "alt" }, h("span", { class: "muted" }, "or a file, as bytes: "), file.el);
    }
    read = () => {
      if (file) {
        const r = file.read();
        if (r.set) return r;
      }
      const t = text(input.value);
      if (t === "") return missing(port);
      let v;
      try {
        v = JSON.parse(t);
      } catch (e) {
        throw new Error(`${port.name}: not JSON (${e.message})`);
      }
      if (type === "list" && !Array.isArray(v)) throw new Error(`${port.name}: a list is a JSON array`);
      if (type === "map" && (v === null || typeof v !== "object" || Array.isArray(v))) throw new Error(`${port.name}: a map is a JSON object`);
      return { set: true, value: new Literal(t) }; // as typed: exact integers, floats kept floats
    };
  }
  const el = h("div", { class: `field type-${type}` }, label, input, extra, help);
  return { el, read, port };
}

function missing(port) {
  if (port.required) throw new Error(`${port.name} is required`);
  return { set: false };
}

// A file input that uploads at once (chunked, with a progress bar) and then stands for
// {"$file": "<sha256>"}.
function fileField(common, port, { canUpload, uploads, onBusy, optional }) {
  if (!canUpload) {
    const el = h("div", { class: "muted read-only-note" }, "uploading needs role call or admin");
    return { el, read: () => (optional ? { set: false } : missing(port)) };
  }
  const input = h("input", { ...common, type: "file" });
  const bar = h("progress", { class: "upload-progress", max: 1, value: 0, hidden: true });
  const state = h("span", { class: "upload-state" });
  let hash = null, busy = false;
  input.addEventListener("change", async () => {
    hash = null;
    const file = input.files?.[0];
    if (!file) {
      state.textContent = "";
      bar.hidden = true;
      return;
    }
    busy = true;
    onBusy?.(1);
    bar.hidden = false;
    bar.value = 0;
    state.className = "upload-state";
    state.textContent = `uploading ${file.name}…`;
    try {
      const done = await uploads.upload(file, (f) => {
        bar.value = f;
        state.textContent = `uploading ${file.name}: ${Math.floor(f * 100)} %`;
      });
      hash = done.file_hash;
      state.className = "upload-state ok";
      state.dataset.hash = hash;
      state.textContent = `uploaded ${file.name} (${done.size} bytes) · ${hash.slice(0, 19)}…`;
    } catch (e) {
      state.className = "upload-state error";
      state.textContent = `upload failed: ${e.message}`;
    } finally {
      busy = false;
      onBusy?.(-1);
    }
  });
  const el = h("div", { class: "file-field" }, input, bar, state);
  const read = () => {
    if (busy) throw new Error(`${port.name}: the upload is not finished`);
    if (hash) return { set: true, value: { $file: hash } };
    if (input.files?.length) throw new Error(`${port.name}: the upload failed; pick the file again`);
    return optional ? { set: false } : missing(port);
  };
  return { el, read };
}
