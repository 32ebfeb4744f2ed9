#!/usr/bin/env node
// stream_caller.js — the TypeScript caller of tests/integration/test_stream_sdk.py: streams a
// node's items with the TypeScript SDK's client.stream() and reports what it saw as JSON lines
// on stdout, so the Python test can check it.
//
//   node stream_caller.js NODE INPUTS_JSON [--window-items N] [--timeout-ms T] [--delay-ms D]
//                         [--cancel-after K] [--notify-at K]
//
// --delay-ms D      a slow consumer: waits D ms before taking each item
// --cancel-after K  leaves the loop after K items (which cancels the call)
// --notify-at K     prints {"got": K} once K items were taken (the test acts on it)
// Last line: {"items": n, "in_order": bool, "max_ahead": m, "outputs": {...} | null,
//             "error": {"code": "...", "message": "..."} | null, "seconds": s}
// where max_ahead is the most items received but not yet taken at any point (≤ the window).
// Endpoint: the SDK's default (MUSTER_RUNTIME_DIR). Exit status 0 whatever the call's outcome.
'use strict';

const { parseArgs } = require('node:util');
const path = require('node:path');

const { Client, MusterError } = require(path.resolve(__dirname, '..', '..', 'worker', 'typescript'));

function jsonable(v) {
  return JSON.parse(JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? Number(x) : x instanceof Map ? Object.fromEntries(x) : x)));
}

async function main() {
  const { values: o, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'window-items': { type: 'string' },
      'timeout-ms': { type: 'string', default: '0' },
      'delay-ms': { type: 'string', default: '0' },
      'cancel-after': { type: 'string' },
      'notify-at': { type: 'string' },
    },
  });
  const [node, inputs] = positionals;
  const delay = Number(o['delay-ms']);
  const cancelAfter = o['cancel-after'] === undefined ? Infinity : Number(o['cancel-after']);
  const notifyAt = o['notify-at'] === undefined ? -1 : Number(o['notify-at']);
  const client = new Client({ logger: 'warn' });
  const started = process.hrtime.bigint();
  const s = client.stream(node, JSON.parse(inputs ?? '{}'), {
    windowItems: o['window-items'] === undefined ? undefined : Number(o['window-items']),
    timeoutMs: Number(o['timeout-ms']),
  });
  let items = 0;
  let inOrder = true;
  let maxAhead = 0;
  let outputs = null;
  let error = null;
  try {
    for await (const item of s) {
      maxAhead = Math.max(maxAhead, s.itemsReceived - (items + 1)); // received but not taken yet (this one is taken)
      if (item.i !== items) inOrder = false;
      items += 1;
      if (items === notifyAt) process.stdout.write(`${JSON.stringify({ got: items })}\n`);
      if (items >= cancelAfter) break;
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    }
    outputs = jsonable(await s.result);
  } catch (e) {
    error = e instanceof MusterError ? { code: e.code, message: e.message } : { code: 'EXCEPTION', message: String(e) };
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(`${JSON.stringify({ items, in_order: inOrder, max_ahead: maxAhead, outputs, error, seconds })}\n`);
  client.close();
}

main().catch((e) => {
  process.stderr.write(`stream_caller: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
