// logic.test.mjs — the dashboard's DOM-free logic under node's test runner (`npm test` here,
// ctest web.dashboard): the Store's derived figures (rates from per-node stats or from the
// gateway's call counts, latency percentiles from musterd's per-node stats, joins and leaves, failures merged from musterd and from this page),
// muster's exact JSON literals, results shown for people, base64. The browser test
// (tests/integration/test_dashboard.py) covers the page itself.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Literal, parse, stringify } from "../src/api.js";
import { isTerminal, pretty } from "../src/calls.js";
import { Store, mergePercentiles } from "../src/state.js";
import { base64, fromBase64 } from "../src/upload.js";

const service = (name, extra = {}) => ({ name, service_type: "cat", status: "ACTIVE", config: {}, ...extra });

test("rates come from musterd's per-node stats when the gateway passes them on", () => {
  const s = new Store();
  s.onServices({ services: [service("a", { stats: { completed: 10, failed: 0, rate_per_s: 2.5 } }),
                            service("b", { stats: { completed: 5, failed: 5, rate_per_s: 1.5 } })] });
  s.onStatus({ stats: { calls: { completed: 999, failed: 999 } } });
  assert.equal(s.totals().source, "musterd per-node statistics");
  assert.deepEqual([s.totals().total, s.totals().failed, s.totals().rate], [20, 5, 4]);
  s.lastTotals.t -= 2; // two seconds later: 10 more calls, 5 of them failed
  s.onServices({ services: [service("a", { stats: { completed: 15, failed: 0, rate_per_s: 2.5 } }),
                            service("b", { stats: { completed: 5, failed: 10, rate_per_s: 1.5 } })] });
  s.onStatus({});
  const last = s.history.at(-1);
  assert.equal(last.rate, 4);        // musterd's own rate, summed
  assert.equal(last.errorPct, 50);   // 5 failed of 10
});

test("without per-node stats, rates come from the gateway's call counts between pushes", () => {
  const s = new Store();
  s.onStatus({ stats: { calls: { completed: 10, failed: 1, cancelled: 1 } } });
  assert.equal(s.history.length, 0);  // one sample is no rate yet
  s.lastTotals.t -= 4;
  s.onStatus({ stats: { calls: { completed: 18, failed: 1, cancelled: 3 } } });
  const last = s.history.at(-1);
  assert.ok(Math.abs(last.rate - 10 / 4) < 0.01, `rate ${last.rate}`);
  assert.equal(last.errorPct, 20);    // 2 cancelled of 10
  assert.equal(s.totals().source, "calls through this gateway");
});

test("latency percentiles come from musterd's per-node stats, else from the gateway's calls", () => {
  const s = new Store();
  s.onStatus({ stats: { calls: { count: 4, p50_us: 2000, p90_us: 3000, p99_us: 4000 } } });
  assert.deepEqual(s.latency(), { p50: 2, p90: 3, p99: 4, count: 4, source: "gateway" });
  s.onServices({ services: [service("idle", { stats: { completed: 0, failed: 0, p50_ms: 0, p90_ms: 0, p99_ms: 0 } }),
                            service("a", { stats: { completed: 9, failed: 1, p50_ms: 0.2, p90_ms: 0.5, p99_ms: 1.5 } })] });
  const one = s.latency();
  assert.equal(one.source, "musterd");
  assert.equal(one.count, 10);
  // One node: its own percentiles.
  for (const [k, v] of [["p50", 0.2], ["p90", 0.5], ["p99", 1.5]]) assert.ok(Math.abs(one[k] - v) < 1e-9, `${k} ${one[k]}`);
});

test("percentiles of several nodes are weighted by their calls", () => {
  // 90 fast calls (~1 ms) and 10 slow ones (~100 ms): the p50 is fast, the p99 slow.
  const m = mergePercentiles([{ weight: 90, p50: 1, p90: 1.5, p99: 2 }, { weight: 10, p50: 100, p90: 150, p99: 200 }]);
  assert.ok(m.p50 > 0.5 && m.p50 < 1.5, `p50 ${m.p50}`);
  assert.ok(m.p99 > 100 && m.p99 < 200, `p99 ${m.p99}`);
  assert.ok(m.p50 <= m.p90 && m.p90 <= m.p99);
  // Equal nodes merge to themselves.
  const same = mergePercentiles([{ weight: 3, p50: 1, p90: 2, p99: 4 }, { weight: 5, p50: 1, p90: 2, p99: 4 }]);
  assert.ok(Math.abs(same.p50 - 1) < 1e-9 && Math.abs(same.p90 - 2) < 1e-9 && Math.abs(same.p99 - 4) < 1e-9);
});

