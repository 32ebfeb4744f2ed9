#!/usr/bin/env node
// chunk_caller.js — the TypeScript caller of tests/integration/test_chunk_sdk_typescript.py:
// calls a node with one large bytes input `data` through the TypeScript SDK's Client (chunked
// values, PROTOCOL.md §7.9) and reports what it saw as JSON lines on stdout.
//
//   node chunk_caller.js NODE --mib N [--from bytes|file|stream] [--file PATH]
//                        [--output-file PATH] [--slow-sink-ms D] [--notify-bytes B]
//                        [--cancel-on-notify] [--timeout-ms T] [--live-ms P]
//
// The input is N MiB whose i-th MiB is the 8-byte little-endian i repeated (as test_chunks.py's
// block(i)), given as plain bytes (default), as ByteSource.file(--file) (the file is written
// first), or as a Readable generating it piece by piece (never held whole: spooled by the SDK).
// --output-file PATH  the chunked output is streamed to a Writable on PATH (outputSink)
// --slow-sink-ms D    the chunked output goes to a function sink that waits D ms per piece
// --notify-bytes B    prints {"received": n} once n >= B bytes of output reached the sink
// --cancel-on-notify  cancels the call once that line is printed (mid-stream: the output is
//                     flowing), whatever time the machine took to get there
// --live-ms P         every P ms during the call, collects the garbage (node --expose-gc) and
//                     samples the bytes still held: live_mib is their peak (what the SDK and this
//                     script hold, without the garbage Node has not collected yet)
// Last line: {"input_sha256": hex, "outputs": {port: {"size", "sha256"} | value} | null,
//             "error": {"code", "message"} | null, "seconds": s, "max_rss_mib": m,
//             "setup_max_rss_mib": m, "memory_mib": {"rss", "heap_used", "external", "array_buffers"},
//             "live_mib": {"external", "array_buffers"} | null}
// memory_mib: the peak of each of process.memoryUsage()'s figures, sampled every 10 ms during the
// call (external and array_buffers include the chunks the SDK holds and garbage not yet collected).
// Bytes outputs are reported as their size and sha256. Exit status 0 whatever the outcome.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { Readable, Writable } = require('node:stream');
const { parseArgs } = require('node:util');

const { ByteSource, Client, MusterError } = require(path.resolve(__dirname, '..', '..', 'worker', 'typescript'));

const MiB = 1024 * 1024;

function block(i) {
  const b = Buffer.allocUnsafe(MiB);
  for (let at = 0; at < MiB; at += 8) b.writeBigUInt64LE(BigInt(i), at);
  return b;
}

function* blocks(n) {
  for (let i = 0; i < n; i++) yield block(i);
}

function summary(v) {
  if (v instanceof Uint8Array) return { size: v.length, sha256: crypto.createHash('sha256').update(v).digest('hex') };
  if (typeof v === 'bigint') return Number(v);
  return v;
}

