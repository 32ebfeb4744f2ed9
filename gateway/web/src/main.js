// main.js — the dashboard's entry: the login form, then the page (broker, nodes, workers,
// events, calls, a node's panel) fed by one WebSocket to the gateway. Every push updates the
// Store; views render at the next animation frame (Frame), at most once per frame each.
// The token lives in sessionStorage only (gone when the tab closes); logout forgets it.
// window.__muster exposes render timings and the socket to the browser test (read-only use).
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { Connection, login } from "./api.js";
import { Calls } from "./calls.js";
import { Frame, h } from "./dom.js";
import { Activity, CallList, Failures } from "./lists.js";
import { NodeList } from "./nodes.js";
import { Overview } from "./overview.js";
import { NodePanel } from "./panel.js";
import { Store } from "./state.js";
import { Uploads } from "./upload.js";
import { WorkerList } from "./workers.js";

const SESSION_KEY = "muster.dashboard.session";
const app = document.getElementById("app");
const metrics = { services_count: 0, peers_count: 0 };
window.__muster = { metrics, errors: [] };

function savedSession() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (s?.token && s.expires_at * 1000 > Date.now()) return s;
  } catch {
    /* ignore a damaged entry */
  }
  sessionStorage.removeItem(SESSION_KEY);
  return null;
}

function showLogin(message) {
  document.title = "muster · log in";
  app.classList.remove("stale");
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true, autofocus: true });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const error = h("div", { id: "login-error", class: "form-error" }, message ?? "");
  const button = h("button", { type: "submit", id: "login-submit" }, "Log in");
  const form = h("form", { id: "login-form", class: "login panel-box", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    error.textContent = "";
    const t0 = performance.now();
    try {
      const s = await login(user.value, pass.value);
      metrics.login_ms = performance.now() - t0;
      sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
      showDashboard(s);
    } catch (err) {
      error.textContent = err.message;
      button.disabled = false;
    }
  } },
  h("h1", null, h("img", { src: "/assets/favicon.svg", alt: "", width: 28, height: 28 }), " muster"),
  h("label", { for: "login-username" }, "User"), user,
  h("label", { for: "login-password" }, "Password"), pass, error, button,
  h("p", { class: "muted small" }, "Users are added with `muster-gateway user add` (docs/DASHBOARD.md)."));
  app.replaceChildren(form);
  user.focus();
}

