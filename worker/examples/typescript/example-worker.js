#!/usr/bin/env node
// example-worker.js — the TypeScript SDK's example worker, the counterpart of the C++
// muster-example-worker: `hello` and `echo` behave exactly like the C++ ones, `digest`
// does real work with node:crypto, and `sleep` (not idempotent) waits, reporting progress,
// until its time is up or it is aborted; `count` {n, delay_ms, pad} streams the items {i: 0..n-1}
// as the C++ example's (an async generator: call it with client.stream or `muster call
// --stream`), then returns {count: n}; `sha256` {data: bytes} -> {hex} hashes its input as it
// arrives (a stream port: a 2 GiB input in bounded memory). `echo` echoes values of any size (a
// bytes value over 8 MiB travels chunked both ways, docs/STREAMS.md §3). Run it after building the SDK (cd worker/typescript &&
// npm ci && npm run build):
//
//   node worker/examples/typescript/example-worker.js --prefix ts.
//   muster call ts.hello '{"name": "Ada"}'   ->  {"greeting": "Hello Ada", "shout": "HELLO ADA"}
//
// Flags: --prefix P (node names become P + name; default none), --worker-id ID,
// --capacity N, --request-address EP, --response-address EP, --insecure, --log-level LEVEL,
// --shutdown-grace-ms N (how long SIGTERM lets running requests finish; default 10000),
// --no-direct (connect a SUB as well: two connections to musterd, PROTOCOL.md §7.10).
// tcp:// endpoints are CURVE-encrypted with keys from enrollment (docs/SECURITY.md §5):
// --data-dir DIR (worker-curve.key, worker-identity.json; default ~/.local/share/muster),
// --enrollment-address EP (default tcp://<host of --response-address>:7900),
// --enrollment-token-file FILE (else $MUSTER_ENROLLMENT_TOKEN, else
// $XDG_CONFIG_HOME/muster/enrollment-token), --name NAME (default worker).
// Endpoints default like every muster program: ipc://$MUSTER_RUNTIME_DIR/{request,response}.sock
// (else $XDG_RUNTIME_DIR/muster, else /tmp/muster-$UID). SIGINT/SIGTERM: detach, finish, exit.
// @ts-check
'use strict';

const crypto = require('node:crypto');
const os = require('node:os');
const { parseArgs } = require('node:util');

const { Worker, MusterError, ErrorCode } = require('../../typescript');

const USAGE = `usage: example-worker.js [--prefix P] [--worker-id ID] [--capacity N]
                         [--request-address EP] [--response-address EP]
                         [--data-dir DIR] [--enrollment-address EP] [--enrollment-token-file FILE]
                         [--name NAME] [--insecure] [--log-level debug|info|warn|error|off]
                         [--shutdown-grace-ms N] [--no-direct]`;

