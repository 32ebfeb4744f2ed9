// node-client.mjs — a browser-style client of muster-gateway using only what a browser has:
// fetch and the WHATWG WebSocket (Node's built-in one: Node >= 22, or Node 20/21 with
// --experimental-websocket). It logs in, opens the WebSocket, pings, searches, calls a node
// with progress, cancels a call, and checks that a bad token is refused; then prints one JSON
// summary line. tests/integration/test_gateway.py runs it against the example workers.
//
//   node gateway/examples/node-client.mjs http://127.0.0.1:8080 USER PASSWORD
//
// Exit code 0 when every step worked, 1 otherwise (the reason on stderr).
const [base, user, password] = process.argv.slice(2);
if (!base || !user || !password) {
  console.error("usage: node node-client.mjs <gateway base URL> <user> <password>");
  process.exit(2);
}
if (typeof WebSocket === "undefined") {
  console.error("this Node has no built-in WebSocket: use Node >= 22, or --experimental-websocket on Node 20/21");
  process.exit(2);
}
const wsBase = base.replace(/^http/, "ws");
const fail = (why) => {
  console.error(`node-client: ${why}`);
  process.exit(1);
};
setTimeout(() => fail("did not finish within 60 s"), 60000).unref();

// One WebSocket with a queue of received messages and a way to wait for the next of a kind.
function open(token) {
  const ws = new WebSocket(`${wsBase}/api/ws?token=${encodeURIComponent(token)}`);
  const inbox = [];
  const waiters = [];
  ws.onmessage = (e) => {
    const m = JSON.parse(e.data);
    inbox.push(m);
    for (const w of [...waiters]) w();
  };
  const send = (type, payload) => ws.send(JSON.stringify({ type, payload, timestamp: Math.floor(Date.now() / 1000) }));
  const next = (type, pred = () => true) =>
    new Promise((resolve) => {
      const look = () => {
        const i = inbox.findIndex((m) => m.type === type && pred(m.payload));
        if (i < 0) return;
        const [m] = inbox.splice(i, 1);
        waiters.splice(waiters.indexOf(look), 1);
        resolve(m.payload);
      };
      waiters.push(look);
      look();
    });
  const opened = new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("WebSocket error"));
  });
  return { ws, send, next, opened };
}

const login = await fetch(`${base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username: user, password }) });
if (login.status !== 200) fail(`login answered ${login.status}: ${await login.text()}`);
const { token } = await login.json();

const c = open(token);
await c.opened;
const connected = await c.next("connected");
c.send("ping", null);
await c.next("pong");

c.send("service.search.request", { query: "hello", service_type: "", peer_ids: [], active_only: true });
const search = await c.next("service.search.response");

c.send("execution.start", { node: "sleep", inputs: { ms: 300 }, client_ref: "nap" });
const steps = [];
let done;
for (;;) {
  const u = await c.next("execution.updated", (p) => p.client_ref === "nap");
  if (u.status === "running") steps.push(u.progress.step);
  if (!["pending", "running"].includes(u.status)) {
    done = u;
    break;
  }
}

c.send("execution.start", { node: "sleep", inputs: { ms: 20000 }, client_ref: "long" });
const running = await c.next("execution.updated", (p) => p.client_ref === "long" && p.status === "running");
c.send("execution.cancel", { execution_id: running.execution_id });
const cancelled = await c.next("execution.updated", (p) => p.client_ref === "long" && !["pending", "running"].includes(p.status));
c.ws.close();

const bad = open("not-a-token");
const refused = await bad.opened.then(() => false, () => true);

console.log(JSON.stringify({
  peer_id: connected.peer_id,
  message: connected.message,
  search: search.services.map((s) => s.name).sort(),
  search_complete: search.complete,
  progress_steps: steps,
  status: done.status,
  outputs: done.outputs,
  cancelled: cancelled.status,
  bad_token_refused: refused,
}));
process.exit(0);