function showDashboard(session) {
  document.title = "muster dashboard";
  const store = new Store();
  const frame = new Frame();
  window.__muster.frame = frame.stats;
  const canCall = () => session.user.role === "call" || session.user.role === "admin";
  let conn = null;
  const send = (type, payload) => conn.send(type, payload);
  window.__muster.send = send;
  const uploads = new Uploads(send);
  let panel = null;
  const calls = new Calls(send, (rec) => {
    panel?.callChanged(rec);
    frame.mark("calls");
  });
  let searchQuery = null;
  const nodes = new NodeList(store, {
    search: (q) => {
      searchQuery = q;
      if (!q) {
        store.clearSearch();
        frame.mark("nodes");
        return;
      }
      try {
        send("service.search.request", q);
      } catch (e) {
        nodes.note.textContent = e.message;
      }
    },
    clearSearch: () => { searchQuery = null; store.clearSearch(); frame.mark("nodes"); },
    open: (name) => { panel.open(name); },
    rerender: () => frame.mark("nodes"),
  });
  const workers = new WorkerList(store, () => frame.mark("workers"));
  const overview = new Overview(store);
  const activity = new Activity(store);
  const failures = new Failures(store);
  const callList = new CallList(calls);
  panel = new NodePanel(store, { calls, uploads, canCall, close: () => panel.hide() });

  const connState = h("span", { id: "conn-state", class: "badge" }, "connecting");
  const banner = h("div", { id: "banner", class: "banner", hidden: true });
  let tick = null;
  const logout = () => {
    clearInterval(tick);
    conn?.close();
    sessionStorage.removeItem(SESSION_KEY);
    showLogin("Logged out.");
  };
  app.replaceChildren(
    h("header", { class: "top" },
      h("h1", null, h("img", { src: "/assets/favicon.svg", alt: "", width: 24, height: 24 }), " muster"),
      connState,
      h("span", { class: "spacer" }),
      h("span", { id: "whoami", dataset: { role: session.user.role } }, `${session.user.name} · ${session.user.role} · workspace ${session.user.workspace}`),
      h("button", { type: "button", id: "logout", class: "secondary", onclick: logout }, "Log out")),
    banner,
    h("main", { class: "layout" },
      h("div", { class: "main-col" }, overview.el, nodes.el, workers.el,
        h("div", { class: "two" }, h("div", { class: "stack" }, activity.el, failures.el), callList.el)),
      panel.el));

  frame.on("overview", () => overview.render());
  frame.on("nodes", () => nodes.render());
  frame.on("workers", () => workers.render());
  frame.on("activity", () => activity.render());
  frame.on("failures", () => failures.render());
  frame.on("calls", () => callList.render());
  frame.on("panel", () => panel.render());
  tick = setInterval(() => frame.mark("overview"), 1000); // uptime ticks between pushes

  const t0 = performance.now();
  const firstRender = (what) => {
    if (metrics[`first_${what}_ms`] !== undefined) return;
    metrics[`first_${what}_ms`] = performance.now() - t0;
    if (metrics.first_services_ms !== undefined && metrics.first_peers_ms !== undefined && metrics.first_full_render_ms === undefined) {
      frame.rendered().then(() => {
        metrics.first_full_render_ms = performance.now() - t0;
      });
    }
  };
  const handlers = {
    "connected": () => { banner.hidden = true; app.classList.remove("stale"); },
    "node.status": (p) => { store.onStatus(p); frame.mark("overview", "failures"); },
    "services.updated": (p) => {
      const m0 = performance.now();
      store.onServices(p);
      metrics.services_count = store.servicesList.length;
      metrics.services_handle_ms = performance.now() - m0;
      metrics.services_parse_ms = conn.lastParseMs;
      metrics.services_bytes = conn.lastBytes;
      frame.mark("nodes", "overview", "panel");
      firstRender("services");
      if (searchQuery) try { send("service.search.request", searchQuery); } catch { /* reconnecting */ }
    },
    "peers.updated": (p) => {
      const m0 = performance.now();
      store.onPeers(p);
      metrics.peers_count = store.peersList.length;
      metrics.peers_handle_ms = performance.now() - m0;
      metrics.peers_parse_ms = conn.lastParseMs;
      metrics.peers_bytes = conn.lastBytes;
      frame.mark("workers", "activity", "panel");
      firstRender("peers");
    },
    "service.search.response": (p) => { if (searchQuery) { store.onSearch(p, searchQuery); nodes.pager.page = 0; frame.mark("nodes"); } },
    "execution.updated": (p) => { calls.onUpdate(p); store.onExecution(p); frame.mark("failures"); },
    "error": (p) => {
      window.__muster.errors.push(p);
      if (calls.onError(p)) return;
      if (p?.code === "UNAVAILABLE") {
        banner.hidden = false;
        banner.textContent = `${p.error} — what is shown below is as it was last seen`;
        app.classList.add("stale"); // until the gateway sends connected again
      } else if (p?.code === "TOKEN_EXPIRED" || p?.code === "PERMISSION_DENIED") {
        banner.hidden = false;
        banner.textContent = p.error;
      }
    },
    "pong": () => {},
  };
  conn = new Connection(session.token, session.expires_at, {
    message: (type, payload) => {
      if (type.startsWith("file.upload.")) return uploads.onMessage(type, payload);
      handlers[type]?.(payload);
    },
    state: (state, detail) => {
      connState.textContent = state === "open" ? "live" : state;
      connState.className = `badge ${state === "open" ? "ok" : state === "expired" ? "bad" : "warn"}`;
      connState.title = detail ?? "";
      if (state === "open") metrics.connected_ms ??= performance.now() - t0;
      if (state === "reconnecting") uploads.failAll("the connection to the gateway dropped");
      if (state === "expired") {
        clearInterval(tick);
        sessionStorage.removeItem(SESSION_KEY);
        showLogin(`Your session ended (${detail}). Log in again.`);
      }
    },
  });
  conn.open();
}

const s = savedSession();
if (s) showDashboard(s);
else showLogin();