function main() {
  let args;
  try {
    args = parseArgs({
      options: {
        prefix: { type: 'string', default: '' },
        'worker-id': { type: 'string' },
        capacity: { type: 'string', default: '4' },
        'request-address': { type: 'string' },
        'response-address': { type: 'string' },
        insecure: { type: 'boolean', default: false },
        'data-dir': { type: 'string' },
        'enrollment-address': { type: 'string' },
        'enrollment-token-file': { type: 'string' },
        name: { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'shutdown-grace-ms': { type: 'string', default: '10000' },
        'no-direct': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`${/** @type {Error} */ (e).message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (args.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const capacity = Number(args.capacity);
  const graceMs = Number(args['shutdown-grace-ms']);
  if (!Number.isInteger(graceMs) || graceMs < 0) {
    process.stderr.write(`--shutdown-grace-ms must be a non-negative integer\n${USAGE}\n`);
    process.exit(2);
  }
  const prefix = args.prefix ?? '';
  const host = os.hostname().replace(/[^A-Za-z0-9_.-]/g, '_');

  let worker;
  try {
    worker = new Worker({
      workerId: args['worker-id'] ?? `ts-example-${host}-${process.pid}`.slice(0, 64),
      capacity,
      requestAddress: args['request-address'],
      responseAddress: args['response-address'],
      insecure: args.insecure,
      dataDir: args['data-dir'],
      enrollmentAddress: args['enrollment-address'],
      enrollmentTokenFile: args['enrollment-token-file'],
      name: args.name,
      shutdownGraceMs: graceMs,
      direct: !args['no-direct'],
      logger: /** @type {import('../../typescript').LogLevel} */ (args['log-level']),
    });
  } catch (e) {
    process.stderr.write(`example-worker: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(2);
  }

  worker.node(
    {
      name: `${prefix}hello`,
      description: 'Greets someone: "Hello <name>" (name defaults to "world")',
      category: 'examples',
      version: '1.0.0',
      inputs: [{ name: 'name', type: 'string', description: 'who to greet' }],
      outputs: [
        { name: 'greeting', type: 'string' },
        { name: 'shout', type: 'string' },
      ],
      idempotent: true,
    },
    (ctx) => {
      const given = ctx.inputs.name;
      const name = typeof given === 'string' && given !== '' ? given : 'world';
      return { greeting: `Hello ${name}`, shout: `HELLO ${name.toUpperCase()}` };
    },
  );

  worker.node(
    {
      name: `${prefix}echo`,
      description: 'Returns its inputs unchanged (bytes of any size: large ones travel chunked both ways)',
      category: 'examples',
      version: '1.0.0',
      idempotent: true,
    },
    // rawInputs keeps the exact key order and kinds, so values round-trip unchanged.
    (ctx) => ctx.rawInputs,
  );

  worker.node(
    {
      name: `${prefix}digest`,
      description: 'Hashes a string or bytes with node:crypto (sha256 by default)',
      category: 'examples',
      version: '1.0.0',
      inputs: [{ name: 'data', type: 'any', required: true, description: 'a string (UTF-8) or bytes' }],
      parameters: [{ name: 'algorithm', type: 'string', default: 'sha256', description: 'any of crypto.getHashes()' }],
      outputs: [
        { name: 'algorithm', type: 'string' },
        { name: 'hex', type: 'string' },
        { name: 'digest', type: 'bytes' },
        { name: 'size', type: 'int', description: 'bytes hashed' },
      ],
      idempotent: true,
    },
    (ctx) => {
      const data = ctx.inputs.data;
      const algorithm = String(ctx.parameters.algorithm);
      if (!crypto.getHashes().includes(algorithm)) {
        throw new MusterError(ErrorCode.InvalidRequest, `unknown hash algorithm "${algorithm}"`);
      }
      let bytes;
      if (typeof data === 'string') bytes = Buffer.from(data, 'utf8');
      else if (data instanceof Uint8Array) bytes = data;
      else throw new MusterError(ErrorCode.InvalidRequest, 'input "data" must be a string or bytes');
      const digest = crypto.createHash(algorithm).update(bytes).digest();
      return { algorithm, hex: digest.toString('hex'), digest: new Uint8Array(digest), size: bytes.length };
    },
  );

  worker.node(
    {
      name: `${prefix}sha256`,
      description: 'The SHA-256 of a bytes input of any size, read as it arrives (bounded memory)',
      category: 'examples',
      version: '1.0.0',
      // stream: the handler starts at once and reads the input with ctx.inputStream('data')
      inputs: [{ name: 'data', type: 'bytes', required: true, stream: true }],
      outputs: [{ name: 'hex', type: 'string' }],
      idempotent: true,
    },
    async (ctx) => {
      const hash = crypto.createHash('sha256');
      for await (const piece of ctx.inputStream('data')) hash.update(piece);
      return { hex: hash.digest('hex') };
    },
  );

  worker.node(
    {
      name: `${prefix}sleep`,
      description: 'Waits `ms` milliseconds, reporting progress every 10%; stops early when aborted',
      category: 'examples',
      version: '1.0.0',
      inputs: [{ name: 'ms', type: 'int', required: true, description: 'how long to wait' }],
      outputs: [{ name: 'slept_ms', type: 'int' }],
      idempotent: false,
    },
    async (ctx) => {
      const ms = Number(ctx.inputs.ms);
      if (!Number.isFinite(ms) || ms < 0) throw new MusterError(ErrorCode.InvalidRequest, 'input "ms" must be a non-negative number');
      const start = Date.now();
      for (let step = 1; step <= 10; step++) {
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, ms / 10);
          ctx.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(undefined); }, { once: true });
        });
        ctx.throwIfAborted();
        ctx.progress(step, 10, `${step * 10}%`);
      }
      return { slept_ms: Date.now() - start };
    },
  );

  worker.node(
    {
      name: `${prefix}count`,
      description:
        'Streams the items {i: 0}, {i: 1}, ... {i: n-1} (call it with a stream: `muster call --stream count \'{"n": 3}\'`), then returns {count}; waits delay_ms before each item; stops early on abort.',
      category: 'examples',
      version: '1.0.0',
      inputs: [
        { name: 'n', type: 'int', required: true },
        { name: 'delay_ms', type: 'int', default: 0 },
        { name: 'pad', type: 'int', default: 0, description: 'bytes of padding per item' },
      ],
      outputs: [{ name: 'count', type: 'int' }],
    },
    // Each yielded value is an item; the loop waits while the caller's window is full, and stops
    // (the generator is closed) when the call is cancelled or times out.
    async function* count(ctx) {
      const n = Number(ctx.inputs.n);
      const delay = Number(ctx.inputs.delay_ms);
      const pad = Number(ctx.inputs.pad);
      if (!(n >= 0 && delay >= 0 && pad >= 0 && pad <= 64 << 20)) {
        throw new MusterError(ErrorCode.InvalidRequest, 'n, delay_ms must not be negative, pad must be 0 to 64 MiB');
      }
      const padding = new Uint8Array(pad);
      for (let i = 0; i < n; i++) {
        if (delay > 0) {
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, delay);
            ctx.signal.addEventListener('abort', () => { clearTimeout(timer); resolve(undefined); }, { once: true });
          });
          if (ctx.aborted) return undefined; // the answer is dropped anyway
        }
        yield pad > 0 ? { i, pad: padding } : { i };
      }
      return { count: n };
    },
  );

  worker.run().then(
    () => {
      // Sockets are closed: node exits by itself; a handler that ignored its abort cannot keep it.
      setTimeout(() => process.exit(0), 2000).unref();
    },
    (e) => {
      const code = e instanceof MusterError ? `${e.codeName}: ` : '';
      process.stderr.write(`example-worker: error: ${code}${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    },
  );
}

main();
