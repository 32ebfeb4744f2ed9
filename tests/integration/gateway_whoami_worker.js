#!/usr/bin/env node
// gateway_whoami_worker.js — a TypeScript-SDK test worker for tests/integration/test_gateway.py:
// `<prefix>whoami` returns its caller context (identity, name, workspace, role) as the daemon
// stamped it. Flags: --prefix, --worker-id, --request-address, --response-address, --data-dir,
// --enrollment-address, --enrollment-token-file (as the example worker).
'use strict';

const { parseArgs } = require('node:util');
const { Worker } = require('../../worker/typescript');

const args = parseArgs({
  options: {
    prefix: { type: 'string', default: '' },
    'worker-id': { type: 'string' },
    'request-address': { type: 'string' },
    'response-address': { type: 'string' },
    'data-dir': { type: 'string' },
    'enrollment-address': { type: 'string' },
    'enrollment-token-file': { type: 'string' },
  },
  strict: true,
}).values;

const worker = new Worker({
  workerId: args['worker-id'],
  capacity: 4,
  requestAddress: args['request-address'],
  responseAddress: args['response-address'],
  dataDir: args['data-dir'],
  enrollmentAddress: args['enrollment-address'],
  enrollmentTokenFile: args['enrollment-token-file'],
  logger: 'debug',
});
worker.node({ name: `${args.prefix}whoami`, description: 'Returns its caller context.', category: 'tests' }, (ctx) => ({
  identity: ctx.caller.identity,
  name: ctx.caller.name,
  workspace: ctx.caller.workspace,
  role: ctx.caller.role,
}));
// run() handles SIGINT/SIGTERM itself (detach, finish, resolve).
worker.run().then(
  () => setTimeout(() => process.exit(0), 2000).unref(),
  (e) => {
    process.stderr.write(`whoami worker: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
