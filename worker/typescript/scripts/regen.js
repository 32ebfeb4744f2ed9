#!/usr/bin/env node
// regen.js — regenerates the FlatBuffers TypeScript bindings in src/wire/ from ../../schema/*.fbs
// with flatc (2.0.8, the version the project builds with). Usage: node scripts/regen.js [OUT_DIR]
// The committed src/wire/ must always equal what this script writes; test/regen.test.ts checks it.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const packageDir = path.resolve(__dirname, '..');
const schemaDir = path.resolve(packageDir, '..', '..', 'schema');
const outDir = path.resolve(process.argv[2] || path.join(packageDir, 'src', 'wire'));
const flatc = process.env.FLATC || 'flatc';

const schemas = fs.readdirSync(schemaDir).filter((f) => f.endsWith('.fbs')).sort();
if (schemas.length === 0) throw new Error(`no .fbs files in ${schemaDir}`);

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
execFileSync(flatc, ['--ts', '-o', outDir, '-I', schemaDir, ...schemas.map((f) => path.join(schemaDir, f))], {
  stdio: 'inherit',
});
console.log(`regenerated ${outDir} from ${schemas.length} schema files`);
