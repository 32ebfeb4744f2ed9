#!/usr/bin/env node
// example-client.js — the TypeScript SDK's Client as a small command line, shaped like
// `muster call`: it prints a call's outputs as JSON (PROTOCOL.md §4) on stdout and exits 0, or
// prints `error: CODE: message` on stderr and exits 1.
//
//   node worker/examples/typescript/example-client.js call hello '{"name": "Ada"}'
//   node worker/examples/typescript/example-client.js call sleep '{"ms": 500}' --progress --timeout-ms 2000
//   node worker/examples/typescript/example-client.js nodes | workers | status
//
// Flags: --client-address EP (default ipc://<runtime dir>/client.sock), --insecure,
// --timeout-ms N, --progress (progress lines on stderr), --parameters JSON. INPUTS '-' reads stdin.
// A tcp:// --client-address is CURVE-encrypted with keys from enrollment (docs/SECURITY.md §5):
// --data-dir DIR (keys and identity, default ~/.local/share/muster), --enrollment-address EP
// (default tcp://<host>:7900), --enrollment-token-file FILE (else $MUSTER_ENROLLMENT_TOKEN,
// else $XDG_CONFIG_HOME/muster/enrollment-token), --role client|admin, --name NAME, --enrollment-timeout-ms N.
// Admin commands (local owner over ipc://, or an admin identity): token-create [ROLE],
// token-list, token-revoke ID, key-list, key-revoke ID.
// @ts-check
'use strict';

const fs = require('node:fs');
const { parseArgs } = require('node:util');

const { Client, MusterError, errorCodeName, toJson, valuesFromJson } = require('../../typescript');

const USAGE = `usage: example-client.js [--client-address EP] [--insecure] call NODE [INPUTS] [--timeout-ms N] [--progress] [--parameters JSON]
       example-client.js [--client-address EP] nodes|workers|status
       example-client.js [--client-address EP] token-create [ROLE] | token-list | token-revoke ID | key-list | key-revoke ID
  tcp://: [--data-dir DIR] [--enrollment-address EP] [--enrollment-token-file FILE] [--role client|admin] [--name NAME] [--enrollment-timeout-ms N]`;

/**
 * JSON for listings (a port's default may be an Int beyond 2^53, a bigint): bigints as numbers
 * where exact, else as strings.
 * @param {unknown} value
 */
function plain(value) {
  return JSON.stringify(
    value,
    (_k, v) => (typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v),
    2,
  );
}

async function main() {
  /** @type {any} */
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        'client-address': { type: 'string' },
        insecure: { type: 'boolean', default: false },
        'timeout-ms': { type: 'string', default: '0' },
        progress: { type: 'boolean', default: false },
        parameters: { type: 'string' },
        'data-dir': { type: 'string' },
        'enrollment-address': { type: 'string' },
        'enrollment-token-file': { type: 'string' },
        role: { type: 'string', default: 'client' },
        name: { type: 'string' },
        'enrollment-timeout-ms': { type: 'string', default: '10000' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    process.stderr.write(`${/** @type {Error} */ (e).message}\n${USAGE}\n`);
    return 2;
  }
  const args = parsed.values;
  const [command, ...rest] = parsed.positionals;
  if (args.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return args.help ? 0 : 2;
  }
  if (args.role !== 'client' && args.role !== 'admin') {
    process.stderr.write(`--role must be client or admin\n${USAGE}\n`);
    return 2;
  }
  /** @type {import('../../typescript').Client} */
  let client;
  try {
    client = new Client({
      clientAddress: args['client-address'],
      insecure: args.insecure,
      dataDir: args['data-dir'],
      enrollmentAddress: args['enrollment-address'],
      enrollmentTokenFile: args['enrollment-token-file'],
      role: args.role,
      name: args.name,
      enrollmentTimeoutMs: Number(args['enrollment-timeout-ms']),
      logger: 'off',
    });
  } catch (e) {
    process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
  try {
    switch (command) {
      case 'call': {
        const [node, text = '{}'] = rest;
        if (!node) throw new Error('call needs a NODE');
        const inputs = valuesFromJson(text === '-' ? fs.readFileSync(0, 'utf8') : text);
        const parameters = args.parameters ? valuesFromJson(args.parameters) : undefined;
        const outputs = await client.call(node, inputs, {
          timeoutMs: Number(args['timeout-ms']),
          parameters,
          onProgress: args.progress
            ? (p) => process.stderr.write(`progress: ${p.step}/${p.total} ${p.message}\n`)
            : undefined,
        });
        process.stdout.write(`${toJson(outputs)}\n`);
        return 0;
      }
      case 'nodes':
        process.stdout.write(`${plain(await client.nodes())}\n`);
        return 0;
      case 'workers':
        process.stdout.write(`${plain(await client.workers())}\n`);
        return 0;
      case 'status':
        process.stdout.write(`${plain(await client.status())}\n`);
        return 0;
      case 'token-create':
        process.stdout.write(`${await client.tokenCreate(rest[0] ?? 'worker')}\n`);
        return 0;
      case 'token-list':
        process.stdout.write(`${plain(await client.tokenList())}\n`);
        return 0;
      case 'token-revoke':
      case 'key-revoke': {
        if (!rest[0]) throw new Error(`${command} needs an ID`);
        const out = command === 'token-revoke' ? await client.tokenRevoke(rest[0]) : await client.keyRevoke(rest[0]);
        process.stdout.write(`${plain(out)}\n`);
        return 0;
      }
      case 'key-list':
        process.stdout.write(`${plain(await client.keyList())}\n`);
        return 0;
      default:
        process.stderr.write(`unknown command ${command}\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    if (e instanceof MusterError) process.stderr.write(`error: ${e.code}: ${e.message}\n`);
    else process.stderr.write(`error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