test("pushes closer than half a second apart are counted in the next sample, not lost", () => {
  const s = new Store();
  s.onStatus({ stats: { calls: { completed: 0 } } });
  s.onStatus({ stats: { calls: { completed: 6 } } }); // at once: no sample
  assert.equal(s.history.length, 0);
  s.lastTotals.t -= 2;
  s.onStatus({ stats: { calls: { completed: 8 } } });
  assert.equal(s.history.length, 1);
  assert.ok(Math.abs(s.history[0].rate - 4) < 0.01, `rate ${s.history[0].rate}`); // 8 calls in 2 s
});

test("joins and leaves are told from one peers.updated to the next, not at the first", () => {
  const s = new Store();
  const peer = (id) => ({ id, hostname: "h", sdk: "muster-cpp/0.1.0", nodes: ["x"] });
  s.onPeers({ peers: [peer("a"), peer("b")] });
  assert.equal(s.activity.length, 0);
  s.onPeers({ peers: [peer("b"), peer("c")] });
  assert.deepEqual(s.activity.map((e) => [e.kind, e.id]).sort(), [["joined", "c"], ["left", "a"]]);
  assert.deepEqual(s.peersList.map((w) => w.id), ["b", "c"]);
});

test("lists sort names with numbers in them as people do", () => {
  const s = new Store();
  s.onServices({ services: ["n.10", "n.9", "n.100", "m"].map((n) => service(n)) });
  assert.deepEqual(s.servicesList.map((x) => x.name), ["m", "n.9", "n.10", "n.100"]);
});

test("failures merge musterd's recent_failures and this page's calls, newest first, once each", () => {
  const s = new Store();
  const f = { node: "n", code: "TIMEOUT", message: "late", time: 1796556000 };
  s.onStatus({ recent_failures: [f] });
  s.onStatus({ recent_failures: [f] }); // pushed again: not listed twice
  s.onExecution({ execution_id: 3, node: "fail", status: "failed", error: { code: "WORKER_ERROR", message: "boom" }, completed_at: 1796556100 });
  s.onExecution({ execution_id: 3, node: "fail", status: "failed", error: { code: "WORKER_ERROR", message: "boom" }, completed_at: 1796556100 });
  s.onExecution({ execution_id: 4, node: "sleep", status: "completed" });
  assert.deepEqual(s.failures.map((x) => [x.code, x.node, x.source]), [["WORKER_ERROR", "fail", "this page"], ["TIMEOUT", "n", "musterd"]]);
  assert.equal(s.failures[1].time, 1796556000 * 1000);
});

test("a search result narrows the node list until it is cleared", () => {
  const s = new Store();
  s.onServices({ services: [service("a"), service("b"), service("c")] });
  s.onSearch({ services: [service("c"), service("a")], error: "" }, { query: "x" });
  assert.deepEqual(s.visibleServices().map((x) => x.name), ["a", "c"]);
  s.clearSearch();
  assert.equal(s.visibleServices().length, 3);
});

test("JSON for muster: exact int64 and floats that stay floats", () => {
  const text = stringify({ i: new Literal("9223372036854775807"), f: new Literal("2.0"), s: "x\"y", l: [1, null, true], b: 12n, o: { $file: "sha256:ab" } });
  assert.equal(text, '{"i":9223372036854775807,"f":2.0,"s":"x\\"y","l":[1,null,true],"b":12,"o":{"$file":"sha256:ab"}}');
  assert.deepEqual(parse('{"a": 1.5, "b": [1]}'), { a: 1.5, b: [1] });
  const sourceAccess = JSON.parse("1", (k, v, ctx) => ctx !== undefined);
  if (sourceAccess) assert.equal(parse('{"big": 9007199254740993}').big, 9007199254740993n);
});

test("results for people: bytes abbreviated, big integers exact", () => {
  assert.equal(pretty({ d: { $bytes: "AAECAw==" }, n: 12345678901234567890n }), '{\n  "d": {"$bytes": "…4 bytes…"},\n  "n": 12345678901234567890\n}');
  assert.ok(isTerminal("cancelled") && !isTerminal("running"));
});

test("base64 both ways, also past the 32 KiB apply() slices", () => {
  const bytes = new Uint8Array(100_000).map((_, i) => (i * 7) & 255);
  const text = base64(bytes);
  assert.equal(text, Buffer.from(bytes).toString("base64"));
  assert.deepEqual(fromBase64(text), bytes);
});
