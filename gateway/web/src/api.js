// api.js — the dashboard's only ways to reach the gateway (docs/GATEWAY.md): POST
// /api/auth/login, GET /api/status (to tell an expired token from a dropped socket), and the
// WebSocket /api/ws?token=… with the {type, payload, timestamp} envelope, reconnecting with
// backoff. Also the JSON text muster needs: exact int64 and float literals (PROTOCOL.md §4).
// Must never: talk to any other origin, or keep the token anywhere but sessionStorage.

export async function login(username, password) {
  const res = await fetch("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  let body = null;
  try {
    body = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok) throw new Error(body?.error ?? `login failed: HTTP ${res.status}`);
  return body; // {token, expires_at, user: {name, workspace, role}}
}

// True when the gateway still takes the token (false: expired, user removed, ...).
async function tokenAccepted(token) {
  try {
    const res = await fetch("/api/status", { headers: { Authorization: `Bearer ${token}` } });
    return res.status !== 401 && res.status !== 403;
  } catch {
    return true; // the gateway is unreachable: keep trying
  }
}

// A JSON literal written as is: exact int64 ("9007199254740993") and floats that must stay
// floats ("1.0"), which JSON.stringify cannot write.
export class Literal {
  constructor(text) {
    this.text = text;
  }
}

export function stringify(v) {
  if (v instanceof Literal) return v.text;
  if (Array.isArray(v)) return `[${v.map(stringify).join(",")}]`;
  if (typeof v === "bigint") return v.toString();
  if (v && typeof v === "object") {
    return `{${Object.entries(v).map(([k, x]) => `${JSON.stringify(k)}:${stringify(x)}`).join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}

// JSON.parse keeping integers beyond 2^53 exact (as BigInt) where the browser gives the source.
export function parse(text) {
  return JSON.parse(text, function (key, value, context) {
    if (typeof value === "number" && context?.source && !Number.isSafeInteger(value) && /^-?\d+$/.test(context.source)) {
      return BigInt(context.source);
    }
    return value;
  });
}

// One WebSocket to the gateway, opened again after a drop (1 s, doubling to 15 s).
// handlers: message(type, payload), state(state, detail) with state connecting | open |
// reconnecting | expired | closed.
export class Connection {
  constructor(token, expiresAt, handlers) {
    this.token = token;
    this.expiresAt = expiresAt; // unix s, from the login
    this.handlers = handlers;
    this.ws = null;
    this.stopped = false;
    this.backoff = 1000;
    this.timer = null;
  }

  open() {
    this.stopped = false;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/api/ws?token=${encodeURIComponent(this.token)}`);
    this.ws = ws;
    let opened = false;
    this.handlers.state("connecting");
    ws.onopen = () => {
      opened = true;
      this.backoff = 1000;
      this.handlers.state("open");
    };
    ws.onmessage = (e) => {
      let msg;
      const t0 = performance.now();
      try {
        msg = parse(e.data);
        this.lastParseMs = performance.now() - t0; // read by the page's render metrics
        this.lastBytes = e.data.length;
      } catch {
        console.warn("dashboard: a message that is not JSON was ignored");
        return;
      }
      if (msg && typeof msg.type === "string") this.handlers.message(msg.type, msg.payload);
    };
    ws.onclose = async (e) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = null;
      // A refused upgrade (bad token) or a 1008 close (token expired, user removed) needs a new login.
      if (e.code === 1008 || !opened) {
        const expired = Date.now() / 1000 >= this.expiresAt;
        if (expired || !(await tokenAccepted(this.token))) {
          this.stopped = true;
          this.handlers.state("expired", expired ? "the login expired" : e.reason || "the gateway no longer takes this login");
          return;
        }
      }
      this.handlers.state("reconnecting", `retrying in ${Math.round(this.backoff / 1000)} s`);
      this.timer = setTimeout(() => this.open(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 15000);
    };
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  send(type, payload) {
    if (!this.isOpen) throw new Error("not connected to the gateway");
    this.ws.send(stringify({ type, payload, timestamp: Math.floor(Date.now() / 1000) }));
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, "logout");
    this.ws = null;
    this.handlers.state("closed");
  }
}