async function main() {
  const { values: o, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      mib: { type: 'string', default: '40' },
      from: { type: 'string', default: 'bytes' },
      file: { type: 'string' },
      'output-file': { type: 'string' },
      'slow-sink-ms': { type: 'string' },
      'notify-bytes': { type: 'string' },
      'cancel-on-notify': { type: 'boolean' },
      'timeout-ms': { type: 'string', default: '120000' },
      'live-ms': { type: 'string' },
    },
  });
  const [node] = positionals;
  const n = Number(o.mib);
  const hash = crypto.createHash('sha256');
  for (const b of blocks(n)) hash.update(b);
  const inputSha = hash.digest('hex');
  let data;
  if (o.from === 'bytes') data = Buffer.concat([...blocks(n)]);
  else if (o.from === 'file') {
    const fd = fs.openSync(o.file, 'w');
    for (const b of blocks(n)) fs.writeSync(fd, b);
    fs.closeSync(fd);
    data = ByteSource.file(o.file);
  } else if (o.from === 'stream') data = Readable.from(blocks(n));
  else throw new Error(`--from ${o.from}?`);

  let received = 0;
  let notified = false;
  let onNotify = () => {};  // the cancel, once the call is submitted (--cancel-on-notify)
  const notifyAt = o['notify-bytes'] === undefined ? Infinity : Number(o['notify-bytes']);
  const count = (len) => {
    received += len;
    if (!notified && received >= notifyAt) {
      notified = true;
      process.stdout.write(`${JSON.stringify({ received })}\n`);
      onNotify();
    }
  };
  let outputSink;
  if (o['output-file']) {
    const file = fs.createWriteStream(o['output-file']);
    // a Writable that counts what passes (so the test sees the output arrive before the end)
    outputSink = new Writable({
      write(chunk, _enc, done) {
        count(chunk.length);
        file.write(chunk, done);
      },
      final(done) {
        file.end(done);
      },
    });
  } else if (o['slow-sink-ms'] !== undefined) {
    const delay = Number(o['slow-sink-ms']);
    outputSink = async (piece) => {
      count(piece.length);
      await new Promise((r) => setTimeout(r, delay));
    };
  }

  const peak = { rss: 0, heap_used: 0, external: 0, array_buffers: 0 };
  const sample = () => {
    const u = process.memoryUsage();
    peak.rss = Math.max(peak.rss, u.rss);
    peak.heap_used = Math.max(peak.heap_used, u.heapUsed);
    peak.external = Math.max(peak.external, u.external);
    peak.array_buffers = Math.max(peak.array_buffers, u.arrayBuffers);
  };
  // the peak so far is the setup's (hashing and writing the input): not the call's
  const setupMaxRss = Math.round(process.resourceUsage().maxRSS / 1024);
  const sampler = setInterval(sample, 10);
  sampler.unref();
  let live = null;
  let liveSampler = null;
  if (o['live-ms'] !== undefined) {
    if (typeof global.gc !== 'function') throw new Error('--live-ms needs node --expose-gc');
    live = { external: 0, array_buffers: 0 };
    liveSampler = setInterval(() => {
      global.gc();
      // the finalizers of collected native buffers (zeromq's messages) run after the GC: then
      // collect again and count what is left
      setImmediate(() => {
        global.gc();
        const u = process.memoryUsage();
        live.external = Math.max(live.external, u.external);
        live.array_buffers = Math.max(live.array_buffers, u.arrayBuffers);
      });
    }, Number(o['live-ms']));
    liveSampler.unref();
  }
  const client = new Client({ logger: 'warn' });
  const started = process.hrtime.bigint();
  let outputs = null;
  let error = null;
  try {
    const call = client.submit(node, { data }, { timeoutMs: Number(o['timeout-ms']), outputSink });
    if (o['cancel-on-notify']) onNotify = () => void call.cancel();
    const out = await call.result;
    data = null;
    outputs = {};
    for (const [k, v] of out instanceof Map ? out : Object.entries(out)) outputs[k] = summary(v);
  } catch (e) {
    error = e instanceof MusterError ? { code: e.code, message: e.message } : { code: 'EXCEPTION', message: String(e && e.stack ? e.stack : e) };
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(sampler);
  if (liveSampler) clearInterval(liveSampler);
  const mib = (v) => Math.round((10 * v) / (1024 * 1024)) / 10;
  const liveMib = live && { external: mib(live.external), array_buffers: mib(live.array_buffers) };
  sample();
  const memoryMib = Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / (1024 * 1024))]));
  const maxRss = Math.round(process.resourceUsage().maxRSS / 1024);
  process.stdout.write(`${JSON.stringify({ input_sha256: inputSha, outputs, error, seconds, max_rss_mib: maxRss, setup_max_rss_mib: setupMaxRss, memory_mib: memoryMib, live_mib: liveMib })}\n`);
  client.close();
}

main().catch((e) => {
  process.stderr.write(`chunk_caller: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
